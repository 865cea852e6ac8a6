"""The warm start at equal total cost: its plan (switch step, length, cost), the switch in a real run (the full
configuration alone before it, the BN branches copied at it, the teacher after it) and resume across it."""
import json
import math

import pytest
import torch

from resizable import count_macs, create_model
from resizable.bnbank import scale_batchnorms
from resizable.checkpoint import load_checkpoint
from resizable.sampling import ConfigSampler
from resizable.training import trainer as trainer_module
from resizable.training.trainer import TrainOptions, TrainingRun, train
from resizable.training.warmstart import start_new_branches

FACTORS = (0.5, 0.75, 1.0)
FULL = (1.0, 1.0, 1.0)


def cfg_of(data_dir, out_dir, **kw):
    base = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, factors=FACTORS, dataset="fashion-mnist",
                data_dir=data_dir, epochs=2, batch_size=32, lr=0.05, out_dir=str(out_dir), progress=False,
                max_steps_per_epoch=3, eval_calibrate_bn=0, eval_configs="1,1,1", eval_batch_size=256,
                bn_bank=False, channels_last=False, seed=1, warm_start="full", warm_start_share=0.4)
    base.update(kw)
    return TrainOptions(**base)


def _step_macs(model, passes, teacher=False):
    one = {c: count_macs(model, c, 28).total_macs for c in set(passes) | {FULL}}
    return sum(one[c] for c in passes) * 3 * 32 + (one[FULL] * 32 if teacher else 0)


@pytest.mark.parametrize("teaching", ["inplace", "snapshot"])
def test_the_plan_spends_the_share_on_the_full_configuration_and_the_budget_in_all(tiny_fmnist, tmp_path, teaching):
    run = TrainingRun(cfg_of(tiny_fmnist, tmp_path, name=teaching, warm_start_teacher=teaching))
    warm = run.warm
    sampler = ConfigSampler(FACTORS, 3, "fair", seed=1)

    def after(t):  # the recipe that follows the switch, at step t
        configs = sampler.sample(t)
        if teaching == "inplace":
            return _step_macs(run.model, configs + ([FULL] if FULL not in configs else [])), configs
        return _step_macs(run.model, configs, teacher=True), configs

    # --epochs 2 of 3 steps of the same command without the warm start: plain fair sampling, no teaching
    budget = sum(_step_macs(run.model, sampler.sample(t)) for t in range(2 * 3))
    full_step = _step_macs(run.model, [FULL])
    assert warm.budget == budget
    assert warm.switch_step == round(0.4 * budget / full_step)  # the share of the counted cost
    spent = warm.switch_step * full_step + sum(after(t)[0] for t in range(warm.switch_step, warm.total_steps))
    assert warm.planned == spent
    assert abs(spent - budget) <= max(after(t)[0] for t in range(20)) / 2  # equal total cost, to within a step
    assert run.epochs == math.ceil(warm.total_steps / 3) > 2  # cheaper steps first: more of them
    assert [p.name for p in warm.phases] == ["full only", "factors 0.5,0.75,1"]
    # one schedule over the whole run: its decay ends at the run's last step, not at --epochs' (where it would be 0)
    last = warm.total_steps - 1
    assert run.scheduler.lr_lambdas[0](last) == trainer_module.lr_factor(last, 3, run.cfg, warm.total_steps) > 0
    assert trainer_module.lr_factor(last, 3, run.cfg) == 0.0


