"""Every registered model: builds, runs forward and backward at tiny size under several
configurations, exports to a static network with equal outputs, and counts its cost."""
import pytest
import torch

import resizable
from resizable.layers import ScaleBatchNorm2d

MODELS = resizable.list_models()


def _small_input(model, batch=2):
    # ImageNet-style stems divide by 4 before the first stage; 64 px leaves room for every stage.
    size = 32 if model.stem_strides == () or "cifar" in type(model).__name__.lower() else 64
    return torch.randn(batch, model.in_chans, size, size)


def _configs(model):
    k = len(model.factors)
    mixed = tuple(model.factors[i % k] for i in range(model.num_stages))
    return [model.max_config, model.min_config, mixed]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_every_config_kind(name):
    model = resizable.create_model(name, num_classes=7)
    x = _small_input(model)
    for config in _configs(model):
        model.set_config(config)
        out = model(x)
        assert out.shape == (2, 7)
        out.square().mean().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        model.zero_grad()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_export_matches_model(name):
    model = resizable.create_model(name, num_classes=5)
    x = _small_input(model)
    # Random BN statistics so that a wrong branch choice would show in the outputs.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.8, 1.2)
    model.eval()
    for config in _configs(model):
        static = resizable.export(model, config, x.shape[-2:])
        assert not any(isinstance(m, ScaleBatchNorm2d) for m in static.modules())
        with torch.no_grad(), model.using(config):
            expected = model(x)
            got = static(x)
        assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_cost_and_api(name):
    model = resizable.create_model(name)
    assert model.num_stages >= 1 and len(model.configs()) == len(model.factors) ** model.num_stages
    x = _small_input(model, batch=1)
    small = resizable.count_macs(model, model.min_config, x.shape[-2:])
    large = resizable.count_macs(model, model.max_config, x.shape[-2:])
    assert 0 < small.macs < large.macs
    assert large.interp_macs == 0  # the all-max network has no resize to run
    assert small.params == large.params == resizable.count_params(model)


def test_resnet_per_stage_strides():
    """strides=(1, 2, 1) after a pooled stem: 14/7/7 px stages on 28 px inputs, every configuration with
    resolutions of its own (the default (1, 2, 2) gives 4 px last stages, where 0.65 and 0.85 both give 3 px)."""
    model = resizable.create_model("resnet14", num_classes=10, in_chans=1, widths=(4, 8, 8), stem_stride=2,
                                   stem_pool=True, strides=(1, 2, 1))
    assert model.baseline_sizes(28) == [(14, 14), (7, 7), (7, 7)]
    assert len({tuple(model.stage_sizes(28, c)) for c in model.configs()}) == 64
    default = resizable.create_model("resnet14", num_classes=10, in_chans=1, stem_stride=2, stem_pool=True)
    assert len({tuple(default.stage_sizes(28, c)) for c in default.configs()}) < 64
    x = torch.randn(2, 1, 28, 28)
    model.eval()
    for config in _configs(model):
        model.set_config(config)
        assert torch.allclose(resizable.export(model, config, 28)(x), model(x), atol=1e-5)
    with pytest.raises(ValueError, match="one stride per stage"):
        resizable.create_model("resnet14", strides=(1, 2))
    with pytest.raises(ValueError, match="each 1 or 2"):
        resizable.create_model("resnet14", strides=(1, 3, 2))


@pytest.mark.parametrize("name", ["resnet14", "mobilenet_v1_cifar", "mobilenet_v2", "shufflenet_v2_x1_0"])
def test_resize_antialias_low_pass_filters_only_the_shrinking_resizes(name):
    import torch.nn.functional as F
    from resizable.deploy.static import export
    from resizable.layers import Resize2d

    plain = resizable.create_model(name, num_classes=5)
    smooth = resizable.create_model(name, num_classes=5, resize_antialias=True)
    smooth.load_state_dict(plain.state_dict())
    resizes = [m for m in smooth.modules() if isinstance(m, Resize2d)]
    assert len(resizes) == smooth.num_stages and all(m.antialias for m in resizes)
    x = _small_input(plain)
    plain.eval(), smooth.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), smooth(x))  # the baseline configuration resizes nothing
        config = plain.min_config
        plain.set_config(config), smooth.set_config(config)
        seen = {}
        for tag, model in (("plain", plain), ("smooth", smooth)):
            first = next(m for m in model.modules() if isinstance(m, Resize2d))
            hook = first.register_forward_hook(lambda m, i, o, tag=tag: seen.update({tag: (i[0], o)}))
            model(x)
            hook.remove()
        assert torch.equal(seen["plain"][0], seen["smooth"][0])  # the same map goes in ...
        assert seen["plain"][1].shape == seen["smooth"][1].shape and seen["plain"][1].shape[-1] < x.shape[-1]
        assert not torch.allclose(seen["plain"][1], seen["smooth"][1], atol=1e-4)  # ... and shrinks differently
        static = export(smooth, config, x.shape[-1]).eval()
        assert torch.allclose(static(x), smooth(x), atol=1e-5)  # the static network keeps the filter

    fmap = torch.randn(2, 3, 14, 14)
    aa = Resize2d(antialias=True)
    assert torch.equal(aa(fmap, (6, 6)), F.interpolate(fmap, size=(6, 6), mode="bilinear", antialias=True))
    assert torch.allclose(aa(fmap, (20, 20)), Resize2d()(fmap, (20, 20)), atol=1e-5)  # growing: unchanged
    with pytest.raises(ValueError, match="antialias needs mode 'bilinear' or 'bicubic'"):
        Resize2d("nearest", antialias=True)
    with pytest.raises(ValueError, match="resize_antialias applies to the default resize layer"):
        resizable.create_model(name, resize_antialias=True, resize_layer=lambda: Resize2d("area"))


def test_legacy_onnx_exporter_refuses_antialiased_resizes(tmp_path):
    pytest.importorskip("onnx")
    from resizable.deploy.export import export_to_file

    model = resizable.create_model("resnet14", num_classes=5, resize_antialias=True).eval()
    with pytest.raises(ValueError, match="legacy ONNX exporter cannot write antialiased resizes"):
        export_to_file(model, model.min_config, tmp_path / "net.onnx", input_size=32, format="onnx",
                       onnx_exporter="legacy")
    assert not list(tmp_path.iterdir())
