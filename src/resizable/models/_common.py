"""Pieces shared by the mobile families: channel rounding, conv-norm-activation, the staged ``features``."""
from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from torch import nn

from ..layers import ResizableStage, plain_norm, resize_factory, scale_norm

__all__ = ["check_counts", "make_divisible", "conv_norm_act", "split_stages", "StagedFeatures", "build_staged_features",
           "init_weights", "check_mobile_args", "mobile_layout", "attach_mobile_features"]

NormLayer = Callable[[int], nn.Module]
NormFactory = Callable[[int, int], NormLayer]  # (num_scales, stage) -> norm_layer(num_features)


def check_counts(**counts: Any) -> None:
    """Raise ``ValueError`` unless every argument is a positive integer (or a sequence of them), naming it:
    ``check_counts(num_classes=10, widths=[16, 0])`` -> ``widths must be positive integers, got (16, 0)``."""
    for name, value in counts.items():
        if value is None:
            continue
        items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items):
            what = "positive integers" if isinstance(value, (list, tuple)) else "a positive integer"
            raise ValueError(f"{name} must be {what}, got {value!r}")


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never losing more than 10%.

    The rule of the TensorFlow MobileNet code, which torchvision follows too.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    norm_layer: NormLayer,
    activation: Optional[Callable[[], nn.Module]] = None,
    groups: int = 1,
) -> nn.Sequential:
    """``Sequential(conv, norm[, activation])`` named "0", "1", "2" (torchvision's ``Conv2dNormActivation``)."""
    layers: List[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        norm_layer(out_channels),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def split_stages(strides: Sequence[int]) -> List[Tuple[int, int]]:
    """Cut a chain of blocks into stages: a stage starts at the first block and at every strided block.

    Returns ``[(start, stop), ...]`` block index ranges, one per stage.
    """
    starts = [0] + [i for i, s in enumerate(strides) if i > 0 and s > 1]
    return [(a, b) for a, b in zip(starts, starts[1:] + [len(strides)])]


class StagedFeatures(NamedTuple):
    """What :func:`build_staged_features` returns: a flat ``features`` container (torchvision's
    MobileNets) and, for :meth:`ResizableNet.attach_stages`, its stem and one view per stage."""

    features: nn.Sequential  # every block and resize, in forward order, under torchvision's names
    stem: List[nn.Module]
    stages: List[ResizableStage]  # views that share the modules of ``features``


def build_staged_features(
    stem: Sequence[nn.Module],
    blocks: Sequence[Tuple[int, Callable[[NormLayer], nn.Module]]],
    norm_for_stage: Callable[[int], NormLayer],
    resize_layer: Callable[[], nn.Module],
) -> StagedFeatures:
    """Group a chain of blocks into resizable stages and build them with the right BN keys.

    A strided first block of a stage runs at the previous stage's scale, so it is built with the
    previous stage's norm layer (``norm_for_stage(-1)`` before the first stage) and the resize
    follows it; every other block of stage ``i`` gets ``norm_for_stage(i)``.

    Args:
        stem: the blocks before the first stage (already built).
        blocks: ``(stride, make)`` in forward order; ``make(norm_layer)`` builds the block.
        norm_for_stage: stage index -> norm layer callable.
        resize_layer: builds one resize module.

    Stage ``i`` is ``split_stages(strides)[i]``; its stride before the resize point is the stride
    of its first block.
    """
    strides = [s for s, _ in blocks]
    features = nn.Sequential()
    for i, block in enumerate(stem):
        features.add_module(str(i), block)
    index = len(stem)
    views = []
    for i, (start, stop) in enumerate(split_stages(strides)):
        at = 1 if strides[start] > 1 else 0
        built = [blocks[j][1](norm_for_stage(i - 1 if j - start < at else i)) for j in range(start, stop)]
        resize = resize_layer()
        for j, block in enumerate(built):
            if j == at:
                features.add_module(f"resize{i + 1}", resize)
            features.add_module(str(index), block)
            index += 1
        if at == len(built):
            features.add_module(f"resize{i + 1}", resize)
        views.append(ResizableStage(built, resize, at))
    return StagedFeatures(features, list(stem), views)


def init_weights(model: nn.Module, linear_std: Optional[float] = None) -> None:
    """torchvision's initialisation: Kaiming-normal convolutions (fan-out, ReLU gain), BN weight 1
    and bias 0, and, with ``linear_std``, normal linear weights of that spread with zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)


def check_mobile_args(width_mult: float, stem: str, dropout: float) -> int:
    """Check the arguments the MobileNets share and return the stem's stride (2 for ``"imagenet"``, 1 for
    ``"cifar"``); raise ``ValueError`` naming the argument otherwise."""
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"unknown stem {stem!r}; accepted: 'imagenet', 'cifar'")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return 2 if stem == "imagenet" else 1


def mobile_layout(blocks: Sequence[Tuple[int, Callable[[NormLayer], nn.Module]]], stem_stride: int) -> dict:
    """The stride and naming keywords of :class:`ResizableNet` for a torchvision MobileNet layout: the stem
    conv is ``features.0``, the stages are runs of ``features.*`` cut at strided blocks, the head is
    ``avgpool``, ``flatten``, ``classifier``."""
    strides = [s for s, _ in blocks]
    stage_strides = [strides[start] for start, _ in split_stages(strides)]
    return {"stem_strides": [stem_stride] if stem_stride > 1 else [], "stage_strides": stage_strides,
            "stem_names": ["features"], "stage_names": [f"stage{i + 1}" for i in range(len(stage_strides))],
            "head_names": ["avgpool", "flatten", "classifier"]}


def attach_mobile_features(
    net: nn.Module,
    blocks: Sequence[Tuple[int, Callable[[NormLayer], nn.Module]]],
    *,
    stem_channels: int,
    stem_stride: int,
    activation: Callable[[], nn.Module],
    head_channels: int,
    dropout: float,
    norm_layer: Optional[NormFactory],
    scale_bn: bool,
    resize_layer: Callable[[], nn.Module],
    resize_antialias: bool,
) -> None:
    """Build a MobileNet's stem conv, its staged ``features`` and its pooled linear head on ``net`` (a
    :class:`ResizableNet` already initialised with :func:`mobile_layout`), then initialise the weights.

    Args:
        net: the network; its ``factors``, ``in_chans`` and ``num_classes`` are read.
        blocks: ``(stride, make)`` of every block after the stem, in forward order.
        stem_channels: output channels of the 3x3 stem conv.
        stem_stride: its stride.
        activation: the stem conv's activation.
        head_channels: the channels the classifier reads.
        dropout: dropout before the classifier.
        norm_layer: ``(num_scales, stage) -> norm_layer(num_features)``; overrides ``scale_bn``.
        scale_bn: one BN per factor (True) or one shared BN.
        resize_layer: builds the stage resize module.
        resize_antialias: the default resize low-pass filters when it shrinks a map.
    """
    norm_factory = norm_layer or (scale_norm if scale_bn else plain_norm)
    k = len(net.factors)
    stem_block = conv_norm_act(net.in_chans, stem_channels, 3, stem_stride, norm_factory(k, -1), activation)
    built = build_staged_features([stem_block], blocks, lambda stage: norm_factory(k, stage),
                                  resize_factory(resize_layer, resize_antialias))
    net.features = built.features
    net.attach_stages(built.stem, built.stages)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.flatten = nn.Flatten(1)
    net.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, net.num_classes))
    net.num_features = head_channels
    init_weights(net, linear_std=0.01)
