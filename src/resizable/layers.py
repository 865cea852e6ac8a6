"""The small modules a ResizableNet is built from: the stage resize, scale-aware BN, the stage."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

Size2d = Tuple[int, int]

__all__ = [
    "Resize2d",
    "FixedResize2d",
    "resize_factory",
    "ScaleBatchNorm2d",
    "ResizableStage",
    "scale_norm",
    "plain_norm",
]


class Resize2d(nn.Module):
    """Stage resize G: interpolates a feature map to the size the active configuration asks for.

    ``antialias=True`` (bilinear and bicubic only) low-pass filters when the map shrinks, as
    ``torchvision.transforms.v2.Resize`` does for images; growing is unchanged.
    """

    def __init__(self, mode: str = "bilinear", align_corners: Optional[bool] = False,
                 antialias: bool = False) -> None:
        super().__init__()
        if mode not in ("bilinear", "nearest", "bicubic", "area"):
            raise ValueError(f"unknown resize mode {mode!r}; accepted: bilinear, nearest, bicubic, area")
        if antialias and mode not in ("bilinear", "bicubic"):
            raise ValueError(f"antialias needs mode 'bilinear' or 'bicubic', got {mode!r}")
        self.mode = mode
        # align_corners is only meaningful for the linear modes; torch rejects it for the others.
        self.align_corners = align_corners if mode in ("bilinear", "bicubic") else None
        self.antialias = bool(antialias)

    def forward(self, x: torch.Tensor, size: Size2d) -> torch.Tensor:  # x: (B, C, H, W)
        if x.shape[-2] == size[0] and x.shape[-1] == size[1]:
            return x  # the baseline resolution: no op, no copy
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners, antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, align_corners={self.align_corners}" + (", antialias=True" if self.antialias else "")


class FixedResize2d(nn.Module):
    """A resize to one fixed size, as used by an exported static network."""

    def __init__(self, size: Size2d, mode: str = "bilinear", align_corners: Optional[bool] = False,
                 antialias: bool = False) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.mode = mode
        self.align_corners = align_corners
        self.antialias = bool(antialias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode=self.mode, align_corners=self.align_corners,
                             antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}" + (", antialias=True" if self.antialias else "")


def resize_factory(resize_layer: Callable[[], nn.Module], antialias: bool) -> Callable[[], nn.Module]:
    """The models' ``resize_layer`` with their ``resize_antialias`` switch applied (bilinear :class:`Resize2d`)."""
    if not antialias:
        return resize_layer
    if resize_layer is not Resize2d:
        raise ValueError("resize_antialias applies to the default resize layer; give a resize_layer that "
                         "antialiases instead")
    return lambda: Resize2d(antialias=True)


