"""RS-MobileNetV1: the MobileNet of Howard et al. (2017), resizable at 5 stages.

torchvision has no MobileNetV1, so the names follow its other MobileNets: a flat ``features``
(``features.0`` the stem conv, ``features.1`` .. ``features.13`` the depthwise-separable blocks,
each with a ``dw`` and a ``pw`` conv-BN-ReLU) and a ``classifier`` (dropout, linear).
A stage starts at every strided block; at a 224 input:

======  ========================================  ====  ===============================
stage   blocks                                    size  resize (``features.resizeN``)
======  ========================================  ====  ===============================
stem    ``features.0`` (3x3/2 conv)               112   -
1       ``features.1``                            112   before ``features.1``
2       ``features.2`` (stride 2), ``.3``         56    after ``features.2``
3       ``features.4`` (stride 2), ``.5``         28    after ``features.4``
4       ``features.6`` (stride 2), ``.7``-``.11``  14   after ``features.6``
5       ``features.12`` (stride 2), ``.13``       7     after ``features.12``
======  ========================================  ====  ===============================

One more stage than ResNet, hence the paper's three-factor default list (0.5, 0.7, 1.0)
(Appendix A.1): 3^5 = 243 configurations. Width 1.0 at 224 costs 569 M MACs.
The small-input variant (``stem="cifar"``) only drops the stem's stride.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ..layers import Resize2d
from ..net import ResizableNet
from ..registry import register_model
from ._common import (NormFactory, NormLayer, attach_mobile_features, check_counts, check_mobile_args,
                      conv_norm_act, make_divisible, mobile_layout)
from .mobilenet_v2 import MOBILENET_FACTORS

__all__ = ["ResizableMobileNetV1", "DepthwiseSeparable"]

# (output channels, stride) of the 13 depthwise-separable blocks, at width 1.0
DEFAULT_BLOCKS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv-BN-ReLU (``dw``, carries the stride) then 1x1 pointwise conv-BN-ReLU (``pw``)."""

    def __init__(self, inp: int, oup: int, stride: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.dw = conv_norm_act(inp, inp, 3, stride, norm_layer, _relu, groups=inp)
        self.pw = conv_norm_act(inp, oup, 1, 1, norm_layer, _relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class ResizableMobileNetV1(ResizableNet):
    """MobileNetV1 whose every stage is resized by its factor.

    Args:
        width_mult: channel multiplier (the paper's alpha; 0.25, 0.5, 0.75, 1.0 are the usual ones).
        factors: scaling factor list L (default ``(0.5, 0.7, 1.0)``).
        num_classes: classifier outputs.
        in_chans: input channels.
        stem: ``"imagenet"`` (3x3/2 stem conv) or ``"cifar"`` (3x3/1, for 28-32 pixel images).
        blocks: ``(channels, stride)`` of each depthwise-separable block at width 1.0.
        stem_channels: stem conv channels at width 1.0.
        dropout: dropout before the classifier.
        scale_bn: one BN per factor (True) or one shared BN (the paper's ablation).
        norm_layer: ``(num_scales, stage) -> norm_layer(num_features)``; overrides ``scale_bn``.
        resize_layer: builds the stage resize module (default bilinear :class:`Resize2d`).
        resize_antialias: the default resize low-pass filters when it shrinks a map (``antialias=True``).
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        *,
        factors: Sequence[float] = MOBILENET_FACTORS,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        blocks: Sequence[Sequence[int]] = DEFAULT_BLOCKS,
        stem_channels: int = 32,
        dropout: float = 0.0,
        scale_bn: bool = True,
        norm_layer: Optional[NormFactory] = None,
        resize_layer: Callable[[], nn.Module] = Resize2d,
        resize_antialias: bool = False,
    ) -> None:
        check_counts(num_classes=num_classes, in_chans=in_chans, stem_channels=stem_channels)
        stem_stride = check_mobile_args(width_mult, stem, dropout)
        spec = [(int(c), int(s)) for c, s in blocks]
        if not spec or any(c < 1 or s not in (1, 2) for c, s in spec):
            raise ValueError(f"blocks need (channels >= 1, stride 1 or 2) rows, got {tuple(blocks)}")

        width = make_divisible(stem_channels * width_mult)
        chain = []
        inp = width
        for c, s in spec:
            oup = make_divisible(c * width_mult)
            chain.append((s, lambda norm, a=inp, b=oup, st=s: DepthwiseSeparable(a, b, st, norm)))
            inp = oup

        super().__init__(factors, in_chans=in_chans, num_classes=num_classes, **mobile_layout(chain, stem_stride))
        attach_mobile_features(self, chain, stem_channels=width, stem_stride=stem_stride, activation=_relu,
                               head_channels=inp, dropout=dropout, norm_layer=norm_layer, scale_bn=scale_bn,
                               resize_layer=resize_layer, resize_antialias=resize_antialias)


# ---------------------------------------------------------------------------- registered builders
@register_model
def mobilenet_v1(**kwargs) -> ResizableMobileNetV1:
    """MobileNetV1 (pass ``width_mult`` 0.25-1.0), 5 resizable stages; 569 M MACs at 224, width 1.0."""
    return ResizableMobileNetV1(**kwargs)


@register_model
def mobilenet_v1_cifar(**kwargs) -> ResizableMobileNetV1:
    """MobileNetV1 for 28-32 pixel images (stride-1 stem), 5 resizable stages."""
    kwargs.setdefault("stem", "cifar")
    return ResizableMobileNetV1(**kwargs)
