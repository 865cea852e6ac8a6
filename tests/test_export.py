"""Writing one configuration as a static network: TorchScript, ONNX and state_dict files, BN
folding, the JSON sidecar, and the ``resizable export`` command end to end."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import resizable
from resizable import create_model, export, export_to_file, fold_bn, load_static
from resizable.checkpoint import save_checkpoint
from resizable.cli import main as cli_main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

NEW_MODELS = [
    "mobilenet_v1", "mobilenet_v1_cifar",
    "mobilenet_v2", "mobilenet_v2_cifar",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "shufflenet_v2_x1_0_cifar",
]
SIZE = 32  # every model runs at 32x32, the ImageNet-style ones down to 1x1 at their last stage


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


def mixed_config(model):
    return tuple(model.factors[(i + 1) % len(model.factors)] for i in range(model.num_stages))


def trained_like(name: str, seed: int = 0, **kwargs) -> resizable.ResizableNet:
    """A model in eval mode whose BNs (every branch) hold distinct, plausible statistics."""
    model = create_model(name, num_classes=10, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


def reference(model, config, x):
    with torch.no_grad(), model.using(config):
        return model(x)


def ort_run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def max_diff(a, b):
    return (a - b).abs().max().item()


# ---------------------------------------------------------------------------- PyTorch, TorchScript, ONNX
@pytest.mark.parametrize("name", NEW_MODELS + ["resnet20"])
def test_static_and_torchscript_match_the_model(name, tmp_path):
    model = trained_like(name)
    config = mixed_config(model)
    x = torch.randn(3, 3, SIZE, SIZE)
    expected = reference(model, config, x)
    with torch.no_grad():
        assert max_diff(export(model, config, SIZE).eval()(x), expected) <= 1e-6
    ts = export_to_file(model, config, tmp_path / "net.pt", input_size=SIZE, format="torchscript")
    with torch.no_grad():
        assert max_diff(torch.jit.load(str(ts.path))(x), expected) <= 1e-5


# The legacy exporter keeps these fast; the default (torch.export-based) one runs in the CLI test.
@pytest.mark.parametrize("name", NEW_MODELS + ["resnet20"])
def test_onnx_matches_the_model(name, tmp_path):
    model = trained_like(name)
    config = mixed_config(model)
    x = torch.randn(3, 3, SIZE, SIZE)  # a batch size other than the export's: the batch axis is dynamic
    result = export_to_file(model, config, tmp_path / "net.onnx", input_size=SIZE, format="onnx",
                            onnx_exporter="legacy", fold_bn=name == "mobilenet_v2")
    assert max_diff(ort_run(result.path, x), reference(model, config, x)) <= 1e-4


@pytest.mark.parametrize("name", ["mobilenet_v1_cifar", "mobilenet_v2", "shufflenet_v2_x1_0", "resnet18"])
def test_fold_bn_keeps_outputs(name):
    model = trained_like(name)
    for config in (model.min_config, mixed_config(model)):
        static = export(model, config, SIZE).eval()
        folded = fold_bn(static)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        assert any(isinstance(m, nn.BatchNorm2d) for m in static.modules())  # the input is left alone
        x = torch.randn(2, 3, SIZE, SIZE)
        with torch.no_grad():
            a, b = static(x), folded(x)
        assert max_diff(a, b) <= 1e-5 * max(1.0, a.abs().max().item())


def test_fold_bn_pairs_by_data_flow():
    class Odd(nn.Module):
        """Registration order differs from forward order; one BN is fed by a ReLU."""

        def __init__(self):
            super().__init__()
            self.bn_late = nn.BatchNorm2d(4)
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 4, 1)
            self.relu = nn.ReLU()
            self.bn_after_relu = nn.BatchNorm2d(4)

        def forward(self, x):
            x = self.bn_late(self.conv(x))
            return self.bn_after_relu(self.relu(self.conv2(x)))

    net = Odd()
    with torch.no_grad():
        for bn in (net.bn_late, net.bn_after_relu):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    net.eval()
    folded = fold_bn(net)
    assert isinstance(folded.bn_late, nn.Identity)
    assert isinstance(folded.bn_after_relu, nn.BatchNorm2d)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert max_diff(folded(x), net(x)) <= 1e-5


# ---------------------------------------------------------------------------- state_dict and sidecar
@pytest.mark.parametrize("fold", [False, True])
def test_state_dict_loads_into_the_exported_module(tmp_path, fold):
    kwargs = {"width_mult": 0.5, "num_classes": 10}
    model = trained_like("mobilenet_v2_cifar", width_mult=0.5)
    config = (0.5, 1.0, 0.7, 0.7, 0.5)
    result = export_to_file(model, config, tmp_path / "w.pt", format="state_dict", fold_bn=fold,
                            model_name="mobilenet_v2_cifar", model_kwargs=kwargs)
    x = torch.randn(2, 3, SIZE, SIZE)
    expected = reference(model, config, x)

    # what a user does with the sidecar: rebuild the module it names, then load
    meta = json.loads(result.sidecar.read_text())
    fresh = export(create_model(meta["model_name"], **meta["model_kwargs"]), meta["config"], meta["input_size"])
    if meta["fold_bn"]:
        fresh = fold_bn(fresh)
    fresh.load_state_dict(torch.load(result.path, weights_only=True))
    with torch.no_grad():
        assert max_diff(fresh.eval()(x), expected) <= 1e-5
        assert max_diff(load_static(result.path)(x), expected) <= 1e-5


def test_sidecar_records_everything(tmp_path):
    model = trained_like("shufflenet_v2_x1_0_cifar")
    config = mixed_config(model)
    result = export_to_file(model, config, tmp_path / "sub" / "net.pt", format="torchscript", fold_bn=True,
                            model_name="shufflenet_v2_x1_0_cifar", model_kwargs={"num_classes": 10})
    meta = json.loads((tmp_path / "sub" / "net.pt.json").read_text())
    report = resizable.count_macs(model, config, SIZE)
    assert meta["model_name"] == "shufflenet_v2_x1_0_cifar"
    assert meta["model_kwargs"] == {"num_classes": 10}
    assert meta["config"] == list(config)
    assert meta["factors"] == list(model.factors)
    assert meta["input_size"] == [SIZE, SIZE]
    assert (meta["format"], meta["fold_bn"]) == ("torchscript", True)
    assert (meta["macs"], meta["interp_macs"]) == (report.macs, report.interp_macs)
    assert meta["module"].startswith("resizable.fold_bn(")
    assert result.meta == meta
    extra = {"resizable.json": ""}
    torch.jit.load(str(result.path), _extra_files=extra)
    assert json.loads(extra["resizable.json"]) == meta
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["net.pt", "net.pt.json"]  # no temp files


@pytest.mark.parametrize("config, message", [
    ((0.5, 0.7), "needs 5 factors"),
    ((0.5, 0.7, 1.0, 1.0, 0.6), "not in the factor list"),
    ("0.5,x,1,1,1", "not a comma-separated list"),
])
def test_bad_config_names_the_accepted_factors(tmp_path, config, message):
    model = create_model("mobilenet_v1_cifar")
    with pytest.raises(ValueError, match=message) as info:
        export_to_file(model, config, tmp_path / "x.pt")
    assert "(0.5, 0.7, 1.0)" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_bad_format_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="torchscript, onnx, state_dict"):
        export_to_file(create_model("resnet20"), "max", tmp_path / "x", format="tflite")


# ---------------------------------------------------------------------------- the command line
@pytest.fixture
def run_dir(tmp_path):
    kwargs = {"num_classes": 10, "width_mult": 0.25}
    model = trained_like("mobilenet_v1_cifar", width_mult=0.25)
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint.pt", model, "mobilenet_v1_cifar", kwargs, epoch=3)
    return run, model


@pytest.mark.slow
def test_cli_onnx_export(run_dir, capsys):
    run, model = run_dir
    config = (0.5, 0.7, 1.0, 1.0, 0.5)
    code = cli_main(["export", "--checkpoint", str(run), "--config", "0.5,0.7,1,1,0.5", "--format", "onnx",
                     "--input-size", "32"])
    assert code == 0
    path = run / "export" / "mobilenet_v1_cifar_0.5-0.7-1-1-0.5_32.onnx"
    assert str(path) in capsys.readouterr().out
    x = torch.randn(4, 3, 32, 32)
    assert max_diff(ort_run(path, x), reference(model, config, x)) <= 1e-4
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert (meta["model_name"], meta["config"], meta["factors"], meta["input_size"]) == (
        "mobilenet_v1_cifar", list(config), [0.5, 0.7, 1.0], [32, 32])
    assert meta["onnx_exporter"] == "dynamo"
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["model_name"] == "mobilenet_v1_cifar"
    assert json.loads(props["config"]) == list(config)
    assert json.loads(props["input_size"]) == [32, 32]


def test_cli_torchscript_and_state_dict(run_dir, tmp_path, capsys):
    run, model = run_dir
    x = torch.randn(2, 3, 32, 32)
    out = tmp_path / "deploy" / "net.pt"
    assert cli_main(["export", "--checkpoint", str(run / "checkpoint.pt"), "--config", "min", "--format",
                     "torchscript", "--fold-bn", "--out", str(out)]) == 0
    with torch.no_grad():
        assert max_diff(torch.jit.load(str(out))(x), reference(model, model.min_config, x)) <= 1e-5

    assert cli_main(["export", "--checkpoint", str(run), "--config", "1,0.5,0.7,0.5,1",
                     "--format", "state_dict"]) == 0
    path = run / "export" / "mobilenet_v1_cifar_1-0.5-0.7-0.5-1_32.state_dict.pt"  # default size: 32
    with torch.no_grad():
        assert max_diff(load_static(path)(x), reference(model, (1, 0.5, 0.7, 0.5, 1), x)) <= 1e-5


@pytest.mark.parametrize("argv, message", [
    (["--config", "0.5,0.7"], "accepted factors: (0.5, 0.7, 1.0)"),
    (["--config", "0.5,0.7,1,1,0.45"], "accepted: (0.5, 0.7, 1.0)"),
    (["--config", "max", "--input-size", "big"], "--input-size"),
])
def test_cli_errors_are_one_clear_line(run_dir, capsys, argv, message):
    run, _ = run_dir
    assert cli_main(["export", "--checkpoint", str(run)] + argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # the fixture's checkpoint has no statistics bank: one warning line may say so, then the error
    assert sum("warning: " in line and "resizable calibrate" in line for line in lines) <= 1
    err = "\n".join(line for line in lines if "warning: " not in line)
    assert err.startswith("resizable export: error:") and "\n" not in err
    assert message in err
    assert not (run / "export").exists()


def test_cli_missing_checkpoint(tmp_path, capsys):
    assert cli_main(["export", "--checkpoint", str(tmp_path / "nope"), "--config", "max"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
