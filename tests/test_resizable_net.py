"""The core API: configurations, resolutions, scale-aware BN, export, FLOPs, conversion, calibration."""
import math

import pytest
import torch
import torchvision
from torch import nn

import resizable
from resizable.layers import Resize2d, ScaleBatchNorm2d


def tiny(**kw):
    kw.setdefault("num_classes", 10)
    kw.setdefault("in_chans", 1)
    kw.setdefault("widths", (4, 8, 16))
    return resizable.create_model("resnet20", **kw)


def randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


# ---------------------------------------------------------------- registry
def test_registry_lists_and_rejects_unknown():
    names = resizable.list_models()
    assert {"resnet20", "resnet32", "resnet44", "resnet56", "resnet18", "resnet34", "resnet50"} <= set(names)
    with pytest.raises(ValueError, match="known models:.*resnet20"):
        resizable.create_model("resnet9000")
    with pytest.raises(ValueError, match="unknown arguments.*accepted"):
        resizable.create_model("resnet20", widht=3)
    with pytest.raises(ValueError, match="already registered"):
        resizable.register_model(resizable.models.resnet.resnet20)


# ---------------------------------------------------------------- configurations
def test_config_api():
    m = tiny()
    assert m.factors == (0.45, 0.65, 0.85, 1.0)
    assert m.num_stages == 3
    assert m.config == (1.0, 1.0, 1.0)
    configs = m.configs()
    assert len(configs) == 64 and len(set(configs)) == 64
    assert configs[0] == m.min_config and configs[-1] == m.max_config
    assert configs == m.configs()  # stable order
    m.set_config((0.45, 1, 0.65))
    assert m.config == (0.45, 1.0, 0.65)
    with m.using(m.min_config):
        assert m.config == m.min_config
        banks = [b for b in m.modules() if isinstance(b, ScaleBatchNorm2d)]
        assert all(b.active == 0 for b in banks)
    assert m.config == (0.45, 1.0, 0.65)
    # the context manager restores the previous configuration on errors too
    with pytest.raises(RuntimeError):
        with m.using(m.max_config):
            raise RuntimeError("boom")
    assert m.config == (0.45, 1.0, 0.65)


def test_factor_list_is_sorted_and_checked():
    assert tiny(factors=(1.0, 0.5)).factors == (0.5, 1.0)
    for bad, msg in [((), "at least one"), ((0.5, 0.5), "distinct"), ((0.0, 1.0), "> 0"), ((-1, 1), "> 0")]:
        with pytest.raises(ValueError, match=msg):
            tiny(factors=bad)


@pytest.mark.parametrize("bad,msg", [
    ((1.0, 1.0), "needs 3 factors"),
    ((1.0, 1.0, 1.0, 1.0), "needs 3 factors"),
    ((1.0, 0.5, 1.0), r"not in the factor list; accepted: \(0.45, 0.65, 0.85, 1.0\)"),
    ((1.0, -0.45, 1.0), "must be > 0"),
    ((1.0, "x", 1.0), "not a number"),
    ("1,1,1", "sequence of 3 factors"),
])
def test_bad_configs_raise(bad, msg):
    m = tiny()
    with pytest.raises(ValueError, match=msg):
        m.set_config(bad)
    assert m.config == m.max_config


def test_resolutions_are_absolute_per_stage():
    m = resizable.create_model("resnet50")
    assert m.baseline_sizes(224) == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert m.stage_sizes(224, (0.45, 0.65, 0.85, 1.0)) == [(25, 25), (18, 18), (12, 12), (7, 7)]
    # non-square inputs: each axis on its own; never below 1
    assert m.stage_sizes((224, 160), (0.45,) * 4) == [(25, 18), (13, 9), (6, 5), (3, 2)]
    assert m.stage_sizes(8, (0.45,) * 4)[-1] == (1, 1)


def test_forward_runs_each_stage_at_its_resolution():
    m = tiny().eval()
    seen = []
    for i in range(m.num_stages):
        m.stage(i).register_forward_hook(lambda mod, a, out: seen.append(tuple(out.shape[-2:])))
    config = (0.45, 1.0, 0.65)
    with torch.no_grad(), m.using(config):
        m(torch.randn(1, 1, 28, 28))
    assert seen == m.stage_sizes(28, config) == [(13, 13), (14, 14), (5, 5)]


