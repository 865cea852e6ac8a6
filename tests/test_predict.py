"""`resizable predict`: image files through a run or an exported network give eval's top-1 on the same
images (Fashion-MNIST's test images written as PNG; an RGB image folder), with bit-identical inputs;
unreadable images are one line each (exit 1), bad arguments one line (exit 2)."""
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resizable.cli import main
from resizable.data.datasets import dataset_info, load_dataset
from resizable.data.readers import load_fashion_mnist
from resizable.inference import NetworkChoice, Preprocessing, image_paths, open_network

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = "0.45,1,0.65"


def _train(data_dir, out, name, **extra):
    from resizable.training.trainer import TrainOptions, train

    options = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist", data_dir=data_dir,
                   epochs=1, batch_size=32, lr=0.2, warmup_epochs=0, max_steps_per_epoch=8, out_dir=str(out),
                   name=name, progress=False, eval_configs="1,1,1", eval_calibrate_bn=0, channels_last=False, seed=0)
    options.update(extra)
    return train(TrainOptions(**options))


@pytest.fixture(scope="module")
def fm_run(tiny_fmnist, tmp_path_factory):
    """A tiny Fashion-MNIST run (with its statistics bank)."""
    return _train(tiny_fmnist, tmp_path_factory.mktemp("runs"), "fm")


@pytest.fixture(scope="module")
def fm_pngs(tiny_fmnist, tmp_path_factory):
    """The tiny test split as PNG files, ``<label>/<index>.png`` (folders to recurse); returns (root, labels)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("pngs")
    images, labels = load_fashion_mnist("test", tiny_fmnist, False)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / f"class{int(label)}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(image[0].numpy(), "L").save(folder / f"{i:04d}.png")
    return root, labels


@pytest.fixture
def quick_run(tiny_fmnist, tmp_path):
    """An untrained checkpoint of a Fashion-MNIST run: enough for the arguments and the error paths."""
    from resizable.checkpoint import save_checkpoint
    from resizable.registry import create_model

    kwargs = {"num_classes": 10, "in_chans": 1, "widths": [4, 8, 8]}
    info = dataset_info("fashion-mnist")
    data = {"dataset": "fashion-mnist", "input_size": 28, "in_chans": 1, "mean": list(info.mean),
            "std": list(info.std), "classes": list(info.classes)}
    save_checkpoint(tmp_path / "quick" / "checkpoint.pt", create_model("resnet20", **kwargs).eval(), "resnet20",
                    kwargs, train_options={"dataset": "fashion-mnist", "data_dir": tiny_fmnist}, input_size=28,
                    data=data)
    return tmp_path / "quick"


def _pngs(folder, n, size=28, mode="L"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    shape = (size, size) if mode == "L" else (size, size, 3)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, shape).astype(np.uint8), mode).save(folder / f"{i}.png")
    return folder


def _label_of(path):
    return int(Path(path).parent.name.removeprefix("class"))


def _csv_top1(path, by_name=False):
    """top-1 % of a predict CSV against the labels its paths say (``class<N>/`` folders, or folders named as
    the classes); also the rows."""
    rows = list(csv.DictReader(open(path)))
    hits = sum(r["class_1"] == Path(r["path"]).parent.name if by_name else int(r["index_1"]) == _label_of(r["path"])
               for r in rows)
    return 100.0 * hits / len(rows), rows


def _eval_top1(run, config, **kwargs):
    from resizable.commands.evaluate import EvalOptions, evaluate_checkpoint

    return evaluate_checkpoint(EvalOptions(checkpoint=str(run), configs=config, progress=False, **kwargs))[0]["top1_pct"]


def _one_error_line(err):
    lines = [line for line in err.splitlines() if "warning: " not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("resizable predict: error: ")
    return lines[0]


# ---------------------------------------------------------------------------- preprocessing
def test_png_of_an_idx_image_gives_the_dataset_tensor_bit_for_bit(tiny_fmnist, tmp_path):
    """At the dataset's size and at another one (the datasets' own uint8 resize), and from an RGB PNG of a
    CIFAR-like image."""
    from PIL import Image

    raw, _ = load_fashion_mnist("test", tiny_fmnist, False)
    info = dataset_info("fashion-mnist")
    for size in (28, 32):
        data = load_dataset("fashion-mnist", "test", data_dir=tiny_fmnist, augment=False, input_size=size)
        prep = Preprocessing(1, (size, size), info.mean, info.std, "tensor", dataset="fashion-mnist")
        for i in range(0, 256, 37):
            path = tmp_path / f"{i}.png"
            Image.fromarray(raw[i, 0].numpy(), "L").save(path)
            assert torch.equal(prep.load(str(path)), data[i][0])
    rgb = np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    c10 = dataset_info("cifar10")
    prep = Preprocessing(3, (32, 32), c10.mean, c10.std, "tensor", dataset="cifar10")
    mean, std = torch.tensor(c10.mean).view(3, 1, 1), torch.tensor(c10.std).view(3, 1, 1)
    expected = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).sub(mean).div(std)
    assert torch.equal(prep.load(str(tmp_path / "rgb.png")), expected)


def test_other_modes_and_sizes_are_converted(tmp_path):
    """An RGB image for a grey network becomes grey (PIL's luma); a non-square one is centre-cropped to the
    input's aspect, then resized."""
    from PIL import Image

    prep = Preprocessing(1, (28, 28), (0.5,), (0.25,), "tensor", dataset="fashion-mnist")
    wide = np.zeros((28, 56, 3), np.uint8)
    wide[:, 14:42] = 200  # the centre square is bright, the sides dark
    Image.fromarray(wide, "RGB").save(tmp_path / "wide.png")
    x = prep.load(str(tmp_path / "wide.png"))
    assert x.shape == (1, 28, 28)
    grey = round(0.299 * 200 + 0.587 * 200 + 0.114 * 200)
    assert torch.allclose(x, torch.full((1, 28, 28), (grey / 255 - 0.5) / 0.25))
    Image.fromarray(np.full((56, 56), 100, np.uint8), "L").save(tmp_path / "big.png")
    assert torch.allclose(prep.load(str(tmp_path / "big.png")), torch.full((1, 28, 28), (100 / 255 - 0.5) / 0.25))


def test_a_folder_run_whose_folder_is_gone_resizes_each_image_by_the_folder_rule(tmp_path):
    """Without the folder's median size, an image gets the side the rule gives one of its own size."""
    from PIL import Image

    from resizable.data.imagefolder import eval_transform

    prep = Preprocessing(3, (32, 32), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), "folder", dataset="imagefolder")
    rng = np.random.default_rng(0)
    for (h, w), side in (((30, 40), 32), ((64, 80), 36)):  # about the input size: itself; larger: size / 0.875
        image = Image.fromarray(rng.integers(0, 255, (h, w, 3)).astype(np.uint8), "RGB")
        image.save(tmp_path / f"{h}.png")
        expected = eval_transform(32, side, prep.mean, prep.std)(image)
        assert torch.equal(prep.load(str(tmp_path / f"{h}.png")), expected)


