"""Resizable-NAS: prefix-shared evaluation, table files (resume, shards, merge), search, Pareto front."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import resizable
from resizable import cli, count_macs
from resizable.evaluation.calibrate import calibrate_bn
from resizable.checkpoint import save_checkpoint
from resizable.configs import format_config, parse_config
from resizable.costs import config_costs
from resizable.evaluation.walker import (Calibration, calibrate_configs, evaluate_configs, evaluate_naive,
                                forward_all)
from resizable.nas.lookup import (NoFeasibleConfig, TableOptions, build_table, pareto_front, plot_pareto, search,
                           table_checkpoint)
from resizable.nas.table_file import Table, TableError, merge_latency, merge_tables, read_table, shard_path, weights_sha256

KWARGS = dict(num_classes=10, in_chans=1, widths=(4, 8, 16))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


def tiny_model(seed: int = 0) -> resizable.ResizableNet:
    """resnet20 with 3 stages, 4 factors (64 configurations) and random BN statistics, so configurations differ."""
    torch.manual_seed(seed)
    model = resizable.create_model("resnet20", **KWARGS)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    model.eval()
    with torch.no_grad():  # centre and scale the classifier so predictions depend on the input
        feats = model.forward_features(torch.randn(64, 1, 28, 28)).mean((2, 3))  # (64, 16)
        mu, sigma = feats.mean(0), feats.std(0) + 1e-3
        model.fc.weight.copy_(torch.randn(10, feats.shape[1]) / sigma)
        model.fc.bias.copy_(-(model.fc.weight @ mu))
    return model


def fake_data(n: int = 24, batch: int = 8, seed: int = 1):
    """Random images labelled by the full-size network where ``i % 3 != 0`` (else at random), so that
    configurations reach different accuracies."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g)
    with torch.no_grad():
        y = tiny_model()(x).argmax(1)
    noise = torch.randint(0, 10, (n,), generator=g)
    y = torch.where(torch.arange(n) % 3 == 0, noise, y)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def build(model, loader, out, **kw):
    kw.setdefault("progress", False)
    batches = getattr(loader, "batches", loader)  # never iterate a crashing loader here
    return build_table(model, loader, out, input_size=28, num_samples=sum(len(b[1]) for b in batches),
                       dataset="fake", split="test", model_name="resnet20", **kw)


def naive_logits(model, config, x):
    with model.using(config):
        return model(x)


# ---------------------------------------------------------------------------- prefix sharing is exact
def test_forward_all_equals_naive_for_every_config():
    model = tiny_model()
    x = fake_data()[0][0]
    shared = forward_all(model, x)
    assert list(shared) == model.configs()
    with torch.no_grad():
        for config, logits in shared.items():
            ref = naive_logits(model, config, x)
            assert torch.equal(logits.argmax(1), ref.argmax(1)), config
            torch.testing.assert_close(logits, ref, rtol=0, atol=1e-6)
    assert model.config == model.max_config and not model.training


def test_evaluate_configs_equals_naive_and_configs_differ():
    model = tiny_model()
    loader = fake_data()
    tree = evaluate_configs(model, loader)
    assert tree == evaluate_naive(model, loader)
    assert all(r["samples"] == 24 for r in tree.values())
    assert len({r["top1"] for r in tree.values()}) > 1  # the test would be vacuous otherwise


