"""RS-MobileNetV2: torchvision's MobileNetV2 (same module and parameter names), resizable at 5 stages.

Stages. torchvision keeps the network in one flat ``features`` (``features.0`` .. ``features.18``)
followed by ``classifier``; the stages are runs of those blocks, and a new stage starts at every
strided inverted-residual block. With the default setting, at a 224 input:

============  =========================================  ======  ==============================
stage         blocks                                     size    resize (``features.resizeN``)
============  =========================================  ======  ==============================
stem          ``features.0`` (3x3/2 conv)                112     -
1             ``features.1``                             112     before ``features.1``
2             ``features.2`` (stride 2), ``.3``          56      after ``features.2``
3             ``features.4`` (stride 2), ``.5``-``.6``   28      after ``features.4``
4             ``features.7`` (stride 2), ``.8``-``.13``  14      after ``features.7``
5             ``features.14`` (stride 2), ``.15``-``.18``  7     after ``features.14``
============  =========================================  ======  ==============================

The last 1x1 convolution (``features.18``) belongs to stage 5, so :meth:`forward_features` returns
torchvision's ``features`` output (1280 channels at width 1.0). BN keys follow DESIGN.md: the stem
BN is plain; a strided first block runs at (and its BNs follow) the previous stage's factor.

The small-input variant (``stem="cifar"``) only drops the stem's stride: a 32x32 image then runs
its stages at 32, 16, 8, 4, 2.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
from torch import nn

from ..layers import Resize2d
from ..net import ResizableNet
from ..registry import register_converter, register_model
from ._common import (NormFactory, NormLayer, attach_mobile_features, check_counts, check_mobile_args,
                      conv_norm_act, make_divisible, mobile_layout)

__all__ = ["ResizableMobileNetV2", "InvertedResidual", "MOBILENET_FACTORS"]

# Appendix A.1 of the paper: the 5-stage MobileNets use three factors (3^5 = 243 configurations).
MOBILENET_FACTORS = (0.5, 0.7, 1.0)

# (expansion t, channels c, repeats n, first stride s), as in the MobileNetV2 paper and torchvision
DEFAULT_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _relu6() -> nn.Module:
    # In place, as in torchvision: it always follows a BN whose output nothing else reads.
    return nn.ReLU6(inplace=True)


class InvertedResidual(nn.Module):
    """1x1 expansion -> 3x3 depthwise -> linear 1x1 projection, residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: float, norm_layer: NormLayer) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"inverted residual stride must be 1 or 2, got {stride}")
        hidden = int(round(inp * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(inp, hidden, 1, 1, norm_layer, _relu6))
        layers += [
            conv_norm_act(hidden, hidden, 3, stride, norm_layer, _relu6, groups=hidden),
            nn.Conv2d(hidden, oup, 1, bias=False),
            norm_layer(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.use_res_connect:
            out += x  # into the block's own BN output; x (the stage input, maybe shared) stays untouched
        return out


class ResizableMobileNetV2(ResizableNet):
    """MobileNetV2 whose every stage is resized by its factor; names follow torchvision.

    Args:
        width_mult: channel multiplier (torchvision's ``width_mult``).
        inverted_residual_setting: rows ``(t, c, n, s)``; default: the paper's.
        round_nearest: channels are rounded to multiples of this (1 turns rounding off).
        factors: scaling factor list L.
        num_classes: classifier outputs.
        in_chans: input channels.
        stem: ``"imagenet"`` (3x3/2 stem conv) or ``"cifar"`` (3x3/1, for 28-32 pixel images).
        stem_channels: output channels of the stem conv (default ``32 * width_mult``, rounded).
        last_channel: channels of the final 1x1 conv (default ``1280 * max(1, width_mult)``, rounded).
        dropout: dropout before the classifier.
        scale_bn: one BN per factor (True) or one shared BN (the paper's ablation).
        norm_layer: ``(num_scales, stage) -> norm_layer(num_features)``; overrides ``scale_bn``.
        resize_layer: builds the stage resize module (default bilinear :class:`Resize2d`).
        resize_antialias: the default resize low-pass filters when it shrinks a map (``antialias=True``).
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        inverted_residual_setting: Optional[Sequence[Sequence[float]]] = None,
        round_nearest: int = 8,
        *,
        factors: Sequence[float] = MOBILENET_FACTORS,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        stem_channels: Optional[int] = None,
        last_channel: Optional[int] = None,
        dropout: float = 0.2,
        scale_bn: bool = True,
        norm_layer: Optional[NormFactory] = None,
        resize_layer: Callable[[], nn.Module] = Resize2d,
        resize_antialias: bool = False,
    ) -> None:
        check_counts(num_classes=num_classes, in_chans=in_chans, stem_channels=stem_channels,
                     last_channel=last_channel)
        stem_stride = check_mobile_args(width_mult, stem, dropout)
        if round_nearest < 1:
            raise ValueError(f"round_nearest must be >= 1, got {round_nearest}")
        setting = [tuple(row) for row in (inverted_residual_setting or DEFAULT_SETTING)]
        if not setting or any(len(row) != 4 for row in setting):
            raise ValueError(f"inverted_residual_setting needs rows (t, c, n, s), got {inverted_residual_setting}")
        if any(int(n) < 1 or int(s) not in (1, 2) for _, _, n, s in setting):
            raise ValueError(f"every row needs n >= 1 and s in (1, 2), got {setting}")

        width = stem_channels or make_divisible(32 * width_mult, round_nearest)
        last = last_channel or make_divisible(1280 * max(1.0, width_mult), round_nearest)

        # (stride, builder) for every block after the stem, in forward order
        blocks = []
        inp = width
        for t, c, n, s in setting:
            oup = make_divisible(c * width_mult, round_nearest)
            for i in range(int(n)):
                stride = int(s) if i == 0 else 1
                blocks.append((stride, lambda norm, a=inp, b=oup, st=stride, e=t: InvertedResidual(a, b, st, e, norm)))
                inp = oup
        blocks.append((1, lambda norm, a=inp: conv_norm_act(a, last, 1, 1, norm, _relu6)))

        super().__init__(factors, in_chans=in_chans, num_classes=num_classes, **mobile_layout(blocks, stem_stride))
        attach_mobile_features(self, blocks, stem_channels=width, stem_stride=stem_stride, activation=_relu6,
                               head_channels=last, dropout=dropout, norm_layer=norm_layer, scale_bn=scale_bn,
                               resize_layer=resize_layer, resize_antialias=resize_antialias)
        self.last_channel = last


# ---------------------------------------------------------------------------- registered builders
@register_model
def mobilenet_v2(**kwargs) -> ResizableMobileNetV2:
    """MobileNetV2 (torchvision layout), 5 resizable stages; 300.8 M MACs at 224, width 1.0."""
    return ResizableMobileNetV2(**kwargs)


@register_model
def mobilenet_v2_cifar(**kwargs) -> ResizableMobileNetV2:
    """MobileNetV2 for 28-32 pixel images (stride-1 stem), 5 resizable stages."""
    kwargs.setdefault("stem", "cifar")
    return ResizableMobileNetV2(**kwargs)


# ---------------------------------------------------------------------------- torchvision conversion
@register_converter("MobileNetV2")
def _from_tv_mobilenet_v2(tv: nn.Module, factors: Sequence[float]) -> ResizableMobileNetV2:
    # Read the architecture off the modules, so any width multiplier or custom setting converts.
    stem_conv = tv.features[0][0]
    setting = []
    inp = stem_conv.out_channels
    for block in list(tv.features)[1:-1]:
        hidden = block.conv[0][0].out_channels
        oup = block.out_channels
        depthwise = block.conv[-3][0]
        setting.append((hidden / inp, oup, 1, depthwise.stride[0]))
        inp = oup
    return ResizableMobileNetV2(
        1.0, setting, round_nearest=1, factors=factors, num_classes=tv.classifier[-1].out_features,
        in_chans=stem_conv.in_channels, stem="imagenet" if stem_conv.stride[0] == 2 else "cifar",
        stem_channels=stem_conv.out_channels, last_channel=tv.features[-1][0].out_channels,
        dropout=tv.classifier[0].p,
    )