def test_paths_recurse_folders_read_stdin_and_report_missing(tmp_path):
    _pngs(tmp_path / "b" / "deep", 2)
    _pngs(tmp_path / "a", 1)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    got = list(image_paths([str(tmp_path), "-", str(tmp_path / "gone.png")],
                           io.StringIO(f"{tmp_path / 'a' / '0.png'}\n\n{tmp_path / 'missing.png'}\n")))
    names = [str(Path(p).relative_to(tmp_path)) for p, _ in got]
    assert names == ["a/0.png", "b/deep/0.png", "b/deep/1.png", "a/0.png", "missing.png", "gone.png"]
    assert [problem is None for _, problem in got] == [True] * 4 + [False, False]
    assert got[-1][1].endswith("gone.png: no such file or folder")


# ---------------------------------------------------------------------------- same top-1 as eval
@pytest.mark.slow
def test_run_predicts_evals_top1_on_the_test_images_as_png(fm_run, fm_pngs, tmp_path, capsys):
    root, labels = fm_pngs
    out = tmp_path / "p.csv"
    assert main(["predict", str(fm_run), str(root), "--config", CONFIG, "--out", str(out), "--batch-size", "50"]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out} ({len(labels)} images classified)" in captured.out
    assert "statistics bank" in captured.err and f"at {CONFIG}" in captured.err
    top1, rows = _csv_top1(out)
    assert len(rows) == len(labels) and len({r["index_1"] for r in rows}) > 2  # the predictions differ per image
    assert top1 == pytest.approx(_eval_top1(fm_run, CONFIG), abs=1e-9)
    # the inputs themselves are eval's, bit for bit
    from resizable.trained_run import TrainedRun

    net = open_network(str(fm_run), NetworkChoice(), torch.device("cpu"))
    data = TrainedRun.open(fm_run).split("test")
    first = sorted(root.rglob("*.png"))[:40]
    assert all(torch.equal(net.preprocessing.load(str(p)), data[int(p.stem)][0]) for p in first)


