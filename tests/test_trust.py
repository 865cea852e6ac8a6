"""Trust: dataset files are data, outputs stay where they belong, divergence stops a run, and interrupts say how
to go on."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from resizable.cli import main
from resizable.training.trainer import TrainOptions


class Evil:
    """Pickles to a call of os.system: a plain unpickler would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _cifar_batch(path: Path, n: int, offset: int = 0) -> None:
    rng = np.random.default_rng(offset)
    images = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    with open(path, "wb") as f:
        pickle.dump({b"data": images, b"labels": [(offset + i) % 10 for i in range(n)], b"batch_label": b"x"}, f,
                    protocol=2)


def _one_line_error(capsys, code, expected_code=2):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected_code, err
    assert "Traceback" not in err and len([line for line in lines if " error: " in line]) == 1, err
    return lines[-1]


TINY = ["--model", "resnet20", "--model-args", "{widths: [4, 8, 8]}", "--epochs", "1", "--batch-size", "8",
        "--max-steps-per-epoch", "1", "--eval-calibrate-bn", "0", "--eval-configs", "minmax", "--no-progress",
        "--eval-batch-size", "16"]


def test_a_crafted_cifar_batch_runs_no_code(tmp_path, capsys):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}", 8, offset=8 * i)
    _cifar_batch(folder / "test_batch", 16)
    data = str(tmp_path / "data")
    assert main(["train", "--dataset", "cifar10", "--data-dir", data, "--out-dir", str(tmp_path / "runs"),
                 "--name", "ok"] + TINY) == 0
    run = str(tmp_path / "runs" / "ok")
    capsys.readouterr()
    marker = tmp_path / "PWNED"
    armed = pickle.dumps({b"data": Evil(str(marker)), b"labels": [0]}, protocol=2)
    with pytest.raises(Exception):  # the file is really armed: a plain pickle.loads would run it
        pickle.loads(armed)
        assert marker.exists()
        raise RuntimeError
    marker.unlink(missing_ok=True)
    for name in ("data_batch_1", "test_batch"):
        (folder / name).write_bytes(armed)
    cases = [["train", "--dataset", "cifar10", "--data-dir", data, "--out-dir", str(tmp_path / "runs"), "--name",
              "evil"] + TINY,
             ["eval", "--checkpoint", run],  # the checkpoint records the data folder: the attack goes through it
             ["table", "--checkpoint", run, "--out", str(tmp_path / "t.csv"), "--calibrate-bn", "1"]]
    for argv in cases:
        line = _one_line_error(capsys, main(argv))
        assert "refused: the file asks to build posix.system" in line and "cifar-10-batches-py" in line, line
    assert not marker.exists()
    assert not (tmp_path / "runs" / "evil").exists() and not (tmp_path / "t.csv").exists()


