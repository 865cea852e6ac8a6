"""Latency profiler: timing statistics, the latency table (resumable), CUDA synchronisation."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import resizable
from resizable import cli
from resizable.nas.latency import LatencyProbe, build_latency_table, latency_column, latency_template, time_module
from resizable.nas.table_file import LATENCY_MAGIC, TableError, merge_latency, read_table

KWARGS = dict(num_classes=10, in_chans=1, widths=(4, 8, 16))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


class _Sleepy(nn.Module):
    """Takes a known time: 2 ms per call."""

    def forward(self, x):
        import time

        time.sleep(0.002)
        return x


def test_time_module_statistics():
    stats = time_module(_Sleepy(), torch.zeros(1), warmup=1, repeats=9)
    assert stats.repeats == 9
    assert 2.0 <= stats.min_ms <= stats.p25_ms <= stats.median_ms <= stats.p75_ms
    assert stats.iqr_ms == pytest.approx(stats.p75_ms - stats.p25_ms)
    with pytest.raises(ValueError, match="repeats"):
        time_module(_Sleepy(), torch.zeros(1), repeats=0)


def test_probe_times_the_exported_network_per_batch_size():
    model = resizable.create_model("resnet20", **KWARGS).eval()
    probe = LatencyProbe(model, 28, batch_sizes=(1, 4), warmup=1, repeats=3, tag="box")
    assert probe.columns == ["latency_ms_b1_box", "latency_iqr_ms_b1_box", "latency_ms_b4_box", "latency_iqr_ms_b4_box"]
    values = probe((0.45, 1.0, 0.65))
    assert set(values) == set(probe.columns) and all(v >= 0 for v in values.values())
    assert model.config == model.max_config  # exporting leaves the model alone
    with pytest.raises(ValueError, match="tag"):
        LatencyProbe(model, 28, tag="my_phone")
    with pytest.raises(ValueError, match="batch sizes"):
        LatencyProbe(model, 28, batch_sizes=(0,))


def test_latency_table_resumes_and_refuses_other_settings(tmp_path):
    model = resizable.create_model("resnet20", **KWARGS).eval()
    configs = model.configs()[:4]
    out = tmp_path / "lat.csv"
    build_latency_table(model, out, input_size=28, configs=configs[:2], warmup=0, repeats=2, progress=False)
    first = read_table(out, magic=LATENCY_MAGIC)
    table = build_latency_table(model, out, input_size=28, configs=configs, warmup=0, repeats=2, progress=False)
    assert list(table.rows) == configs
    assert all(table.rows[c] == first.rows[c] for c in configs[:2])  # kept, not measured again
    assert table.meta["device"] == "cpu" and table.meta["repeats"] == "2"
    with pytest.raises(TableError, match="repeats"):
        build_latency_table(model, out, input_size=28, configs=configs, warmup=0, repeats=5, progress=False)
    with pytest.raises(TableError, match="input_size"):
        build_latency_table(model, out, input_size=32, configs=configs, warmup=0, repeats=2, progress=False)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_template_exports_torchscript_that_matches_the_model(tmp_path):
    model = resizable.create_model("resnet20", **KWARGS).eval()
    config = (0.65, 0.45, 1.0)
    table = latency_template(model, tmp_path / "phone.csv", input_size=28, tag="phone", batch_sizes=(2,),
                             configs=[config], export_dir=tmp_path / "nets")
    assert table.columns == ["config", "file", latency_column(2, "phone")]
    scripted = torch.jit.load(str(tmp_path / "nets" / table.rows[config]["file"]))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad(), model.using(config):
        torch.testing.assert_close(scripted(x), model(x))


def test_cli_latency(tmp_path, capsys):
    out = tmp_path / "lat.csv"
    assert cli.main(["latency", "--model", "resnet20", "--num-classes", "10", "--input-size", "32",
                     "--configs", "0.45-0.45-0.45;1,1,1", "--batch", "1,2", "--warmup", "0", "--repeats", "2",
                     "--out", str(out), "--no-progress"]) == 0
    assert "latency_ms_b2_cpu" in capsys.readouterr().out
    assert len(read_table(out, magic=LATENCY_MAGIC).rows) == 2
    assert cli.main(["latency", "--out", str(out)]) == 2
    assert "exactly one of --checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_timing_waits_for_the_gpu():
    # A big matmul is queued in microseconds but takes milliseconds to run: events must see the run.
    a = torch.randn(4096, 4096, device="cuda")
    stats = time_module(_MatMul(a), a, warmup=2, repeats=5)
    torch.cuda.synchronize()
    import time

    t0 = time.perf_counter()
    for _ in range(5):
        a @ a
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) * 1e3 / 5
    assert stats.median_ms == pytest.approx(wall, rel=0.5)


class _MatMul(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x):
        return x @ self.a


# ---------------------------------------------------------------------------- runtimes
def _runtime_param(name):
    if name != "onnxruntime":
        return name
    try:
        import onnxruntime  # noqa: F401
        reason = ""
    except ImportError:
        reason = "onnxruntime is not installed (pip install 'resizable[onnx]'; CI installs it with [test])"
    return pytest.param(name, marks=pytest.mark.skipif(bool(reason), reason=reason or "installed"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("runtime", [_runtime_param(r) for r in ("torch", "torchscript", "onnxruntime")])
def test_each_runtime_runs_the_exported_network(runtime):
    from resizable.nas.runtimes import load_in_runtime

    model = resizable.create_model("resnet20", **KWARGS).eval()
    config = (0.45, 1.0, 0.65)
    net = load_in_runtime(model, config, 28, runtime)
    x = torch.randn(3, 1, 28, 28)  # a batch other than the export's
    with torch.no_grad(), model.using(config):
        torch.testing.assert_close(net(x), model(x), rtol=1e-4, atol=1e-4)
    probe = LatencyProbe(model, 28, batch_sizes=(2,), warmup=1, repeats=2, runtime=runtime)
    tag = "cpu" if runtime == "torch" else f"cpu-{runtime}"
    assert probe.columns == [f"latency_ms_b2_{tag}", f"latency_iqr_ms_b2_{tag}"]
    assert probe.meta()["runtime"] == runtime and probe.meta()["runtime_version"].startswith(runtime)
    assert probe(config)[f"latency_ms_b2_{tag}"] > 0
    assert model.config == model.max_config
    if runtime != "onnxruntime":  # channels-last weights and input give the same network
        assert probe.meta()["memory_format"] == "contiguous"  # auto: contiguous on the CPU
        cl = LatencyProbe(model, 28, batch_sizes=(2,), warmup=0, repeats=1, runtime=runtime,
                          memory_format="channels-last")
        assert cl.meta()["memory_format"] == "channels-last" and cl(config)[f"latency_ms_b2_{tag}"] > 0


def test_bad_runtime_names_the_accepted_ones(capsys):
    model = resizable.create_model("resnet20", **KWARGS).eval()
    with pytest.raises(ValueError, match="accepted: torch, torchscript, onnxruntime"):
        LatencyProbe(model, 28, runtime="tensorrt")
    with pytest.raises(ValueError, match="accepted: auto, contiguous, channels-last"):
        LatencyProbe(model, 28, memory_format="nhwc")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["latency", "--model", "resnet20", "--runtime", "tensorrt"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tensorrt' (choose from 'torch', 'torchscript', 'onnxruntime')" in err
    import argparse

    from resizable.commands import table as table_command
    from resizable.nas.latency import LatencyOptions
    from resizable.nas.runtimes import RUNTIMES

    assert LatencyOptions.__dataclass_fields__["runtime"].metadata["choices"] == RUNTIMES
    parser = argparse.ArgumentParser()
    table_command.add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "latency_runtime")
    assert tuple(action.choices) == RUNTIMES


def test_missing_onnxruntime_is_one_clear_line(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    model = resizable.create_model("resnet20", **KWARGS).eval()
    with pytest.raises(ValueError, match=r"pip install 'resizable\[onnx\]'"):
        LatencyProbe(model, 28, runtime="onnxruntime")
    assert cli.main(["latency", "--model", "resnet20", "--num-classes", "10", "--input-size", "32",
                     "--configs", "1,1,1", "--runtime", "onnxruntime", "--out", str(tmp_path / "l.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resizable[onnx]" in err[0]


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_cli_latency_in_torchscript_records_the_runtime(tmp_path, capsys):
    out = tmp_path / "lat.csv"
    assert cli.main(["latency", "--model", "resnet20", "--num-classes", "10", "--input-size", "32",
                     "--configs", "0.45,0.45,0.45;1,1,1", "--warmup", "0", "--repeats", "2", "--runtime",
                     "torchscript", "--out", str(out), "--no-progress"]) == 0
    assert "torchscript (torch" in capsys.readouterr().out
    table = read_table(out, magic=LATENCY_MAGIC)
    assert table.meta["runtime"] == "torchscript" and "latency_ms_b1_cpu-torchscript" in table.columns
    # resuming with another runtime is refused: the numbers would not be comparable
    with pytest.raises(TableError, match="runtime"):
        build_latency_table(resizable.create_model("resnet20", num_classes=10), out, input_size=32,
                            configs=[(1.0, 1.0, 1.0)], warmup=0, repeats=2, tag="cpu-torchscript", progress=False)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_cli_table_latency_in_another_runtime(tiny_fmnist, tmp_path, capsys):
    from resizable.checkpoint import save_checkpoint

    kwargs = dict(KWARGS, factors=(0.5, 1.0))
    model = resizable.create_model("resnet20", **kwargs)
    save_checkpoint(tmp_path / "ckpt.pt", model, "resnet20", kwargs,
                    train_config={"dataset": "fashion-mnist", "data_dir": tiny_fmnist})
    out = tmp_path / "t.csv"
    assert cli.main(["table", "--checkpoint", str(tmp_path / "ckpt.pt"), "--out", str(out), "--device", "cpu",
                     "--latency", "cpu", "--latency-runtime", "torchscript", "--latency-warmup", "0",
                     "--latency-repeats", "1", "--no-progress"]) == 0
    assert "8/8 configurations" in capsys.readouterr().out
    table = read_table(out)
    assert "latency_ms_b1_cpu-torchscript" in table.columns
    assert table.meta["latency_cpu-torchscript_runtime"] == "torchscript"
    assert all(table.value(c, "latency_ms_b1_cpu-torchscript") > 0 for c in table.rows)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_table_latency_in_another_runtime_runs_in_shards(tiny_fmnist, tmp_path, capsys):
    # each shard times its own rows in the runtime; the merged table keeps the runtime and layout
    from resizable.checkpoint import save_checkpoint

    kwargs = dict(KWARGS, factors=(0.5, 1.0))
    save_checkpoint(tmp_path / "ckpt.pt", resizable.create_model("resnet20", **kwargs), "resnet20", kwargs,
                    train_config={"dataset": "fashion-mnist", "data_dir": tiny_fmnist})
    out = tmp_path / "t.csv"
    for shard in ("0/2", "1/2"):
        assert cli.main(["table", "--checkpoint", str(tmp_path / "ckpt.pt"), "--out", str(out), "--device", "cpu",
                         "--latency", "cpu", "--latency-runtime", "torchscript", "--latency-memory-format",
                         "contiguous", "--latency-warmup", "0", "--latency-repeats", "1", "--shard", shard,
                         "--no-progress"]) == 0
    table = read_table(out)
    assert not table.missing() and all(table.value(c, "latency_ms_b1_cpu-torchscript") > 0 for c in table.rows)
    assert table.meta["latency_cpu-torchscript_runtime"] == "torchscript"
    assert table.meta["latency_cpu-torchscript_memory_format"] == "contiguous"
    # a latency table merged in later brings its runtime along too
    lat = tmp_path / "lat.csv"
    build_latency_table(resizable.create_model("resnet20", **kwargs), lat, input_size=28, warmup=0, repeats=1,
                        runtime="torchscript", tag="pi", progress=False)
    merged = merge_latency(out, [lat])
    assert merged.meta["latency_pi_runtime"] == "torchscript" and "latency_ms_b1_pi" in merged.columns