@pytest.mark.slow
def test_torchscript_and_onnx_exports_predict_evals_top1(fm_run, fm_pngs, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    root, labels = fm_pngs
    expected = _eval_top1(fm_run, CONFIG)
    for fmt, extra in (("torchscript", []), ("onnx", ["--onnx-exporter", "legacy"])):
        export = tmp_path / f"net.{fmt}"
        assert main(["export", "--checkpoint", str(fm_run), "--config", CONFIG, "--format", fmt,
                     "--out", str(export)] + extra) == 0
        out = tmp_path / f"{fmt}.csv"
        assert main(["predict", str(export), str(root), "--out", str(out), "--topk", "2"]) == 0
        err = capsys.readouterr().err
        assert f"({fmt} {export}) at {CONFIG}" in err
        top1, rows = _csv_top1(out)
        assert top1 == pytest.approx(expected, abs=1e-9), fmt
        assert list(rows[0])[-1] == "error" and "class_3" not in rows[0]
        # without its sidecar, the file's own record serves
        export.with_name(export.name + ".json").unlink()
        assert main(["predict", str(export), str(root / "class3"), "--format", "json", "--topk", "1"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["network"]["config"] == CONFIG and result["classes"][3] == "Dress"
        by_path = {r["path"]: r["index_1"] for r in rows}
        assert all(str(p["top"][0]["index"]) == by_path[p["path"]] for p in result["predictions"])


@pytest.mark.slow
def test_max_mmacs_runs_the_tables_best_and_adapt_routes_each_image(fm_run, fm_pngs, tmp_path, capsys):
    from resizable.adapt.classifier import load_classifier
    from resizable.adapt.routing import Adapter
    from resizable.nas.lookup import TableOptions, search, table_checkpoint
    from resizable.trained_run import TrainedRun

    root, labels = fm_pngs
    table, _ = table_checkpoint(TableOptions(checkpoint=str(fm_run), out=str(fm_run / "table.csv"),
                                                  split="test", progress=False))
    best = search(table, max_mmacs=0.8, top=1)[0]
    assert main(["predict", str(fm_run), str(root), "--max-mmacs", "0.8", "--out", str(tmp_path / "b.json")]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    from resizable.configs import format_config

    assert result["network"]["config"] == format_config(best["config"])
    top1 = 100.0 * np.mean([p["top"][0]["index"] == _label_of(p["path"]) for p in result["predictions"]])
    assert top1 == pytest.approx(best["top1_pct"], abs=1e-3)  # the table's number for these images
    capsys.readouterr()
    assert main(["predict", str(fm_run), str(root), "--max-mmacs", "0.01"]) == 2
    assert "no configuration meets" in _one_error_line(capsys.readouterr().err)

    labels_file, clf = tmp_path / "labels.pt", tmp_path / "clf.pt"
    assert main(["adapt", "label", "--checkpoint", str(fm_run), "--out", str(labels_file), "--num-images", "64",
                 "--no-progress"]) == 0
    assert main(["adapt", "train", "--labels", str(labels_file), "--checkpoint", str(fm_run), "--out", str(clf),
                 "--epochs", "1", "--width", "4", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["predict", str(fm_run), str(root), "--classifier", str(clf), "--max-mmacs", "1.2",
                 "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "routed by" in captured.err
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO(captured.out))}
    run = TrainedRun.open(fm_run)
    adapter = Adapter.from_trained(run.model, load_classifier(clf, run.model))
    paths = sorted(root.rglob("*.png"), key=lambda p: int(p.stem))
    logits, chosen = adapter.infer(torch.stack([run.split("test")[i][0] for i in range(len(paths))]),
                                   adapter.allowed(1.2))
    for path, c, j in zip(paths, logits.argmax(1).tolist(), chosen.tolist()):
        assert int(rows[str(path)]["index_1"]) == c
        assert rows[str(path)]["config"] == format_config(adapter.configs[j])


@pytest.mark.slow
def test_rgb_image_folder_run_and_its_export_predict_evals_top1(tmp_path, capsys):
    """Non-square RGB images of varied sizes: the folder's resize-and-centre-crop; the export records the
    resize, so it serves when the folder is gone."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 8)):
        for k, name in enumerate(("red", "green", "blue")):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = int(rng.integers(30, 36)), int(rng.integers(34, 44))
                x = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
                x[..., k] += 140
                Image.fromarray(x, "RGB").save(folder / f"{i}.png")
    data = tmp_path / "data"
    run = _train(str(data), tmp_path / "runs", "rgb", dataset="imagefolder", batch_size=12, max_steps_per_epoch=3)
    expected = _eval_top1(run, "max")
    assert main(["predict", str(run), str(data / "val"), "--out", str(tmp_path / "p.csv")]) == 0
    assert _csv_top1(tmp_path / "p.csv", by_name=True)[0] == pytest.approx(expected, abs=1e-9)
    assert "shorter side to" in capsys.readouterr().err
    # eval's own inputs, bit for bit
    from resizable.trained_run import TrainedRun

    folder = TrainedRun.open(run).split("test")
    net = open_network(str(run), NetworkChoice(), torch.device("cpu"))
    inputs = {Path(path).relative_to(data): folder[i][0] for i, (path, _) in enumerate(folder.samples)}
    assert all(torch.equal(net.preprocessing.load(str(data / rel)), x) for rel, x in inputs.items())
    assert main(["export", "--checkpoint", str(run), "--config", "max", "--out", str(tmp_path / "n.pt")]) == 0
    meta = json.loads((tmp_path / "n.pt.json").read_text())
    assert meta["preprocessing"]["resize_shorter_side"] == meta["input_size"][0]  # small images: no enlargement
    data.rename(tmp_path / "moved")
    (tmp_path / "moved" / "val").rename(tmp_path / "val")
    assert main(["predict", str(tmp_path / "n.pt"), str(tmp_path / "val"), "--out", str(tmp_path / "e.csv")]) == 0
    top1, rows = _csv_top1(tmp_path / "e.csv", by_name=True)
    assert top1 == pytest.approx(expected, abs=1e-9) and rows[0]["class_1"] in ("red", "green", "blue")
    net = open_network(str(tmp_path / "n.pt"), NetworkChoice(), torch.device("cpu"))
    assert all(torch.equal(net.preprocessing.load(str(tmp_path / rel)), x) for rel, x in inputs.items())


# ---------------------------------------------------------------------------- exit status, formats
def test_unreadable_images_are_one_line_each_and_exit_1(quick_run, tmp_path, capsys):
    folder = _pngs(tmp_path / "imgs", 3)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    assert main(["predict", str(quick_run), str(folder), str(tmp_path / "gone.jpg"), "--topk", "2"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(folder / f"{i}.png") for i in range(3)]
    assert all(len(line.split("\t")) == 3 and ":" in line.split("\t")[1] for line in lines)
    err = [line for line in captured.err.splitlines() if "warning: " not in line]
    assert err[1] == f"resizable predict: {folder / 'broken.png'}: cannot read this image " \
                     f"(cannot identify image file '{folder / 'broken.png'}')"
    assert err[2] == f"resizable predict: {tmp_path / 'gone.jpg'}: no such file or folder"
    assert err[3] == "resizable predict: 2 of 5 images could not be read"
    assert main(["predict", str(quick_run), str(folder / "0.png"), str(folder / "1.png")]) == 0


def test_paths_from_stdin_and_the_checkpoint_flag(quick_run, tmp_path, capsys, monkeypatch):
    folder = _pngs(tmp_path / "imgs", 3)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{folder / '2.png'}\n{folder / '0.png'}\n"))
    assert main(["predict", "--checkpoint", str(quick_run), "-", str(folder / "1.png"), "--topk", "1"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [
        str(folder / n) for n in ("2.png", "0.png", "1.png")]


def test_csv_and_json_files_name_every_image_and_its_error(quick_run, tmp_path, capsys):
    folder = _pngs(tmp_path / "imgs", 2)
    (folder / "z.png").write_text("text")
    assert main(["predict", str(quick_run), str(folder), "--output", str(tmp_path / "r.json"), "--topk", "3"]) == 1
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["topk"] == 3 and result["network"]["config"] == "1,1,1" and len(result["classes"]) == 10
    good, bad = result["predictions"][:2], result["predictions"][2]
    assert [p["path"] for p in good] == [str(folder / "0.png"), str(folder / "1.png")]
    assert all(len(p["top"]) == 3 and p["top"][0]["prob"] >= p["top"][1]["prob"] for p in good)
    assert all(p["top"][0]["class"] == result["classes"][p["top"][0]["index"]] for p in good)
    assert bad["path"] == str(folder / "z.png") and "cannot read this image" in bad["error"]
    assert f"wrote {tmp_path / 'r.json'} (2 images classified, 1 unreadable)" in capsys.readouterr().out
    assert main(["predict", str(quick_run), str(folder), "--format", "csv", "--topk", "20"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3 and "class_10" in rows[0] and "class_11" not in rows[0]  # at most the classes there are
    assert rows[2]["error"] and rows[2]["class_1"] == "" and rows[0]["error"] == ""
    probs = [float(rows[0][f"prob_{r}"]) for r in range(1, 11)]
    assert sum(probs) == pytest.approx(1.0, abs=1e-4) and probs == sorted(probs, reverse=True)


def test_no_file_is_left_when_there_is_nothing_to_classify(quick_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(quick_run), str(tmp_path / "empty"), "--out", str(tmp_path / "r.csv")]) == 2
    assert "no image files in" in _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.glob("*.csv")) == [] and list(tmp_path.glob(".r.csv*")) == []


@pytest.mark.parametrize("args, message", [
    ([], "give the run"),
    (["RUN"], "give at least one image file"),
    (["NOWHERE", "IMG"], "no run, checkpoint or exported network at"),
    (["RUN", "IMG", "--config", "0.3,1,1"], "0.3"),
    (["RUN", "IMG", "--config", "1,1"], "3"),
    (["RUN", "IMG", "--config", "1,1,1", "--max-mmacs", "1"], "--config and --max-mmacs both choose"),
    (["RUN", "IMG", "--max-mmacs", "1"], "--max-mmacs needs a lookup table"),
    (["RUN", "IMG", "--table", "t.csv"], "--table goes with --max-mmacs"),
    (["RUN", "IMG", "--topk", "0"], "--topk"),
    (["RUN", "IMG", "--max-mmacs", "-1"], "--max-mmacs"),
    (["RUN", "IMG", "--format", "xml"], "invalid choice"),
    (["RUN", "IMG", "--device", "tpu"], "unknown device"),
    (["RUN", "IMG", "--classifier", "NOWHERE"], "no Resizable-Adapt classifier file"),
    (["RUN", "IMG", "--dataset", "cifar10"], "does not fit"),
])
def test_bad_arguments_are_refused_with_one_line(quick_run, tmp_path, capsys, args, message):
    image = _pngs(tmp_path / "imgs", 1) / "0.png"
    subst = {"RUN": str(quick_run), "IMG": str(image), "NOWHERE": str(tmp_path / "nowhere")}
    try:
        code = main(["predict"] + [subst.get(a, a) for a in args])
    except SystemExit as e:  # argparse's own refusals (a choice it does not know)
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning: " not in line]
    assert len(lines) == 1 and lines[0].startswith("resizable predict: error: ") and message in lines[0], err


def test_an_export_is_fixed_and_one_without_class_names_prints_indices(quick_run, tmp_path, capsys):
    image = _pngs(tmp_path / "imgs", 1) / "0.png"
    export = tmp_path / "n.pt"
    assert main(["export", "--checkpoint", str(quick_run), "--config", "min", "--out", str(export)]) == 0
    for extra, message in ((["--config", "max"], "fixed at 0.45,0.45,0.45"), (["--max-mmacs", "1"], "--max-mmacs"),
                           (["--bn-statistics", "bank"], "--bn-statistics")):
        capsys.readouterr()
        assert main(["predict", str(export), str(image)] + extra) == 2
        assert message in _one_error_line(capsys.readouterr().err)
    assert main(["predict", str(export), str(image), "--config", "min"]) == 0  # its own configuration is fine
    scripted = capsys.readouterr().out.split("\t")
    state = tmp_path / "n.state_dict.pt"
    assert main(["export", "--checkpoint", str(quick_run), "--config", "min", "--format", "state_dict",
                 "--out", str(state)]) == 0
    capsys.readouterr()
    assert main(["predict", str(state), str(image)]) == 0
    assert [f.split(":")[0] for f in capsys.readouterr().out.split("\t")] == [f.split(":")[0] for f in scripted]
    sidecar = export.with_name(export.name + ".json")
    meta = json.loads(sidecar.read_text())
    meta["classes"] = None
    sidecar.write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["predict", str(export), str(image), "--topk", "2"]) == 0
    captured = capsys.readouterr()
    assert "classes shown by index" in captured.err
    fields = captured.out.strip().split("\t")
    assert all(f.split(":")[0].isdigit() for f in fields[1:])
    meta["preprocessing"] = None
    sidecar.write_text(json.dumps(meta))
    assert main(["predict", str(export), str(image)]) == 2
    assert "records no preprocessing" in _one_error_line(capsys.readouterr().err)
    sidecar.write_text("{not json")
    assert main(["predict", str(export), str(image)]) == 2
    assert "not valid JSON" in _one_error_line(capsys.readouterr().err)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    assert main(["predict", str(tmp_path / "junk.onnx"), str(image)]) == 2
    _one_error_line(capsys.readouterr().err)
