"""Static export: one configuration of a ResizableNet as a plain network."""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from ..layers import FixedResize2d, Resize2d, ResizableStage, ScaleBatchNorm2d
from ..net import ResizableNet, SizeLike, to_size2d

__all__ = ["export", "export_pieces", "probe_resize_inputs"]


@torch.no_grad()
def probe_resize_inputs(model: ResizableNet, input_size: SizeLike) -> Dict[int, tuple]:
    """Map ``id(resize module)`` -> (input (H, W), target (H, W)) for one forward at ``input_size``.

    Runs a single zero image through the model under its active configuration.
    """
    seen: Dict[int, tuple] = {}

    def record(module, args):
        x, size = args
        seen[id(module)] = (tuple(x.shape[-2:]), tuple(size))

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, Resize2d)]
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters())
        h, w = to_size2d(input_size)
        model(torch.zeros(1, model.in_chans, h, w, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return seen


def _make_static(module: nn.Module, resizes: Dict[int, tuple]) -> nn.Module:
    """Swap banks, resizes and stages inside ``module`` (already a private copy) for static modules."""
    for name, child in list(module.named_children()):
        if isinstance(child, ScaleBatchNorm2d):
            new: nn.Module = child[child.active]
            if child.bank_entry is not None:  # the configuration's own statistics from the bank
                new.running_mean.copy_(child.bank_entry[0])
                new.running_var.copy_(child.bank_entry[1])
        elif isinstance(child, Resize2d):
            size_in, size_out = resizes[id(child)]
            new = (nn.Identity() if size_in == size_out else
                   FixedResize2d(size_out, child.mode, child.align_corners, child.antialias))
        else:
            new = _make_static(child, resizes)
        if new is not child:
            setattr(module, name, new)  # keeps the child's position in _modules
    if isinstance(module, ResizableStage):
        return nn.Sequential(OrderedDict(module._modules))
    return module


@torch.no_grad()
def export(model: ResizableNet, config: Sequence[float], input_size: SizeLike) -> nn.Sequential:
    """The sub-network of ``config`` as a plain static ``nn.Sequential``.

    One BatchNorm2d per layer (the active branch, carrying ``config``'s statistics from the model's
    statistics bank when it uses one: ``model.bn_statistics == "bank"``, else the branch's running
    averages), resizes with fixed output sizes (dropped where
    they would not change the size), no scale banks; parameter names are the model's with the BN
    bank index removed (for a converted torchvision model: torchvision's names). The result is
    in the model's train/eval mode and works with ``torch.jit.script``/``trace``; it is valid for
    inputs of ``input_size`` only.

    Args:
        model: a ResizableNet (left unchanged).
        config: the scaling configuration to export.
        input_size: ``H`` or ``(H, W)`` of the inputs the static network will see.
    """
    if not isinstance(model, ResizableNet):
        raise ValueError(f"export needs a ResizableNet, got {type(model).__name__}")
    config = model.check_config(config)
    net = copy.deepcopy(model)
    net.set_config(config)
    resizes = probe_resize_inputs(net, input_size)
    static = _make_static(nn.Sequential(net.static_layout()), resizes)
    static.train(model.training)
    return static


@torch.no_grad()
def export_pieces(model: ResizableNet, config: Sequence[float], input_size: SizeLike
                  ) -> Tuple[nn.Sequential, List[nn.Sequential], nn.Sequential]:
    """``config``'s static sub-network cut at the stage boundaries: ``(stem, [stage 1, ..., stage N], head)``.

    Chained, the pieces compute what :func:`export` does. Stage ``i``'s piece depends only on the
    factors of stages ``1..i`` (its weights, its BN statistics and its resize), so configurations
    that share leading factors share those pieces: what an exported cascade or router reuses. The
    pieces are in the model's train/eval mode and valid for inputs of ``input_size`` only.

    Args:
        model: a ResizableNet (left unchanged).
        config: the scaling configuration.
        input_size: ``H`` or ``(H, W)`` of the network's inputs.
    """
    if not isinstance(model, ResizableNet):
        raise ValueError(f"export_pieces needs a ResizableNet, got {type(model).__name__}")
    config = model.check_config(config)
    with model.using(config):  # the active BN branch (and the bank's statistics) of every piece
        resizes = probe_resize_inputs(model, input_size)
        groups = [model.stem_modules()] + [list(model.stage(i).children()) for i in range(model.num_stages)] + \
            [model.head_modules()]
        memo: dict = {}
        copies = copy.deepcopy(groups, memo)  # one copy, so a module shared by two groups stays shared
    moved = {id(memo[key]): sizes for key, sizes in resizes.items() if key in memo}
    pieces = [_make_static(nn.Sequential(*modules), moved) for modules in copies]
    for piece in pieces:
        piece.train(model.training)
    return pieces[0], pieces[1:-1], pieces[-1]
