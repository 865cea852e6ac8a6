"""The MobileNetV1, MobileNetV2 and ShuffleNetV2 families: structure, forward/backward, torchvision
conversion, and costs pinned to torchvision's and to an independent FLOP count."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resizable import ScaleBatchNorm2d, count_macs, create_model, export, from_torchvision, list_models
from resizable.cli import main as cli_main
from resizable.trained_run import natural_input_size

NEW_MODELS = [
    "mobilenet_v1", "mobilenet_v1_cifar",
    "mobilenet_v2", "mobilenet_v2_cifar",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "shufflenet_v2_x1_0_cifar",
]
SMALL_INPUT = [n for n in NEW_MODELS if n.endswith("_cifar")]

# name -> (natural input size, MACs at min config, interpolation MACs at min, MACs at max, params)
PINNED = {
    "mobilenet_v1": (224, 157031680, 401408, 568740352, 4231976),
    "mobilenet_v1_cifar": (32, 13273600, 32768, 47368192, 4231976),
    "mobilenet_v2": (224, 90312320, 401408, 300774272, 3504872),
    "mobilenet_v2_cifar": (32, 8055680, 32768, 25728512, 3504872),
    "shufflenet_v2_x0_5": (224, 17625544, 46272, 40476448, 1366792),
    "shufflenet_v2_x1_0": (224, 42424022, 111824, 144907992, 2278604),
    "shufflenet_v2_x1_5": (224, 76996232, 169664, 295759392, 3503624),
    "shufflenet_v2_x2_0": (224, 140580246, 235216, 583253464, 7393996),
    "shufflenet_v2_x1_0_cifar": (32, 14365446, 22736, 46015872, 2278604),
}

# torchvision's weight metadata holds its own count (GFLOPS = G multiply-accumulates, 3 digits)
TV_WEIGHTS = {
    "mobilenet_v2": torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
    "shufflenet_v2_x0_5": torchvision.models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1,
    "shufflenet_v2_x1_0": torchvision.models.ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1,
    "shufflenet_v2_x1_5": torchvision.models.ShuffleNet_V2_X1_5_Weights.IMAGENET1K_V1,
    "shufflenet_v2_x2_0": torchvision.models.ShuffleNet_V2_X2_0_Weights.IMAGENET1K_V1,
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


def mixed_config(model):
    return tuple(model.factors[(i + 1) % len(model.factors)] for i in range(model.num_stages))


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BN (each branch of a bank too) its own plausible statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


def bn_keys(module: nn.Module) -> set:
    """The stage keys of the BNs directly inside ``module`` (-1: plain BN)."""
    keys = set()
    banks = [m for m in module.modules() if isinstance(m, ScaleBatchNorm2d)]
    in_bank = {id(bn) for b in banks for bn in b}
    keys |= {b.stage for b in banks}
    if any(isinstance(m, nn.BatchNorm2d) and id(m) not in in_bank for m in module.modules()):
        keys.add(-1)
    return keys


# ---------------------------------------------------------------------------- registration
def test_every_family_is_registered_and_listed(capsys):
    assert set(NEW_MODELS) <= set(list_models())
    assert cli_main(["models", "v2"]) == 0
    out = capsys.readouterr().out
    for name in NEW_MODELS:
        if "v2" in name:
            assert name in out


@pytest.mark.parametrize("name, stages, factors", [
    ("mobilenet_v1", 5, (0.5, 0.7, 1.0)),
    ("mobilenet_v2", 5, (0.5, 0.7, 1.0)),
    ("shufflenet_v2_x1_5", 3, (0.45, 0.65, 0.85, 1.0)),
    ("shufflenet_v2_x1_0_cifar", 3, (0.45, 0.65, 0.85, 1.0)),
])
def test_stages_and_default_factors(name, stages, factors):
    model = create_model(name)
    assert model.num_stages == stages
    assert model.factors == factors
    assert len(model.configs()) == len(factors) ** stages


def test_width_multipliers():
    widths = {w: create_model("mobilenet_v1", width_mult=w).num_features for w in (0.25, 0.5, 0.75, 1.0)}
    assert widths == {0.25: 256, 0.5: 512, 0.75: 768, 1.0: 1024}
    assert create_model("mobilenet_v2", width_mult=0.5).features._modules["1"].out_channels == 8
    with pytest.raises(ValueError, match="width_mult"):
        create_model("mobilenet_v1", width_mult=0)
    with pytest.raises(ValueError, match="stem"):
        create_model("mobilenet_v2", stem="tiny")


# ---------------------------------------------------------------------------- where the resizes and BN keys are
def test_mobilenet_v2_stage_layout():
    model = create_model("mobilenet_v2")
    order = list(model.features._modules)
    # stage 1 resizes the stem output; later stages resize right after their strided first block
    for resize, after in [("resize1", "0"), ("resize2", "2"), ("resize3", "4"), ("resize4", "7"), ("resize5", "14")]:
        assert order[order.index(resize) - 1] == after
    assert [k for k in order if not k.startswith("resize")] == [str(i) for i in range(19)]
    expected = {0: {-1}, 1: {0}, 2: {0}, 3: {1}, 4: {1}, 7: {2}, 8: {3}, 13: {3}, 14: {3}, 15: {4}, 17: {4}, 18: {4}}
    for index, keys in expected.items():
        assert bn_keys(model.features._modules[str(index)]) == keys, index
    assert model.baseline_sizes(224) == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]


def test_mobilenet_v1_stage_layout():
    model = create_model("mobilenet_v1")
    order = list(model.features._modules)
    for resize, after in [("resize1", "0"), ("resize2", "2"), ("resize3", "4"), ("resize4", "6"), ("resize5", "12")]:
        assert order[order.index(resize) - 1] == after
    expected = {0: {-1}, 1: {0}, 2: {0}, 3: {1}, 4: {1}, 5: {2}, 6: {2}, 7: {3}, 11: {3}, 12: {3}, 13: {4}}
    for index, keys in expected.items():
        assert bn_keys(model.features._modules[str(index)]) == keys, index


def test_shufflenet_v2_stage_layout():
    model = create_model("shufflenet_v2_x1_0")
    assert model.stage_names == ("stage2", "stage3", "stage4")
    assert bn_keys(model.conv1) == {-1}
    for i, name in enumerate(model.stage_names):
        stage = getattr(model, name)
        assert list(stage._modules)[:3] == ["0", "resize", "1"]
        assert bn_keys(stage._modules["0"]) == {i - 1}
        assert bn_keys(stage._modules["1"]) == {i}
    assert bn_keys(model.conv5) == {2}
    assert model.baseline_sizes(224) == [(28, 28), (14, 14), (7, 7)]


@pytest.mark.parametrize("name", NEW_MODELS)
def test_stages_run_at_their_scaled_size(name):
    model = create_model(name, num_classes=7).eval()
    size = 64 if name not in SMALL_INPUT else 32
    for config in (model.min_config, mixed_config(model)):
        with model.using(config), torch.no_grad():
            x = model.forward_stem(torch.randn(1, 3, size, size))
            for i, expected in enumerate(model.stage_sizes(size)):
                x = model.forward_stage(i, x, expected)
                assert tuple(x.shape[-2:]) == expected
                # model.stage(i) is made of the model's own modules, not copies
                assert {id(p) for p in model.stage(i).parameters()} <= {id(p) for p in model.parameters()}
            assert model.forward_head(x).shape == (1, 7)


# ---------------------------------------------------------------------------- forward and backward
@pytest.mark.parametrize("name", NEW_MODELS)
def test_forward_backward_under_several_configs(name):
    model = create_model(name, num_classes=5).train()
    size = 32 if name in SMALL_INPUT else 64
    x = torch.randn(2, 3, size, size)
    for config in (model.min_config, model.max_config, mixed_config(model)):
        model.zero_grad(set_to_none=True)
        with model.using(config):
            y = model(x)
        assert y.shape == (2, 5)
        y.square().mean().backward()
        grads = [p.grad for n, p in model.named_parameters() if p.dim() == 4]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        # the active BN branch learns, the others are untouched
        bank = next(m for m in model.modules() if isinstance(m, ScaleBatchNorm2d))
        index = model.factor_index(config)[bank.stage]
        assert bank[index].weight.grad is not None
        assert all(bn.weight.grad is None for i, bn in enumerate(bank) if i != index)


@pytest.mark.parametrize("name", SMALL_INPUT)
@pytest.mark.parametrize("size, chans", [(28, 1), (32, 3)])
def test_small_input_variants_take_fashion_mnist_and_cifar(name, size, chans):
    model = create_model(name, num_classes=10, in_chans=chans).train()
    x = torch.randn(4, chans, size, size)
    with model.using(model.min_config):
        y = model(x)
        y.logsumexp(1).mean().backward()
    assert y.shape == (4, 10)
    assert min(min(s) for s in model.stage_sizes(size, model.min_config)) >= 1
    assert model.stage_sizes(size, model.max_config)[0][0] >= size // 2  # no early downsampling


# ---------------------------------------------------------------------------- torchvision conversion
@pytest.mark.parametrize("name, kwargs", [
    ("mobilenet_v2", {}),
    ("mobilenet_v2", {"width_mult": 0.75}),
    ("shufflenet_v2_x0_5", {}),
    ("shufflenet_v2_x1_0", {}),
    ("shufflenet_v2_x1_5", {}),
    ("shufflenet_v2_x2_0", {}),
])
def test_from_torchvision_matches_torchvision(name, kwargs):
    tv = getattr(torchvision.models, name)(**kwargs)
    randomize_bn(tv)
    tv.eval()
    model = from_torchvision(tv)
    assert not model.training
    assert model.config == model.max_config
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = tv(x)
        assert (model(x) - expected).abs().max().item() <= 1e-5
        static = export(model, model.max_config, 96)
        assert list(static.state_dict()) == list(tv.state_dict())
        assert (static(x) - expected).abs().max().item() <= 1e-5
        # a smaller configuration is a different, still valid network
        with model.using(model.min_config):
            assert model(x).shape == expected.shape


def test_converted_builder_matches_registered_builder():
    converted = from_torchvision(torchvision.models.shufflenet_v2_x1_5())
    built = create_model("shufflenet_v2_x1_5")
    assert {k: v.shape for k, v in converted.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}
    converted = from_torchvision(torchvision.models.mobilenet_v2(), factors=(0.5, 0.7, 1.0))
    built = create_model("mobilenet_v2")
    assert {k: v.shape for k, v in converted.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}


# ---------------------------------------------------------------------------- pinned costs
@pytest.mark.parametrize("name", NEW_MODELS)
def test_pinned_flops(name):
    model = create_model(name)
    size, min_macs, min_interp, max_macs, params = PINNED[name]
    assert natural_input_size(model) == size
    small = count_macs(model, model.min_config, size)
    large = count_macs(model, model.max_config, size)
    assert (small.macs, small.interp_macs) == (min_macs, min_interp)
    assert (large.macs, large.interp_macs, large.params) == (max_macs, 0, params)


def test_all_max_costs_equal_torchvision_and_the_papers():
    # PINNED is checked against the counter by test_pinned_flops
    for name, weights in TV_WEIGHTS.items():
        size, _, _, macs, params = PINNED[name]
        assert size == 224
        assert params == weights.meta["num_params"], name
        assert round(macs / 1e9, 3) == pytest.approx(weights.meta["_ops"], abs=1e-9), name
    assert round(PINNED["mobilenet_v1"][3] / 1e6) == 569  # MobileNetV1 paper, width 1.0
    assert round(PINNED["mobilenet_v2"][3] / 1e6, 1) == 300.8
    # The ShuffleNetV2 paper quotes 299 M for 1.5x; torchvision's 1.5x model (ours) has 296 M.
    assert PINNED["shufflenet_v2_x1_5"][3] / 1e6 == pytest.approx(299, rel=0.015)


@pytest.mark.parametrize("name, pick, size", [
    ("mobilenet_v1", "mixed", 224),
    ("mobilenet_v2", "min", 128),
    ("shufflenet_v2_x1_5", "mixed", 128),
    ("resnet50", "mixed", 96),
    ("mobilenet_v2_cifar", "mixed", 32),
])
def test_flops_agree_with_torch_flop_counter(name, pick, size):
    model = create_model(name).eval()
    config = model.min_config if pick == "min" else mixed_config(model)
    report = count_macs(model, config, size)
    static = export(model, config, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        static(torch.zeros(1, 3, size, size))
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate and leaves interpolation out
    assert counter.get_total_flops() / 2 == pytest.approx(report.macs, rel=0.01)


def test_flops_table_in_the_docs_is_current():
    """docs/flops.md is written by benchmarks/flops_table.py; rerun it when a model is added."""
    path = Path(__file__).resolve().parent.parent / "docs" / "flops.md"
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0] not in ("model", "---"):
            rows[cells[0]] = cells
    assert sorted(rows) == list_models(), "docs/flops.md is stale: run benchmarks/flops_table.py"
    for name, (size, min_macs, min_interp, max_macs, _) in PINNED.items():
        assert rows[name][1] == str(size)
        assert float(rows[name][6]) == round(min_macs / 1e6, 1)
        assert float(rows[name][7]) == round(max_macs / 1e6, 1)
        assert float(rows[name][8]) == round(min_interp / 1e6, 3)


# ---------------------------------------------------------------------------- no overhead at all-1.0
def _aten_ops(model: nn.Module, x: torch.Tensor):
    """Counts of the aten ops one eval forward runs, and of its memory allocations."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        model(x)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(x)
    ops = Counter(e.name for e in prof.events() if e.name.startswith("aten::"))
    allocs = sum(1 for e in prof.events() if e.name == "[memory]")
    return ops, allocs


