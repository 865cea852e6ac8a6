"""The optimizer and the learning-rate schedule of a training run."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .options import TrainOptions

__all__ = ["lr_factor", "build_optimizer"]


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainOptions, total_steps: Optional[int] = None) -> float:
    """Multiplier of the peak rate at optimizer step ``step`` (warm-up, then the schedule).

    ``total_steps`` is the run's length (default ``cfg.epochs * steps_per_epoch``; a warm-started run is
    longer): the decay ends there. The warm-up and the step schedule's milestones are in epochs.
    """
    total = cfg.epochs * steps_per_epoch if total_steps is None else total_steps
    warmup = int(round(cfg.warmup * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        epoch = step / steps_per_epoch
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    progress = (step - warmup) / max(1, total - warmup)
    if cfg.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: nn.Module, cfg: TrainOptions) -> torch.optim.Optimizer:
    """SGD; weight decay on convolution and linear weights only (not BN parameters, not biases)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
