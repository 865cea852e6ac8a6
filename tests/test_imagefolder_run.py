"""A new user's path on an image folder of small grayscale images: what is inferred and said before
training, the Aug phases on the epoch lines, eval's table-named CSV, and an export whose sidecar holds
the preprocessing and class names and whose `--calibrate-bn` network scores what the table says."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resizable.checkpoint import load_checkpoint
from resizable.cli import main
from resizable.data.datasets import load_dataset, make_loader

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["circle", "cross", "line"]


def _digits(root: Path, per_class: int, split: str, rng) -> None:
    """28x28 grayscale PNGs whose class sets which third of the image is bright."""
    from PIL import Image

    for k, name in enumerate(CLASSES):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            x = rng.integers(0, 90, (28, 28)).astype(np.uint8)
            x[:, 9 * k:9 * k + 9] += 140
            Image.fromarray(x, "L").save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gray")
    rng = np.random.default_rng(0)
    _digits(root / "data", 16, "train", rng)
    _digits(root / "data", 8, "val", rng)
    return root


def test_gray_folder_run_export_and_calibrated_export_matches_the_table(gray_run, capsys):
    root, data = gray_run, str(gray_run / "data")
    run = root / "runs" / "r"
    assert main(["train", "--dataset", "imagefolder", "--data-dir", data, "--out-dir", str(root / "runs"),
                 "--name", "r", "--model-args", "{widths: [4, 8, 8]}", "--factors", "0.5,1", "--epochs", "2",
                 "--recipe", "aug", "--batch-size", "16", "--lr", "0.05", "--eval-configs", "minmax",
                 "--eval-calibrate-bn", "0"]) == 0  # progress bars asked for, but stderr is not a terminal
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    # said before training: what was inferred from the images
    assert lines[0].startswith("reading the image folder")
    assert lines[1].startswith("data: imagefolder") and "1 channel (all sampled images grayscale)" in lines[1]
    assert "input 28 px" in lines[1] and "48 training images" in lines[1]
    assert "\r" not in captured.err  # no progress-bar frames when nobody watches
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert "[fair sampling]" in epochs[0] and "[fine-tuning 1,1,1]" in epochs[1]
    payload = load_checkpoint(run)
    assert payload["model_kwargs"]["in_chans"] == 1 and payload["model_kwargs"]["num_classes"] == 3
    pixels = np.concatenate([np.asarray(__import__("PIL.Image").Image.open(p), dtype=np.float64).ravel() / 255
                             for p in sorted((root / "data" / "train").rglob("*.png"))])
    assert payload["data"]["mean"][0] == pytest.approx(pixels.mean(), abs=1e-4)  # every image was sampled
    assert payload["data"]["std"][0] == pytest.approx(pixels.std(), abs=1e-4)
    assert payload["data"]["classes"] == CLASSES and payload["input_size"] == 28

    # eval: the table's column names, and --no-progress accepted
    out_csv = root / "eval.csv"
    assert main(["eval", "--checkpoint", str(run), "--no-progress", "--out", str(out_csv)]) == 0
    header = next(csv.reader(out_csv.open()))
    # top-5 only with more than 5 classes, as in the table (this folder has {len(CLASSES)})
    assert header == ["config", "mmacs", "interp_mmacs", "top1_pct"] + (["top5_pct"] if len(CLASSES) > 5 else []) \
        + ["loss", "bn_statistics"]

    # export: the run's input size, its preprocessing and class names; BN statistics from the run's bank
    assert main(["export", "--checkpoint", str(run), "--config", "0.5,0.5,1", "--out", str(root / "plain.pt")]) == 0
    meta = json.loads((root / "plain.pt.json").read_text())
    assert meta["input_size"] == [28, 28] and meta["in_chans"] == 1
    pre = meta["preprocessing"]
    assert pre["mean"] == payload["data"]["mean"] and pre["std"] == payload["data"]["std"]
    assert pre["in_chans"] == 1 and pre["input_size"] == [28, 28] and meta["classes"] == CLASSES
    assert meta["bn_statistics"]["source"] == "statistics bank"  # the trainer built it at the end of the run
    assert main(["export", "--checkpoint", str(run), "--config", "0.5,0.5,1", "--bn-statistics", "as-trained",
                 "--out", str(root / "as_trained.pt")]) == 0
    assert json.loads((root / "as_trained.pt.json").read_text())["bn_statistics"]["source"].startswith("as trained")

    # --calibrate-bn: the exported network scores what the calibrated table reports for it
    config = "0.5,0.5,1"
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run), "--config", config, "--calibrate-bn", "2",
                 "--calibrate-batch-size", "8", "--out", str(root / "calibrated.pt")]) == 0
    meta = json.loads((root / "calibrated.pt.json").read_text())
    assert meta["bn_statistics"] == {"source": "recalibrated", "batches": 2, "batch_size": 8,
                                     "data": "imagefolder train split at 28 px, no augmentation, shuffled with seed 0"}
    table = root / "table.csv"
    assert main(["table", "--checkpoint", str(run), "--out", str(table), "--calibrate-bn", "2",
                 "--calibrate-batch-size", "8", "--batch-size", "8", "--no-progress"]) == 0
    rows = {r["config"]: r for r in csv.DictReader(line for line in table.open() if not line.startswith("#"))}
    net = torch.jit.load(str(root / "calibrated.pt")).eval()
    plain = torch.jit.load(str(root / "plain.pt")).eval()
    test = make_loader(load_dataset("imagefolder", "test", data_dir=data), 8, shuffle=False)
    correct, plain_correct, n = 0, 0, 0
    with torch.no_grad():
        for x, y in test:
            correct += int((net(x).argmax(1) == y).sum())
            plain_correct += int((plain(x).argmax(1) == y).sum())
            n += len(y)
    assert 100.0 * correct / n == pytest.approx(float(rows[config]["top1_pct"]), abs=1e-3)
    # and the calibrated statistics are really different from the trained ones
    sd_net, sd_plain = net.state_dict(), plain.state_dict()
    assert any("running_mean" in k and not torch.equal(sd_net[k], sd_plain[k]) for k in sd_net)