class ScaleBatchNorm2d(nn.ModuleList):
    """Scale-aware batch norm: one plain ``BatchNorm2d`` per scaling factor of the stage it follows.

    Only the active branch runs, so at inference it costs exactly one BatchNorm2d.
    ``stage`` says whose factor selects the branch (the model sets ``active`` from its config).
    """

    def __init__(self, num_features: int, num_scales: int, stage: int, **bn_kwargs) -> None:
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        super().__init__([nn.BatchNorm2d(num_features, **bn_kwargs) for _ in range(num_scales)])
        self.num_features = num_features
        self.stage = stage
        self.active = num_scales - 1  # the largest factor, i.e. the baseline network

    # In eval mode, the active configuration's (mean, var) from the statistics bank when one is attached
    # (set by ResizableNet.set_config, see resizable.bnbank); None: the branch's running averages.
    bank_entry: Optional[Tuple[torch.Tensor, torch.Tensor]] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self._modules[str(self.active)]
        entry = self.bank_entry if not bn.training else None
        if bn._forward_hooks or bn._forward_pre_hooks or bn._backward_hooks or bn._backward_pre_hooks:
            return bn(x) if entry is None else self._hooked_with(bn, x, entry)
        buffers = bn._buffers
        mean = buffers.get("running_mean")
        if not bn.training and mean is not None and x.dim() == 4:
            # inference: the normalisation itself, tensors read from the branch's dicts (not through
            # Module.__getattr__), so the branches cost no more than one BatchNorm2d call; at batch 1 a
            # nested module call per BN was a visible share of a small network on the CPU
            mean, var = entry if entry is not None else (mean, buffers["running_var"])
            params = bn._parameters
            return F.batch_norm(x, mean, var, params.get("weight"), params.get("bias"), False, 0.0, bn.eps)
        return bn.forward(x)

    @staticmethod
    def _hooked_with(bn: nn.BatchNorm2d, x: torch.Tensor, entry: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """``bn(x)`` (hooks included) normalising with ``entry``; the branch's own buffers are put back."""
        saved = bn._buffers["running_mean"], bn._buffers["running_var"]
        bn._buffers["running_mean"], bn._buffers["running_var"] = entry
        try:
            return bn(x)
        finally:
            bn._buffers["running_mean"], bn._buffers["running_var"] = saved

    def extra_repr(self) -> str:
        return f"stage={self.stage}, active={self.active}"


def scale_norm(num_scales: int, stage: int) -> Callable[[int], nn.Module]:
    """A ``norm_layer`` callable (torchvision style: ``norm_layer(num_features)``) keyed to one stage.

    ``stage < 0`` means "before the first resize", where a plain BatchNorm2d is enough.
    """
    if stage < 0:
        return nn.BatchNorm2d

    def make(num_features: int) -> nn.Module:
        return ScaleBatchNorm2d(num_features, num_scales, stage)

    return make


def plain_norm(num_scales: int, stage: int) -> Callable[[int], nn.Module]:
    """A ``norm_layer`` factory that ignores the scale: one shared BN (the paper's Table 9 ablation)."""
    return nn.BatchNorm2d


class ResizableStage(nn.Sequential):
    """One stage: its blocks, with the resize placed before the first stride-1 block.

    Children keep torchvision's names ("0", "1", ...), and the resize sits between them under the
    name "resize", so parameter names match the plain network's.
    """

    def __init__(self, blocks: Iterable[nn.Module], resize: nn.Module, resize_at: int) -> None:
        blocks = list(blocks)
        if not 0 <= resize_at <= len(blocks):
            raise ValueError(f"resize_at must be in [0, {len(blocks)}], got {resize_at}")
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        for i, block in enumerate(blocks):
            if i == resize_at:
                layers["resize"] = resize
            layers[str(i)] = block
        if resize_at == len(blocks):
            layers["resize"] = resize
        super().__init__(layers)
        self.resize_at = resize_at
        self.num_blocks = len(blocks)

    # Indexing, iterating and len() see the blocks only, as in torchvision (``model.layer4[-1]``).
    def blocks(self) -> list:
        return [m for name, m in self._modules.items() if name != "resize"]

    def __getitem__(self, idx):  # type: ignore[override]
        blocks = self.blocks()
        if isinstance(idx, slice):
            return nn.Sequential(*blocks[idx])
        return blocks[idx]

    def __setitem__(self, idx: int, module: nn.Module) -> None:  # type: ignore[override]
        names = [name for name in self._modules if name != "resize"]
        self._modules[names[idx]] = module

    def __delitem__(self, idx) -> None:  # type: ignore[override]
        raise TypeError("blocks of a ResizableStage cannot be deleted (the resize point would move)")

    def __iter__(self):  # type: ignore[override]
        return iter(self.blocks())

    def __len__(self) -> int:
        return self.num_blocks

    def pre_modules(self) -> list:
        """The blocks before the resize (a strided first block, keyed by the previous stage's factor)."""
        return list(self._modules.values())[: self.resize_at]

    def post_modules(self) -> list:
        """The resize and every block after it."""
        return list(self._modules.values())[self.resize_at:]

    def forward_pre(self, x: torch.Tensor) -> torch.Tensor:
        """The part before the resize: it depends only on the earlier stages' factors."""
        for module in self.pre_modules():
            x = module(x)
        return x

    def forward_post(self, x: torch.Tensor, size: Optional[Size2d] = None) -> torch.Tensor:
        """The resize to ``size`` (``None``: no resize) and the rest of the stage."""
        resize, *rest = self.post_modules()
        if size is not None:
            x = resize(x, size)
        for module in rest:
            x = module(x)
        return x

    def forward(self, x: torch.Tensor, size: Optional[Size2d] = None) -> torch.Tensor:  # type: ignore[override]
        # forward_pre then forward_post, in one pass over the children (this runs once per stage and
        # forward, so it builds no lists: at batch 1 the Python around the kernels is what costs)
        for name, module in self._modules.items():
            if name != "resize":
                x = module(x)
            elif size is not None:
                x = module(x, size)
        return x
