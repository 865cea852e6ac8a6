"""Batch-norm folding: merge each BatchNorm2d of a static network into the convolution that feeds it."""
from __future__ import annotations

import copy
from typing import List, Tuple

import torch
import torch.fx
from torch import nn

__all__ = ["fold_bn", "foldable_pairs"]


def foldable_pairs(net: nn.Module) -> List[Tuple[str, str]]:
    """``(conv name, bn name)`` for every BatchNorm2d whose only input is a Conv2d used by nothing else.

    The data flow is read from a ``torch.fx`` trace, so a BN is paired with the convolution that
    really feeds it, whatever order the modules were registered in.
    """
    graph = torch.fx.symbolic_trace(net).graph
    modules = dict(net.named_modules())
    calls = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and isinstance(modules.get(src.target), nn.Conv2d)
            and len(src.users) == 1
            and calls[src.target] == calls[node.target] == 1  # a module run twice cannot be folded once
        ):
            pairs.append((src.target, node.target))
    return pairs


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics (track_running_stats=False)")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.affine:
        scale = scale * bn.weight
        shift = shift * bn.weight + bn.bias
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
    bias = shift if conv.bias is None else conv.bias * scale + shift
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype))


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def fold_bn(net: nn.Module) -> nn.Module:
    """A copy of a static network for inference, with every foldable BatchNorm2d merged into its conv.

    The BN's running statistics and affine parameters go into the convolution's weight and bias;
    the BN is replaced by ``nn.Identity`` under the same name, so the module structure (and every
    other parameter name) stays that of ``net``. The result is in eval mode and gives ``net``'s
    eval-mode outputs up to float rounding. BNs not fed directly by a convolution stay as they are.

    Folding the module that :func:`resizable.export` returns for a configuration gives the module
    that a folded state_dict of that configuration loads into.

    Args:
        net: a static network (e.g. from :func:`resizable.export`), left unchanged; it must be
            traceable by ``torch.fx`` (every network of this library is).
    """
    folded = copy.deepcopy(net).eval()
    for conv_name, bn_name in foldable_pairs(folded):
        _fold_into(folded.get_submodule(conv_name), folded.get_submodule(bn_name))
        _set_module(folded, bn_name, nn.Identity())
    return folded
