"""Resizable-Adapt along the front: label rules per threshold and by cost, the confidence cascade (its counted
MACs and its thresholds), the comparison with the front, split parts, and the exported pipelines."""
import csv
import json

import pytest
import torch
from torch import nn

import resizable
from resizable import adapt
from resizable.adapt import Adapter, Cascade, ConfigClassifier, LabelKnob, best_config_index, choose_cascades
from resizable.adapt.export import export_pipeline, run_onnx_pipeline
from resizable.adapt.front import (FrontPoint, Setting, line_top1, nas_pick, oracle_setting, pareto_indices,
                                   pick_setting)
from resizable.cli import main
from resizable.configs import format_config
from resizable.data.splits import SplitPart, parse_split_part

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits

CHAIN = [(0.45, 0.45, 0.45), (0.45, 0.45, 1.0), (0.45, 1.0, 1.0), (1.0, 1.0, 1.0)]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=(4, 8, 8))
    with torch.no_grad():  # BN statistics from data, so that images differ in what each configuration says
        model.train()
        for f in model.factors:
            model.set_config((f,) * model.num_stages)
            for _ in range(3):
                model(torch.randn(16, 1, 28, 28))
        for m in model.modules():  # sharper logits, so that confidences spread over (0, 1)
            if isinstance(m, nn.Linear):
                m.weight.mul_(20.0)
    model.set_config(model.max_config)
    return model.eval()


