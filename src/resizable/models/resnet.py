"""RS-ResNet: ImageNet ResNets (torchvision names) and CIFAR-style ResNets, resizable at every stage."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Type, Union

import torch
from torch import nn

from ..layers import Resize2d, resize_factory, ResizableStage, plain_norm, scale_norm
from ..net import DEFAULT_FACTORS, ResizableNet
from ..registry import register_converter, register_model
from ._common import check_counts, init_weights

__all__ = ["ResizableResNet", "BasicBlock", "Bottleneck"]

NormLayer = Callable[[int], nn.Module]
NormFactory = Callable[[int, int], NormLayer]  # (num_scales, stage) -> norm_layer(num_features)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34, CIFAR ResNets)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        norm_layer: NormLayer,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and width_per_group=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity  # into the block's own BN output, never into its input x
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, as in torchvision's ResNet v1.5) -> 1x1 with a residual connection."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        norm_layer: NormLayer,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # into the block's own BN output, never into its input x
        return self.relu(out)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResizableResNet(ResizableNet):
    """A ResNet whose every stage is resized by its factor; module names follow torchvision.

    Args:
        block: ``"basic"`` or ``"bottleneck"``.
        layers: blocks per stage (one entry per stage).
        factors: scaling factor list L.
        num_classes: classifier outputs.
        in_chans: input channels.
        widths: planes of each stage (before the block expansion).
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool) or ``"cifar"`` (3x3/1 conv, no pool).
        stem_width: output channels of the stem convolution (default: ``widths[0]``).
        stem_stride: stride of the ``"cifar"`` stem's 3x3 convolution (1 or 2; 2 quarters the cost
            of every stage, e.g. for 28 px Fashion-MNIST). The ``"imagenet"`` stem is fixed at 4.
        stem_pool: with ``stem_stride=2``, keep the convolution at stride 1 and reduce with a 2x2
            max-pool after it (the convolution sees every pixel).
        strides: stride of each stage's first block (default 1, then 2 for every later stage). A
            stage at stride 1 keeps the previous stage's resolution, e.g. ``(1, 2, 1)`` after a
            stride-2 stem gives 14/7/7 px stages for 28 px inputs, where every factor of
            (0.45, 0.65, 0.85, 1) gives each stage a resolution of its own.
        groups, width_per_group: ResNeXt / Wide-ResNet options of bottleneck blocks.
        scale_bn: one BN per factor (True) or one shared BN (the paper's ablation).
        norm_layer: ``(num_scales, stage) -> norm_layer(num_features)``; overrides ``scale_bn``.
        resize_layer: builds the stage resize module (default bilinear :class:`Resize2d`).
        resize_antialias: the default resize low-pass filters when it shrinks a map (``antialias=True``).
        drop_rate: dropout before the classifier.
        zero_init_residual: zero the last BN of each residual branch.
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        *,
        factors: Sequence[float] = DEFAULT_FACTORS,
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        stem_width: Optional[int] = None,
        stem_stride: int = 1,
        stem_pool: bool = False,
        strides: Optional[Sequence[int]] = None,
        groups: int = 1,
        width_per_group: int = 64,
        scale_bn: bool = True,
        norm_layer: Optional[NormFactory] = None,
        resize_layer: Callable[[], nn.Module] = Resize2d,
        resize_antialias: bool = False,
        drop_rate: float = 0.0,
        zero_init_residual: bool = False,
    ) -> None:
        check_counts(num_classes=num_classes, in_chans=in_chans, layers=list(layers), widths=list(widths),
                     stem_width=stem_width)
        if block not in _BLOCKS:
            raise ValueError(f"unknown block {block!r}; accepted: {sorted(_BLOCKS)}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"unknown stem {stem!r}; accepted: 'imagenet', 'cifar'")
        if len(layers) != len(widths) or not layers:
            raise ValueError(f"layers {tuple(layers)} and widths {tuple(widths)} need one entry per stage")
        if any(n < 1 for n in layers):
            raise ValueError(f"every stage needs at least one block, got layers={tuple(layers)}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        if stem_pool and stem_stride != 2:
            raise ValueError(f"stem_pool needs stem_stride=2, got stem_stride={stem_stride}")
        if stem == "imagenet" and stem_stride != 1:
            raise ValueError("stem_stride applies to the 'cifar' stem; the 'imagenet' stem always reduces by 4")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        num_stages = len(layers)
        if strides is None:
            strides = [1] + [2] * (num_stages - 1)
        strides = [int(v) for v in strides]
        if len(strides) != num_stages or any(v not in (1, 2) for v in strides):
            raise ValueError(f"strides needs one stride per stage ({num_stages}), each 1 or 2, got {tuple(strides)}")
        head = ["avgpool", "flatten"] + (["drop"] if drop_rate > 0 else []) + ["fc"]
        if stem == "imagenet":
            stem_names, stem_strides = ["conv1", "bn1", "relu", "maxpool"], [2, 2]
        else:
            stem_names, stem_strides = ["conv1", "bn1", "relu"], [stem_stride] if stem_stride > 1 else []
            if stem_pool:
                stem_names.append("maxpool")
        super().__init__(
            factors,
            stem_strides=stem_strides,
            stage_strides=strides,
            stem_names=stem_names,
            stage_names=[f"layer{i + 1}" for i in range(num_stages)],
            head_names=head,
            in_chans=in_chans,
            num_classes=num_classes,
        )
        norm_factory = norm_layer or (scale_norm if scale_bn else plain_norm)
        k = len(self.factors)
        block_cls: Type[Union[BasicBlock, Bottleneck]] = _BLOCKS[block]
        self.block = block
        self.groups = groups
        self.base_width = width_per_group
        self.inplanes = stem_width or widths[0]

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_chans, self.inplanes, stride=1 if stem_pool else stem_stride)
        self.bn1 = norm_factory(k, -1)(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem_pool:
            self.maxpool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        resize = resize_factory(resize_layer, resize_antialias)
        for i, (planes, n, stride) in enumerate(zip(widths, layers, strides)):
            # A strided first block runs at the previous stage's scale, so its BNs follow that
            # stage's factor; the resize comes right after it.
            resize_at = 1 if stride > 1 else 0
            blocks = []
            for j in range(n):
                key = i - 1 if j < resize_at else i
                blocks.append(self._make_block(block_cls, planes, stride if j == 0 else 1, norm_factory(k, key)))
            setattr(self, f"layer{i + 1}", ResizableStage(blocks, resize(), resize_at))

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        if drop_rate > 0:
            self.drop = nn.Dropout(drop_rate)
        self.num_features = self.inplanes
        self.fc = nn.Linear(self.inplanes, num_classes)
        self._init_weights(zero_init_residual)

    def _make_block(self, block_cls, planes: int, stride: int, norm: NormLayer) -> nn.Module:
        downsample = None
        if stride != 1 or self.inplanes != planes * block_cls.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block_cls.expansion, stride),
                                       norm(planes * block_cls.expansion))
        out = block_cls(self.inplanes, planes, stride, norm, downsample, self.groups, self.base_width)
        self.inplanes = planes * block_cls.expansion
        return out

    def _init_weights(self, zero_init_residual: bool) -> None:
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else getattr(m, "bn2", None)
                if isinstance(m, (BasicBlock, Bottleneck)) and last is not None:
                    for bn in last.modules():
                        if isinstance(bn, nn.BatchNorm2d):
                            nn.init.zeros_(bn.weight)


