"""RS-ShuffleNetV2: torchvision's ShuffleNetV2 (same module and parameter names), resizable at 3 stages.

The resizable stages are ``stage2``, ``stage3``, ``stage4``. Each starts with a stride-2 unit,
which runs at the previous scale (the stem's for ``stage2``, whose BNs are therefore plain); the
stage's resize follows it, before the first stride-1 unit. At a 224 input the stages run at 28,
14, 7. ``conv5`` runs at stage 4's scale (its BN follows stage 4's factor) and belongs to the head,
as it is a top-level module next to ``fc`` in torchvision.

The small-input variant (``stem="cifar"``) has a stride-1 ``conv1`` and no ``maxpool``: a 32x32
image then runs its stages at 16, 8, 4.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
from torch import nn

from ..layers import Resize2d, resize_factory, ResizableStage, plain_norm, scale_norm
from ..net import DEFAULT_FACTORS, ResizableNet
from ..registry import register_converter, register_model
from ._common import NormFactory, NormLayer, check_counts, conv_norm_act, init_weights

__all__ = ["ResizableShuffleNetV2", "ShuffleUnit", "channel_shuffle"]

# torchvision's stage widths: conv1, stage2, stage3, stage4, conv5
WIDTHS = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}
REPEATS = (4, 8, 4)


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (x: (B, C, H, W))."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: channel split (stride 1) or two strided branches (stride 2), then a shuffle.

    Branch layouts equal torchvision's ``InvertedResidual`` (``branch1``, ``branch2``).
    """

    def __init__(self, inp: int, oup: int, stride: int, norm_layer: NormLayer) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"shuffle unit stride must be 1 or 2, got {stride}")
        branch = oup // 2
        if stride == 1 and inp != 2 * branch:
            raise ValueError(f"a stride-1 unit needs inp == oup (even), got inp={inp}, oup={oup}")
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                norm_layer(inp),
                nn.Conv2d(inp, branch, 1, bias=False),
                norm_layer(branch),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, bias=False),
            norm_layer(branch),
            nn.ReLU(inplace=True),
            nn.Conv2d(branch, branch, 3, stride, 1, groups=branch, bias=False),
            norm_layer(branch),
            nn.Conv2d(branch, branch, 1, bias=False),
            norm_layer(branch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ResizableShuffleNetV2(ResizableNet):
    """ShuffleNetV2 whose stages ``stage2`` .. ``stage4`` are resized by their factors.

    Args:
        stages_repeats: units per stage (torchvision: ``(4, 8, 4)``).
        stages_out_channels: channels of ``conv1``, of each stage, and of ``conv5``.
        factors: scaling factor list L.
        num_classes: classifier outputs.
        in_chans: input channels.
        stem: ``"imagenet"`` (3x3/2 conv + 3x3/2 max-pool) or ``"cifar"`` (3x3/1 conv, no pool).
        scale_bn: one BN per factor (True) or one shared BN (the paper's ablation).
        norm_layer: ``(num_scales, stage) -> norm_layer(num_features)``; overrides ``scale_bn``.
        resize_layer: builds the stage resize module (default bilinear :class:`Resize2d`).
        resize_antialias: the default resize low-pass filters when it shrinks a map (``antialias=True``).
    """

    def __init__(
        self,
        stages_repeats: Sequence[int] = REPEATS,
        stages_out_channels: Sequence[int] = WIDTHS["x1_0"],
        *,
        factors: Sequence[float] = DEFAULT_FACTORS,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        scale_bn: bool = True,
        norm_layer: Optional[NormFactory] = None,
        resize_layer: Callable[[], nn.Module] = Resize2d,
        resize_antialias: bool = False,
    ) -> None:
        check_counts(num_classes=num_classes, in_chans=in_chans, stages_repeats=list(stages_repeats),
                     stages_out_channels=list(stages_out_channels))
        repeats = [int(n) for n in stages_repeats]
        widths = [int(c) for c in stages_out_channels]
        if not repeats or any(n < 1 for n in repeats):
            raise ValueError(f"stages_repeats needs positive ints, got {tuple(stages_repeats)}")
        if len(widths) != len(repeats) + 2:
            raise ValueError(f"stages_out_channels needs {len(repeats) + 2} entries (conv1, each stage, conv5), "
                             f"got {tuple(stages_out_channels)}")
        if any(c < 1 for c in widths) or any(c % 2 for c in widths[1:-1]):
            raise ValueError(f"stage widths must be positive and even, got {tuple(stages_out_channels)}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"unknown stem {stem!r}; accepted: 'imagenet', 'cifar'")
        num_stages = len(repeats)
        stage_names = [f"stage{i + 2}" for i in range(num_stages)]
        if stem == "imagenet":
            stem_names, stem_strides = ["conv1", "maxpool"], [2, 2]
        else:
            stem_names, stem_strides = ["conv1"], []
        super().__init__(
            factors,
            stem_strides=stem_strides,
            stage_strides=[2] * num_stages,
            stem_names=stem_names,
            stage_names=stage_names,
            head_names=["conv5", "avgpool", "flatten", "fc"],
            in_chans=in_chans,
            num_classes=num_classes,
        )
        norm_factory = norm_layer or (scale_norm if scale_bn else plain_norm)
        k = len(self.factors)
        self.stages_repeats = tuple(repeats)
        self.stages_out_channels = tuple(widths)

        self.conv1 = conv_norm_act(in_chans, widths[0], 3, 2 if stem == "imagenet" else 1,
                                   norm_factory(k, -1), _relu)
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = widths[0]
        resize = resize_factory(resize_layer, resize_antialias)
        for i, (name, n, oup) in enumerate(zip(stage_names, repeats, widths[1:-1])):
            # The strided first unit runs at the previous stage's scale: its BNs follow that factor.
            units: List[nn.Module] = [ShuffleUnit(inp, oup, 2, norm_factory(k, i - 1))]
            units += [ShuffleUnit(oup, oup, 1, norm_factory(k, i)) for _ in range(n - 1)]
            setattr(self, name, ResizableStage(units, resize(), resize_at=1))
            inp = oup
        self.conv5 = conv_norm_act(inp, widths[-1], 1, 1, norm_factory(k, num_stages - 1), _relu)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        self.num_features = widths[-1]
        init_weights(self)


def _shufflenet(width: str, **kwargs) -> ResizableShuffleNetV2:
    kwargs.setdefault("stages_repeats", REPEATS)
    kwargs.setdefault("stages_out_channels", WIDTHS[width])
    return ResizableShuffleNetV2(**kwargs)


# ---------------------------------------------------------------------------- registered builders
@register_model
def shufflenet_v2_x0_5(**kwargs) -> ResizableShuffleNetV2:
    """ShuffleNetV2 0.5x (torchvision layout), 3 resizable stages; 40.5 M MACs at 224."""
    return _shufflenet("x0_5", **kwargs)


@register_model
def shufflenet_v2_x1_0(**kwargs) -> ResizableShuffleNetV2:
    """ShuffleNetV2 1.0x (torchvision layout), 3 resizable stages; 145 M MACs at 224."""
    return _shufflenet("x1_0", **kwargs)


@register_model
def shufflenet_v2_x1_5(**kwargs) -> ResizableShuffleNetV2:
    """ShuffleNetV2 1.5x (torchvision layout), the paper's RS-ShuffleNetV2; 296 M MACs at 224."""
    return _shufflenet("x1_5", **kwargs)


@register_model
def shufflenet_v2_x2_0(**kwargs) -> ResizableShuffleNetV2:
    """ShuffleNetV2 2.0x (torchvision layout), 3 resizable stages; 583 M MACs at 224."""
    return _shufflenet("x2_0", **kwargs)


@register_model
def shufflenet_v2_x1_0_cifar(**kwargs) -> ResizableShuffleNetV2:
    """ShuffleNetV2 1.0x for 28-32 pixel images (stride-1 conv1, no max-pool), 3 resizable stages."""
    kwargs.setdefault("stem", "cifar")
    return _shufflenet("x1_0", **kwargs)


# ---------------------------------------------------------------------------- torchvision conversion
@register_converter("ShuffleNetV2")
def _from_tv_shufflenet_v2(tv: nn.Module, factors: Sequence[float]) -> ResizableShuffleNetV2:
    stages = [tv.stage2, tv.stage3, tv.stage4]
    # A unit's output has twice the channels of its branch2 projection.
    widths = [tv.conv1[0].out_channels] + [2 * s[0].branch2[5].out_channels for s in stages] + [tv.conv5[0].out_channels]
    return ResizableShuffleNetV2(
        [len(s) for s in stages], widths, factors=factors, num_classes=tv.fc.out_features,
        in_chans=tv.conv1[0].in_channels,
    )
