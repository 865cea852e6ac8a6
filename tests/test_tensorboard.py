"""``--tensorboard DIR``: the run's scalars at their training steps, each step once after a resume, nothing without it."""
import json
import re
import shutil

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from resizable.training.steplog import read_steps  # noqa: E402
from resizable.training.trainer import TrainOptions, train  # noqa: E402

STEPS = 3  # steps per epoch


def tiny(data_dir, out_dir, **kw):
    base = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist", data_dir=data_dir,
                epochs=2, batch_size=32, lr=0.05, out_dir=str(out_dir), progress=False, eval_batch_size=256,
                max_steps_per_epoch=STEPS, seed=1, channels_last=False, eval_configs="minmax", eval_calibrate_bn=0,
                bn_bank=False, log_every=1)
    base.update(kw)
    return TrainOptions(**base)


def scalars(log_dir):
    """``{tag: [(step, value), ...]}`` as TensorBoard shows them (restart markers applied)."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_matches_the_run(curves, run):
    """Every curve has each step once, and says what ``steps.jsonl`` and ``metrics.jsonl`` say."""
    for tag, points in curves.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), f"{tag}: {steps}"
    lines = read_steps(run / "steps.jsonl")
    for tag, key in (("step/loss", "loss"), ("step/loss_mean", "mean"), ("step/loss_max", "max"), ("lr", "lr")):
        assert [s for s, _ in curves[tag]] == [r["step"] for r in lines], tag
        assert [v for _, v in curves[tag]] == pytest.approx([r[key] for r in lines], rel=1e-6), tag
    epochs = metrics(run)
    at = [r["step"] for r in epochs]
    assert at == [STEPS * r["epoch"] for r in epochs]  # an epoch's metrics at its last step
    assert curves["train/loss"] == [(s, pytest.approx(r["train_loss"], rel=1e-6)) for s, r in zip(at, epochs)]
    assert curves["train/top1"] == [(s, pytest.approx(r["train_top1"], rel=1e-6)) for s, r in zip(at, epochs)]
    assert curves["cost/macs"] == [(s, pytest.approx(r["cost"]["total_macs"], rel=1e-6)) for s, r in zip(at, epochs)]
    for config in epochs[0]["eval"]:
        for metric in ("top1", "top5", "loss"):
            assert curves[f"test/{metric}/{config}"] == [
                (s, pytest.approx(r["eval"][config][metric], rel=1e-6)) for s, r in zip(at, epochs)]


@pytest.mark.slow
def test_the_scalars_are_there_at_their_steps_and_a_resumed_run_continues_them_once(tiny_fmnist, tmp_path):
    tb = str(tmp_path / "tb")
    run = train(tiny(tiny_fmnist, tmp_path, name="r", tensorboard=tb, log_every=2))
    curves = scalars(tmp_path / "tb" / "r")  # DIR/<run folder name>
    assert [s for s, _ in curves["step/loss"]] == [1, 2, 4, 6]  # as steps.jsonl: each of the first 2, then every 2
    assert {"train/loss", "train/top1", "lr", "cost/macs", "cost/interp_macs", "test/top1/1,1,1",
            "test/top1/0.45,0.45,0.45"} <= set(curves)
    assert_matches_the_run(curves, run)
    assert f"tensorboard: {tb}" in (run / "config.yaml").read_text()
    run = train(tiny(tiny_fmnist, tmp_path, name="r", tensorboard=tb, epochs=4, resume=str(run), log_every=2))
    curves = scalars(tmp_path / "tb" / "r")
    assert [s for s, _ in curves["step/loss"]] == [1, 2, 4, 6, 8, 10, 12]
    assert [s for s, _ in curves["train/loss"]] == [3, 6, 9, 12]
    assert_matches_the_run(curves, run)


@pytest.mark.slow
def test_what_a_killed_run_logged_past_its_checkpoint_is_replaced(tiny_fmnist, tmp_path):
    """A run killed after it logged epoch 2 but before that epoch's checkpoint: the resumed run, here with another
    --lr, draws steps 4.. once, with its own values."""
    tb = str(tmp_path / "tb")
    run = train(tiny(tiny_fmnist, tmp_path, name="k", tensorboard=tb, epochs=1))
    shutil.copy(run / "checkpoint.pt", tmp_path / "epoch1.pt")
    train(tiny(tiny_fmnist, tmp_path, name="k", tensorboard=tb, epochs=2, resume=str(run)))
    before = scalars(tmp_path / "tb" / "k")
    assert [s for s, _ in before["step/loss"]] == list(range(1, 2 * STEPS + 1))
    shutil.copy(tmp_path / "epoch1.pt", run / "checkpoint.pt")  # epoch 2's checkpoint never reached the disk
    train(tiny(tiny_fmnist, tmp_path, name="k", tensorboard=tb, epochs=2, resume=str(run), lr=0.01))
    curves = scalars(tmp_path / "tb" / "k")
    assert_matches_the_run(curves, run)
    assert [s for s, _ in curves["step/loss"]] == list(range(1, 2 * STEPS + 1))
    assert curves["lr"][:STEPS] == before["lr"][:STEPS]
    assert all(new != old for (_, new), (_, old) in zip(curves["lr"][STEPS:], before["lr"][STEPS:]))


def test_without_the_option_nothing_is_written_nor_needed(tiny_fmnist, tmp_path, monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.chdir(tmp_path)
    run = train(tiny(tiny_fmnist, tmp_path, name="plain", epochs=1))
    assert list(tmp_path.rglob("*tfevents*")) == []
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "checkpoint.pt", "config.yaml", "metrics.jsonl", "steps.jsonl"]


def test_an_empty_folder_turns_the_option_off():
    assert TrainOptions(tensorboard="").tensorboard is None
    assert TrainOptions(tensorboard="tb").tensorboard == "tb"


def _epoch(step, loss):
    return {"epoch": step // STEPS, "step": step, "train_loss": loss, "train_top1": 10.0, "eval_split": "val",
            "eval": {"1,1,1": {"top1": 50.0, "top5": 90.0, "loss": 1.5}}, "cost": {"total_macs": 1000 * step,
                                                                                     "total_interp_macs": step}}


def _log(log, first, last, loss):
    for step in range(first, last + 1):
        log.add_step({"step": step, "loss": loss, "mean": loss, "max": loss, "lr": 0.1})
        if step % STEPS == 0:
            log.add_epoch(_epoch(step, loss))


def test_the_writer_restarts_a_curve_past_the_step_it_continues_from(tmp_path):
    """Steps 1..6 logged, the run continued from its checkpoint at step 3: steps 4.. are drawn once, anew; a
    continued run's events in a folder that has none start without a marker."""
    from resizable.training.tensorboard import TensorBoardLog

    log = TensorBoardLog(str(tmp_path), "run")
    _log(log, 1, 6, 1.0)
    log.close()
    # readers take the files in the order of their names (the second they were made in, then host, pid): were the
    # first one another host's, made in the same second, the new file must still come after it
    (first,) = (tmp_path / "run").iterdir()
    first.rename(first.with_name(re.match(r"events\.out\.tfevents\.\d+\.", first.name).group(0) + "~host.1.0"))
    log = TensorBoardLog(str(tmp_path), "run", resume_step=3)
    _log(log, 4, 9, 2.0)
    log.close()
    curves = scalars(tmp_path / "run")
    assert curves["step/loss"] == [(s, 1.0 if s <= 3 else 2.0) for s in range(1, 10)]
    assert curves["train/loss"] == [(3, 1.0), (6, 2.0), (9, 2.0)]
    assert curves["val/top5/1,1,1"] == [(3, 90.0), (6, 90.0), (9, 90.0)]
    assert curves["cost/macs"] == [(3, 3000.0), (6, 6000.0), (9, 9000.0)]
    assert len(list((tmp_path / "run").iterdir())) == 2
    fresh = TensorBoardLog(str(tmp_path), "other", resume_step=9)
    assert fresh.writer.purge_step is None
    fresh.close()
    off = TensorBoardLog(None, "run")
    off.add_step({"step": 1, "loss": 1.0, "mean": 1.0, "max": 1.0, "lr": 0.1})
    off.add_epoch(_epoch(3, 1.0))
    assert not off.enabled and not TensorBoardLog(str(tmp_path / "x"), "run", enabled=False).enabled
    assert not (tmp_path / "x").exists()