def _cifar(depth: int, **kwargs) -> ResizableResNet:
    n = (depth - 2) // 6
    kwargs.setdefault("widths", (16, 32, 64))
    return ResizableResNet("basic", [n] * 3, stem="cifar", **kwargs)


# ---------------------------------------------------------------------------- registered builders
@register_model
def resnet14(**kwargs) -> ResizableResNet:
    """CIFAR-style ResNet-14: 3 stages of 2 basic blocks, widths 16/32/64 (the demo's network, with
    ``stem_stride=2, stem_pool=True`` for 28 px inputs). Two blocks per stage keep every stage's
    factor meaningful: with one block, a strided stage's only block would run before its resize."""
    return _cifar(14, **kwargs)


@register_model
def resnet20(**kwargs) -> ResizableResNet:
    """CIFAR-style ResNet-20: 3 stages of 3 basic blocks, widths 16/32/64."""
    return _cifar(20, **kwargs)


@register_model
def resnet32(**kwargs) -> ResizableResNet:
    """CIFAR-style ResNet-32: 3 stages of 5 basic blocks."""
    return _cifar(32, **kwargs)


@register_model
def resnet44(**kwargs) -> ResizableResNet:
    """CIFAR-style ResNet-44: 3 stages of 7 basic blocks."""
    return _cifar(44, **kwargs)


@register_model
def resnet56(**kwargs) -> ResizableResNet:
    """CIFAR-style ResNet-56: 3 stages of 9 basic blocks."""
    return _cifar(56, **kwargs)


@register_model
def resnet18(**kwargs) -> ResizableResNet:
    """ResNet-18 (torchvision layout), 4 resizable stages."""
    return ResizableResNet("basic", [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs) -> ResizableResNet:
    """ResNet-34 (torchvision layout), 4 resizable stages."""
    return ResizableResNet("basic", [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs) -> ResizableResNet:
    """ResNet-50 (torchvision layout, v1.5 strides), 4 resizable stages; 4.1 G MACs at 224."""
    return ResizableResNet("bottleneck", [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs) -> ResizableResNet:
    """ResNet-101 (torchvision layout), 4 resizable stages."""
    return ResizableResNet("bottleneck", [3, 4, 23, 3], **kwargs)


# ---------------------------------------------------------------------------- torchvision conversion
@register_converter("ResNet")
def _from_tv_resnet(tv: nn.Module, factors: Sequence[float]) -> ResizableResNet:
    first = tv.layer1[0]
    block = "bottleneck" if hasattr(first, "conv3") else "basic"
    layers = [len(getattr(tv, f"layer{i}")) for i in range(1, 5)]
    kwargs = {}
    if block == "bottleneck":
        kwargs["groups"] = first.conv2.groups
        kwargs["width_per_group"] = first.conv2.out_channels // first.conv2.groups * 64 // first.conv3.out_channels * 4
    return ResizableResNet(block, layers, factors=factors, num_classes=tv.fc.out_features,
                           in_chans=tv.conv1.in_channels, **kwargs)
