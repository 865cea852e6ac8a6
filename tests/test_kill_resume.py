"""Real kills (SIGKILL, no clean-up) of `resizable train` and `resizable table`, then the commands docs/training.md gives
to continue: the result equals the uninterrupted one, bit for bit."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import resizable
from resizable.checkpoint import load_checkpoint

SRC = str(Path(resizable.__file__).resolve().parents[1])

# Non-default options throughout: the resume must rebuild this run from its own config.yaml.
TRAIN = ["train", "--model", "resnet20", "--model-args", "{widths: [4, 8, 8], drop_rate: 0.2}",
         "--factors", "0.5,0.75,1", "--epochs", "3", "--batch-size", "32", "--lr", "0.05", "--seed", "3",
         "--max-steps-per-epoch", "4", "--eval-configs", "minmax", "--eval-calibrate-bn", "1",
         "--eval-batch-size", "128", "--label-smoothing", "0.1", "--no-progress"]

# Runs the CLI in this process after arming a kill: at the N-th call of a function, SIGKILL ourselves.
KILLER = r"""
import os, signal, sys
import torch
from resizable import cli
from resizable.data import datasets as data
from resizable.training import trainer as train

where, at = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}

def arm(owner, name, before=True, partial_write=False):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            if partial_write:  # write half of the file the real call would write, then die
                path = args[1]
                original(*args, **kwargs)
                size = os.path.getsize(path)
                with open(path, "r+b") as f:
                    f.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)

if where == "step":  # mid-epoch: the scheduler steps once at construction, then once per optimizer step
    arm(torch.optim.lr_scheduler.LambdaLR, "step")
elif where == "save":  # while the checkpoint of an epoch is half written (inside its atomic write)
    arm(torch, "save", partial_write=True)
elif where == "batch":  # in the middle of evaluating a table's work unit
    original_iter = data.TensorBatchLoader.__iter__

    def counting_iter(self):
        for batch in original_iter(self):
            calls["n"] += 1
            if calls["n"] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    data.TensorBatchLoader.__iter__ = counting_iter
sys.exit(cli.main(sys.argv[3:]))
"""


def _env():
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    return env


def _cli(argv, cwd):
    return subprocess.run([sys.executable, "-m", "resizable"] + argv, capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=300)


def _killed(where, at, argv, cwd):
    proc = subprocess.run([sys.executable, "-c", KILLER, where, str(at)] + argv, capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]  # it really was killed
    return proc


@pytest.fixture(scope="module")
def reference(tiny_fmnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    proc = _cli(TRAIN + ["--data-dir", tiny_fmnist, "--out-dir", str(root), "--name", "full"], root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


@pytest.mark.slow
@pytest.mark.parametrize("where, at", [
    ("step", 1 + 4 + 2),  # two steps into the second epoch (the first one is saved)
    ("save", 2),  # the second epoch's checkpoint half written
])
def test_killed_train_resumed_as_the_readme_says_equals_the_uninterrupted_run(reference, tiny_fmnist, where, at):
    root = reference
    run = root / f"cut-{where}"
    _killed(where, at, TRAIN + ["--data-dir", tiny_fmnist, "--out-dir", str(root), "--name", run.name], root)
    assert load_checkpoint(run)["epoch"] == 0  # only the first epoch was saved
    proc = _cli(["train", "--resume", str(run)], root)  # the line docs/training.md gives, nothing else
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 3/3" in proc.stdout and "epoch 1/3" not in proc.stdout
    a, b = load_checkpoint(root / "full")["model"], load_checkpoint(run)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    full = [json.loads(line) for line in (root / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["eval"] for r in records] == [r["eval"] for r in full]
    assert (run / "config.yaml").read_text().replace(run.name, "full") == (root / "full" / "config.yaml").read_text()
    assert not list(run.glob(".*.tmp"))  # the half-written file is gone


@pytest.mark.slow
def test_killed_table_rebuilt_by_the_same_command_is_identical(reference, tmp_path):
    run = reference / "full"
    args = ["table", "--checkpoint", str(run), "--batch-size", "64", "--no-progress"]
    assert _cli(args + ["--out", str(tmp_path / "full.csv")], tmp_path).returncode == 0
    out = tmp_path / "cut.csv"
    # 3 work units of 4 batches each (256 test images): killed in the second one
    _killed("batch", 4 + 2, args + ["--out", str(out)], tmp_path)
    partial = out.read_text()
    assert 0 < len(partial.splitlines()) < len((tmp_path / "full.csv").read_text().splitlines())
    proc = _cli(args + ["--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes() == (tmp_path / "full.csv").read_bytes()


def test_a_second_training_into_a_run_folder_in_use_is_refused_and_changes_nothing(reference, tmp_path):
    from resizable.training.run_folder import RunFolderBusy, hold_run_folder

    run = tmp_path / "full"
    shutil.copytree(reference / "full", run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".lock"}
    assert (run / ".lock").read_text().startswith("pid ")  # the reference run held it; a finished run keeps the file
    holder = hold_run_folder(run)  # this process plays the first training, still alive
    try:
        with pytest.raises(RunFolderBusy, match=f"in use: pid {os.getpid()} on "):
            hold_run_folder(run)
        proc = _cli(["train", "--resume", str(run), "--epochs", "4"], tmp_path)
        assert proc.returncode == 2 and f"is in use: pid {os.getpid()}" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".lock"} == before  # nothing written
    finally:
        holder.close()
    # the first training gone (a clean end, or a kill: the OS drops the lock either way), the resume trains
    proc = _cli(["train", "--resume", str(run), "--epochs", "4"], tmp_path)
    assert proc.returncode == 0 and "epoch 4/4" in proc.stdout, proc.stderr[-2000:]
    assert load_checkpoint(run)["epoch"] == 3
