"""The training recipes beyond Algorithm 1: --loss-reduction, sandwich sampling, in-place / ensemble distillation, a
frozen teacher, the per-epoch train accuracy, and the loss log inside an epoch with its stability rule."""
import json

import pytest
import torch
from torch import nn

from resizable import create_model
from resizable.sampling import ConfigSampler
from resizable.training.step import EnsembleWeights, largest_config, soft_label_loss, train_step
from resizable.training.steplog import STEPS_FILE, StepLog, loss_climbs, read_steps
from resizable.training.trainer import TrainOptions, TrainingRun, train

FACTORS = (0.5, 0.75, 1.0)


def tiny_cfg(data_dir, out_dir, **kw):
    base = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist", data_dir=data_dir,
                epochs=1, batch_size=32, lr=0.1, momentum=0.0, weight_decay=0.0, out_dir=str(out_dir),
                progress=False, max_steps_per_epoch=2, eval_calibrate_bn=0, eval_configs="minmax", seed=2,
                schedule="constant", augment=False, warmup_epochs=0.0, loss_reduction="sum")
    base.update(kw)
    return TrainOptions(**base)


def test_sandwich_runs_both_ends_every_step_and_draws_the_middle_ones_over_every_factor():
    import itertools

    factors = (0.25, 0.5, 0.75, 1.0)
    sampler = ConfigSampler(factors, 3, "sandwich", seed=5)
    middles, per_stage = set(), [set() for _ in range(3)]
    for step in range(600):
        configs = sampler.sample(step)
        assert len(configs) == 4
        assert configs[0] == (1.0, 1.0, 1.0) and configs[1] == (0.25, 0.25, 0.25)  # the ends, every step
        for c in configs[2:]:
            middles.add(c)
            for stage, f in enumerate(c):
                per_stage[stage].add(f)
        assert sampler.sample(step) == configs  # from (seed, step) alone
    # the middle ones are drawn from the whole list at every stage (not only from the middle factors)
    assert all(s == set(factors) for s in per_stage)
    assert middles == set(itertools.product(factors, repeat=3))  # every one of the k^N configurations trains
    with pytest.raises(ValueError, match="sandwich sampling uses exactly k=4"):
        ConfigSampler(factors, 3, "sandwich", num_configs=2)
    # a checkpoint saved when the middle ones came from the middle factors only is not resumed as if it were this
    old = {k: v for k, v in sampler.state_dict().items() if k != "middles"}
    with pytest.raises(ValueError, match="differs"):
        sampler.load_state_dict(old)


def _model_and_batch(seed=0):
    torch.manual_seed(seed)
    model = create_model("resnet20", widths=[4, 4, 8], factors=FACTORS, num_classes=10, in_chans=1).train()
    images, labels = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    return model, images, labels


def _grads_of(model, loss_fn):
    """Gradients of ``loss_fn()`` at the model's weights (a reference computed with plain autograd)."""
    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _step_grads(model, images, labels, configs, **kw):
    opt = torch.optim.SGD(list(model.parameters()) + list(kw.get("ensemble", nn.Module()).parameters()), lr=0.0)
    order = []
    real = model.set_config

    def spy(config):
        order.append(tuple(config))
        real(config)

    model.set_config = spy  # the test watches the order of the passes (an instance attribute, undone below)
    try:
        train_step(model, images, labels, configs, opt, nn.CrossEntropyLoss(), **kw)
    finally:
        del model.set_config
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, order


def _close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k


