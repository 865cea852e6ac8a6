"""A missing optional package, hidden here one at a time, is one line naming what needs it and the command that
installs it, exit 2, and nothing written."""
import sys

import pytest

import resizable
from resizable.checkpoint import save_checkpoint
from resizable.cli import main

ONNX_EXTRA = "pip install 'resizable[onnx]'"


@pytest.fixture
def run(tmp_path):
    model = resizable.create_model("resnet20", num_classes=10, in_chans=1, widths=[4, 8, 8]).eval()
    folder = tmp_path / "run"
    save_checkpoint(folder / "checkpoint.pt", model, "resnet20", {"num_classes": 10, "in_chans": 1,
                                                                   "widths": [4, 8, 8]}, input_size=28)
    return folder


def _hidden(monkeypatch, module):
    """Make ``import module`` (and its submodules) fail as if the package were not installed."""
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)


def _one_line(capsys, code):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "warning:" not in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("module, exporter", [("onnx", "dynamo"), ("onnxscript", "dynamo"), ("onnx", "legacy")])
def test_onnx_export_without_its_packages(run, tmp_path, capsys, monkeypatch, module, exporter):
    _hidden(monkeypatch, module)
    out = tmp_path / "out" / "net.onnx"
    line = _one_line(capsys, main(["export", "--checkpoint", str(run), "--config", "min", "--format", "onnx",
                                   "--onnx-exporter", exporter, "--out", str(out)]))
    assert line.startswith("resizable export: error: ONNX export needs the Python package "), line
    assert f"'{module}'" in line and line.endswith(ONNX_EXTRA)
    assert not (tmp_path / "out").exists() and not (run / "export").exists()


@pytest.mark.parametrize("module", ["onnxruntime", "onnx", "onnxscript"])
def test_the_onnxruntime_runtime_without_its_packages(run, tmp_path, capsys, monkeypatch, module):
    _hidden(monkeypatch, module)
    out = tmp_path / "lat.csv"
    line = _one_line(capsys, main(["latency", "--checkpoint", str(run), "--runtime", "onnxruntime", "--configs",
                                   "1,1,1", "--repeats", "1", "--warmup", "0", "--out", str(out), "--no-progress"]))
    assert "the onnxruntime runtime needs the Python package" in line and f"'{module}'" in line, line
    assert line.endswith(ONNX_EXTRA) and not out.exists()


def test_a_model_only_timm_has_without_timm(tmp_path, capsys, monkeypatch):
    import torch

    weights = tmp_path / "w.pt"
    torch.save({"conv_stem.weight": torch.zeros(8, 3, 3, 3)}, weights)
    _hidden(monkeypatch, "timm")
    line = _one_line(capsys, main(["convert", "--source", "resnet10t", "--weights", str(weights), "--out",
                                   str(tmp_path / "c.pt")]))
    assert "needs the Python package 'timm', which is not installed: pip install timm" in line, line
    assert not (tmp_path / "c.pt").exists()


def test_an_import_no_command_checks_is_still_one_line(run, tmp_path, capsys, monkeypatch):
    """Where torch imports a package on its own, the command line says the same one line."""
    import resizable.deploy.export as export_module

    def exporter_importing(*args, **kwargs):
        import onnx_ir_missing_for_this_test  # noqa: F401  (what torch's exporter does, for a package absent)

    monkeypatch.setattr(export_module, "_export_onnx", exporter_importing)
    out = tmp_path / "net.onnx"
    line = _one_line(capsys, main(["export", "--checkpoint", str(run), "--config", "min", "--format", "onnx",
                                   "--out", str(out)]))
    assert "ONNX export needs the Python package 'onnx_ir_missing_for_this_test'" in line
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []


TENSORBOARD_EXTRA = "pip install 'resizable[tensorboard]'"


def test_tensorboard_logging_without_tensorboard(tiny_fmnist, tmp_path, capsys, monkeypatch):
    from resizable.utils.options import write_options
    from resizable.training.trainer import TrainOptions

    _hidden(monkeypatch, "tensorboard")
    flags = ["--data-dir", tiny_fmnist, "--epochs", "1", "--max-steps-per-epoch", "1", "--no-progress"]
    line = _one_line(capsys, main(["train", "--tensorboard", str(tmp_path / "tb"), "--out-dir", str(tmp_path / "runs"),
                                   "--name", "a", *flags]))
    assert line == f"resizable train: error: --tensorboard needs the Python package 'tensorboard', which is not " \
                   f"installed: {TENSORBOARD_EXTRA}", line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tb").exists()
    # a run started with the option, continued where the package is missing: the same line, the folder untouched
    run = tmp_path / "runs" / "b"
    run.mkdir(parents=True)
    write_options(TrainOptions(data_dir=tiny_fmnist, out_dir=str(tmp_path / "runs"), name="b",
                               tensorboard=str(tmp_path / "tb")), run / "config.yaml")
    saved = (run / "config.yaml").read_text()
    line = _one_line(capsys, main(["train", "--resume", str(run), *flags]))
    assert line.endswith(f"--tensorboard needs the Python package 'tensorboard', which is not installed: "
                         f"{TENSORBOARD_EXTRA}"), line
    assert [p.name for p in run.iterdir()] == ["config.yaml"] and (run / "config.yaml").read_text() == saved
    assert not (tmp_path / "tb").exists()
