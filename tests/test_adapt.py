"""Resizable-Adapt: the label rule, routed inference with grouping, the budget, the classifier's cost, files, CLI."""
import json

import pytest
import torch

import resizable
from resizable import adapt
from resizable.nas import lookup as nas
from resizable.configs import format_config, parse_config
from resizable.evaluation.walker import evaluate_configs
from resizable.adapt import Adapter, AdaptError, ConfigClassifier, best_config_index, module_macs
from resizable.cli import main
from resizable.training.trainer import TrainOptions, train


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=(4, 8, 8))
    with torch.no_grad():  # BN statistics from data, so that features differ from image to image
        model.train()
        for f in model.factors:
            model.set_config((f,) * model.num_stages)
            for _ in range(3):
                model(torch.randn(16, 1, 28, 28))
    model.set_config(model.max_config)
    return model.eval()


def random_batches(n=24, batch=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y, [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


class Scrambled(ConfigClassifier):
    """An untrained classifier plus a fixed random projection of its input: spreads images over many configurations."""

    def __init__(self, in_chans, num_configs, feature_size, width, seed):
        super().__init__(in_chans, num_configs, feature_size, width)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(in_chans * feature_size[0] * feature_size[1], num_configs, generator=g))

    def forward(self, x):
        return super().forward(x) + 10.0 * x.flatten(1) @ self.proj


def scrambled_adapter(model, source, seed=0):
    shape = adapt.feature_shape(model, 28, source)
    clf = Scrambled(shape[0], len(model.configs()), shape[1:], 8, seed)
    return Adapter(model, clf.eval(), model.configs(), source, 28)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


# ---------------------------------------------------------------- the label definition
def test_label_rule_on_a_hand_built_case():
    #              config:   A     B     C     D      (costs 4, 1, 2, 1)
    costs = [4, 1, 2, 1]
    correct = torch.tensor([[1, 0, 1, 0],    # two correct: the cheaper one, C
                            [1, 1, 0, 1],    # B and D correct at the same cost: the more confident, D
                            [0, 0, 0, 0],    # none correct: the most confident, C
                            [0, 0, 0, 0],    # none correct, B and D equally confident and cheap: the first, B
                            [1, 0, 0, 0]], dtype=torch.bool)
    p_true = torch.tensor([[0.9, 0.2, 0.6, 0.1],
                           [0.5, 0.4, 0.1, 0.45],
                           [0.1, 0.2, 0.3, 0.25],
                           [0.1, 0.3, 0.1, 0.3],
                           [0.7, 0.1, 0.1, 0.1]])
    assert best_config_index(correct, p_true, costs, "cheapest").tolist() == [2, 3, 2, 1, 0]
    assert best_config_index(correct, p_true, costs, "confident").tolist() == [0, 0, 2, 1, 0]
    # restricted to B, C, D: row 0 keeps C, row 4 has no allowed correct configuration -> most confident allowed
    allowed = [False, True, True, True]
    assert best_config_index(correct, p_true, costs, "cheapest", allowed).tolist() == [2, 3, 2, 1, 1]
    # equal confidence, different cost: the cheaper wins even though it comes later
    assert best_config_index(torch.zeros(1, 2, dtype=torch.bool), torch.tensor([[0.5, 0.5]]), [3, 1]).tolist() == [1]
    with pytest.raises(ValueError, match="accepted: cheapest, confident"):
        best_config_index(correct, p_true, costs, "best")
    with pytest.raises(ValueError, match="no configuration is allowed"):
        best_config_index(correct, p_true, costs, allowed=[False] * 4)


def test_outcomes_agree_with_the_lookup_table_walk():
    model = tiny_model()
    _, _, loader = random_batches()
    outcomes = adapt.config_outcomes(model, loader)
    counts = evaluate_configs(model, loader)
    assert outcomes.correct.shape == (24, 64)
    assert [int(v) for v in outcomes.correct.sum(0)] == [counts[c]["top1"] for c in model.configs()]
    labels = adapt.label_images(model, loader, input_size=28, indices=torch.arange(24), dataset="fake", split="train")
    # every label obeys the rule: correct when any configuration is, and then no correct one is cheaper
    macs = torch.tensor(labels.config_macs)
    for n in range(24):
        j = int(labels.labels[n])
        if outcomes.correct[n].any():
            assert outcomes.correct[n, j] and macs[j] == macs[outcomes.correct[n]].min()
        else:
            assert outcomes.p_true[n, j] == outcomes.p_true[n].max()


# ---------------------------------------------------------------- routing
@pytest.mark.parametrize("source", ["min", "stem"])
def test_grouped_inference_equals_one_by_one(source):
    model = tiny_model()
    x, _, _ = random_batches(n=16)
    adapter = scrambled_adapter(model, source)
    allowed = adapter.allowed(max_mmacs=0.9)
    logits, choice = adapter.infer(x, allowed)
    ref_logits, ref_choice = adapter.infer_one_by_one(x, allowed)
    assert len(set(choice.tolist())) >= 3  # several groups, so grouping is exercised
    assert torch.equal(choice, ref_choice)
    assert torch.equal(logits.argmax(1), ref_logits.argmax(1))
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
    assert model.config == model.max_config and not model.training  # state restored


@pytest.mark.parametrize("source,count_interp", [("min", False), ("stem", False), ("stem", True)])
def test_no_routed_image_exceeds_the_budget(source, count_interp):
    model = tiny_model()
    x, y, loader = random_batches(n=32)
    adapter = scrambled_adapter(model, source, seed=3)
    costs = torch.tensor(adapter.costs.budget_costs(count_interp), dtype=torch.float64)
    for budget in (costs.min().item() / 1e6, 0.6, 0.9, 1.2, None):
        allowed = adapter.allowed(budget, count_interp)
        _, choice = adapter.infer(x, allowed)
        if budget is not None:
            assert (costs[choice] <= budget * 1e6).all()
        result = adapt.evaluate_adapt(adapter, loader, budget, count_interp=count_interp, time_static=False)
        if budget is not None:
            assert result["adapt"]["max_image_mmacs"] <= budget
    with pytest.raises(nas.NoFeasibleConfig, match="costs"):
        adapter.allowed(costs.min().item() / 1e6 * 0.99, count_interp)


def test_classifier_cost_is_counted():
    model = tiny_model()
    # the classifier's MACs, by hand: stride 2 while the input is larger than 4x4
    clf = ConfigClassifier(4, 64, (28, 28), width=8)
    by_hand = 14 * 14 * 8 * 4 * 9 + 7 * 7 * 8 * 8 * 9 + 4 * 4 * 8 * 8 * 9 + 8 * 64
    assert module_macs(clf, (4, 28, 28)) == by_hand

    stem = scrambled_adapter(model, "stem")
    c = stem.costs
    assert c.classifier_macs == module_macs(stem.classifier, (4, 28, 28)) > 0
    for j, config in enumerate(stem.configs):  # the stem is shared: a routed image costs its config + classifier
        assert c.routed_macs[j] == resizable.count_macs(model, config, 28).macs + c.classifier_macs

    mini = scrambled_adapter(model, "min")
    c = mini.costs
    small = resizable.count_macs(model, model.min_config, 28)
    assert c.feature_macs == small.macs and c.classifier_macs > 0
    j_min = mini.configs.index(model.min_config)
    assert c.routed_macs[j_min] == small.macs + c.classifier_macs  # its logits are reused
    j_max = mini.configs.index(model.max_config)
    full = resizable.count_macs(model, model.max_config, 28)
    assert c.routed_macs[j_max] == small.macs + c.classifier_macs + full.macs - full.stages["stem"][0]
    j = mini.configs.index((0.45, 0.45, 1.0))  # shares stages 1-2 with the feature pass
    part = resizable.count_macs(model, (0.45, 0.45, 1.0), 28).stages
    assert c.routed_macs[j] == small.macs + c.classifier_macs + part["stage3"][0] + part["head"][0]

    # the mean per-image cost that evaluation reports includes the classifier
    _, _, loader = random_batches(n=16)
    r = adapt.evaluate_adapt(stem, loader, None, time_static=False)
    usage = r["adapt"]["usage"]
    expected = sum(n * stem.costs.routed_macs[stem.configs.index(parse_config(k))] for k, n in usage.items()) / 16
    assert r["adapt"]["mean_mmacs"] == pytest.approx(expected / 1e6)
    assert r["adapt"]["classifier_mmacs"] == pytest.approx(stem.costs.classifier_macs / 1e6)


def test_evaluation_compares_with_static_and_oracle():
    model = tiny_model()
    _, _, loader = random_batches(n=24)
    adapter = scrambled_adapter(model, "min")
    outcomes = adapt.config_outcomes(model, loader)
    r = adapt.evaluate_adapt(adapter, loader, 0.8, outcomes=outcomes, time_static=False)
    assert r["adapt"]["top1_pct"] == pytest.approx(r["adapt"]["top1_pct_from_outcomes"])
    static = r["static_at_budget"]
    best = nas.search(adapt.outcomes_table(model, outcomes, 28), max_mmacs=0.8)[0]
    assert static["config"] == format_config(best["config"]) and static["top1_pct"] == best["top1_pct"]
    assert static["mmacs"] <= 0.8
    assert r["oracle"]["top1_pct"] >= max(static["top1_pct"], r["adapt"]["top1_pct"])
    assert r["oracle"]["mean_mmacs"] <= 0.8


# ---------------------------------------------------------------- files and the command line
@pytest.fixture(scope="module")
def tiny_run(tiny_fmnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist",
                      data_dir=tiny_fmnist, epochs=1, batch_size=32, max_steps_per_epoch=3, out_dir=str(out),
                      name="rs", progress=False, eval_configs="1,1,1", seed=0)
    return train(cfg)


@pytest.mark.slow
def test_label_train_eval_commands(tiny_run, tmp_path, capsys):
    labels, clf, res = tmp_path / "labels.pt", tmp_path / "clf.pt", tmp_path / "res.json"
    assert main(["adapt", "label", "--checkpoint", str(tiny_run), "--out", str(labels), "--num-images", "96",
                 "--batch-size", "64", "--no-progress"]) == 0
    assert "labelled 96 images of train:0-0.5 over 64 configurations" in capsys.readouterr().out
    loaded = adapt.load_labels(labels, resizable.checkpoint.load_model(tiny_run)[0])
    assert loaded.indices.shape == (96,) and loaded.outcomes.correct.shape == (96, 64)
    assert main(["adapt", "train", "--labels", str(labels), "--checkpoint", str(tiny_run), "--out", str(clf),
                 "--epochs", "2", "--width", "8", "--rule", "confident", "--no-progress"]) == 0
    assert "MMACs per image" in capsys.readouterr().out
    assert main(["adapt", "eval", "--checkpoint", str(tiny_run), "--classifier", str(clf), "--max-mflops", "0.6,2",
                 "--batch-size", "128", "--out", str(res), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "budget 0.6 MMACs/image" in text and "oracle" in text and "static" in text
    results = json.loads(res.read_text())
    assert [r["budget_mmacs"] for r in results] == [0.6, 2.0]
    assert all(r["adapt"]["max_image_mmacs"] <= r["budget_mmacs"] for r in results)
    assert results[0]["images"] == 256
    assert all(r["bn_statistics"].startswith("statistics bank") for r in results)  # the run's bank, by default
    # the table on the same basis (the bank, each configuration its own statistics) is the one to route with
    banked = tmp_path / "bank.csv"
    assert main(["table", "--checkpoint", str(tiny_run), "--out", str(banked), "--batch-size", "128",
                 "--no-progress"]) == 0
    assert main(["adapt", "eval", "--checkpoint", str(tiny_run), "--classifier", str(clf), "--table", str(banked),
                 "--no-progress"]) == 0
    # a table on another BN basis would compare routed images with differently normalised static ones
    table = tmp_path / "cal.csv"
    assert main(["table", "--checkpoint", str(tiny_run), "--out", str(table), "--calibrate-bn", "1",
                 "--batch-size", "128", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["adapt", "eval", "--checkpoint", str(tiny_run), "--classifier", str(clf), "--table", str(table),
                 "--no-progress"]) == 2
    assert "recalibrated" in capsys.readouterr().err
    # and routing with the running averages refuses labels made with the bank
    assert main(["adapt", "eval", "--checkpoint", str(tiny_run), "--classifier", str(clf),
                 "--bn-statistics", "as-trained", "--no-progress"]) == 2
    assert "statistics" in capsys.readouterr().err


def test_files_refuse_other_weights(tiny_run, tmp_path, capsys):
    model, payload = resizable.checkpoint.load_model(tiny_run)
    _, path = adapt.label_checkpoint(adapt.LabelOptions(checkpoint=str(tiny_run), out=str(tmp_path / "l.pt"),
                                                        num_images=32, progress=False))
    other = tiny_model(seed=5)
    with pytest.raises(AdaptError, match="other weights"):
        adapt.load_labels(path, other)
    trained, cpath = adapt.train_checkpoint(adapt.ClassifierOptions(labels=str(path), checkpoint=str(tiny_run),
                                                                    out=str(tmp_path / "c.pt"), epochs=1, width=4,
                                                                    progress=False))
    with pytest.raises(AdaptError, match="other weights"):
        adapt.load_classifier(cpath, other)
    with pytest.raises(AdaptError, match="another architecture"):
        adapt.load_classifier(cpath, resizable.create_model("resnet20", num_classes=10, in_chans=1))
    with pytest.raises(AdaptError, match="not a Resizable-Adapt classifier file"):
        adapt.load_classifier(path)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(AdaptError, match="not a Resizable-Adapt label file"):
        adapt.load_labels(tmp_path / "junk.pt")
    # the command line reports the mismatch on one line
    torch.save({**payload, "model": other.state_dict()}, tmp_path / "other.pt")
    assert main(["adapt", "train", "--labels", str(path), "--checkpoint", str(tmp_path / "other.pt"),
                 "--no-progress"]) == 2
    assert "other weights" in capsys.readouterr().err
