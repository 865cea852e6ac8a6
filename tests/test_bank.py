"""The statistics bank: every configuration's own BN statistics, used by default in every path."""
import copy
import json
import warnings

import numpy as np
import pytest
import torch

import resizable
from resizable.bnbank import StatisticsBank, prefix_row, scale_batchnorms
from resizable.checkpoint import AsTrainedStatisticsWarning, CheckpointError, load_model, save_checkpoint
from resizable.evaluation.bank import build_bank
from resizable.evaluation.walker import Calibration, evaluate_configs


def _trained_like(model, steps=6):
    """A few training steps at several configurations, so every branch has running averages of its own."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for i in range(steps):
        for c in (model.min_config, model.max_config, model.configs()[7 + i]):
            model.set_config(c)
            loss = model(torch.randn(16, 1, 28, 28)).logsumexp(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _loader(n=3, batch=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 1, 28, 28, generator=g), torch.zeros(batch, dtype=torch.long)) for _ in range(n)]


@pytest.fixture(scope="module")
def banked():
    torch.manual_seed(0)
    model = _trained_like(resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=[4, 8, 8]))
    bank = build_bank(model, _loader(), 3, meta={"images": "random test images", "batch_size": 16})
    return model, bank


def test_rows_are_per_prefix_not_per_configuration(banked):
    model, bank = banked
    k = len(model.factors)
    for name, layer in scale_batchnorms(model):
        mean, var = bank.tables[name]
        assert mean.shape == (k ** (layer.stage + 1), layer.num_features) == var.shape
    assert prefix_row((0, 0, 0), 4) == 0 and prefix_row((1, 2), 4) == 6 and prefix_row((3, 3, 3), 4) == 63
    assert bank.meta["batches"] == 3 and bank.meta["configs"] == 64


def test_bank_gives_each_configuration_its_recalibrated_statistics(banked):
    """set_config(c) with the bank == calibrate_bn(c) alone on the same batches (the stem kept as trained)."""
    model, bank = banked
    net = copy.deepcopy(model)
    net.attach_bank(bank)
    x = torch.randn(8, 1, 28, 28)
    for c in net.configs()[::9]:
        ref = copy.deepcopy(model)
        stem = copy.deepcopy(ref.bn1.state_dict())
        resizable.calibrate_bn(ref, c, _loader(), 3)
        ref.bn1.load_state_dict(stem)  # the bank keeps the config-independent stem as trained
        ref.set_config(c)
        net.set_config(c)
        with torch.no_grad():
            torch.testing.assert_close(net(x), ref(x), rtol=1e-4, atol=1e-5)
    # and the tree walk reads the same rows as set_config does
    with torch.no_grad():
        walked = resizable.forward_all(net, x)
        for c in net.configs()[::11]:
            net.set_config(c)
            torch.testing.assert_close(walked[c], net(x), rtol=1e-4, atol=1e-5)


def test_as_trained_is_one_switch_away_and_training_ignores_the_bank(banked):
    model, bank = banked
    net = copy.deepcopy(model)
    net.attach_bank(bank)
    x = torch.randn(8, 1, 28, 28)
    c = (0.45, 0.85, 0.65)
    net.set_config(c)
    model.set_config(c)
    with torch.no_grad():
        assert net.bn_statistics == "bank"
        assert not torch.allclose(net(x), model(x))
        with net.using_bn_statistics("as-trained"):
            torch.testing.assert_close(net(x), model(x))
        assert net.bn_statistics == "bank"
        net.set_bn_statistics("as-trained")
        torch.testing.assert_close(net(x), model(x))
        net.set_bn_statistics("bank")
    # train mode: batch statistics, and the running averages move exactly as without a bank
    a, b = copy.deepcopy(model).train(), copy.deepcopy(net).train()
    torch.testing.assert_close(a(x), b(x))
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb
        torch.testing.assert_close(ta, tb)
    with pytest.raises(ValueError, match="accepted: bank, as-trained"):
        net.set_bn_statistics("calibrated")
    with pytest.raises(ValueError, match="no statistics bank"):
        copy.deepcopy(model).set_bn_statistics("bank")


def test_bank_moves_with_the_model_and_stays_out_of_the_state_dict(banked):
    model, bank = banked
    net = copy.deepcopy(model)
    net.attach_bank(bank)
    assert set(net.state_dict()) == set(model.state_dict())
    x = torch.randn(4, 1, 28, 28)
    net.set_config((0.65, 0.65, 1.0))
    with torch.no_grad():
        y = net(x)
        net64 = copy.deepcopy(net).double()
        torch.testing.assert_close(net64(x.double()).float(), y, rtol=1e-4, atol=1e-5)
        assert net64.bank.tables[next(iter(net64.bank.tables))][0].dtype == torch.float64
    # exported static network carries the configuration's bank statistics
    static = resizable.export(net, (0.65, 0.65, 1.0), 28).eval()
    with torch.no_grad():
        torch.testing.assert_close(static(x), y, rtol=1e-4, atol=1e-5)


def test_checkpoint_keeps_the_bank_and_a_checkpoint_without_one_says_so(banked, tmp_path):
    model, bank = banked
    net = copy.deepcopy(model)
    net.attach_bank(bank.to(torch.float16))
    kw = dict(num_classes=10, in_chans=1, widths=[4, 8, 8])
    save_checkpoint(tmp_path / "with.pt", net, "resnet20", kw)
    loaded, payload = load_model(tmp_path / "with.pt")
    assert loaded.bn_statistics == "bank" and payload["bn_bank"]["meta"]["dtype"] == "float16"
    x = torch.randn(4, 1, 28, 28)
    loaded.set_config((0.45, 1.0, 0.85))
    net.set_config((0.45, 1.0, 0.85))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))

    save_checkpoint(tmp_path / "without.pt", model, "resnet20", kw)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        old, _ = load_model(tmp_path / "without.pt")
        load_model(tmp_path / "without.pt")
    said = [w for w in seen if issubclass(w.category, AsTrainedStatisticsWarning)]
    assert len(said) == 1 and "resizable calibrate" in str(said[0].message)
    assert old.bn_statistics == "as-trained"

    bad = torch.load(tmp_path / "with.pt", weights_only=True)
    name = next(iter(bad["bn_bank"]["modules"]))
    bad["bn_bank"]["modules"][name]["var"] = -bad["bn_bank"]["modules"][name]["var"].float()
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="negative"):
        load_model(tmp_path / "bad.pt")


def test_bank_refuses_another_network(banked):
    model, bank = banked
    other = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=[4, 8, 16])
    with pytest.raises(ValueError, match="shape"):
        other.attach_bank(bank)
    with pytest.raises(ValueError, match="format"):
        StatisticsBank.from_state_dict({"format": 99})
    shared = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=[4, 8, 8], scale_bn=False)
    with pytest.raises(ValueError, match="shared BN"):
        build_bank(shared, _loader(1), 1)


def test_recalibrated_evaluation_is_not_overridden_by_the_bank(banked):
    model, bank = banked
    net = copy.deepcopy(model)
    net.attach_bank(bank)
    data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
    calib = Calibration(_loader(2, seed=5), 2)
    a = evaluate_configs(model, data, calibrate=calib)
    b = evaluate_configs(net, data, calibrate=calib)
    assert all(abs(a[c]["loss_sum"] - b[c]["loss_sum"]) < 1e-3 for c in a)
    assert net.bn_statistics == "bank"  # restored after the recalibrated pass


# ---------------------------------------------------------------------------- one number per configuration
def test_one_number_per_configuration_in_every_path(tiny_fmnist, tmp_path, capsys):
    """set_config in Python, eval, the table row, the ONNX export in onnxruntime (sidecar preprocessing only)
    and Adapt routing every image to c give the same top-1 on the same images."""
    ort = pytest.importorskip("onnxruntime")
    from resizable.adapt.classifier import ConfigClassifier, feature_shape
    from resizable.adapt.routing import Adapter
    from resizable.data.readers import load_fashion_mnist
    from resizable.deploy.export import ExportOptions, export_checkpoint
    from resizable.commands.evaluate import EvalOptions, evaluate_checkpoint
    from resizable.nas.lookup import TableOptions, table_checkpoint
    from resizable.trained_run import TrainedRun
    from resizable.training.trainer import TrainOptions, train

    run_dir = train(TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist",
                                 data_dir=tiny_fmnist, epochs=1, batch_size=32, lr=0.05, val_size=100,
                                 out_dir=str(tmp_path), name="r", progress=False, max_steps_per_epoch=4,
                                 eval_calibrate_bn=0, eval_configs="minmax", channels_last=False))
    assert "statistics bank" in capsys.readouterr().out
    c = (0.45, 1.0, 0.65)
    run = TrainedRun.open(run_dir)
    assert run.model.bn_statistics == "bank"
    model = run.model
    model.set_config(c)
    hits, labels_all = 0, []
    with torch.no_grad():
        for x, y in run.loader("test", 64):
            hits += int((model(x).argmax(1) == y).sum())
            labels_all.append(y)
    labels = torch.cat(labels_all)
    python = 100.0 * hits / len(labels)

    row = evaluate_checkpoint(EvalOptions(checkpoint=str(run_dir), configs="0.45,1,0.65", progress=False))[0]
    assert row["bn_statistics"].startswith("statistics bank")
    table, _ = table_checkpoint(TableOptions(checkpoint=str(run_dir), out=str(tmp_path / "t.csv"),
                                                  split="test", progress=False))
    assert table.meta["bn_statistics"].startswith("statistics bank")
    table_top1 = next(r["top1_pct"] for r in table.records() if tuple(r["config"]) == c)

    result = export_checkpoint(ExportOptions(checkpoint=str(run_dir), config="0.45,1,0.65", format="onnx",
                                             onnx_exporter="legacy", out=str(tmp_path / "c.onnx")))
    side = json.loads(result.sidecar.read_text())
    assert side["bn_statistics"]["source"] == "statistics bank"
    pre = side["preprocessing"]
    raw, raw_labels = load_fashion_mnist("test", tiny_fmnist, False)
    x = (raw.float().numpy() / 255.0 - np.array(pre["mean"]).reshape(1, -1, 1, 1)) / np.array(pre["std"]).reshape(
        1, -1, 1, 1)
    sess = ort.InferenceSession(str(result.path))
    out = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    onnx_top1 = 100.0 * float((torch.from_numpy(out).argmax(1) == raw_labels.long()).float().mean())

    configs = model.configs()
    classifier = ConfigClassifier(*feature_shape(model, 28, "min")[:1], len(configs),
                                  feature_shape(model, 28, "min")[1:], width=4)
    adapter = Adapter(model, classifier, configs, "min", 28)
    allowed = torch.tensor([cc == c for cc in configs])
    hits = 0
    for xb, yb in run.loader("test", 64):
        logits, choice = adapter.infer(xb, allowed)
        assert bool((choice == configs.index(c)).all())
        hits += int((logits.argmax(1) == yb).sum())
    adapt_top1 = 100.0 * hits / len(labels)

    assert python == pytest.approx(row["top1_pct"], abs=1e-9)
    assert python == pytest.approx(table_top1, abs=1e-3)
    assert python == pytest.approx(onnx_top1, abs=1e-3)
    assert python == pytest.approx(adapt_top1, abs=1e-9)
    as_trained = evaluate_checkpoint(EvalOptions(checkpoint=str(run_dir), configs="0.45,1,0.65", progress=False,
                                                 bn_statistics="as-trained"))[0]
    assert as_trained["bn_statistics"].startswith("as trained")


def test_calibrate_command_builds_the_bank_of_a_run_without_one(tiny_fmnist, tmp_path, capsys):
    from resizable.checkpoint import load_checkpoint
    from resizable.cli import main
    from resizable.training.trainer import TrainOptions, train

    run_dir = train(TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist",
                                 data_dir=tiny_fmnist, epochs=1, batch_size=32, lr=0.05, val_size=100,
                                 out_dir=str(tmp_path), name="r", progress=False, max_steps_per_epoch=2,
                                 eval_calibrate_bn=0, eval_configs="minmax", channels_last=False, bn_bank=False))
    assert "bn_bank" not in load_checkpoint(run_dir)
    assert main(["eval", "--checkpoint", str(run_dir), "--configs", "min", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "no statistics bank" in err and "resizable calibrate" in err
    assert main(["calibrate", str(run_dir), "--batch-size", "100", "--batches", "2"]) == 0
    out = capsys.readouterr().out
    assert "64 configurations" in out and "% of the weights" in out
    bank = load_checkpoint(run_dir)["bn_bank"]
    assert bank["meta"]["batches"] == 2 and bank["meta"]["batch_size"] == 100
    assert main(["calibrate", str(run_dir), "--batches", "50"]) == 2
    assert "whole batches" in capsys.readouterr().err


def test_a_resumed_run_rebuilds_its_bank_for_the_new_weights(tiny_fmnist, tmp_path):
    from resizable.checkpoint import load_checkpoint
    from resizable.training.trainer import TrainOptions, train

    opts = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist", data_dir=tiny_fmnist,
                batch_size=32, lr=0.05, val_size=100, out_dir=str(tmp_path), name="r", progress=False,
                max_steps_per_epoch=2, eval_calibrate_bn=0, eval_configs="min", channels_last=False)
    run_dir = train(TrainOptions(epochs=1, **opts))
    first = load_checkpoint(run_dir)["bn_bank"]
    train(TrainOptions(epochs=2, resume=str(run_dir), **opts))
    second = load_checkpoint(run_dir)
    assert second["epoch"] == 1 and second["bn_bank"] is not None
    name = next(iter(first["modules"]))
    # measured again on the weights the second epoch left, not carried over from the first
    assert not torch.equal(first["modules"][name]["mean"], second["bn_bank"]["modules"][name]["mean"])


@pytest.mark.parametrize("fold", [False, True])
def test_the_exported_network_carries_its_configurations_statistics(banked, fold):
    model, bank = banked
    model = copy.deepcopy(model)
    model.attach_bank(bank)
    c = (0.65, 0.45, 1.0)
    static = resizable.export(model.eval(), c, 28)
    if fold:
        static = resizable.fold_bn(static)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        model.set_config(c)
        banked_out = model(x)
        with model.using_bn_statistics("as-trained"):
            trained_out = model(x)
        out = static.eval()(x)
    assert torch.allclose(out, banked_out, atol=1e-4)
    assert not torch.allclose(out, trained_out, atol=1e-3)  # the bank's statistics, not the running averages