def batches(n=48, batch=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y, [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def spread_cascade(model, x, configs=CHAIN):
    """Thresholds at the median confidence of each step, so that images stop at every step (midway between two
    images' confidences: an image right at a threshold could go either way once BN is folded)."""
    thresholds = []
    with torch.no_grad():
        for c in configs[:-1]:
            model.set_config(c)
            conf = model(x).softmax(1).max(1).values.sort().values
            k = len(conf) // 2
            thresholds.append(float(conf[k - 1] + conf[k]) / 2)
    return Cascade(model, configs, thresholds, 28)


class Scrambled(nn.Module):
    """A scriptable classifier that spreads images over its configurations (a fixed random projection)."""

    def __init__(self, in_chans, num_configs, feature_size, seed=0):
        super().__init__()
        self.base = ConfigClassifier(in_chans, num_configs, feature_size, width=8)
        self.in_chans, self.num_configs, self.feature_size = in_chans, num_configs, tuple(feature_size)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(in_chans * feature_size[0] * feature_size[1], num_configs,
                                                 generator=g))

    def forward(self, x):
        return self.base(x) + 10.0 * x.flatten(1) @ self.proj


def scrambled_adapter(model, source, configs):
    shape = adapt.feature_shape(model, 28, source)
    return Adapter(model, Scrambled(shape[0], len(configs), shape[1:]).eval(), configs, source, 28)


# ---------------------------------------------------------------- label rules
def test_paper_rule_respects_the_threshold():
    g = torch.Generator().manual_seed(0)
    costs = [1_000_000, 2_000_000, 3_000_000, 4_000_000, 2_000_000]
    p_true = torch.rand(200, 5, generator=g)
    p_true[:10, 1] = p_true[:10, 4] = 2.0  # equal best probability at equal cost: the earlier column
    correct = p_true > 0.5
    for t in (1.0, 2.5, 3.0, 4.0):
        knob = LabelKnob("confident", t)
        allowed = knob.allowed(costs)
        labels = best_config_index(correct, p_true, costs, "confident", allowed)
        assert all(costs[j] <= t * 1e6 for j in labels.tolist())
        masked = p_true.masked_fill(~torch.tensor(allowed), -1)
        assert torch.equal(p_true.gather(1, labels[:, None])[:, 0], masked.max(1).values)  # the most confident
    assert best_config_index(correct, p_true, costs, "confident", LabelKnob("confident", 2.0).allowed(costs))[:10] \
        .tolist() == [1] * 10
    # ties in probability go to the cheaper configuration
    assert best_config_index(correct[:1], torch.tensor([[0.4, 0.4, 0.4, 0.4, 0.4]]), costs, "confident").tolist() == [0]
    with pytest.raises(ValueError, match="no configuration costs at most 0.5 MMACs"):
        LabelKnob("confident", 0.5).allowed(costs)


def test_labels_per_threshold_and_their_classifier_configurations():
    model = tiny_model()
    _, _, loader = batches(n=32)
    labels = adapt.label_images(model, loader, input_size=28, indices=torch.arange(32), dataset="fake", split="val",
                                knob=LabelKnob("confident", 1.0))
    assert labels.knob.name == "confident-max1"
    macs = torch.tensor(labels.config_macs)
    assert (macs[labels.labels] <= 1e6).all()
    narrow = labels.restrict()  # what a classifier for this threshold chooses among
    assert len(narrow.configs) == int((macs <= 1e6).sum()) < len(labels.configs)
    assert [narrow.configs[j] for j in narrow.labels.tolist()] == [labels.configs[j] for j in labels.labels.tolist()]
    other = labels.relabel(LabelKnob("confident", 2.0))  # no new pass over the images
    assert other.outcomes is labels.outcomes and (macs[other.labels] <= 2e6).all()


def test_cost_aware_rule():
    g = torch.Generator().manual_seed(1)
    costs = [1e6, 2e6, 3e6, 4e6]
    p_true = torch.rand(300, 4, generator=g)
    correct = p_true > 0.5
    zero = best_config_index(correct, p_true, costs, "cost-aware", cost_weight=0.0)
    assert torch.equal(zero, best_config_index(correct, p_true, costs, "confident"))
    means = [float(torch.tensor(costs)[best_config_index(correct, p_true, costs, "cost-aware", cost_weight=w)]
                   .mean()) for w in (0.0, 0.3, 1.0, 10.0)]
    assert means == sorted(means, reverse=True) and means[0] > means[-1]
    assert (best_config_index(correct, p_true, costs, "cost-aware", cost_weight=10.0) == 0).all()
    # the score by hand: p - lambda * cost / full
    j = best_config_index(correct[:1], torch.tensor([[0.30, 0.50, 0.58, 0.60]]), costs, "cost-aware",
                          cost_weight=0.4)
    assert j.tolist() == [1]  # 0.2, 0.3, 0.28, 0.2
    with pytest.raises(ValueError, match="--cost-weight"):
        adapt.label_knobs("cost-aware")
    with pytest.raises(ValueError, match="--rule cost-aware"):
        adapt.label_knobs("confident", cost_weight=(0.1,))


# ---------------------------------------------------------------- the cascade
def test_cascade_counts_what_ran():
    model = tiny_model()
    x, y, loader = batches(n=48)
    cascade = spread_cascade(model, x)
    plan = cascade.plan
    assert plan.start == (0, 2, 1, 0) and plan.source == (-1, 0, 0, -1)  # shared leading stages
    ran = {"macs": 0, "stages": [0, 0, 0]}

    def conv(m, args, out):
        ran["macs"] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, args, out):
        ran["macs"] += out.numel() * m.in_features

    def stage(i):
        def hook(m, args, out):
            ran["stages"][i] += out.shape[0]  # images through stage i
        return hook

    handles = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, nn.Linear)]
    handles += [model.stage(i).register_forward_hook(stage(i)) for i in range(3)]
    try:
        logits, exits = cascade.infer(x)
    finally:
        for h in handles:
            h.remove()
    reached = [int((exits >= j).sum()) for j in range(4)]
    assert all(int((exits == j).sum()) > 0 for j in range(4))  # every step answers some images
    assert ran["macs"] == sum(plan.exit_macs[j] for j in exits.tolist())
    # stage i runs for every image of each step that does not take it from an earlier one
    assert ran["stages"] == [sum(reached[j] for j in range(4) if plan.start[j] <= i) for i in range(3)]
    # the same images, read off the recorded outcomes (what adapt eval does) stop at the same steps
    outcomes = adapt.config_outcomes(model, loader, CHAIN)
    assert torch.equal(cascade.exits(outcomes.p_max), exits)
    for j in range(4):  # and an image's logits are those of the configuration it stopped at
        model.set_config(CHAIN[j])
        with torch.no_grad():
            torch.testing.assert_close(logits[exits == j], model(x[exits == j]), rtol=1e-4, atol=1e-5)


