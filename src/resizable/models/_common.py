"""Pieces shared by the mobile families: channel rounding, conv-norm-activation, the staged ``features``."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..layers import ResizableStage, Size2d
from ..net import ResizableNet

__all__ = ["make_divisible", "conv_norm_act", "split_stages", "StagedFeatures", "build_staged_features",
           "FeaturesNet", "init_weights"]

NormLayer = Callable[[int], nn.Module]
NormFactory = Callable[[int, int], NormLayer]  # (num_scales, stage) -> norm_layer(num_features)


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


class StagedFeatures(nn.Module):
    """A flat ``features`` container (torchvision's MobileNets) with one resize inside each stage.

    The blocks keep torchvision's names "0", "1", ...; the resize of stage ``i`` (1-based) sits
    among them as "resize{i}", right before the stage's first stride-1 block, so parameter names
    equal the plain network's. ``forward`` without sizes skips every resize (the baseline).

    Args:
        stem: the blocks before the first stage.
        stages: for each stage, its blocks and the position of its resize among them.
        resize_layer: builds one resize module (called once per stage).
    """

    def __init__(
        self,
        stem: Sequence[nn.Module],
        stages: Sequence[Tuple[Sequence[nn.Module], int]],
        resize_layer: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        index = 0
        stem_keys = []
        for block in stem:
            self.add_module(str(index), block)
            stem_keys.append(str(index))
            index += 1
        stage_keys = []
        resize_at = []
        for i, (blocks, at) in enumerate(stages):
            blocks = list(blocks)
            if not 0 <= at <= len(blocks):
                raise ValueError(f"stage {i + 1}: resize position must be in [0, {len(blocks)}], got {at}")
            keys = []
            for j in range(len(blocks) + 1):
                if j == at:
                    self.add_module(f"resize{i + 1}", resize_layer())
                    keys.append(f"resize{i + 1}")
                if j < len(blocks):
                    self.add_module(str(index), blocks[j])
                    keys.append(str(index))
                    index += 1
            stage_keys.append(tuple(keys))
            resize_at.append(at)
        self.stem_keys = tuple(stem_keys)
        self.stage_keys = tuple(stage_keys)
        self.resize_at = tuple(resize_at)

    @property
    def num_stages(self) -> int:
        return len(self.stage_keys)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        for key in self.stem_keys:
            x = self._modules[key](x)
        return x

    def forward_stage(self, index: int, x: torch.Tensor, size: Optional[Size2d] = None) -> torch.Tensor:
        """Run stage ``index`` (0-based); its resize goes to ``size`` (``None``: no resize)."""
        for key in self.stage_keys[index]:
            if key.startswith("resize"):
                if size is not None:
                    x = self._modules[key](x, size)
            else:
                x = self._modules[key](x)
        return x

    def forward(self, x: torch.Tensor, sizes: Optional[Sequence[Size2d]] = None) -> torch.Tensor:
        x = self.forward_stem(x)
        for i in range(self.num_stages):
            x = self.forward_stage(i, x, None if sizes is None else sizes[i])
        return x

    def stage_view(self, index: int) -> ResizableStage:
        """Stage ``index`` as a :class:`ResizableStage` sharing this container's modules (not a copy)."""
        keys = self.stage_keys[index]
        blocks = [self._modules[k] for k in keys if not k.startswith("resize")]
        return ResizableStage(blocks, self._modules[f"resize{index + 1}"], self.resize_at[index])

    def static_copy(self) -> nn.Sequential:
        """The same children, in forward order, in a plain ``nn.Sequential`` (for static export)."""
        return nn.Sequential(OrderedDict(self._modules))


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
    stages = []
    for i, (start, stop) in enumerate(split_stages(strides)):
        at = 1 if strides[start] > 1 else 0
        built = [blocks[j][1](norm_for_stage(i - 1 if j - start < at else i)) for j in range(start, stop)]
        stages.append((built, at))
    return StagedFeatures(stem, stages, resize_layer)


class FeaturesNet(ResizableNet):
    """A ResizableNet whose stem and stages live in one :class:`StagedFeatures` container ``features``
    (torchvision's layout for the mobile families); the stage hooks go through it."""

    features: StagedFeatures

    def stage(self, index: int) -> ResizableStage:
        """Stage ``index`` (0-based), as a view sharing the model's modules."""
        if not 0 <= index < self.num_stages:
            raise ValueError(f"stage index must be in [0, {self.num_stages - 1}], got {index}")
        return self.features.stage_view(index)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.features.forward_stem(x)

    def forward_stage(self, index: int, x: torch.Tensor, size: Size2d) -> torch.Tensor:
        return self.features.forward_stage(index, x, size)

    def static_layout(self) -> "OrderedDict[str, nn.Module]":
        layout = OrderedDict(features=self.features.static_copy())
        layout.update((name, getattr(self, name)) for name in self.head_names)
        return layout


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