class _WritesInput(nn.Module):
    """Wraps a block and scribbles on its input first (legal for a plain network, fatal for sharing)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x):
        out = self.block(x.clone())
        x.mul_(0.5)
        return out


def test_stage_writing_its_input_in_place_is_detected_and_still_exact():
    model = tiny_model()
    setattr(model.layer2, "1", _WritesInput(model.layer2[1]))  # the first block after layer2's resize
    x = fake_data()[0][0]
    shared = forward_all(model, x)
    with torch.no_grad():
        for config, logits in shared.items():
            torch.testing.assert_close(logits, naive_logits(model, config, x), rtol=0, atol=1e-6)


def test_config_costs_match_count_flops_exactly():
    model = tiny_model()
    costs = config_costs(model, 28)
    for config in model.configs():
        r = count_macs(model, config, 28)
        assert costs[config] == (r.macs, r.interp_macs, r.params), config


# ---------------------------------------------------------------------------- table files
def test_config_text_round_trip():
    for config in tiny_model().configs():
        assert parse_config(format_config(config), (0.45, 0.65, 0.85, 1.0), 3) == config
    assert parse_config("(0.45, 0.65, 1.0)") == (0.45, 0.65, 1.0)
    assert parse_config("0.45,0.65,1") == parse_config("0.45-0.65-1")
    with pytest.raises(ValueError, match="not in the factor list"):
        parse_config("0.5-1-1", (0.45, 1.0), 3)
    with pytest.raises(ValueError, match="expected 3"):
        parse_config("1-1", (0.45, 1.0), 3)


def test_table_contents(tmp_path):
    model, loader = tiny_model(), fake_data()
    table = build(model, loader, tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text()
    assert text.startswith("# resizable-table v1\n")
    for key in ("model: resnet20", "factors: 0.45,0.65,0.85,1", "dataset: fake", "split: test", "input_size: 28x28",
                "calibrate_bn: none", "num_samples: 24", f"weights_sha256: {weights_sha256(model)}"):
        assert f"# {key}\n" in text
    assert table.columns == ["config", "top1_pct", "top5_pct", "mmacs", "interp_mmacs", "params_m"]
    counts = evaluate_naive(model, loader)
    recs = read_table(tmp_path / "t.csv").records()
    assert [r["config"] for r in recs] == model.configs()
    for r in recs:
        report = count_macs(model, r["config"], 28)
        assert r["top1_pct"] == pytest.approx(100 * counts[r["config"]]["top1"] / 24, abs=1e-4)
        assert r["top5_pct"] == pytest.approx(100 * counts[r["config"]]["top5"] / 24, abs=1e-4)
        assert round(r["mmacs"] * 1e6) == report.macs and round(r["interp_mmacs"] * 1e6) == report.interp_macs


class _Crash(Exception):
    pass


class _CrashingLoader:
    """Yields the batches, but raises after ``after`` batches in total (a killed process)."""

    def __init__(self, batches, after: int) -> None:
        self.batches, self.after, self.seen = batches, after, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for b in self.batches:
            if self.seen == self.after:
                raise _Crash()
            self.seen += 1
            yield b


def test_resume_after_interruption_gives_the_identical_table(tmp_path):
    model, loader = tiny_model(), fake_data()
    full = tmp_path / "full.csv"
    build(model, loader, full)
    out = tmp_path / "resumed.csv"
    with pytest.raises(_Crash):  # killed in the middle of the third work unit
        build(model, _CrashingLoader(loader, after=2 * len(loader) + 1), out)
    partial = read_table(out)
    assert len(partial.rows) == 32 and partial.missing()
    with open(out, "a") as f:  # and a row cut short by the crash
        f.write('"0.85,0.45,0.45",12.5')
    counting = _CrashingLoader(loader, after=10 ** 9)
    build(model, counting, out)
    assert counting.seen == 2 * len(loader)  # only the two unfinished units were evaluated
    assert out.read_text() == full.read_text()


def test_resume_refuses_another_models_table(tmp_path):
    loader = fake_data()
    out = tmp_path / "t.csv"
    with pytest.raises(_Crash):
        build(tiny_model(0), _CrashingLoader(loader, after=len(loader)), out)
    with pytest.raises(TableError, match="weights_sha256.*refusing to mix"):
        build(tiny_model(1), loader, out)
    with pytest.raises(TableError, match="dataset"):
        build_table(tiny_model(0), loader, out, input_size=28, num_samples=24, dataset="other", split="test",
                    progress=False)


def test_shards_merge_to_the_full_table(tmp_path):
    model, loader = tiny_model(), fake_data()
    full = tmp_path / "full.csv"
    build(model, loader, full)
    paths = []
    for i in range(3):
        path = shard_path(tmp_path / "t.csv", i, 3)
        t = build(model, loader, path, shard=(i, 3))
        assert t.meta["shard"] == f"{i}/3" and t.missing()
        paths.append(path)
    assert path.name == "t.shard2of3.csv"
    with pytest.raises(TableError, match="lacks 16 of 64"):
        merge_tables(paths[:2])
    merged = merge_tables(paths, tmp_path / "merged.csv")
    assert not merged.missing()
    assert (tmp_path / "merged.csv").read_text() == full.read_text()


def test_table_from_checkpoint_shards_merge_when_the_last_one_finishes(tmp_path, monkeypatch):
    import resizable.data.datasets as data

    model, loader = tiny_model(), fake_data()
    save_checkpoint(tmp_path / "ckpt.pt", model, "resnet20", KWARGS, train_options={"dataset": "fashion-mnist"})
    x = torch.cat([b[0] for b in loader])
    y = torch.cat([b[1] for b in loader])

    class Fake(torch.utils.data.TensorDataset):
        pass

    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: Fake(x, y))
    monkeypatch.setattr(data, "make_loader", lambda ds, bs, **k: [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)])
    out = tmp_path / "t.csv"
    for i in range(2):
        monkeypatch.setenv("RANK", str(i))  # as torchrun would start them
        monkeypatch.setenv("WORLD_SIZE", "2")
        table, path = table_checkpoint(TableOptions(checkpoint=str(tmp_path / "ckpt.pt"), out=str(out), batch_size=8,
                                                         device="cpu", progress=False))
        assert path == (out if i == 1 else shard_path(out, 0, 2))
    assert not read_table(out).missing()
    assert read_table(out).rows == build(model, loader, tmp_path / "ref.csv").rows


def test_calibrated_table_restores_weights_and_matches_manual_calibration(tmp_path):
    import copy

    model, loader = tiny_model(), fake_data(n=16)
    calib = fake_data(n=16, seed=5)
    before = weights_sha256(model)
    table = build(model, loader, tmp_path / "t.csv", calibrate=Calibration(calib, 2, "fake train"))
    assert weights_sha256(model) == before
    assert table.meta["calibrate_bn"] == "2 batches (fake train)"
    config = (0.45, 1.0, 0.65)
    ref = copy.deepcopy(model)
    calibrate_bn(ref, config, calib, 2)
    counts = evaluate_naive(ref, loader, [config])[config]
    assert table.value(config, "top1_pct") == pytest.approx(100 * counts["top1"] / 16, abs=1e-4)


def _calibrated_one_at_a_time(model, config, calib, num_batches, x):
    import copy

    ref = copy.deepcopy(model)
    calibrate_bn(ref, config, calib, num_batches)
    return naive_logits(ref, config, x)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet20", "resnet18", "mobilenet_v2_cifar", "shufflenet_v2_x1_0_cifar"])
def test_calibrate_configs_equals_calibrating_one_at_a_time(name):
    torch.manual_seed(0)
    if name == "resnet20":
        model, size = tiny_model(), 28
        configs = model.configs()
    else:
        model = resizable.create_model(name, num_classes=10)
        size = 64 if name == "resnet18" else 32
        all_configs = model.configs()
        configs = all_configs[:: max(1, len(all_configs) // 9)]
    model.eval()
    in_chans = model.in_chans
    calib = [(torch.randn(6, in_chans, size, size) * 2 + 0.5, None) for _ in range(3)]
    x = torch.randn(5, in_chans, size, size)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    stats = calibrate_configs(model, calib, 2, configs)
    assert stats.num_batches == 2
    shared = forward_all(model, x, configs, bn_stats=stats)
    plain = forward_all(model, x, configs)
    for config in configs:
        ref = _calibrated_one_at_a_time(model, config, calib, 2, x)
        torch.testing.assert_close(shared[config], ref, rtol=0, atol=2e-5, msg=lambda m: f"{config}: {m}")
        assert not torch.allclose(plain[config], ref, atol=1e-3)  # calibration changed something
    # the model's own statistics, momenta, mode and configuration are untouched
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not model.training and model.config == model.max_config


def test_calibrate_configs_survives_a_stage_writing_its_input():
    model = tiny_model()
    setattr(model.layer2, "1", _WritesInput(model.layer2[1]))
    calib, x = fake_data(n=16, seed=5), fake_data()[0][0]
    configs = model.configs()[::5]
    stats = calibrate_configs(model, calib, 2, configs)
    shared = forward_all(model, x, configs, bn_stats=stats)
    for config in configs:
        ref = _calibrated_one_at_a_time(model, config, calib, 2, x)
        torch.testing.assert_close(shared[config], ref, rtol=0, atol=2e-5)


def test_calibrated_evaluation_and_its_errors():
    model, loader, calib = tiny_model(), fake_data(), fake_data(n=16, seed=5)
    configs = model.configs()[:7]
    got = evaluate_configs(model, loader, configs, calibrate=Calibration(calib, 2))
    for config in configs:
        import copy

        ref = copy.deepcopy(model)
        calibrate_bn(ref, config, calib, 2)
        assert got[config] == evaluate_naive(ref, loader, [config])[config]
    stats = calibrate_configs(model, calib, 1, configs)
    with pytest.raises(ValueError, match="not calibrated"):
        forward_all(model, loader[0][0], [model.max_config], bn_stats=stats)
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        calibrate_configs(model, calib, 0)
    with pytest.raises(ValueError, match="empty loader"):
        calibrate_configs(model, [], 1)


# ---------------------------------------------------------------------------- bad tables
def test_bad_tables_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TableError, match="empty"):
        read_table(empty)
    plain = tmp_path / "plain.csv"
    plain.write_text("config,top1_pct\n1-1-1,50\n")
    with pytest.raises(TableError, match="not a resizable table"):
        read_table(plain)
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "nope.csv")
    good = build(tiny_model(), fake_data(), tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text()
    nocol = tmp_path / "nocol.csv"
    nocol.write_text(text.replace("config,top1_pct,top5_pct,mmacs", "config,top1_pct,top5_pct,gmacs"))
    with pytest.raises(TableError, match=r"missing column\(s\) \['mmacs'\]"):
        search(nocol, max_mmacs=1)
    broken = tmp_path / "broken.csv"
    lines = text.splitlines(keepends=True)
    lines[20] = "0.45-0.65,1\n"
    broken.write_text("".join(lines))
    with pytest.raises(TableError, match="line 21"):
        read_table(broken)
    header_only = tmp_path / "header.csv"
    header_only.write_text("".join(l for l in lines if l.startswith("#") or l.startswith("config")))
    with pytest.raises(TableError, match="has no rows"):
        search(header_only, max_mmacs=1)
    other = build(tiny_model(1), fake_data(), tmp_path / "other.csv")
    assert other.meta["weights_sha256"] != good.meta["weights_sha256"]
    with pytest.raises(TableError, match="not for the same model"):
        merge_tables([tmp_path / "t.csv", tmp_path / "other.csv"])


# ---------------------------------------------------------------------------- search and Pareto front
def hand_table(tmp_path, rows, latency=False) -> Path:
    """A 2-stage, 2-factor table (4 configurations) with given (top1, mmacs[, latency]) per configuration."""
    meta = {"model": "toy", "factors": "0.5,1", "num_stages": "2", "arch_sha256": "a", "input_size": "8x8",
            "weights_sha256": "w", "dataset": "fake", "split": "test", "num_samples": "100", "calibrate_bn": "none"}
    columns = ["config", "top1_pct", "mmacs", "interp_mmacs", "params_m"] + (["latency_ms_b1_cpu"] if latency else [])
    table = Table(meta, columns, {})
    for config, values in zip([(0.5, 0.5), (0.5, 1.0), (1.0, 0.5), (1.0, 1.0)], rows):
        row = {"config": format_config(config), "top1_pct": str(values[0]), "mmacs": str(values[1]),
               "interp_mmacs": "0.01", "params_m": "1.5"}
        if latency:
            row["latency_ms_b1_cpu"] = str(values[2])
        table.rows[config] = row
    return table.write(tmp_path / "hand.csv")


def test_search_respects_every_constraint_and_is_optimal(tmp_path):
    build(tiny_model(), fake_data(), tmp_path / "t.csv")
    table = read_table(tmp_path / "t.csv")
    recs = table.records()
    for budget in (0.5, 0.9, 1.3, 2.0):
        found = search(table, max_mmacs=budget, top=64)
        feasible = [r for r in recs if r["mmacs"] <= budget]
        assert len(found) == len(feasible) and all(r["mmacs"] <= budget for r in found)
        assert found[0]["top1_pct"] == max(r["top1_pct"] for r in feasible)
        keys = [(-r["top1_pct"], r["mmacs"], r["order"]) for r in found]
        assert keys == sorted(keys)
    with_interp = search(table, max_mmacs=1.0, count_interp=True, top=64)
    assert all(r["mmacs"] + r["interp_mmacs"] <= 1.0 for r in with_interp)
    assert all(r["params_m"] <= 1 for r in search(table, max_params_m=1, top=64))


def test_search_breaks_ties_deterministically(tmp_path):
    # equal top-1 everywhere: fewer MACs wins, then lower latency, then configuration order
    path = hand_table(tmp_path, [(80, 2.0, 1.0), (80, 1.0, 3.0), (80, 1.0, 2.0), (80, 1.0, 2.0)], latency=True)
    found = search(path, max_mmacs=5, max_latency_ms=10, top=4)
    assert [format_config(r["config"]) for r in found] == ["1,0.5", "1,1", "0.5,1", "0.5,0.5"]
    found = search(path, max_mmacs=5, top=4)  # without a latency constraint: MACs, then order
    assert [format_config(r["config"]) for r in found] == ["0.5,1", "1,0.5", "1,1", "0.5,0.5"]
    assert search(path, max_latency_ms=1.5)[0]["config"] == (0.5, 0.5)


def test_search_with_no_feasible_config_names_the_cheapest(tmp_path):
    path = hand_table(tmp_path, [(70, 3.0, 4.0), (75, 2.5, 5.0), (78, 4.0, 6.0), (80, 6.0, 7.0)], latency=True)
    with pytest.raises(NoFeasibleConfig, match=r"at most 2 MMACs, but the cheapest configuration, 0.5,1, needs 2.5"):
        search(path, max_mmacs=2)
    with pytest.raises(NoFeasibleConfig, match=r"0.5,0.5, needs 4"):
        search(path, max_mmacs=10, max_latency_ms=1)
    with pytest.raises(TableError, match="no latency column"):
        search(hand_table(tmp_path, [(70, 3.0)] * 4), max_latency_ms=1)


def test_pareto_front_and_plot(tmp_path):
    path = hand_table(tmp_path, [(70, 1.0), (69, 2.0), (75, 2.0), (75, 3.0)])
    front = pareto_front(path)
    assert [format_config(r["config"]) for r in front] == ["0.5,0.5", "1,0.5"]
    baselines = tmp_path / "base.csv"
    baselines.write_text("label,mmacs,top1_pct\nalone-1x,3.0,72.0\n")
    from resizable.nas.lookup import read_baselines

    out = plot_pareto(path, tmp_path / "p.png", baselines=read_baselines(baselines))
    assert out.stat().st_size > 1000


# ---------------------------------------------------------------------------- latency columns and the CLI
def test_merge_latency_checks_the_architecture(tmp_path):
    from resizable.nas.latency import build_latency_table, latency_template

    model = tiny_model()
    build(model, fake_data(), tmp_path / "t.csv")
    configs = model.configs()
    build_latency_table(model, tmp_path / "lat.csv", input_size=28, configs=configs[:3], warmup=0, repeats=1,
                        progress=False)
    with pytest.raises(TableError, match="no latency for 61"):
        merge_latency(tmp_path / "t.csv", [tmp_path / "lat.csv"])
    template = latency_template(model, tmp_path / "phone.csv", input_size=28, tag="phone")
    text = (tmp_path / "phone.csv").read_text().splitlines()
    filled = [l if l.startswith("#") or l.startswith("config") else l + str(1 + i / 10) for i, l in enumerate(text)]
    (tmp_path / "phone.csv").write_text("\n".join(filled) + "\n")
    merged = merge_latency(tmp_path / "t.csv", [tmp_path / "phone.csv"])
    assert "latency_ms_b1_phone" in merged.columns and len(template.rows) == 64
    best = search(tmp_path / "t.csv", max_latency_ms=100)[0]
    assert not math.isnan(best["latency_ms_b1_phone"])
    other = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=(4, 8, 8))
    latency_template(other, tmp_path / "wrong.csv", input_size=28, tag="phone")
    with pytest.raises(TableError, match="arch_sha256"):
        merge_latency(tmp_path / "t.csv", [tmp_path / "wrong.csv"])


def test_cli_search_pareto_and_merge(tmp_path, capsys):
    model, loader = tiny_model(), fake_data()
    paths = [build(model, loader, shard_path(tmp_path / "t.csv", i, 2), shard=(i, 2)).path for i in range(2)]
    assert cli.main(["table", "--merge", *map(str, paths), "--out", str(tmp_path / "t.csv")]) == 0
    assert "64/64 configurations" in capsys.readouterr().out
    assert cli.main(["search", "--table", str(tmp_path / "t.csv"), "--max-mflops", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["config", "top1_pct"] and len(out.splitlines()) == 4
    assert cli.main(["search", "--table", str(tmp_path / "t.csv"), "--max-mflops", "0.01"]) == 2
    assert "cheapest configuration, 0.45,0.45,0.45" in capsys.readouterr().err
    assert cli.main(["pareto", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "p.png"),
                     "--csv", str(tmp_path / "front.csv")]) == 0
    front = read_table(tmp_path / "front.csv")
    assert [r["config"] for r in front.records()] == [r["config"] for r in pareto_front(tmp_path / "t.csv")]


def test_latency_measured_while_building(tmp_path):
    model, loader = tiny_model(), fake_data(n=8)

    def fake_latency(config):  # a stand-in for LatencyProbe: deterministic "milliseconds"
        return {"latency_ms_b1_box": 10 * sum(config), "latency_iqr_ms_b1_box": 0.5}

    table = build(model, loader, tmp_path / "t.csv", unit_depth=0, latency=fake_latency,
                  latency_columns=["latency_ms_b1_box", "latency_iqr_ms_b1_box"])
    assert table.columns[-2:] == ["latency_ms_b1_box", "latency_iqr_ms_b1_box"]
    assert table.value((1.0, 1.0, 1.0), "latency_ms_b1_box") == 30.0
    found = search(tmp_path / "t.csv", max_latency_ms=15, top=64)
    assert found and all(10 * sum(r["config"]) <= 15 for r in found)
    assert len(found) == sum(1 for c in model.configs() if 10 * sum(c) <= 15 + 1e-9)


@pytest.mark.parametrize("value, message", [("150", r"outside \[0, 100\]"), ("abc", "not a number"), ("-3", "outside")])
def test_a_hand_edited_table_value_is_refused_naming_file_line_and_column(tmp_path, value, message):
    rows = {c: {"config": format_config(c), "top1_pct": "50.0000", "mmacs": "1.000000"}
            for c in [(0.5, 0.5), (0.5, 1.0), (1.0, 0.5), (1.0, 1.0)]}
    path = Table({"factors": "0.5,1", "num_stages": "2"}, ["config", "top1_pct", "mmacs"], rows).write(tmp_path / "t.csv")
    good = read_table(path)
    assert search(good, top=1)[0]["top1_pct"] == 50.0
    column = "mmacs" if value == "-3" else "top1_pct"
    edited = '"0.5,1",50.0000,-3' if value == "-3" else f'"0.5,1",{value},1.000000'
    text = path.read_text().replace('"0.5,1",50.0000,1.000000', edited)
    assert text != path.read_text()
    path.write_text(text)
    with pytest.raises(TableError, match=message) as info:
        read_table(path)
    assert str(path) in str(info.value) and "line" in str(info.value) and column in str(info.value)
    assert cli.main(["search", "--table", str(path)]) == 2