def test_thresholds_chosen_on_val_reach_the_target_mean_cost():
    model = tiny_model()
    _, _, loader = batches(n=64, seed=3)
    outcomes = adapt.config_outcomes(model, loader)
    costs = resizable.costs.config_costs(model, 28, outcomes.configs)
    cost = [costs[c][0] for c in outcomes.configs]
    top1 = outcomes.top1_pct()
    front = [outcomes.configs[j] for j in pareto_indices(top1, cost)]
    assert len(front) >= 3
    targets = [cost[outcomes.configs.index(front[0])] / 1e6 * 1.3, 1.0, 1.6, 3.0]
    choices = choose_cascades(model, 28, outcomes, front, targets, max_steps=3)
    for target, choice in zip(targets, choices):
        cascade = Cascade(model, choice.configs, choice.thresholds, 28)
        cols = [outcomes.configs.index(c) for c in cascade.configs]
        exits = cascade.exits(outcomes.p_max[:, cols])
        mean = float(torch.tensor(cascade.plan.exit_macs, dtype=torch.float64)[exits].mean()) / 1e6
        assert mean == pytest.approx(choice.knob_mean_mmacs) and mean <= target
        top = 100.0 * float(outcomes.correct[torch.arange(64), torch.tensor(cols)[exits]].double().mean())
        assert top == pytest.approx(choice.knob_top1_pct)
        # never worse on these images than the best front configuration within the target
        alone = [top1[outcomes.configs.index(c)] for c in front if cost[outcomes.configs.index(c)] <= target * 1e6]
        assert choice.knob_top1_pct >= max(alone)
    assert choose_cascades(model, 28, outcomes, front, [0.01])[0] is None


def test_a_cascade_is_chosen_where_confidence_tells_right_from_wrong():
    model = tiny_model()
    cheap, dear = model.min_config, model.max_config
    # the cheap configuration is right exactly where it is confident (70 images of 100); the dear one everywhere
    conf = torch.tensor([[0.9, 0.8]] * 70 + [[0.3, 0.8]] * 30)
    correct = torch.tensor([[True, True]] * 70 + [[False, True]] * 30)
    outcomes = adapt.ConfigOutcomes([cheap, dear], correct, conf, torch.zeros(100, dtype=torch.int64), conf)
    small, full = (resizable.count_macs(model, c, 28) for c in (cheap, dear))
    exits = adapt.cascade_plan(model, 28, [cheap, dear]).exit_macs
    assert exits == (small.macs, small.macs + full.macs - full.stages["stem"][0])  # only the stem is shared
    enough = (0.7 * exits[0] + 0.3 * exits[1]) / 1e6
    low, high = choose_cascades(model, 28, outcomes, [cheap, dear], [enough * 0.99, enough * 1.01])
    assert high.configs == [cheap, dear] and 0.3 < high.thresholds[0] <= 0.9
    assert high.knob_top1_pct == 100.0 and high.knob_mean_mmacs == pytest.approx(enough)
    assert low.knob_top1_pct < 100.0 and low.knob_mean_mmacs <= enough * 0.99


# ---------------------------------------------------------------- the comparison's pieces, split parts
def test_front_line_nas_pick_and_oracle():
    front = [FrontPoint((0.45,), 1.0, 0.0, 80.0, 79.0), FrontPoint((0.65,), 2.0, 0.0, 85.0, 86.0),
             FrontPoint((1.0,), 4.0, 0.0, 88.0, 87.0)]
    assert line_top1(front, 0.5) is None
    assert line_top1(front, 1.5) == pytest.approx(82.5)
    assert line_top1(front, 3.0) == pytest.approx(86.5)
    assert line_top1(front, 9.0) == 87.0
    assert nas_pick(front, 3.9).config == (0.65,) and nas_pick(front, 0.9) is None
    settings = [Setting("m", "a", 1.5, 84.0, 1.4, 0.0, 83.0), Setting("m", "b", 2.5, 86.0, 2.6, 0.0, 85.0),
                Setting("m", "c", 2.4, 86.0, 2.3, 0.0, 84.0)]
    assert pick_setting(settings, 2.0).knob == "a"
    assert pick_setting(settings, 3.0).knob == "c"  # as accurate on the knob images, and cheaper
    assert pick_setting(settings, 1.0) is None
    assert pareto_indices([80, 79, 85, 85], [1, 2, 3, 3]) == [0, 2]
    outcomes = adapt.ConfigOutcomes([(0.45,), (1.0,)], torch.tensor([[1, 1], [0, 1], [0, 0]], dtype=torch.bool),
                                    torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64))
    o = oracle_setting(outcomes, [1_000_000, 3_000_000], [0, 0], 3.0)
    assert o.top1_pct == pytest.approx(200 / 3) and o.mean_mmacs == pytest.approx((1 + 3 + 1) / 3)
    assert oracle_setting(outcomes, [1_000_000, 3_000_000], [0, 0], 2.0).top1_pct == pytest.approx(100 / 3)