def _spy(monkeypatch, seen, model):
    """Record what each training step ran, and the BN branches as the step found them."""
    real = trainer_module.train_step

    def spy(net, images, labels, configs, *args, **kwargs):
        banks = [bank for _, bank in scale_batchnorms(model)]
        same = all(torch.equal(b[i].weight, b[2].weight) and torch.equal(b[i].running_mean, b[2].running_mean)
                   for b in banks for i in (0, 1))
        fresh = all(torch.equal(b[i].running_mean, torch.zeros_like(b[i].running_mean)) for b in banks for i in (0, 1))
        seen.append({"configs": list(configs), "distill": kwargs["distill"], "teacher": kwargs["teacher_probs"]
                     is not None, "copied": same, "untouched": fresh})
        return real(net, images, labels, configs, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_step", spy)


@pytest.mark.slow
@pytest.mark.parametrize("teaching, distill", [("inplace", "full"), ("snapshot", "none")])
def test_the_switch_happens_at_the_planned_step_with_bn_branches_copied(tiny_fmnist, tmp_path, monkeypatch, teaching,
                                                                       distill):
    run = TrainingRun(cfg_of(tiny_fmnist, tmp_path, name=teaching, warm_start_teacher=teaching))
    seen = []
    _spy(monkeypatch, seen, run.model)
    records = [run.train_epoch(e) for e in range(run.epochs)]
    switch = run.warm.switch_step
    assert 0 < switch < len(seen) == run.warm.total_steps and switch % 3  # a switch inside an epoch
    for s in seen[:switch]:  # the full configuration alone, no teacher; the other BN branches never trained
        assert s["configs"] == [FULL] and s["distill"] == "none" and not s["teacher"] and s["untouched"]
    assert not seen[switch - 1]["copied"] and seen[switch]["copied"]  # copied from the full branch at the switch
    for s in seen[switch:]:
        assert len(s["configs"]) == 3 and s["distill"] == distill and s["teacher"] == (teaching == "snapshot")
    sampler = ConfigSampler(FACTORS, 3, "fair", seed=1)
    assert [s["configs"] for s in seen[switch:]] == [sampler.sample(t) for t in range(switch, len(seen))]
    assert records[-1]["cost"]["total_macs"] + records[-1]["cost"]["total_interp_macs"] == run.warm.planned
    assert records[0]["warm_start"] == ["full only"] and records[-1]["warm_start"] == ["factors 0.5,0.75,1"]


@pytest.mark.slow
@pytest.mark.parametrize("teaching, cut_at", [
    ("inplace", 1),   # killed before the switch (step 7 of 11): the resumed run makes the switch
    ("snapshot", 2),  # killed after the switch (step 5 of 9): the resumed run takes the snapshot from the checkpoint
])
def test_a_run_stopped_and_resumed_across_the_switch_equals_the_uninterrupted_one(tiny_fmnist, tmp_path, monkeypatch,
                                                                                teaching, cut_at):
    kw = dict(warm_start_teacher=teaching, momentum=0.9, model_args={"widths": [4, 8, 8], "drop_rate": 0.2})
    full = train(cfg_of(tiny_fmnist, tmp_path, name="full", **kw))
    original = TrainingRun.train_epoch

    def stop(self, epoch):
        if epoch == cut_at:
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(TrainingRun, "train_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_of(tiny_fmnist, tmp_path, name="cut", **kw))
    saved = load_checkpoint(tmp_path / "cut")
    switch = saved["warm_start"]["phases"][1][0]
    assert (saved["step"] > switch) == (saved["warm_start"]["snapshot"] is not None) == (teaching == "snapshot")
    monkeypatch.setattr(TrainingRun, "train_epoch", original)
    resumed = train(cfg_of(tiny_fmnist, tmp_path, name="cut", resume=str(tmp_path / "cut"), **kw))
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["cost"] == b["cost"] and a["step"] == b["step"] == a["warm_start"]["total_steps"]
    metrics = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (full, resumed)]
    assert [(r["cost"], r["eval"]) for r in metrics[0]] == [(r["cost"], r["eval"]) for r in metrics[1]]
    # the plan comes from --epochs: a resume that changes it is refused rather than moving the switch
    with pytest.raises(ValueError, match="planned differently"):
        TrainingRun(cfg_of(tiny_fmnist, tmp_path, name="cut", resume=str(tmp_path / "cut"), epochs=3, **kw))


def test_progressive_adds_the_factors_one_at_a_time(tiny_fmnist, tmp_path):
    run = TrainingRun(cfg_of(tiny_fmnist, tmp_path, name="p", warm_start="progressive", warm_start_share=0.3))
    phases = run.warm.phases
    assert [p.factors for p in phases] == [(1.0,), (0.75, 1.0), (0.5, 0.75, 1.0)]
    assert phases[0].start == 0 < phases[1].start < phases[2].start < run.warm.total_steps
    assert all(len(set(c)) and set(c) <= {0.75, 1.0} for c in phases[1].sampler.sample(phases[1].start))
    assert abs(run.warm.planned - run.warm.budget) < run.warm.budget * 0.1


def test_new_bn_branches_start_from_the_nearest_larger_trained_one():
    torch.manual_seed(0)
    model = create_model("resnet20", widths=[4, 4, 8], factors=FACTORS, num_classes=10, in_chans=1)
    banks = [bank for _, bank in scale_batchnorms(model)]
    with torch.no_grad():
        for bank in banks:
            for bn in bank:
                bn.weight.normal_()
                bn.running_mean.normal_()
    before = [[bn.weight.clone() for bn in bank] for bank in banks]
    params = {id(p) for p in model.parameters()}
    assert start_new_branches(model, (1.0,), (0.75,)) == len(banks)
    assert start_new_branches(model, (0.75, 1.0), (0.5,)) == len(banks)
    for bank, old in zip(banks, before):
        assert torch.equal(bank[1].weight, old[2]) and torch.equal(bank[0].weight, old[2])  # 0.5 from 0.75's copy
        assert torch.equal(bank[1].running_mean, bank[2].running_mean)
    assert params == {id(p) for p in model.parameters()}  # copied in place: the optimizer holds the same tensors
    with pytest.raises(ValueError, match="no larger trained factor"):
        start_new_branches(model, (0.5,), (0.75,))


@pytest.mark.parametrize("kwargs, msg", [
    ({"distill": "full"}, "leave --distill none and --teacher unset"),
    ({"teacher": "runs/x"}, "leave --distill none and --teacher unset"),
    ({"recipe": "aug"}, "needs --recipe standard"),
    ({"sampling": "single"}, "needs --recipe standard"),
    ({"warm_start_share": 1.0}, "--warm-start-share 1.0: expected a number > 0 and < 1"),
    ({"warm_start": "gradual"}, "expected one of: none, full, progressive"),
    ({"warm_start_teacher": "frozen"}, "expected one of: inplace, snapshot, none"),
])
def test_bad_warm_start_options(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        TrainOptions(**{"warm_start": "full", **kwargs})


def test_the_step_log_names_each_step_s_phase_and_the_switch_is_not_a_climb(tiny_fmnist, tmp_path):
    from resizable.training import STEPS_FILE, loss_climbs, read_steps

    run = TrainingRun(cfg_of(tiny_fmnist, tmp_path, name="log", log_every=1))
    run.run()
    records = read_steps(run.run_dir / STEPS_FILE)
    switch = run.warm.switch_step  # 0-based: the record of step switch + 1 (1-based) is its first
    assert [r["phase"] for r in records] == ["full only"] * switch + ["factors 0.5,0.75,1"] * (len(records) - switch)
    # the loss rising where the smaller configurations join is a switch, not a climb; a rise within a phase is one
    stretch = lambda step, mean, phase: {"step": step, "loss": mean, "mean": mean, "max": mean, "steps": 20,
                                         "lr": 0.1, "phase": phase}
    first = [{**stretch(1, 2.3, "full only"), "steps": 1}] + [stretch(20 * i, 0.45, "full only") for i in range(1, 6)]
    switched = first + [stretch(120, 0.6, "factors"), stretch(140, 1.0, "factors"), stretch(160, 0.7, "factors")]
    assert loss_climbs(switched) is None
    assert "up from" in loss_climbs([{k: v for k, v in r.items() if k != "phase"} for r in switched])
    assert "up from" in loss_climbs(switched + [stretch(180, 1.2, "factors")])
