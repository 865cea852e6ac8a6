"""Bad input through the command line, each case in its own process: exit code 2, one line naming the
problem, no traceback, nothing half-written, no run folder left behind to block a re-run.

The cases run in processes forked from one parent that has imported the library once (so each costs
milliseconds, not the 2 s of a fresh interpreter); two more go through ``python -m resizable``. A
property-based test throws random values of every type at every training option.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import resizable
from resizable.checkpoint import save_checkpoint
from resizable.training.trainer import TrainOptions, train

SRC = str(Path(resizable.__file__).resolve().parents[1])

# Runs each case of a JSON list in a forked child (its own process, stdout/stderr to files, its own
# exit code); prints the exit codes as JSON.
RUNNER = r"""
import json, os, sys, traceback
from resizable.cli import main

cases = json.load(sys.stdin)
codes = []
for case in cases:
    pid = os.fork()
    if pid == 0:
        os.chdir(case["cwd"])
        for fd, name in ((1, case["out"]), (2, case["err"])):
            f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(f, fd)
        try:
            code = main(case["argv"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code or 0))
    _, status = os.waitpid(pid, 0)
    codes.append(os.waitstatus_to_exitcode(status))
print(json.dumps(codes))
"""


def _env():
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    return env


def _png_folder(root: Path, classes, n=6, size=28, mode="L"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", 2)):
        for k, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                shape = (size, size) if mode == "L" else (size, size, 3)
                x = rng.integers(0, 255, shape).astype(np.uint8)
                Image.fromarray(x, mode).save(d / f"{i}.png")
    return root


class Evil:
    """Pickles to a call of os.system: loading it with plain pickle would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def world(tiny_fmnist, tmp_path_factory):
    """A trained run, data folders good and bad, and checkpoint files damaged in every way."""
    root = tmp_path_factory.mktemp("bad")
    runs = root / "runs"
    run = train(TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, data_dir=tiny_fmnist, epochs=1,
                            batch_size=64, max_steps_per_epoch=1, out_dir=str(runs), name="run", progress=False,
                            eval_configs="minmax", eval_calibrate_bn=0, lr=0.05))
    files = root / "files"
    files.mkdir()
    good = (run / "checkpoint.pt").read_bytes()
    (files / "empty.pt").write_bytes(b"")
    (files / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (files / "truncated.pt").write_bytes(good[: len(good) // 2])
    damaged = bytearray(good)
    damaged[len(good) // 3: len(good) // 3 + 2000] = bytes(2000)
    (files / "zeroed.pt").write_bytes(bytes(damaged))
    marker = root / "PWNED"
    torch.save({"format": "resizable-checkpoint", "model": Evil(str(marker))}, files / "evil.pt")
    torch.save({"format": "resizable-checkpoint", "model": Evil(str(marker))}, files / "evil_legacy.pt",
               _use_new_zipfile_serialization=False)
    (files / "pickle.pt").write_bytes(__import__("pickle").dumps({"format": "resizable-checkpoint"}))
    torch.save([1, 2, 3], files / "list.pt")
    torch.save({"format": "resizable-checkpoint", "model_name": "resnet20"}, files / "nokeys.pt")
    three = resizable.create_model("resnet20", num_classes=3, in_chans=1, widths=[4, 8, 8])
    save_checkpoint(files / "three.pt", three, "resnet20", {"num_classes": 3, "in_chans": 1, "widths": [4, 8, 8]})
    (files / "bad.yaml").write_text("epoch: 3\n")
    (files / "broken.yaml").write_text("epochs: [1,\n")
    (files / "table.csv").write_text("not a table\n")
    (files / "binary.csv").write_bytes(bytes(range(256)) * 4)
    for name, text in (("lr-fast", "lr: fast\n"), ("epochs-three", "epochs: three\n"), ("epochs-true", "epochs: true\n"),
                       ("batch-float", "batch_size: 64.7\n"), ("seed-big", "seed: 1e23\n")):
        (files / f"{name}.yaml").write_text(text)
    (files / "latin1.yaml").write_bytes("lr: 0.1  # caf\xe9\n".encode("latin-1"))
    payload = torch.load(run / "checkpoint.pt", weights_only=False)
    for name, change in (("nan", lambda p: p["model"]["fc.weight"].fill_(float("nan"))),
                         ("v999", lambda p: p.update(version=999)),
                         ("std0", lambda p: p["data"].update(std=[0.0])),
                         ("mean3", lambda p: p["data"].update(mean=[0.1, 0.2, 0.3]))):
        changed = {**payload, "model": {k: v.clone() for k, v in payload["model"].items()},
                   "data": dict(payload["data"])}
        change(changed)
        torch.save(changed, files / f"{name}.pt")
    run3 = train(TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, data_dir=tiny_fmnist, epochs=2,
                              batch_size=64, max_steps_per_epoch=1, out_dir=str(runs), name="run3", progress=False,
                              eval_configs="minmax", eval_calibrate_bn=0, lr=0.05))
    folders = root / "folders"
    _png_folder(folders / "three", ["a", "b", "c"])
    _png_folder(folders / "one", ["only"])
    bad = _png_folder(folders / "badimg", ["a", "b"])
    (bad / "train" / "b" / "3.png").write_bytes(b"this is not a png")
    (folders / "empty").mkdir()
    return {"root": root, "run": run, "run3": run3, "runs": runs, "files": files, "folders": folders, "fm": tiny_fmnist,
            "marker": marker}


def _cases(w):
    run, f, d, fm = str(w["run"]), w["files"], w["folders"], w["fm"]
    out = str(w["root"] / "new-runs")
    t = ["train", "--out-dir", out, "--data-dir", fm, "--no-progress", "--model-args", "{widths: [4, 8, 8]}",
         "--epochs", "1", "--max-steps-per-epoch", "1", "--eval-calibrate-bn", "0"]
    ifold = ["--dataset", "imagefolder", "--data-dir"]
    t1 = [a for i, a in enumerate(t) if a != "--epochs" and (i == 0 or t[i - 1] != "--epochs")]  # epochs from YAML
    return [
        # (argv, words the one line must hold)
        (t + ["--epochs", "0"], "--epochs 0: expected an integer >= 1"),
        (t + ["--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
        (t + ["--lr", "-1"], "--lr -1.0: expected a number > 0"),
        (t + ["--factors", "-0.5,1"], "item -0.5: expected a number >= 0.05"),
        (t + ["--factors", "0.5,abc"], "comma-separated numbers"),
        (t + ["--model", "resnet9000"], "known models"),
        (t + ["--dataset", "mnist-ish"], "accepted values: fashion-mnist"),
        (t + ["--schedule", "poly"], "invalid choice: 'poly'"),
        (t + ["--epochs", "abc"], "invalid int value: 'abc'"),
        (t + ["--config", str(f / "missing.yaml")], "missing.yaml"),
        (t + ["--options-file", str(f / "bad.yaml")], "unknown option(s) ['epoch']"),
        (t + ["--options-file", str(f / "broken.yaml")], "not readable YAML"),
        (t + ["--model-args", "{widths: [4, 8"], "expected a YAML mapping"),
        (t + ["--dataset", "imagefolder", "--data-dir", str(d / "empty")], "no train folder"),
        (t + ifold + [str(d / "one")], "one class folder ('only')"),
        (t + ifold + [str(d / "badimg")], "badimg/train/b/3.png: cannot read this image"),
        (t + ifold + [str(d / "badimg"), "--bad-images", "scan"], "1 of 16 images cannot be read"),
        (t + ["--bad-images", "ignore"], "invalid choice: 'ignore'"),
        (t + ["--data-dir", str(f)], "Fashion-MNIST train files"),
        (t + ["--batch-size", "100000"], "larger than the training set"),
        (t + ["--eval-configs", "0.5,1,1"], "0.5"),
        (t + ["--resume", str(w["root"] / "no-such-run")], "nothing to resume"),
        (t + ["--resume", run, "--lr", "0.5", "--batch-size", "16"], "--batch-size 16 (the run: 64); only"),
        (t + ["--init-checkpoint", str(f / "three.pt")], "the data has 10 classes, the model 3"),
        (t + ["--init-checkpoint", str(f / "random.pt")], "random.pt: not a torch checkpoint"),
        (["train", "--out-dir", str(w["runs"]), "--name", "run", "--data-dir", fm], "holds a checkpoint"),
        (["eval"], "--checkpoint is required"),
        (["eval", "--checkpoint", str(f / "empty.pt")], "empty.pt: empty file"),
        (["eval", "--checkpoint", str(f / "random.pt")], "random.pt: not a torch checkpoint"),
        (["eval", "--checkpoint", str(f / "truncated.pt")], "truncated.pt: not a torch checkpoint"),
        (["eval", "--checkpoint", str(f / "zeroed.pt")], "zeroed.pt: corrupt torch checkpoint"),
        (["eval", "--checkpoint", str(f / "evil.pt")], "evil.pt: refused: loading it would call"),
        (["eval", "--checkpoint", str(f / "evil_legacy.pt")], "evil_legacy.pt: refused"),
        (["eval", "--checkpoint", str(f / "pickle.pt")], "pickle.pt: not a torch checkpoint"),
        (["eval", "--checkpoint", str(f / "list.pt")], "list.pt is not a resizable checkpoint"),
        (["eval", "--checkpoint", str(f / "nokeys.pt")], "nokeys.pt: damaged resizable checkpoint"),
        (["eval", "--checkpoint", run] + ifold + [str(d / "three")], "the data has 3 classes, the model 10"),
        (["eval", "--checkpoint", run, "--configs", "0.3,1,1"], "0.45, 0.65, 0.85, 1.0"),
        (["eval", "--checkpoint", run, "--split", "dev"], "invalid choice: 'dev'"),
        (["eval", "--checkpoint", run, "--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
        (["export", "--checkpoint", run, "--config", "min", "--input-size", "7"], "give --input-size"),
        (["export", "--checkpoint", run, "--config", "0.5,1"], "factors"),
        (["export", "--checkpoint", run, "--config", "max", "--format", "tflite"], "invalid choice: 'tflite'"),
        (["export", "--checkpoint", run, "--config", "max", "--calibrate-bn", "-1"], "--calibrate-bn -1: expected an integer >= 0"),
        (["export", "--checkpoint", str(f / "empty.pt"), "--config", "max"], "empty.pt: empty file"),
        (["table", "--checkpoint", run, "--out", "t.csv"] + ifold + [str(d / "three")], "the data has 3 classes"),
        (["table", "--checkpoint", str(f / "truncated.pt"), "--out", "t.csv"], "truncated.pt: not a torch"),
        (["search", "--table", str(f / "missing.csv")], "missing.csv"),
        (["finetune", "--checkpoint", run, "--config", "0.3,1,1", "--out-dir", out], "0.3"),
        (["finetune", "--checkpoint", run, "--config", "1,1,1", "--out-dir", out] + ifold + [str(d / "three")],
         "the data has 3 classes"),
        (["latency", "--checkpoint", str(f / "evil.pt")], "evil.pt: refused"),
        (["adapt", "label", "--checkpoint", str(f / "random.pt")], "random.pt: not a torch checkpoint"),
        # options checked where they are declared: YAML and flags alike, the option, the value, what is accepted
        (t + ["--options-file", str(f / "lr-fast.yaml")], "--lr 'fast': expected a number > 0"),
        (t1 + ["--options-file", str(f / "epochs-three.yaml")], "--epochs 'three': expected an integer >= 1"),
        (t1 + ["--options-file", str(f / "epochs-true.yaml")], "--epochs True: expected an integer"),
        (t + ["--options-file", str(f / "batch-float.yaml")], "--batch-size 64.7: expected an integer >= 1"),
        (t + ["--options-file", str(f / "seed-big.yaml")], "--seed '1e23': expected an integer"),
        (t + ["--options-file", str(f / "latin1.yaml")], "latin1.yaml: not UTF-8 text"),
        (t + ["--model-args", "{widths: [0, 8, 8]}"], "widths must be positive integers, got [0, 8, 8]"),
        (t + ["--model-args", "{widths: [-4, 8, 8]}"], "widths must be positive integers"),
        (t + ["--model-args", "{widths: [4, 8, 8], num_classes: 3}"], "--model-args ['num_classes']: set by the data"),
        (t + ["--input-size", "100000"], "--input-size 100000: expected an integer >= 1 and <= 4096"),
        (t + ["--gamma", "-1"], "--gamma -1.0: expected a number > 0"),
        (t + ["--factors", "1e-9,1"], "item 1e-09: expected a number >= 0.05"),
        (t + ["--sampling", "random", "--num-configs", "1000"], "num_configs 1000 is more than the 64"),
        (t + ["--lr", "inf"], "--lr inf: expected a finite number"),
        (t + ["--lr", "1e308"], "--lr 1e+308: expected a number > 0 and <= 1000"),
        (t + ["--eval-configs", "1,1,1;1,1,1"], "1,1,1 listed more than once"),
        (t + ["--name", "../../escaped"], "--name '../../escaped': expected one folder name"),
        (t + ["--name", "/tmp/abs-run"], "--name '/tmp/abs-run': expected one folder name"),
        (t + ["--name", "a/b"], "--name 'a/b': expected one folder name"),
        (t + ["--resume", run, "--epochs", "0"], "--epochs 0: expected an integer >= 1"),
        (t + ["--resume", str(w["run3"]), "--epochs", "1"], "has already finished 2 epochs"),
        (["eval", "--checkpoint", str(f / "nan.pt")], "nan.pt: the weights hold NaN or infinite values"),
        (["eval", "--checkpoint", str(f / "v999.pt")], "v999.pt: checkpoint format version 999"),
        (["export", "--checkpoint", run, "--config", "max", "--input-size", "100000"], "--input-size"),
        (["export", "--checkpoint", str(f / "std0.pt"), "--config", "max"], "std [0.0] has a value <= 0"),
        (["export", "--checkpoint", str(f / "mean3.pt"), "--config", "max"], "mean has 3 value(s) for 1 channel"),
        # a run's own files are never another command's output
        (["convert", "--source", run, "--out", str(w["run"] / "checkpoint.pt")], "checkpoint.pt is the run folder's"),
        (["export", "--checkpoint", run, "--config", "max", "--format", "state_dict", "--out",
          str(w["run"] / "checkpoint.pt")], "refused: checkpoint.pt is the run folder's own file"),
        (["eval", "--checkpoint", run, "--out", str(w["run"] / "checkpoint.pt")], "the run folder's own file"),
        (["eval", "--checkpoint", run, "--out", str(w["run"] / "config.yaml")], "the run folder's own file"),
        (["table", "--checkpoint", run, "--out", str(w["run"] / "metrics.jsonl")], "the run folder's own file"),
        (["convert", "--source", "resnet18", "--weights", str(f / "random.pt"), "--out", "c.pt"],
         "random.pt: not a torch checkpoint"),
        (["search", "--table", str(f / "binary.csv")], "binary.csv"),
    ]


def _leftovers(root: Path):
    """Temporary files of interrupted atomic writes, and run folders (each run folder made by a case)."""
    tmp = [p for p in root.rglob("*.tmp")]
    new_runs = sorted(p.name for p in (root / "new-runs").iterdir()) if (root / "new-runs").exists() else []
    return tmp, new_runs


@pytest.mark.slow
def test_bad_input_cases_each_give_one_line_and_exit_2(world):
    w = world
    cases = _cases(w)
    assert len(cases) >= 30
    logs = w["root"] / "logs"
    logs.mkdir()
    cwd = w["root"] / "cwd"
    cwd.mkdir()
    spec = [{"argv": argv, "cwd": str(cwd), "out": str(logs / f"{i}.out"), "err": str(logs / f"{i}.err")}
            for i, (argv, _) in enumerate(cases)]
    before = sorted(p.name for p in w["runs"].iterdir())
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(spec), capture_output=True, text=True,
                          env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = []
    for i, ((argv, words), code) in enumerate(zip(cases, codes)):
        err = (logs / f"{i}.err").read_text()
        lines = [line for line in err.splitlines() if line.strip()]
        ok = (code == 2 and len(lines) >= 1 and "Traceback" not in err and words in lines[-1]
              and lines[-1].startswith(("resizable", "usage")) and all(not l.startswith(" ") for l in lines)
              and sum(" error: " in line for line in lines) == 1)
        if not ok:
            problems.append(f"case {i} {argv[:1] + argv[-4:]}: exit {code}, expected {words!r}, stderr:\n{err[-1500:]}")
    assert not problems, "\n\n".join(problems)
    # the error line is the last one and the only one; "data: ..." lines of a started run are allowed before it
    tmp, new_runs = _leftovers(w["root"])
    assert tmp == [] and new_runs == [], (tmp, new_runs)
    assert sorted(p.name for p in w["runs"].iterdir()) == before
    for folder in (w["run"], w["run3"]):  # nothing overwrote or added to a run's own files
        assert sorted(p.name for p in folder.iterdir()) == [".lock", "checkpoint.pt", "config.yaml", "metrics.jsonl",
                                                            "steps.jsonl"]
    assert not (w["root"].parent / "escaped").exists() and not Path("/tmp/abs-run").exists()  # --name stayed put
    assert not w["marker"].exists()  # the crafted checkpoints ran nothing
    assert not list(cwd.iterdir())  # no table or export written where the command ran


@pytest.mark.slow
@pytest.mark.parametrize("name, argv, words", [
    ("evil", ["eval", "--checkpoint", "{files}/evil.pt"], "refused"),
    ("factors", ["train", "--factors", "-0.5,1", "--out-dir", "{root}/new-runs", "--data-dir", "{fm}"],
     "item -0.5: expected a number >= 0.05"),
])
def test_python_dash_m_entry_point(world, name, argv, words):
    argv = [a.format(files=world["files"], root=world["root"], fm=world["fm"]) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "resizable"] + argv, capture_output=True, text=True, env=_env(),
                          timeout=120, cwd=world["root"])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
    assert not world["marker"].exists()
    assert not (world["root"] / "new-runs").exists()


def test_crafted_checkpoint_cannot_run_code(tmp_path):
    from resizable.checkpoint import CheckpointError, load_checkpoint, load_model

    marker = tmp_path / "ran"
    for legacy in (False, True):
        path = tmp_path / f"evil{int(legacy)}.pt"
        torch.save({"format": "resizable-checkpoint", "model_name": "resnet20", "model_kwargs": {},
                    "model": {"w": Evil(str(marker))}}, path, _use_new_zipfile_serialization=not legacy)
        # what an unsafe loader would do: prove the file is really armed
        if not legacy:
            torch.load(path, weights_only=False)
            assert marker.exists()
            marker.unlink()
        for load in (load_checkpoint, load_model):
            with pytest.raises(CheckpointError, match="refused: loading it would call"):
                load(path)
        assert not marker.exists()


@pytest.mark.slow
def test_a_run_stopped_by_a_bad_image_reruns_after_the_fix(tmp_path):
    from resizable.cli import main

    data = _png_folder(tmp_path / "data", ["a", "b"], n=4)
    image = data / "train" / "a" / "1.png"
    good = image.read_bytes()
    image.write_bytes(good[:40])  # truncated
    argv = ["train", "--dataset", "imagefolder", "--data-dir", str(data), "--out-dir", str(tmp_path / "runs"),
            "--name", "r", "--no-progress", "--model-args", "{widths: [4, 8, 8]}", "--epochs", "1",
            "--batch-size", "4", "--eval-calibrate-bn", "0", "--eval-configs", "minmax"]
    assert main(argv) == 2
    assert not (tmp_path / "runs" / "r").exists()
    # skip: the run goes on without the image, warning about it
    assert main(argv + ["--name", "skip", "--bad-images", "skip"]) == 0
    image.write_bytes(good)
    from resizable.data import imagefolder

    imagefolder.folder_stats.cache_clear()  # the same process saw the damaged file
    assert main(argv) == 0
    assert (tmp_path / "runs" / "r" / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_options_layer_answers_any_value_with_one_line(tmp_path, capsys):
    import dataclasses

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from resizable.cli import main
    from resizable.utils.options import resolve_options
    from resizable.training.trainer import TrainOptions

    names = [f.name for f in dataclasses.fields(TrainOptions) if f.name not in ("resume", "init_checkpoint",
                                                                                  "teacher", "out_dir")]
    values = st.one_of(st.none(), st.booleans(), st.integers(-10**25, 10**25), st.floats(allow_nan=True),
                       st.text(max_size=12), st.lists(st.floats(allow_nan=True), max_size=4),
                       st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
    out_dir = tmp_path / "never"
    refused = {"n": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(names), values)
    def check(name, value):
        path = tmp_path / "o.yaml"
        path.write_text(yaml.safe_dump({name: value}))
        try:
            resolve_options(TrainOptions, yaml_path=str(path))
        except ValueError as e:  # refused by the options layer: then the command says so in one line
            assert "\n" not in str(e)
            code = main(["train", "--options-file", str(path), "--out-dir", str(out_dir)])
            err = capsys.readouterr().err
            assert code == 2 and err.count("\n") == 1 and err.startswith("resizable train: error: "), err
            assert not out_dir.exists()
            refused["n"] += 1

    check()
    assert refused["n"] > 50
