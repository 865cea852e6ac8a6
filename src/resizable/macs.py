"""Cost of a sub-network: multiply-accumulates (MACs) and parameters, per stage.

Conventions (the paper's and torchvision's "GFLOPS"): a convolution costs
``out_elements * in_channels / groups * kh * kw`` MACs, a linear layer ``in * out`` per row; BN
(foldable into the convolution), activations, pooling and residual additions are not counted.
The stage resize is counted on its own line: bilinear interpolation reads 4 neighbours per
output value, so it costs 4 MACs per output element (bicubic 16, nearest 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from .layers import FixedResize2d, Resize2d, ScaleBatchNorm2d
from .net import Config, ResizableNet, SizeLike, to_size2d

__all__ = ["MacsReport", "count_macs", "count_params", "macs_table", "INTERP_MACS_PER_OUTPUT", "count_flops",
           "FlopsReport"]

INTERP_MACS_PER_OUTPUT = {"bilinear": 4, "bicubic": 16, "nearest": 0, "area": 1}


@dataclass(frozen=True)
class MacsReport:
    """MACs and parameters of one sub-network at one input size."""

    config: Config
    input_size: Tuple[int, int]
    macs: int  # convolutions + linear layers (what the paper calls FLOPs)
    interp_macs: int  # the stage resizes, kept apart
    params: int  # parameters of the static sub-network (one BN per layer)
    stages: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # part -> (macs, interp_macs)

    @property
    def total_macs(self) -> int:
        return self.macs + self.interp_macs

    @property
    def mflops(self) -> float:
        """MACs of convolutions and linear layers, in millions (the paper's MFLOPs)."""
        return self.macs / 1e6

    def __str__(self) -> str:
        lines = [f"config {self.config} at {self.input_size[0]}x{self.input_size[1]}",
                 f"{'part':<10}{'MMACs':>12}{'interp MMACs':>14}"]
        for part, (macs, interp) in self.stages.items():
            lines.append(f"{part:<10}{macs / 1e6:>12.3f}{interp / 1e6:>14.4f}")
        lines.append(f"{'total':<10}{self.macs / 1e6:>12.3f}{self.interp_macs / 1e6:>14.4f}")
        lines.append(f"interpolation: {self.interp_macs / 1e6:.4f} MMACs (not in the total above)")
        lines.append(f"params: {self.params / 1e6:.3f} M")
        return "\n".join(lines)


class _Counter:
    def __init__(self) -> None:
        self.macs = 0
        self.interp = 0

    def conv(self, m: nn.Conv2d, args, out: torch.Tensor) -> None:
        per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        self.macs += out.numel() // out.shape[0] * per_out

    def linear(self, m: nn.Linear, args, out: torch.Tensor) -> None:
        self.macs += out.numel() // out.shape[0] * m.in_features

    def resize(self, m: nn.Module, args, out: torch.Tensor) -> None:
        if out is not args[0]:  # a skipped resize returns its input unchanged and costs nothing
            self.interp += out.numel() // out.shape[0] * INTERP_MACS_PER_OUTPUT.get(m.mode, 4)


def count_params(model: nn.Module) -> int:
    """Parameters of the static sub-network: shared weights plus the active branch of each BN bank."""
    total = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, ScaleBatchNorm2d):
            total -= sum(p.numel() for i, bn in enumerate(m) if i != m.active for p in bn.parameters())
    return total


@torch.no_grad()
def count_macs(model: ResizableNet, config: Sequence[float] | None, input_size: SizeLike) -> MacsReport:
    """MACs and parameters of the sub-network ``config`` at ``input_size``, with a per-stage breakdown.

    Args:
        model: a ResizableNet (its configuration and mode are restored afterwards).
        config: the configuration; ``None`` means the active one.
        input_size: ``H`` or ``(H, W)``.
    """
    if not isinstance(model, ResizableNet):
        raise ValueError(f"count_flops needs a ResizableNet, got {type(model).__name__}")
    config = model.config if config is None else model.check_config(config)
    h, w = to_size2d(input_size)
    counter = _Counter()
    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(counter.conv))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(counter.linear))
        elif isinstance(m, (Resize2d, FixedResize2d)):
            handles.append(m.register_forward_hook(counter.resize))
    was_training = model.training
    stages: Dict[str, Tuple[int, int]] = {}

    def mark(part: str, before: Tuple[int, int]) -> None:
        stages[part] = (counter.macs - before[0], counter.interp - before[1])

    try:
        model.eval()
        p = next(model.parameters())
        x = torch.zeros(1, model.in_chans, h, w, device=p.device, dtype=p.dtype)
        with model.using(config):
            sizes = model.stage_sizes((h, w))
            start = (counter.macs, counter.interp)
            x = model.forward_stem(x)
            mark("stem", start)
            for i, size in enumerate(sizes):
                start = (counter.macs, counter.interp)
                x = model.forward_stage(i, x, size)
                mark(f"stage{i + 1}", start)
            start = (counter.macs, counter.interp)
            model.forward_head(x)
            mark("head", start)
            params = count_params(model)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return MacsReport(config, (h, w), counter.macs, counter.interp, params, stages)


def macs_table(model: ResizableNet, input_size: SizeLike, configs: Sequence[Sequence[float]] | None = None) -> List[MacsReport]:
    """:func:`count_flops` for many configurations (default: all of them)."""
    return [count_macs(model, c, input_size) for c in (configs or model.configs())]


# The paper's word: it calls multiply-accumulates "FLOPs". Kept so that code written against it runs.
count_flops = count_macs
FlopsReport = MacsReport