def test_split_parts_are_disjoint_and_cover_the_split():
    parts = [parse_split_part(t) for t in ("val:0-0.5", "val:0.5-0.75", "val:0.75-1")]
    idx = [set(p.indices(1001).tolist()) for p in parts]
    assert sum(len(i) for i in idx) == 1001 and len(set().union(*idx)) == 1001
    assert not parts[0].overlaps(parts[1]) and parts[0].overlaps(SplitPart("val"))
    assert not parts[0].overlaps(SplitPart("test"))
    assert str(parts[1]) == "val:0.5-0.75" and str(parse_split_part("test")) == "test"
    for bad in ("val:0.5", "val:0.7-0.2", "holdout:0-1"):
        with pytest.raises(ValueError, match="split"):
            parse_split_part(bad)


# ---------------------------------------------------------------- the exported pipelines
def agreement(index, ref_index, logits, ref_logits, labels):
    same = float((index == ref_index).double().mean())
    top1 = 100.0 * float((logits.argmax(1) == labels).double().mean())
    ref_top1 = 100.0 * float((ref_logits.argmax(1) == labels).double().mean())
    return same, abs(top1 - ref_top1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cascade", "router-min", "router-stem"])
def test_exported_pipeline_routes_as_adapt_eval(kind, tmp_path):
    pytest.importorskip("onnxruntime")
    model = tiny_model()
    x, y, loader = batches(n=64, seed=5)
    if kind == "cascade":
        pipeline = spread_cascade(model, x)
        outcomes = adapt.config_outcomes(model, loader, CHAIN)
        ref_index = pipeline.exits(outcomes.p_max)  # how adapt eval reads the cascade
        ref_logits, infer_index = pipeline.infer(x)
        assert torch.equal(ref_index, infer_index)
        allowed = None
    else:
        configs = [c for c in model.configs() if c[0] == 0.45][:10]
        pipeline = scrambled_adapter(model, kind.split("-")[1], configs)
        allowed = pipeline.allowed(pipeline.costs.budget_costs()[-2] / 1e6)
        ref_index = pipeline.choose(x, allowed)  # how adapt eval reads the router
        ref_logits, infer_index = pipeline.infer(x, allowed)
        assert torch.equal(ref_index, infer_index) and len(set(ref_index.tolist())) >= 3
    for fmt in ("torchscript", "onnx"):
        for fold in (False, True):
            path = tmp_path / f"{kind}-{fold}.{'pt' if fmt == 'torchscript' else 'json'}"
            result = export_pipeline(pipeline, path, format=fmt, fold_bn=fold, allowed=allowed,
                                     onnx_exporter="legacy")
            if fmt == "torchscript":
                logits, index = torch.jit.load(str(result.path))(x)
                assert json.loads(result.sidecar.read_text())["kind"] == kind.split("-")[0]
            else:
                logits, index = run_onnx_pipeline(result.path, x)
                assert all(p.is_file() for p in result.files)
            same, gap = agreement(index, ref_index, logits, ref_logits, y)
            assert same >= 0.999 and gap <= 0.1, (fmt, fold, same, gap)
            if not fold:
                torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def tiny_run(tiny_fmnist, tmp_path_factory):
    from resizable.training.trainer import TrainOptions, train

    out = tmp_path_factory.mktemp("runs")
    cfg = TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist",
                       data_dir=tiny_fmnist, epochs=1, batch_size=32, max_steps_per_epoch=3, out_dir=str(out),
                       name="rs", progress=False, eval_configs="1,1,1", seed=0, val_size=128)
    return train(cfg)


