"""One training step: the batch through the step's configurations, their losses, one optimizer update.

Paper Algorithm 1 is ``train_step(..., loss_reduction="sum", distill="none")`` with fair sampling:
each configuration's cross-entropy is back-propagated on its own (only one configuration's
activations alive at a time), the k gradients add up, and the optimizer steps once.

The recipes of the methods that match or beat networks trained alone are options of the same step:

- ``distill="full"`` (slimmable / US-Nets in-place distillation): the full configuration (every
  stage at the largest factor) runs first, on the labels; its detached soft labels teach every
  other configuration of the step, whose loss is ``(1 - w) * CE + w * KD``. With sandwich sampling
  the full configuration is one of the step's; otherwise it is an extra pass.
- ``distill="largest"``: the same with the step's largest configuration as the teacher (under fair
  sampling the full one only 1 step in k^(N-1)).
- ``distill="ensemble"`` (RS-Nets): the step's configurations ranked from the dearest to the
  cheapest (by counted MACs when ``rank_by`` gives them), every one on the labels, plus KD from the
  detached ensemble ``sum_r softmax(alpha)_r * z_r``. The weights ``alpha`` are learned on the
  labels from the members' *detached* logits: the ensemble's cross-entropy trains ``alpha`` only,
  never the network. With ``top_down`` (the default, RS-Nets' full recipe) each configuration also
  learns from the detached soft labels of every dearer configuration of the step (dense top-down
  distillation), and all KD terms are scaled by ``2 / (k + 1)``, so that a member has one KD term
  on average. All k configurations' activations are alive at once, and the step has one backward.
- ``teacher_probs``: a frozen teacher's soft labels on the batch (``--teacher``); every
  configuration's loss is ``CE + w * KD``.

Every KD term is :func:`soft_label_loss` at one temperature ``T``: soft labels ``softmax(z / T)``,
the student's ``log_softmax(z / T)``, and the term multiplied by ``T^2`` (Hinton et al.), so that
its gradients keep their scale when ``T`` changes. ``T = 1`` is plain soft-label cross-entropy.
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
           "soft_targets", "soft_label_loss", "pass_order", "ensemble_member_losses", "train_step"]

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


def soft_targets(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """A teacher's soft labels: ``softmax(logits / T)``, detached, in float32."""
    z = logits.detach().float()
    return (z / temperature if temperature != 1.0 else z).softmax(1)


