"""Latency profiler: timing statistics, the latency table (resumable), CUDA synchronisation."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import resizable
from resizable import cli
from resizable.latency import LatencyProbe, build_latency_table, latency_column, latency_template, time_module
from resizable.tables import LATENCY_MAGIC, TableError, read_table

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