@pytest.mark.slow
def test_front_commands(tiny_run, tmp_path, capsys):
    labels, clf = tmp_path / "labels.pt", tmp_path / "clf.pt"
    assert main(["adapt", "label", "--checkpoint", str(tiny_run), "--out", str(labels), "--rule", "confident",
                 "--max-mmacs", "0.6,1.2", "--batch-size", "128", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "images of val:0-0.5" in text and "confident-max0.6" in text and "confident-max1.2" in text
    assert len(adapt.load_label_sets(labels)) == 2
    assert main(["adapt", "train", "--labels", str(labels), "--checkpoint", str(tiny_run), "--out", str(clf),
                 "--epochs", "1", "--width", "4", "--no-progress"]) == 0
    assert main(["adapt", "train", "--labels", str(labels), "--checkpoint", str(tiny_run), "--out",
                 str(tmp_path / "cw.pt"), "--rule", "cost-aware", "--cost-weight", "0,0.5", "--epochs", "1",
                 "--width", "4", "--no-progress"]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.pt") if p.name != "labels.pt")
    assert files == ["clf-confident-max0.6.pt", "clf-confident-max1.2.pt", "cw-cost-aware-w0.5.pt", "cw-cost-aware-w0.pt"]
    capsys.readouterr()
    classifiers = ",".join(str(tmp_path / f) for f in files)
    curves, plot = tmp_path / "curves", tmp_path / "curves.png"
    assert main(["adapt", "eval", "--checkpoint", str(tiny_run), "--classifier", classifiers, "--no-routed",
                 "--cascade-steps", "2", "--mean-mmacs", "0.4,0.8,1.6,5", "--curves", str(curves), "--plot", str(plot), "--batch-size", "128",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "knobs chosen on val:0.5-0.75" in text and plot.is_file()
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    methods = {r["method"] for r in rows}
    assert {"nas", "front-line", "oracle", "cascade", "classifier (paper rule, per threshold)",
            "classifier (cost-aware)"} <= methods
    data = json.loads((tmp_path / "curves.json").read_text())
    assert data["meta"]["front_split"] == "val:0.75-1" and data["front"]
    for r in rows:  # every knob was chosen within its target on the knob images
        if r["knob_mean_mmacs"] and r["method"] not in ("nas",):
            assert float(r["knob_mean_mmacs"]) <= float(r["target_mmacs"]) * (1 + 1e-9)
    # report on val itself: the knob images would overlap the report images
    assert main(["adapt", "eval", "--checkpoint", str(tiny_run), "--split", "val", "--no-progress"]) == 2
    assert "overlaps the report images" in capsys.readouterr().err
    # a cascade for a target, and both pipelines exported
    assert main(["adapt", "cascade", "--checkpoint", str(tiny_run), "--mean-mmacs", "0.8", "--out",
                 str(tmp_path / "cascade.json"), "--batch-size", "128", "--no-progress"]) == 0
    chosen = json.loads((tmp_path / "cascade.json").read_text())
    assert chosen["knob_mean_mmacs"] <= 0.8 and chosen["knob_split"] == "val:0.5-0.75"
    assert main(["export", "--checkpoint", str(tiny_run), "--adapt", str(tmp_path / "cascade.json"), "--out",
                 str(tmp_path / "export") + "/", "--format", "onnx", "--onnx-exporter", "legacy"]) == 0
    assert main(["export", "--checkpoint", str(tiny_run), "--adapt", str(tmp_path / files[0]), "--out",
                 str(tmp_path / "export") + "/", "--fold-bn"]) == 0
    names = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert "resnet20_adapt-cascade_28.onnx.json" in names and "resnet20_adapt-router_28_folded.torchscript.pt" in names
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(tiny_run), "--adapt", str(labels)]) == 2
    assert "not a Resizable-Adapt classifier file" in capsys.readouterr().err


def test_front_thresholds_admit_their_own_configuration():
    from resizable.adapt.from_checkpoint import front_thresholds

    model = tiny_model()
    _, _, loader = batches(n=64, seed=3)
    labels = adapt.label_images(model, loader, input_size=28, indices=torch.arange(64), dataset="fake", split="val",
                                knob=LabelKnob("confident"))
    thresholds = front_thresholds(labels)
    assert thresholds == sorted(thresholds) and len(thresholds) >= 2
    for t in thresholds:  # the front configuration at t (MMACs as a float) is among those allowed under t
        mask = LabelKnob("confident", t).allowed(labels.config_macs)
        assert any(ok and abs(m / 1e6 - t) < 1e-12 for ok, m in zip(mask, labels.config_macs))
    assert 8.37933 * 1e6 < 8379330 and LabelKnob("confident", 8.37933).allowed([8379330]) == [True]