# torchvision's ShuffleNetV2 pools with x.mean([2, 3]); ours keeps torchvision's module names for the
# head (avgpool, flatten) so that the exported network has them: one view-sized difference.
_HEAD_OPS = {"aten::adaptive_avg_pool2d", "aten::flatten", "aten::view", "aten::as_strided", "aten::mean",
             "aten::sum", "aten::div_"}


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "shufflenet_v2_x0_5"])
def test_all_max_runs_no_more_ops_or_allocations_than_torchvision(name, one_thread):
    tv = getattr(torchvision.models, name)(num_classes=10).eval()
    model = from_torchvision(tv).eval()
    x = torch.randn(1, 3, 64, 64)
    tv_ops, tv_allocs = _aten_ops(tv, x)
    ops, allocs = _aten_ops(model, x)
    # no out-of-place activation or residual add, no copy, no interpolation at the baseline
    for op in ("aten::hardtanh", "aten::relu", "aten::add", "aten::clone", "aten::copy_", "aten::upsample_bilinear2d"):
        assert ops[op] <= tv_ops[op], (op, ops[op], tv_ops[op])
    assert allocs <= tv_allocs
    extra = {op: n - tv_ops[op] for op, n in ops.items() if n > tv_ops[op] and op not in _HEAD_OPS}
    # an in-place op where torchvision allocates (MobileNetV2's residual add) is the only kind allowed
    assert all(op.endswith("_") and tv_ops[op[:-1]] >= n for op, n in extra.items()), extra