def soft_label_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy against a teacher's soft labels (KL divergence plus the teacher's constant entropy),
    averaged over the batch: the in-place distillation loss of slimmable networks and once-for-all.

    Args:
        logits: the student's logits ``(B, classes)``.
        teacher_probs: the teacher's :func:`soft_targets` at the same temperature.
        temperature: ``T``; the student's log-probabilities are taken at ``T`` and the loss is scaled by ``T^2``.
    """
    z = logits.float()
    if temperature == 1.0:
        return -(teacher_probs * torch.log_softmax(z, dim=1)).sum(1).mean()
    return -(teacher_probs * torch.log_softmax(z / temperature, dim=1)).sum(1).mean() * temperature ** 2


def pass_order(model: ResizableNet, configs: Sequence[Config], distill: str,
               rank_by: Optional[Callable[[Config], float]] = None) -> List[Config]:
    """The configurations a step runs, in running order: the teacher first when one of them teaches.

    ``distill="full"`` adds the full configuration as an extra pass when the step did not draw it.
    ``distill="ensemble"`` ranks the step's configurations from the dearest to the cheapest by
    ``rank_by`` (e.g. counted MACs; default: the sum of factors); a stable sort keeps ties as drawn.
    """
    configs = list(configs)
    if distill == "full":
        full = model.max_config
        return [full] + [c for c in configs if c != full] if full in configs else [full] + configs
    if distill == "largest":
        j = largest_config(configs)
        return [configs[j]] + configs[:j] + configs[j + 1:]
    if distill == "ensemble":
        key = rank_by or sum
        return sorted(configs, key=lambda c: -key(c))
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
               temperature: float = 1.0, top_down: bool = True,
               rank_by: Optional[Callable[[Config], float]] = None,
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
        teacher_probs: a frozen teacher's :func:`soft_targets` on ``images`` at ``temperature``
            (``(B, classes)``), or None.
        teacher_weight: weight of the teacher's KD term.
        temperature: ``T`` of every KD term (see the module notes); 1 is plain soft-label cross-entropy.
        top_down: ``distill="ensemble"``: each configuration also learns from every dearer one of the step.
        rank_by: ``distill="ensemble"``: the cost that ranks the step's configurations (e.g. their forward
            MACs); default: the sum of factors.
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
    if not temperature > 0:
        raise ValueError(f"the distillation temperature must be > 0, got {temperature}")
    order = pass_order(model, configs, distill, rank_by)
    optimizer.zero_grad(set_to_none=True)
    per_pass: list = []
    if distill == "ensemble":
        total = _ensemble_pass(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction,
                               distill_weight, ensemble, temperature, top_down, tally, per_pass)
    else:
        total = _sequential_passes(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction,
                                   distill, distill_weight, teacher_probs, teacher_weight, temperature, tally,
                                   per_pass)
    if losses is not None:
        losses.extend(zip(order, per_pass))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return float(total) / len(order)


def _sequential_passes(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction, distill,
                       distill_weight, teacher_probs, teacher_weight, temperature, tally, per_pass) -> torch.Tensor:
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
                    kd = soft_label_loss(logits, inplace, temperature)
                    loss = (1 - distill_weight) * loss + distill_weight * kd
                elif teacher_probs is not None:
                    loss = loss + teacher_weight * soft_label_loss(logits, teacher_probs, temperature)
            loss_scaled = loss * scale if scale != 1.0 else loss
            (scaler.scale(loss_scaled) if scaler is not None else loss_scaled).backward()
        if j == largest:
            if tally is not None:
                tally.add(logits, labels)
            if distill in ("full", "largest"):
                inplace = soft_targets(logits, temperature)
        per_pass.append(loss.detach())
        total += loss.detach().double()
    return total


def _ensemble_pass(model, images, labels, order, criterion, amp, scaler, ddp, loss_reduction, distill_weight,
                   ensemble, temperature, top_down, tally, per_pass) -> torch.Tensor:
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
        # the members are detached for the ensemble's own loss: its cross-entropy trains alpha, not the network
        ens = ensemble([z.detach() for z in logits])
        losses = ensemble_member_losses(logits, labels, criterion, soft_targets(ens, temperature), distill_weight,
                                        temperature, top_down)
        loss = (sum(losses) + criterion(ens, labels)) * scale
        (scaler.scale(loss) if scaler is not None else loss).backward()
    per_pass.extend(x.detach() for x in losses)
    if ddp is not None:
        _average_gradients([p for p in list(model.parameters()) + list(ensemble.parameters())])
    return sum(x.detach().double() for x in losses)


def ensemble_member_losses(logits: List[torch.Tensor], labels: torch.Tensor, criterion: Callable,
                           ensemble_probs: torch.Tensor, weight: float, temperature: float = 1.0,
                           top_down: bool = True) -> List[torch.Tensor]:
    """Each member's CE plus its KD terms: from the ensemble, and (top-down) from every dearer member.

    ``logits`` are ranked dearest first. With ``top_down`` member ``j`` has ``1 + j`` KD terms, and the
    KD is scaled by ``2 / (k + 1)`` so that the terms average to one per member (as RS-Nets scale theirs).
    """
    k = len(logits)
    scale = weight * (2.0 / (k + 1) if top_down else 1.0)
    teachers = [soft_targets(z, temperature) for z in logits[:-1]] if top_down else []
    out = []
    for j, z in enumerate(logits):
        kd = soft_label_loss(z, ensemble_probs, temperature)
        for probs in teachers[:j]:  # every dearer member of the step, detached
            kd = kd + soft_label_loss(z, probs, temperature)
        out.append(criterion(z, labels) + scale * kd)
    return out