def test_every_reader_of_user_files_refuses_code(tmp_path):
    from resizable.adapt.labels import load_labels
    from resizable.checkpoint import CheckpointError, read_torch_file
    from resizable.deploy import ConvertOptions, convert_checkpoint
    from resizable.deploy.export import load_static
    from resizable.utils.options import resolve_options

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"w": Evil(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        read_torch_file(evil)
    with pytest.raises(ValueError, match="refused"):  # a torchvision state_dict to convert
        convert_checkpoint(ConvertOptions(source="resnet18", out=str(tmp_path / "c.pt"), weights=str(evil)))
    with pytest.raises(ValueError, match="refused"):  # Adapt's label file
        load_labels(evil)
    static = tmp_path / "net.pt"
    torch.save({"w": Evil(str(marker))}, static)
    (tmp_path / "net.pt.json").write_text('{"format": "state_dict", "model_name": "resnet20", "config": [1, 1, 1], '
                                          '"input_size": [28, 28], "model_kwargs": {"num_classes": 10}}')
    with pytest.raises(ValueError, match="refused"):  # an exported state_dict
        load_static(static)
    config = tmp_path / "evil.yaml"
    config.write_text(f"lr: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match="not readable YAML"):
        resolve_options(TrainOptions, yaml_path=str(config))
    assert not marker.exists()


@pytest.mark.slow
def test_outputs_name_folders_and_never_a_runs_own_files(tiny_fmnist, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--data-dir", tiny_fmnist, "--out-dir", str(out), "--name", "r"] + TINY) == 0
    run = out / "r"
    capsys.readouterr()
    # a trailing slash is a folder, made when missing, holding the command's default file name
    assert main(["export", "--checkpoint", str(run), "--config", "max", "--out", str(tmp_path / "new_dir") + "/"]) == 0
    written = sorted(p.name for p in (tmp_path / "new_dir").iterdir())
    assert len(written) == 2 and written[1] == written[0] + ".json"  # the network and its sidecar, inside
    assert main(["eval", "--checkpoint", str(run), "--out", str(tmp_path / "evals") + "/"]) == 0
    assert (tmp_path / "evals" / "eval.csv").is_file()
    assert "wrote " + str(tmp_path / "evals" / "eval.csv") in capsys.readouterr().out  # no internal .tmp path
    assert main(["convert", "--source", str(run), "--out", str(tmp_path / "conv") + "/"]) == 0
    assert (tmp_path / "conv" / "converted.pt").is_file()
    before = (run / "checkpoint.pt").read_bytes()
    for argv in (["convert", "--source", str(run), "--out", str(run / "checkpoint.pt")],
                 ["eval", "--checkpoint", str(run), "--out", str(run / "metrics.jsonl")],
                 ["adapt", "label", "--checkpoint", str(run), "--out", str(run / "steps.jsonl")]):
        assert "the run folder's own file" in _one_line_error(capsys, main(argv))
    assert (run / "checkpoint.pt").read_bytes() == before
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0  # still resumable


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")  # some 100 steps of a tiny model: a second thread only waits
def test_divergence_stops_at_the_step_and_keeps_the_last_epoch(tiny_fmnist, tmp_path, capsys):
    out = tmp_path / "runs"
    # Weight decay 1 at lr 1000 multiplies every weight by about -1000 per step, so the loss overflows within a few
    # steps (5 here) on any CPU, well inside an epoch of 12; how the loss grows at the default decay depends on the
    # CPU's arithmetic. --divergence-ratio 0 leaves the non-finite loss as the only stop (a loss exploding while
    # finite, and an epoch leaving non-finite state, have their own tests).
    base = ["--data-dir", tiny_fmnist, "--out-dir", str(out), "--name", "r", "--model", "resnet20", "--model-args",
            "{widths: [4, 8, 8]}", "--max-steps-per-epoch", "12", "--eval-calibrate-bn", "0", "--eval-configs",
            "minmax", "--no-progress", "--batch-size", "32", "--weight-decay", "1", "--divergence-ratio", "0"]
    assert main(["train", "--epochs", "2", "--lr", "0.05"] + base) == 0
    run = out / "r"
    kept = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    # a learning rate raised on resume: the loss turns non-finite within a few steps
    code = main(["train", "--resume", str(run), "--epochs", "6", "--lr", "1000", "--no-progress"])
    line = _one_line_error(capsys, code, expected_code=3)
    assert "training diverged at step" in line and "for configuration" in line and "at lr" in line, line
    assert f"resizable train --resume {run} --lr" in line
    step = int(line.split("at step ")[1].split()[0])
    logged = [r for r in map(__import__("json").loads, (run / "steps.jsonl").read_text().splitlines())]
    assert logged[-1]["step"] == step and not np.isfinite(logged[-1]["loss"])  # it stopped at that step
    payload = torch.load(run / "checkpoint.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())
    if payload["epoch"] == 1:
        assert (run / "checkpoint.pt").read_bytes() == kept
    # continued with a lower rate, as the line says, it finishes
    assert main(["train", "--resume", str(run), "--epochs", "6", "--lr", "0.01", "--no-progress"]) == 0
    payload = torch.load(run / "checkpoint.pt", weights_only=False)
    assert payload["epoch"] == 5
    sound = all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())
    # the statistics bank is measured when the weights are sound; weights the lr 1000 left broken get none, said once
    assert ("bn_bank" in payload) == sound
    assert sound or "warning: no statistics bank" in capsys.readouterr().err
    # diverging in the first epoch leaves a folder the same command (with a lower lr) re-uses
    fresh = base[:5] + ["fresh"] + base[6:]
    code = main(["train", "--epochs", "1", "--lr", "1000", "--schedule", "constant", "--batch-size", "16"] + fresh +
                ["--max-steps-per-epoch", "40"])
    line = _one_line_error(capsys, code, expected_code=3)
    assert "no epoch finished, so run the same command again with a lower --lr" in line
    assert main(["train", "--epochs", "1", "--lr", "0.05"] + fresh) == 0


def test_the_divergence_threshold_is_relative_to_the_runs_start_and_said_in_help(capsys):
    from resizable.training.divergence import loss_limit

    assert loss_limit(2.5, 100, 10) == pytest.approx(250)  # a run from scratch: its first step's loss
    assert loss_limit(0.01, 100, 10) == pytest.approx(100 * np.log(10))  # from trained weights: a uniform guess
    assert loss_limit(9.2, 100, 10) == pytest.approx(920)  # a loss that starts high (e.g. KD terms) scales it
    assert loss_limit(2.5, 0, 10) == float("inf")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--divergence-ratio" in text and "more than this many times the loss of the run's first step" in text


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_loss_exploding_while_finite_stops_the_run(tiny_fmnist, tmp_path, capsys):
    out = tmp_path / "runs"
    base = ["--data-dir", tiny_fmnist, "--out-dir", str(out), "--name", "r"] + TINY[:4] + [
        "--batch-size", "32", "--max-steps-per-epoch", "4", "--eval-calibrate-bn", "0", "--eval-configs", "min",
        "--no-progress"]
    assert main(["train", "--epochs", "1", "--lr", "0.05"] + base) == 0
    run = out / "r"
    kept = (run / "checkpoint.pt").read_bytes()
    start = torch.load(run / "checkpoint.pt", weights_only=True)["loss_start"]
    capsys.readouterr()
    # at lr 1000 the loss grows by orders of magnitude per step while staying finite for many more steps
    line = _one_line_error(capsys, main(["train", "--resume", str(run), "--epochs", "3", "--lr", "1000",
                                         "--no-progress"]), expected_code=3)
    assert "training diverged at step" in line and "more than --divergence-ratio 100 times" in line, line
    assert f"the loss the run started at ({start:.4g}" in line and "for configuration" in line
    assert f"{run} keeps the checkpoint of epoch 1" in line
    step = int(line.split("at step ")[1].split()[0])
    last = [__import__("json").loads(r) for r in (run / "steps.jsonl").read_text().splitlines()][-1]
    assert last["step"] == step and np.isfinite(last["loss"]) and last["loss"] > 100 * max(start, np.log(10))
    assert (run / "checkpoint.pt").read_bytes() == kept  # the stopped epoch wrote nothing
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    # the ratio may change on resume (as --lr may), and continued with a sane rate the run goes on
    assert main(["train", "--resume", str(run), "--epochs", "2", "--lr", "0.05", "--divergence-ratio", "1e6",
                 "--no-progress"]) == 0


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("where", ["bn", "optimizer"])
def test_an_epoch_leaving_non_finite_state_stops_before_writing(tiny_fmnist, tmp_path, capsys, monkeypatch, where):
    """The loss stays finite while the state goes non-finite (injected in the last step of epoch 2): the run
    stops before that epoch's metrics line and checkpoint, exit 3, naming the tensor and the epoch it keeps."""
    from resizable.training import trainer as train_module

    out = tmp_path / "runs"
    argv = ["train", "--data-dir", tiny_fmnist, "--out-dir", str(out), "--name", "r"] + TINY[:4] + [
        "--epochs", "3", "--batch-size", "32", "--max-steps-per-epoch", "2", "--eval-calibrate-bn", "0",
        "--eval-configs", "min", "--no-progress"]
    calls = {"n": 0}
    original = train_module.train_step

    def poisoning_step(model, *args, **kwargs):
        loss = original(model, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # the last step of epoch 2
            with torch.no_grad():
                if where == "bn":
                    model.layer2[0].bn1[1].running_var.fill_(float("inf"))
                else:
                    optimizer = args[3]  # train_step(model, images, labels, configs, optimizer, ...)
                    next(iter(optimizer.state.values()))["momentum_buffer"].fill_(float("nan"))
        return loss

    monkeypatch.setattr(train_module, "train_step", poisoning_step)
    run = out / "r"
    line = _one_line_error(capsys, main(argv), expected_code=3)
    words = ("the BN statistics hold NaN or infinite values (first in layer2.0.bn1.1.running_var)" if where == "bn"
             else "the optimizer state holds NaN or infinite values")
    assert "training diverged in epoch 2 (by step 4)" in line and words in line and "loss was finite" in line, line
    assert f"{run} keeps the checkpoint of epoch 1: continue it with a lower peak rate" in line
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    assert payload["epoch"] == 0 and "bn_bank" not in payload  # epoch 1's, as written, finite
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_interrupts_print_the_command_that_continues(tiny_fmnist, tmp_path, capsys, monkeypatch):
    from resizable.evaluation import walker as evaluate
    from resizable.training import trainer as train_module

    out = tmp_path / "runs"
    argv = ["train", "--data-dir", tiny_fmnist, "--out-dir", str(out), "--name", "r"] + TINY[:4] + [
        "--epochs", "3", "--max-steps-per-epoch", "2", "--eval-calibrate-bn", "0", "--no-progress"]
    calls = {"n": 0}
    original = train_module.train_step

    def interrupted_step(*args, **kwargs):  # Ctrl-C in the third step (the second epoch)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", interrupted_step)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"continue with: resizable train --resume {out / 'r'}" in err
    monkeypatch.undo()
    assert main(["train", "--resume", str(out / "r"), "--no-progress"]) == 0
    capsys.readouterr()
    table = ["table", "--checkpoint", str(out / "r"), "--out", str(tmp_path / "t.csv"), "--batch-size", "64"]
    seen = {"n": 0}
    evaluate_configs = evaluate.evaluate_configs

    def interrupted(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] == 2:
            raise KeyboardInterrupt
        return evaluate_configs(*args, **kwargs)

    import resizable.nas.lookup as nas

    monkeypatch.setattr(nas, "evaluate_configs", interrupted)
    assert main(table) == 130
    assert "the same command continues it: resizable table --checkpoint" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(table) == 0


def test_a_symlink_loop_in_an_image_folder_counts_each_image_once(tmp_path):
    from PIL import Image

    from resizable.data.datasets import load_dataset

    for split in ("train", "val"):
        for c in ("a", "b"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i, np.uint8), "L").save(d / f"{i}.png")
    os.symlink(tmp_path / "train" / "a", tmp_path / "train" / "a" / "loop")  # a folder that contains itself
    os.symlink(tmp_path / "train", tmp_path / "train" / "b" / "up")  # and one back to the top
    labels = load_dataset("imagefolder", "train", data_dir=str(tmp_path)).targets
    # a: its 3 images once (the loop is not walked again); b: its own 3, and a's 3 seen through b/up,
    # whose b/up/b is b itself and is not walked again
    assert labels.count(0) == 3 and labels.count(1) == 6