def test_full_configuration_teaches_on_labels_with_a_detached_output():
    model, images, labels = _model_and_batch()
    full, small, mid = (1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (0.75, 0.75, 0.75)
    configs = [small, full, mid]
    got, order = _step_grads(model, images, labels, configs, distill="full", distill_weight=1.0)
    assert order[0] == full and sorted(order) == sorted(configs)  # the teacher runs first, no extra pass

    def reference():
        with model.using(full):
            z_full = model(images)
        loss = nn.functional.cross_entropy(z_full, labels)  # the teacher learns from the labels...
        target = z_full.detach().softmax(1)                    # ...and teaches through a detached output
        for c in (small, mid):
            with model.using(c):
                loss = loss + soft_label_loss(model(images), target)
        return loss

    _close(got, _grads_of(model, reference))
    # under fair sampling the full configuration is drawn rarely: it then runs as an extra pass
    fair = [(0.5, 1.0, 0.75), (1.0, 0.75, 0.5), (0.75, 0.5, 1.0)]
    _, order = _step_grads(model, images, labels, fair, distill="full")
    assert order == [full] + fair


@pytest.mark.parametrize("top_down", [True, False])
def test_ensemble_distillation_learns_its_weights(top_down):
    model, images, labels = _model_and_batch(1)
    ensemble = EnsembleWeights(3)
    with torch.no_grad():
        ensemble.alpha.copy_(torch.tensor([0.3, -0.2, 0.1]))
    configs = [(0.5, 0.5, 0.5), (1.0, 1.0, 1.0), (0.75, 0.75, 0.75)]
    got, order = _step_grads(model, images, labels, configs, distill="ensemble", distill_weight=0.5,
                             ensemble=ensemble, loss_reduction="mean", top_down=top_down, temperature=2.0)
    assert order == [(1.0, 1.0, 1.0), (0.75, 0.75, 0.75), (0.5, 0.5, 0.5)]  # ranked dearest first
    alpha_grad = ensemble.alpha.grad.clone()
    assert alpha_grad.abs().sum() > 0  # the weights get a gradient: they are learned

    def reference():  # RS-Nets: members detached for the ensemble's CE; dense top-down KD scaled by 2/(k+1)
        zs = []
        for c in order:
            with model.using(c):
                zs.append(model(images))
        w = ensemble.alpha.detach().softmax(0)
        ens = sum(w[r] * z.detach() for r, z in enumerate(zs))
        soft = [(z.detach() / 2.0).softmax(1) for z in zs]
        target = (ens / 2.0).softmax(1)
        kd_scale = 0.5 * (2 / 4 if top_down else 1)
        per = []
        for j, z in enumerate(zs):
            kd = soft_label_loss(z, target, 2.0) + sum(soft_label_loss(z, t, 2.0) for t in soft[:j] if top_down)
            per.append(nn.functional.cross_entropy(z, labels) + kd_scale * kd)
        return sum(per) / 3

    _close(got, _grads_of(model, reference))
    # one optimizer step moves the weights (the trainer puts them in its optimizer)
    opt = torch.optim.SGD(list(model.parameters()) + list(ensemble.parameters()), lr=1.0)
    before = ensemble.alpha.detach().clone()
    train_step(model, images, labels, configs, opt, nn.CrossEntropyLoss(), distill="ensemble", ensemble=ensemble)
    assert not torch.allclose(before, ensemble.alpha.detach())


@pytest.mark.slow
def test_trainer_runs_every_recipe_and_resumes_the_ensemble(tiny_fmnist, tmp_path):
    for name, kw in {"sw": dict(sampling="sandwich", distill="full"), "lg": dict(distill="largest"),
                     "en": dict(distill="ensemble", loss_reduction="mean")}.items():
        run = train(tiny_cfg(tiny_fmnist, tmp_path, name=name, **kw))
        assert (run / "checkpoint.pt").is_file()
    payload = torch.load(tmp_path / "en" / "checkpoint.pt", weights_only=False)
    assert payload["ensemble"]["alpha"].shape == (4,)
    resumed = train(tiny_cfg(tiny_fmnist, tmp_path, name="en", distill="ensemble", loss_reduction="mean", epochs=2,
                             resume=str(tmp_path / "en")))
    again = torch.load(resumed / "checkpoint.pt", weights_only=False)
    assert not torch.equal(again["ensemble"]["alpha"], payload["ensemble"]["alpha"])
    assert TrainOptions(distill=True).distill == "largest"  # the old switch still reads
    with pytest.raises(ValueError, match="one of: none, full, largest, ensemble"):
        TrainOptions(distill="all")


def test_teacher_is_frozen(tiny_fmnist, tmp_path):
    teacher_run = train(tiny_cfg(tiny_fmnist, tmp_path, name="teacher", sampling="single"))
    before = torch.load(teacher_run / "checkpoint.pt", weights_only=False)["model"]
    run = TrainingRun(tiny_cfg(tiny_fmnist, tmp_path, name="student", teacher=str(teacher_run), teacher_weight=2.0))
    assert not run.teacher.training and not any(p.requires_grad for p in run.teacher.parameters())
    in_optimizer = {id(p) for g in run.optimizer.param_groups for p in g["params"]}
    assert not in_optimizer & {id(p) for p in run.teacher.parameters()}
    run.train_epoch(0)
    after = run.teacher.state_dict()
    for k, v in before.items():  # weights and BN statistics untouched by the student's training
        assert torch.equal(v, after[k]), k
    images = torch.randn(4, 1, 28, 28)
    probs = run._teacher_probs(images)
    assert probs.shape == (4, 10) and not probs.requires_grad
    with pytest.raises(ValueError, match="exclude each other"):
        TrainOptions(teacher="x", distill="full")


@pytest.mark.slow
def test_steps_log_records_inside_the_epoch_and_is_cut_back_on_resume(tiny_fmnist, tmp_path):
    run = train(tiny_cfg(tiny_fmnist, tmp_path, name="log", epochs=2, max_steps_per_epoch=7, log_every=3))
    steps = [r["step"] for r in read_steps(run / STEPS_FILE)]
    assert steps == [1, 2, 3, 6, 9, 12]
    records = read_steps(run / STEPS_FILE)
    assert records[3]["steps"] == 3 and records[0]["lr"] == pytest.approx(0.1)
    # resuming from step 7 drops what came after it; the continued run writes the same lines again
    log = StepLog(run / STEPS_FILE, 3, resume_step=7)
    assert [r["step"] for r in read_steps(run / STEPS_FILE)] == [1, 2, 3, 6]
    assert log.every == 3
    assert loss_climbs(records) is None  # a normal run stays quiet


def _log(losses, every=5):
    path_records, window = [], []
    for i, loss in enumerate(losses, 1):
        window.append(loss)
        if i <= every or i % every == 0:
            path_records.append({"step": i, "loss": loss, "mean": sum(window) / len(window), "max": max(window),
                                 "steps": len(window), "lr": 0.1})
            window = []
    return path_records


def test_stability_flag_fires_on_a_blow_up_and_not_on_a_normal_run():
    import math
    import random

    rng = random.Random(0)
    normal = [2.3 * math.exp(-i / 60) + 0.2 + rng.uniform(-0.05, 0.05) for i in range(300)]
    assert loss_climbs(_log(normal)) is None
    blow_up = [2.40, 2.9, 4.1, 5.3, 6.25, 4.0] + [2.25 + rng.uniform(-0.03, 0.03) for _ in range(30)] + normal[60:]
    assert "above 1.25x the first step's" in loss_climbs(_log(blow_up))
    late = normal[:200] + [0.9 + rng.uniform(-0.05, 0.05) for _ in range(100)]  # climbs back late in training
    assert "up from" in loss_climbs(_log(late))
    assert "non-finite" in loss_climbs(_log(normal[:20] + [float("nan")] + normal[21:40]))


def test_steps_log_is_written_as_json_lines(tmp_path):
    log = StepLog(tmp_path / "s.jsonl", 2)
    for step in range(1, 7):
        log.add(step, 1, 1.0 / step, 0.1)
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 4, 6]
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        StepLog(tmp_path / "t.jsonl", 0)


