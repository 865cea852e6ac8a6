"""The trainer: schedules, exact resume, two-process DDP, a real short run on Fashion-MNIST."""
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import resizable
from resizable.checkpoint import load_checkpoint, load_model
from resizable.training.trainer import TrainOptions, TrainingRun, lr_factor, train
from resizable.configs import parse_configs

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def tiny_cfg(data_dir, out_dir, **kw):
    base = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist", data_dir=data_dir,
                epochs=3, batch_size=32, lr=0.05, out_dir=str(out_dir), progress=False, eval_batch_size=256,
                max_steps_per_epoch=4, seed=1, channels_last=False)
    base.update(kw)
    return TrainOptions(**base)


def test_schedules():
    cfg = TrainOptions(epochs=10, schedule="cosine", warmup_epochs=1)
    assert lr_factor(0, 100, cfg) == pytest.approx(0.01)
    assert lr_factor(99, 100, cfg) == pytest.approx(1.0)
    assert lr_factor(999, 100, cfg) == pytest.approx(0.0, abs=1e-4)
    step = TrainOptions(epochs=10, schedule="step", milestones=(3, 6), gamma=0.1, warmup_epochs=0)
    assert [round(lr_factor(e * 100, 100, step), 6) for e in (0, 3, 6, 9)] == [1, 0.1, 0.01, 0.01]
    lin = TrainOptions(epochs=4, schedule="linear", warmup_epochs=0)
    assert lr_factor(200, 100, lin) == pytest.approx(0.5)
    # the default (the recipe chosen on val): a linear warm-up over half the run, then the cosine
    default = TrainOptions(epochs=10)
    assert lr_factor(0, 100, default) == pytest.approx(1 / 500) and lr_factor(499, 100, default) == pytest.approx(1.0)
    assert lr_factor(750, 100, default) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("kwargs,msg", [
    ({"schedule": "poly"}, "--schedule 'poly': expected one of: cosine, step, linear, constant"),
    ({"sampling": "greedy"}, "expected one of: fair, sandwich, random, single"),
    ({"epochs": 0}, "--epochs 0: expected an integer >= 1"),
    ({"schedule": "step"}, "needs --milestones"),
    ({"recipe": "mix"}, "expected one of: standard, aug"),
])
def test_bad_train_options(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        TrainOptions(**kwargs)


def test_parse_configs():
    m = resizable.create_model("resnet20")
    assert parse_configs("default", m.factors, m.num_stages) == [(f,) * 3 for f in m.factors]
    assert len(parse_configs("all", m.factors, m.num_stages)) == 64
    assert parse_configs("0.45,0.65,1; 1,1,1", m.factors, m.num_stages) == [(0.45, 0.65, 1.0), (1.0, 1.0, 1.0)]
    with pytest.raises(ValueError, match="accepted"):
        parse_configs("0.5,1,1", m.factors, m.num_stages)


@pytest.mark.slow
def test_run_folder_contents(tiny_fmnist, tmp_path):
    run = train(tiny_cfg(tiny_fmnist, tmp_path, name="r", epochs=2))
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoint.pt"}
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(records[-1]["eval"]) == {"0.45,0.45,0.45", "0.65,0.65,0.65", "0.85,0.85,0.85", "1,1,1"}
    assert "model: resnet20" in (run / "config.yaml").read_text()
    # an existing run folder is never overwritten
    with pytest.raises(ValueError, match="not empty"):
        train(tiny_cfg(tiny_fmnist, tmp_path, name="r"))
    model, payload = load_model(run)
    assert payload["model_kwargs"]["in_chans"] == 1 and model.num_classes == 10


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["fair", "random"])
def test_resume_gives_the_same_weights(tiny_fmnist, tmp_path, monkeypatch, sampling):
    kw = dict(sampling=sampling, model_args={"widths": [4, 8, 8], "drop_rate": 0.3})
    full = train(tiny_cfg(tiny_fmnist, tmp_path, name="full", **kw))

    original = TrainingRun.train_epoch

    def crash_in_third_epoch(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(TrainingRun, "train_epoch", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tiny_fmnist, tmp_path, name="cut", **kw))
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 1  # epochs 1 and 2 were saved
    monkeypatch.setattr(TrainingRun, "train_epoch", original)
    resumed = train(tiny_cfg(tiny_fmnist, tmp_path, name="cut", resume=str(tmp_path / "cut"), **kw))

    a, b = load_checkpoint(full)["model"], load_checkpoint(resumed)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]


