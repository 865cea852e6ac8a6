"""One training step: the batch through the step's configurations, their losses, one optimizer update.

Paper Algorithm 1 is ``train_step(..., loss_reduction="sum", distill="none")`` with fair sampling:
each configuration's cross-entropy is back-propagated on its own (only one configuration's
activations alive at a time), the k gradients add up, and the optimizer steps once.

The recipes of the methods that match or beat networks trained alone are options of the same step:

- ``distill="full"`` (slimmable / US-Nets in-place distillation): the full configuration (every
  stage at the largest factor) runs first, on the labels; its detached softmax (T = 1) teaches every
  other configuration of the step, whose loss is ``(1 - w) * CE + w * KD``. With sandwich sampling
  the full configuration is one of the step's; otherwise it is an extra pass.
- ``distill="largest"``: the same with the step's largest configuration as the teacher (under fair
  sampling the full one only 1 step in k^(N-1)).
- ``distill="ensemble"`` (RS-Nets): every configuration on the labels, plus ``w * KD`` from the
  detached ensemble of the step's logits, ``sum_r softmax(alpha)_r * z_r``, where ``r`` ranks the
  step's configurations from the largest to the smallest. The weights ``alpha`` are learned: the
  ensemble itself is trained on the labels (its cross-entropy is part of the loss). All k
  configurations' activations are alive at once, and the step has one backward pass.
- ``teacher_probs``: a frozen teacher's softmax on the batch (``--teacher``); every configuration's
  loss is ``CE + w * KD``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ..evaluation.walker import autocast
from ..net import Config, ResizableNet

__all__ = ["LOSS_REDUCTIONS", "DISTILL_MODES", "StepTally", "EnsembleWeights", "largest_config",
           "soft_label_loss", "train_step"]

LOSS_REDUCTIONS = ("sum", "mean")
DISTILL_MODES = ("none", "full", "largest", "ensemble")


@dataclass
class StepTally:
    """Top-1 hits of each step's largest configuration on its own training batch, summed over steps
    (kept on the device, read once at the end of an epoch)."""

    correct: Optional[torch.Tensor] = None
    seen: int = 0

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        hits = (logits.detach().argmax(1) == labels).sum()
        self.correct = hits if self.correct is None else self.correct + hits
        self.seen += int(labels.numel())

    def top1(self) -> float:
        return 100.0 * float(self.correct) / self.seen if self.seen else 0.0


class EnsembleWeights(nn.Module):
    """The learned weights of ensemble distillation: one per rank of a step's configurations (largest first)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"an ensemble needs at least 1 member, got {k}")
        self.alpha = nn.Parameter(torch.zeros(k))  # softmax(0) = uniform at the start

    def forward(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """``logits`` ordered from the largest configuration to the smallest -> the ensemble's logits."""
        if len(logits) != self.alpha.numel():
            raise ValueError(f"the ensemble has {self.alpha.numel()} weights, got {len(logits)} members")
        w = self.alpha.softmax(0)
        return sum(w[r] * z.float() for r, z in enumerate(logits))


def largest_config(configs: Sequence[Sequence[float]]) -> int:
    """Index of the step's largest configuration: the highest sum of factors (the first one on a tie)."""
    sums = [sum(c) for c in configs]
    return sums.index(max(sums))


def soft_label_loss(logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a teacher's probabilities (KL divergence plus the teacher's constant entropy),
    averaged over the batch: the in-place distillation loss of slimmable networks and once-for-all."""
    return -(teacher_probs * torch.log_softmax(logits.float(), dim=1)).sum(1).mean()


def _order(model: ResizableNet, configs: Sequence[Config], distill: str) -> List[Config]:
    """The step's configurations in running order: the teacher first when one of them teaches."""
    configs = list(configs)
    if distill == "full":
        full = model.max_config
        return [full] + [c for c in configs if c != full] if full in configs else [full] + configs
    if distill == "largest":
        j = largest_config(configs)
        return [configs[j]] + configs[:j] + configs[j + 1:]
    if distill == "ensemble":  # ranked largest to smallest (a stable sort keeps ties as drawn)
        return sorted(configs, key=lambda c: -sum(c))
    return configs


def _average_gradients(params: Sequence[nn.Parameter]) -> None:
    """All-reduce (mean) the gradients of a step that ran outside DDP's hooks (the ensemble step)."""
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def train_step(model: ResizableNet, images: torch.Tensor, labels: torch.Tensor, configs: Sequence[Config],
               optimizer: torch.optim.Optimizer, criterion: Callable, *, amp: bool = False,
               scaler: Optional[torch.amp.GradScaler] = None,
               ddp: Optional[nn.parallel.DistributedDataParallel] = None, loss_reduction: str = "sum",
               distill: str = "none", distill_weight: float = 1.0, ensemble: Optional[EnsembleWeights] = None,
               teacher_probs: Optional[torch.Tensor] = None, teacher_weight: float = 1.0,
               tally: Optional[StepTally] = None, losses: Optional[list] = None) -> float:
    """One update: the batch through every configuration of the step, the losses combined, one optimizer step.

    Returns the mean loss over the configurations the step ran (one device sync, at the end).

    Args:
        model: the (unwrapped) ResizableNet, in training mode; left at the last configuration run.
        images, labels: the mini-batch, on the model's device.
        configs: the step's configurations (from :class:`resizable.sampling.ConfigSampler`).
        optimizer, criterion: as built by the trainer (the optimizer also holds ``ensemble``'s weights).
        amp: autocast the forward passes.
        scaler: a GradScaler (float16 on CUDA), or None.
        ddp: the DDP wrapper of ``model``, or None.
        loss_reduction: ``sum`` (Algorithm 1: the gradients add up) or ``mean`` (divided by the passes).
        distill: ``none``, ``full``, ``largest`` or ``ensemble`` (see the module notes).
        distill_weight: ``w`` of the distillation modes.
        ensemble: the learned weights of ``distill="ensemble"`` (one per configuration of the step).
        teacher_probs: a frozen teacher's probabilities on ``images`` (``(B, classes)``), or None.
        teacher_weight: weight of the teacher's KD term.
        tally: counts the largest configuration's top-1 hits (the trainer's train accuracy).
        losses: when given, receives ``(config, loss)`` for every pass (detached; read only when needed).
    """
    if loss_reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"unknown loss_reduction {loss_reduction!r}; accepted: {', '.join(LOSS_REDUCTIONS)}")
    if distill not in DISTILL_MODES:
        raise ValueError(f"unknown distill mode {distill!r}; accepted: {', '.join(DISTILL_MODES)}")
    if distill == "ensemble" and ensemble is None:
        raise ValueError("distill='ensemble' needs the ensemble's weights (EnsembleWeights)")
    if teacher_probs is not None and distill != "none":
        raise ValueError("a frozen teacher and in-place distillation exclude each other; use one of them")
    order = _order(model, configs, distill)
    optimizer.zero_grad(set_to_none=True)
    per_pass: list = []
    if distill == "ensemble":
        total = _ensemble_pass(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction,
                               distill_weight, ensemble, tally, per_pass)
    else:
        total = _sequential_passes(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction,
                                   distill, distill_weight, teacher_probs, teacher_weight, tally, per_pass)
    if losses is not None:
        losses.extend(zip(order, per_pass))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return float(total) / len(order)