def _one_step(cfg):
    run = TrainingRun(cfg)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    stats = run.train_epoch(0)
    after = run.model.state_dict()
    return {k: after[k] - before[k] for k in before if after[k].dtype.is_floating_point and "running" not in k}, stats


@pytest.mark.slow
def test_loss_reduction_mean_divides_the_update_by_k(tiny_fmnist, tmp_path):
    summed, _ = _one_step(tiny_cfg(tiny_fmnist, tmp_path, name="s", max_steps_per_epoch=1))
    mean, _ = _one_step(tiny_cfg(tiny_fmnist, tmp_path, name="m", loss_reduction="mean", max_steps_per_epoch=1))
    moved = [k for k in summed if summed[k].abs().max() > 1e-6]
    assert moved
    for k in moved:  # plain SGD: the step is proportional to the gradient
        assert torch.allclose(mean[k] * 4, summed[k], rtol=1e-3, atol=1e-6), k
    with pytest.raises(ValueError, match="one of: sum, mean"):
        TrainOptions(loss_reduction="max")


@pytest.mark.slow
def test_distill(tiny_fmnist, tmp_path):
    plain, _ = _one_step(tiny_cfg(tiny_fmnist, tmp_path, name="p", max_steps_per_epoch=1))
    off, _ = _one_step(tiny_cfg(tiny_fmnist, tmp_path, name="o", distill=True, distill_weight=0.0, max_steps_per_epoch=1))
    on, _ = _one_step(tiny_cfg(tiny_fmnist, tmp_path, name="d", distill=True, max_steps_per_epoch=1))
    fc = "fc.weight"
    assert torch.allclose(off[fc], plain[fc], atol=1e-5)  # weight 0: only the order of the passes changed
    assert not torch.allclose(on[fc], plain[fc], atol=1e-4)
    with pytest.raises(ValueError, match=r"--distill-weight 1.5: expected a number >= 0 and <= 1"):
        TrainOptions(distill_weight=1.5)


def test_soft_label_loss_and_largest():
    logits = torch.randn(5, 10)
    teacher = torch.randn(5, 10).softmax(1)
    kl = torch.nn.functional.kl_div(logits.log_softmax(1), teacher, reduction="batchmean")
    entropy = -(teacher * teacher.log()).sum(1).mean()
    assert torch.allclose(soft_label_loss(logits, teacher), kl + entropy, atol=1e-5)
    assert soft_label_loss(teacher.log(), teacher) == pytest.approx(float(entropy), abs=1e-5)
    assert largest_config([(0.45, 1.0, 0.65), (1.0, 0.85, 0.45), (0.65, 0.45, 1.0)]) == 1
    assert largest_config([(0.45, 0.45), (1.0, 1.0)]) == 1


@pytest.mark.slow
def test_train_accuracy_per_epoch(tiny_fmnist, tmp_path):
    run = train(tiny_cfg(tiny_fmnist, tmp_path, name="acc", epochs=2, max_steps_per_epoch=8, lr=0.05,
                         momentum=0.9, eval_configs="1,1,1"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert 0.0 <= r["train_top1"] <= 100.0 and r["train_top1_of"].startswith("the largest")
    # the stand-in data is easy: a few steps learn it, and the recorded accuracy says so
    assert records[-1]["train_top1"] > records[0]["train_top1"] or records[-1]["train_top1"] > 50