def test_strided_cifar_stem_halves_every_stage():
    m = resizable.create_model("resnet14", num_classes=10, in_chans=1, stem_stride=2).eval()
    assert m.baseline_sizes(28) == [(14, 14), (7, 7), (4, 4)]
    assert m.stage_sizes(28, m.min_config) == [(6, 6), (3, 3), (2, 2)]
    seen = []
    for i in range(m.num_stages):
        m.stage(i).register_forward_hook(lambda mod, a, out: seen.append(tuple(out.shape[-2:])))
    with torch.no_grad(), m.using(m.min_config):
        m(torch.randn(1, 1, 28, 28))
    assert seen == [(6, 6), (3, 3), (2, 2)]
    pooled = resizable.create_model("resnet14", num_classes=10, in_chans=1, stem_stride=2, stem_pool=True).eval()
    assert pooled.conv1.stride == (1, 1) and pooled.stage_sizes(27) == [(14, 14), (7, 7), (4, 4)]
    x = torch.randn(2, 1, 27, 27)
    with torch.no_grad(), pooled.using(pooled.min_config):
        assert pooled(x).shape == (2, 10)
        assert (resizable.export(pooled, pooled.min_config, 27)(x) - pooled(x)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="stem_pool needs stem_stride=2"):
        resizable.create_model("resnet14", stem_pool=True)
    with pytest.raises(ValueError, match="stem_stride must be 1 or 2"):
        resizable.create_model("resnet14", stem_stride=4)
    with pytest.raises(ValueError, match="'cifar' stem"):
        resizable.create_model("resnet18", stem_stride=2)


def test_resize_is_skipped_at_baseline():
    r = Resize2d()
    x = torch.randn(1, 2, 5, 5)
    assert r(x, (5, 5)) is x
    assert r(x, (3, 3)).shape[-2:] == (3, 3)
    with pytest.raises(ValueError, match="accepted"):
        Resize2d(mode="lanczos")


def test_bn_keying_follows_design():
    m = resizable.create_model("resnet50")
    assert type(m.bn1) is nn.BatchNorm2d  # the stem runs before any resize
    assert m.layer1[0].bn1.stage == 0
    # the strided first block of stage i+1 runs at stage i's scale
    assert m.layer2[0].bn1.stage == 0 and m.layer2[0].downsample[1].stage == 0
    assert m.layer2[1].bn1.stage == 1
    assert m.layer4[0].bn3.stage == 2 and m.layer4[2].bn3.stage == 3
    assert list(m.layer2._modules)[:3] == ["0", "resize", "1"]
    assert list(m.layer1._modules)[:2] == ["resize", "0"]


def test_only_active_bn_branch_changes_in_training():
    m = tiny()
    m.train()
    before = {n: b.clone() for n, b in m.named_buffers() if "running_mean" in n}
    with m.using((0.45, 0.45, 0.45)):
        m(torch.randn(4, 1, 28, 28))
    changed = {n for n, b in m.named_buffers() if "running_mean" in n and not torch.equal(b, before[n])}
    # stem BN (plain) and branch 0 of every bank changed; no other branch did
    assert "bn1.running_mean" in changed
    banked = [n for n in changed if n != "bn1.running_mean"]
    assert banked and all(".0.running_mean" in n for n in banked)


def test_hooks_on_a_bn_branch_still_run():
    # the bank calls its active branch's forward directly unless the branch has hooks
    m = tiny()
    m.eval()
    bank = m.layer1[0].bn1
    seen = []
    handle = bank[1].register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        m(x)
        assert not seen  # branch 1 is not active under the max configuration
        with m.using((0.65, 0.65, 0.65)):
            expected = m(x)
        assert len(seen) == 1
        handle.remove()
        with m.using((0.65, 0.65, 0.65)):
            assert torch.equal(m(x), expected)


