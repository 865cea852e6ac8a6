"""Recompute batch-norm statistics of one sub-network."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from ..layers import ScaleBatchNorm2d
from ..net import ResizableNet

__all__ = ["calibrate_bn", "active_batchnorms"]


def active_batchnorms(model: nn.Module) -> list:
    """The BatchNorm layers that run under the active configuration (one per layer)."""
    inside_bank = {id(bn) for m in model.modules() if isinstance(m, ScaleBatchNorm2d) for bn in m}
    active = [m[m.active] for m in model.modules() if isinstance(m, ScaleBatchNorm2d)]
    plain = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in inside_bank]
    return plain + active


@torch.no_grad()
def calibrate_bn(model: ResizableNet, config: Sequence[float], loader: Iterable, num_batches: int) -> ResizableNet:
    """Reset and re-estimate the running statistics of the BNs that ``config`` uses.

    The statistics become the cumulative average over ``num_batches`` batches (BN momentum
    ``None``); the model's configuration, mode and the BNs' momentum are restored afterwards.
    Plain BNs shared by every configuration (the stem's) are recalibrated too. A model with a
    statistics bank is switched to its running averages (``set_bn_statistics("as-trained")``), so
    the fresh statistics are the ones used.

    Args:
        model: the ResizableNet to calibrate, in place.
        config: the scaling configuration whose BN branches are recalibrated.
        loader: yields ``(images, labels)`` or ``images`` batches.
        num_batches: how many batches to use (>= 1).
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    if model.bank is not None:
        model.set_bn_statistics("as-trained")
    modes = {m: m.training for m in model.modules()}
    p = next(model.parameters())
    with model.using(config):
        bns = active_batchnorms(model)
        momenta = [bn.momentum for bn in bns]
        try:
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
            model.train()
            seen = 0
            for batch in loader:
                if seen >= num_batches:
                    break
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(images.to(p.device, non_blocking=True))
                seen += 1
            if seen == 0:
                raise ValueError("calibrate_bn got an empty loader")
        finally:
            for bn, momentum in zip(bns, momenta):
                bn.momentum = momentum
            for m, training in modes.items():
                m.training = training
    return model