@pytest.mark.slow
def test_aug_recipe_switches_to_the_target(tiny_fmnist, tmp_path):
    cfg = tiny_cfg(tiny_fmnist, tmp_path, name="aug", recipe="aug", target=(0.65, 1.0, 1.0), epochs=3)
    run = TrainingRun(cfg)
    assert run.switch_epoch == 2
    assert len(run.sampler_for(0).sample(0)) == 4
    assert run.sampler_for(2).sample(0) == [(0.65, 1.0, 1.0)]
    run.run()
    phases = [json.loads(l)["phase"] for l in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert phases == ["train", "train", "finetune"]


# ---------------------------------------------------------------- DDP on two CPU processes
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, cfg, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from resizable.utils import distributed

    run = TrainingRun(cfg)
    run.run()
    torch.save({k: v.clone() for k, v in run.model.state_dict().items()}, Path(out) / f"rank{rank}.pt")
    distributed.cleanup()


@pytest.mark.slow
def test_ddp_two_processes_end_with_identical_weights(tiny_fmnist, tmp_path):
    cfg = tiny_cfg(tiny_fmnist, tmp_path, name="ddp", epochs=2, batch_size=32)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, start_method="spawn")
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    params = {n for n, _ in resizable.create_model("resnet20", widths=(4, 8, 8), num_classes=10,
                                                   in_chans=1).named_parameters()}
    assert params and all(torch.equal(a[k], b[k]) for k in params)
    # every BN branch was trained (not just the last configuration's) and stayed in sync
    branch_weights = [k for k in params if ".bn1.0.weight" in k or ".bn1.2.weight" in k]
    assert branch_weights and all(not torch.equal(a[k], torch.ones_like(a[k])) for k in branch_weights)
    assert load_checkpoint(tmp_path / "ddp")["epoch"] == 1


# ---------------------------------------------------------------- real data
@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FMNIST_DIR), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_short_real_training_beats_chance_by_far(tmp_path):
    cfg = TrainOptions(model="resnet20", model_args={"widths": [8, 16, 16]}, dataset="fashion-mnist", epochs=1,
                      batch_size=64, lr=0.1, max_steps_per_epoch=120, out_dir=str(tmp_path), name="real",
                      progress=False, eval_configs="0.45,0.45,0.45;1,1,1", seed=0)
    run = train(cfg)
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["eval"]["1,1,1"]["top1"] > 60.0  # chance is 10%
    assert record["eval"]["0.45,0.45,0.45"]["top1"] > 50.0


@pytest.mark.slow
def test_evaluate_with_bn_calibration_leaves_the_model_unchanged():
    from resizable.evaluation.walker import Calibration
    from resizable.evaluation.walker import evaluate

    model = resizable.create_model("resnet20", widths=(4, 8, 8), num_classes=10, in_chans=1)
    data = [(torch.randn(16, 1, 28, 28) + 3.0, torch.randint(0, 10, (16,))) for _ in range(2)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    configs = [(0.45, 0.65, 1.0), (1.0, 1.0, 1.0)]
    plain = evaluate(model, data, configs)
    calibrated = evaluate(model, data, configs, calibrate=Calibration(data, 2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(calibrated) == set(configs)
    # the inputs are far from the initial statistics, so recalibrating changes the losses
    assert any(abs(plain[c]["loss"] - calibrated[c]["loss"]) > 1e-6 for c in configs)


# ---------------------------------------------------------------------------- memory format
def test_memory_format_auto_is_printed_recorded_and_kept_on_resume(tiny_fmnist, tmp_path, capsys):
    quick = dict(channels_last=None, max_steps_per_epoch=2, eval_calibrate_bn=0, eval_configs="minmax")
    run = train(tiny_cfg(tiny_fmnist, tmp_path, name="auto", epochs=1, **quick))
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("memory format:")]
    assert lines == ["memory format: contiguous (auto: contiguous on the CPU, where channels-last can be far "
                     "slower and can crash; --channels-last to try it)"]
    chosen = load_checkpoint(run)["memory_format"]
    assert chosen == "contiguous"
    train(tiny_cfg(tiny_fmnist, tmp_path, name="auto", epochs=2, resume=str(run), **quick))
    assert f"memory format: {chosen} (chosen when the run started)" in capsys.readouterr().out
    pinned = TrainingRun(tiny_cfg(tiny_fmnist, tmp_path, name="pinned", channels_last=True))
    assert "memory format: channels-last (set: channels_last=True)" in capsys.readouterr().out
    weight = pinned.model.layer1[0].conv1.weight  # (4, 4, 3, 3): the two layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


@pytest.mark.parametrize("seconds, channels_last, passes", [
    ((0.2, 0.1), True, 6),     # channels-last faster: two untimed passes, two timed rounds
    ((0.1, 0.35), False, 4),   # more than twice as slow: the second round is skipped
    ((0.1, 0.15), False, 6),
])
def test_pick_memory_format_keeps_the_faster(monkeypatch, seconds, channels_last, passes):
    from resizable.training import memory_format as accel

    calls = []

    def fake_pass(model, images, labels, loss_fn, amp):
        fmt = "channels-last" if len(calls) % 2 else "contiguous"  # contiguous first, then alternating
        calls.append(fmt)
        return seconds[len(calls) % 2 == 0]

    monkeypatch.setattr(accel, "_pass_seconds", fake_pass)
    model = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=(4, 8, 8))
    choice = accel.pick_memory_format(model, torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))
    assert choice.channels_last is channels_last and len(calls) == passes
    assert choice.line().startswith(f"memory format: {'channels-last' if channels_last else 'contiguous'} (auto:")


def test_pick_memory_format_leaves_the_model_alone():
    from resizable.training.memory_format import pick_memory_format

    # 16 channels, batch 2: clear of the channels-last crash of torch's CPU 1x1 stride-2 convolution
    model = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=(16, 16, 16)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    choice = pick_memory_format(model, torch.randn(2, 1, 28, 28), torch.randint(0, 10, (2,)))
    assert set(choice.ms) == {"contiguous", "channels-last"} and all(v > 0 for v in choice.ms.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert all(p.is_contiguous() for p in model.parameters())