def _sequential_passes(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction, distill,
                       distill_weight, teacher_probs, teacher_weight, tally, per_pass) -> torch.Tensor:
    """One forward/backward per configuration (the teacher first when one of the step's configurations teaches)."""
    net = ddp or model
    scale = 1.0 / len(order) if loss_reduction == "mean" else 1.0
    largest = 0 if distill in ("full", "largest") else largest_config(order)
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    inplace = None
    for j, config in enumerate(order):
        model.set_config(config)
        last = j == len(order) - 1
        sync = ddp.no_sync() if (ddp is not None and not last) else contextlib.nullcontext()
        with sync:
            with autocast(images.device, amp):
                logits = net(images)
                loss = criterion(logits, labels)
                if inplace is not None:
                    loss = (1 - distill_weight) * loss + distill_weight * soft_label_loss(logits, inplace)
                elif teacher_probs is not None:
                    loss = loss + teacher_weight * soft_label_loss(logits, teacher_probs)
            loss_scaled = loss * scale if scale != 1.0 else loss
            (scaler.scale(loss_scaled) if scaler is not None else loss_scaled).backward()
        if j == largest:
            if tally is not None:
                tally.add(logits, labels)
            if distill in ("full", "largest"):
                inplace = logits.detach().float().softmax(1)
        per_pass.append(loss.detach())
        total += loss.detach().double()
    return total


def _ensemble_pass(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction, distill_weight,
                   ensemble, tally, per_pass) -> torch.Tensor:
    """Every configuration forward (graphs kept), the learned ensemble, one backward of the combined loss."""
    scale = 1.0 / len(order) if loss_reduction == "mean" else 1.0
    sync = ddp.no_sync() if ddp is not None else contextlib.nullcontext()
    with sync:  # outside DDP's hooks: the gradients are averaged by hand below
        logits = []
        for config in order:
            model.set_config(config)
            with autocast(images.device, amp):
                logits.append(model(images))
        if tally is not None:
            tally.add(logits[0], labels)
        ens = ensemble(logits)
        target = ens.detach().softmax(1)
        losses = [criterion(z, labels) + distill_weight * soft_label_loss(z, target) for z in logits]
        loss = (sum(losses) + criterion(ens, labels)) * scale
        (scaler.scale(loss) if scaler is not None else loss).backward()
    per_pass.extend(x.detach() for x in losses)
    if ddp is not None:
        _average_gradients([p for p in list(model.parameters()) + list(ensemble.parameters())])
    return sum(x.detach().double() for x in losses)