def test_bank_inference_path_equals_its_branch():
    # in eval the bank normalises with the active branch's statistics itself (no nested module call)
    bank = ScaleBatchNorm2d(3, 2, stage=0)
    for bn in bank:
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    x = torch.randn(4, 3, 5, 5)
    bank.eval()
    for i in range(2):
        bank.active = i
        assert torch.allclose(bank(x), bank[i](x), atol=1e-6)
    bank.train()  # training still goes through the branch: batch statistics, running averages updated
    before = bank[1].running_mean.clone()
    assert torch.allclose(bank(x), nn.functional.batch_norm(x, None, None, bank[1].weight, bank[1].bias, True))
    assert not torch.equal(bank[1].running_mean, before)


def test_stage_sizes_follow_every_input_size_and_configuration():
    # forward caches the stage sizes per (input size, configuration); a change of either is followed
    m = tiny().eval()
    seen = []
    for i in range(m.num_stages):
        m.stage(i).register_forward_hook(lambda mod, a, out: seen.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        for size, config in [(28, (0.45, 1.0, 0.65)), (20, (0.45, 1.0, 0.65)), (28, (1.0, 0.45, 0.85)),
                             (28, (0.45, 1.0, 0.65))]:
            seen.clear()
            m.set_config(config)
            m(torch.randn(1, 1, size, size))
            assert seen == m.stage_sizes(size, config)


def test_scale_bn_off_gives_plain_bns():
    m = tiny(scale_bn=False)
    assert not any(isinstance(b, ScaleBatchNorm2d) for b in m.modules())
    m.set_config(m.min_config)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# ---------------------------------------------------------------- export
@pytest.mark.slow
def test_export_equality_and_jit():
    m = tiny()
    randomize_bn(m)
    m.eval()
    x = torch.randn(3, 1, 28, 28)
    for config in [(0.45, 0.65, 1.0), (1.0, 1.0, 1.0), (0.85, 0.45, 0.65)]:
        static = resizable.export(m, config, 28)
        with torch.no_grad(), m.using(config):
            ref = m(x)
        assert (static(x) - ref).abs().max() <= 1e-5
        scripted = torch.jit.script(static)
        traced = torch.jit.trace(static, x)
        assert (scripted(x) - ref).abs().max() <= 1e-5
        assert (traced(x) - ref).abs().max() <= 1e-5
    assert m.config == m.max_config  # export leaves the model alone
    # the all-max export has no resize at all
    static = resizable.export(m, m.max_config, 28)
    assert not any("Resize" in type(mod).__name__ for mod in static.modules())


def test_export_rejects_bad_input():
    m = tiny()
    with pytest.raises(ValueError, match="needs 3 factors"):
        resizable.export(m, (1.0,), 28)
    with pytest.raises(ValueError, match="ResizableNet"):
        resizable.export(nn.Linear(2, 2), (1.0,), 28)


# ---------------------------------------------------------------- FLOPs
def test_flops_resnet50_matches_torchvision_and_paper():
    m = resizable.create_model("resnet50")
    report = resizable.count_macs(m, m.max_config, 224)
    assert abs(report.macs / 1e9 - 4.09) < 0.01  # torchvision: 4.09 GFLOPS (MACs); paper: 4.1 G
    assert report.params == sum(p.numel() for p in torchvision.models.resnet50().parameters())
    assert report.interp_macs == 0
    assert set(report.stages) == {"stem", "stage1", "stage2", "stage3", "stage4", "head"}
    assert sum(v[0] for v in report.stages.values()) == report.macs
    assert "interpolation" in str(report)


def test_flops_of_a_small_config_by_hand():
    m = tiny(widths=(2, 2, 2))
    config = (0.45, 0.65, 1.0)
    r = resizable.count_macs(m, config, 28)
    # stem conv 1->2 at 28x28, then stage sizes 13, 9, 7
    stem = 28 * 28 * 2 * 1 * 9
    s1 = 6 * 13 * 13 * 2 * 2 * 9
    s2 = 9 * 9 * 2 * 2 * 9 + 5 * 9 * 9 * 2 * 2 * 9 + 9 * 9 * 2 * 2  # strided conv runs at 13 -> 7 then resized? no:
    # the strided block of stage 2 runs on the 13x13 input -> 7x7, its 1x1 downsample... (computed below)
    del s2
    assert r.stages["stem"][0] == stem
    assert r.stages["stage1"][0] == s1
    # stage 2: strided block at 13 -> 7 (conv1 3x3/2 and 1x1/2 downsample at 7x7, conv2 at 7x7), then
    # resize 7 -> 9, then two blocks at 9x9
    block0 = 7 * 7 * 2 * 2 * 9 + 7 * 7 * 2 * 2 * 9 + 7 * 7 * 2 * 2
    assert r.stages["stage2"][0] == block0 + 2 * 2 * 9 * 9 * 2 * 2 * 9
    assert r.stages["stage2"][1] == 4 * 9 * 9 * 2  # bilinear: 4 MACs per output value
    assert r.stages["stage1"][1] == 4 * 13 * 13 * 2
    assert r.stages["head"][0] == 2 * 10


@pytest.mark.slow
def test_flops_agree_with_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    for name, size in [("resnet20", 32), ("resnet18", 64)]:
        m = resizable.create_model(name).eval()
        for config in [m.max_config, m.min_config, tuple(reversed(m.configs()[len(m.configs()) // 3]))]:
            static = resizable.export(m, config, size)
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                static(torch.zeros(1, 3, size, size))
            ours = resizable.count_macs(m, config, size).macs
            assert math.isclose(counter.get_total_flops() / 2, ours, rel_tol=0.01)


def test_count_flops_restores_state():
    m = tiny()
    m.train()
    m.set_config((0.45, 0.45, 0.45))
    resizable.count_macs(m, m.max_config, 28)
    assert m.training and m.config == (0.45, 0.45, 0.45)


# ---------------------------------------------------------------- torchvision conversion
@pytest.mark.parametrize("ctor", [torchvision.models.resnet18, torchvision.models.resnet50])
def test_from_torchvision_equal_outputs(ctor):
    tv = ctor(num_classes=13)
    randomize_bn(tv)
    tv.eval()
    m = resizable.from_torchvision(tv)
    assert not m.training
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert (m(x) - tv(x)).abs().max() <= 1e-5
        static = resizable.export(m, m.max_config, 96)
        assert set(static.state_dict()) == set(tv.state_dict())
        # every BN branch got the torchvision statistics
        m.set_config(m.min_config)
        assert m(x).shape == (2, 13)
    with pytest.raises(ValueError, match="supported torchvision models"):
        resizable.from_torchvision(torchvision.models.alexnet())


def test_from_torchvision_resnext():
    tv = torchvision.models.resnext50_32x4d(num_classes=3).eval()
    m = resizable.from_torchvision(tv)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (m(x) - tv(x)).abs().max() <= 1e-5


# ---------------------------------------------------------------- BN calibration
def test_calibrate_bn_recomputes_active_statistics():
    m = tiny()
    m.eval()
    config = (0.65, 0.45, 0.85)
    data = [torch.randn(8, 1, 28, 28) * 2 + 1 for _ in range(3)]
    resizable.calibrate_bn(m, config, [(x, torch.zeros(8)) for x in data], num_batches=2)
    assert not m.training and m.config == m.max_config
    # the stem BN now holds the plain average over the two batches seen
    with torch.no_grad():
        feats = [m.conv1(x) for x in data[:2]]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    assert torch.allclose(m.bn1.running_mean, means, atol=1e-5)
    assert m.bn1.momentum == 0.1  # restored
    # the branch of config's stage-1 factor was touched, the max branch was not
    bank = m.layer1[0].bn1
    assert not torch.equal(bank[1].running_mean, torch.zeros(4))
    assert torch.equal(bank[3].running_mean, torch.zeros(4))
    with pytest.raises(ValueError, match="num_batches"):
        resizable.calibrate_bn(m, config, data, 0)


def test_the_papers_word_flops_is_an_alias_of_macs():
    assert resizable.count_flops is resizable.count_macs and resizable.FlopsReport is resizable.MacsReport
