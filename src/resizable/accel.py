"""One training step of Algorithm 1, and the memory format that makes it fast on the device.

Channels-last (NHWC) is what cuDNN's tensor-core kernels want: on an H100 an RS-ResNet-50 fair
step ran 4.4x (fp32) and 6.4x (AMP) faster in it than contiguous (``benchmarks/results/overhead_gpu.json``).
On a CPU it is a gamble: a convolution with few channels at a high resolution can be hundreds of
times slower in channels-last, and with torch 2.14.1 the backward pass of a 1x1 stride-2
convolution with few channels corrupts memory at some batch sizes (e.g. 8 channels, batch 3), a
crash no timing can guard against. So :func:`auto_memory_format` keeps the CPU contiguous and, on
CUDA, times one forward/backward pass in each format (:func:`pick_memory_format`) and keeps the
faster one.
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn

from .evaluate import autocast
from .net import Config, ResizableNet

__all__ = ["LOSS_REDUCTIONS", "StepTally", "largest_config", "soft_label_loss", "train_step", "MemoryFormatChoice", "auto_memory_format", "pick_memory_format", "memory_format_name"]


LOSS_REDUCTIONS = ("sum", "mean")


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


def largest_config(configs: Sequence[Sequence[float]]) -> int:
    """Index of the step's largest configuration: the highest sum of factors (the first one on a tie)."""
    sums = [sum(c) for c in configs]
    return sums.index(max(sums))


def soft_label_loss(logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a teacher's probabilities (KL divergence plus the teacher's constant entropy),
    averaged over the batch: the in-place distillation loss of slimmable networks and once-for-all."""
    return -(teacher_probs * torch.log_softmax(logits.float(), dim=1)).sum(1).mean()


def train_step(model: ResizableNet, images: torch.Tensor, labels: torch.Tensor, configs: Sequence[Config],
               optimizer: torch.optim.Optimizer, criterion: Callable, *, amp: bool = False,
               scaler: Optional[torch.amp.GradScaler] = None,
               ddp: Optional[nn.parallel.DistributedDataParallel] = None, loss_reduction: str = "sum",
               distill_weight: Optional[float] = None, tally: Optional[StepTally] = None) -> float:
    """One update of Algorithm 1: the batch through every configuration, gradients summed, one step.

    Each configuration's loss is back-propagated on its own (only one configuration's activations
    are alive at a time). Under DDP the first ``k - 1`` backward passes run in ``no_sync``. Returns
    the mean loss over the configurations (one device sync per step, at the end).

    Args:
        model: the (unwrapped) ResizableNet, in training mode; left at the last configuration.
        images, labels: the mini-batch, on the model's device.
        configs: the step's configurations (from :class:`resizable.sampling.ConfigSampler`).
        optimizer, criterion: as built by the trainer.
        amp: autocast the forward passes.
        scaler: a GradScaler (float16 on CUDA), or None.
        ddp: the DDP wrapper of ``model``, or None.
        loss_reduction: ``sum`` (Algorithm 1: the k gradients add up) or ``mean`` (divided by k).
        distill_weight: in-place distillation: the step's largest configuration runs first and its
            detached soft predictions teach the others, whose loss becomes ``(1 - w) * CE + w * soft``.
        tally: counts the largest configuration's top-1 hits (the trainer's train accuracy).
    """
    if loss_reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"unknown loss_reduction {loss_reduction!r}; accepted: {', '.join(LOSS_REDUCTIONS)}")
    net = ddp or model
    largest = largest_config(configs)
    if distill_weight is not None:  # the teacher runs first, so its predictions exist when the others run
        configs = [configs[largest]] + [c for j, c in enumerate(configs) if j != largest]
        largest = 0
    scale = 1.0 / len(configs) if loss_reduction == "mean" else 1.0
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    teacher = None
    for j, config in enumerate(configs):
        model.set_config(config)
        last = j == len(configs) - 1
        sync = ddp.no_sync() if (ddp is not None and not last) else contextlib.nullcontext()
        with sync:
            with autocast(images.device, amp):
                logits = net(images)
                loss = criterion(logits, labels)
                if teacher is not None:
                    loss = (1 - distill_weight) * loss + distill_weight * soft_label_loss(logits, teacher)
            loss_scaled = loss * scale if scale != 1.0 else loss
            (scaler.scale(loss_scaled) if scaler is not None else loss_scaled).backward()
        if j == largest:
            if tally is not None:
                tally.add(logits, labels)
            if distill_weight is not None:
                teacher = logits.detach().float().softmax(1)
        total += loss.detach().double()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return float(total) / len(configs)


def memory_format_name(channels_last: bool) -> str:
    return "channels-last" if channels_last else "contiguous"


@dataclass(frozen=True)
class MemoryFormatChoice:
    """The memory format a run uses, and why (one line for the log)."""

    channels_last: bool
    reason: str
    ms: Dict[str, float]  # timed forward/backward per format, when timed

    @property
    def name(self) -> str:
        return memory_format_name(self.channels_last)

    def line(self) -> str:
        return f"memory format: {self.name} ({self.reason})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pass_seconds(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, loss_fn: Callable,
                  amp: bool) -> float:
    _sync(images.device)
    t0 = time.perf_counter()
    with autocast(images.device, amp):
        loss = loss_fn(model(images), labels)
    loss.backward()
    _sync(images.device)
    return time.perf_counter() - t0


def pick_memory_format(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, amp: bool = False,
                       loss_fn: Optional[Callable] = None, rounds: int = 2) -> MemoryFormatChoice:
    """Time one training forward/backward in both memory formats on ``images`` and pick the faster.

    The timing runs on a private copy of the model (its weights, BN statistics and gradients stay
    untouched), under the model's active configuration. Each format gets one untimed pass first
    (kernel selection, allocator); then ``rounds`` timed passes per format alternate and the best of
    each counts. When channels-last is more than twice as slow in its first timed pass, the second
    round is skipped (the pathological case costs two passes, not four).

    Args:
        model: the network, on ``images``' device.
        images, labels: one training batch.
        amp: time under autocast, as the run will train.
        loss_fn: ``loss_fn(logits, labels)`` (default: cross-entropy).
        rounds: timed passes per format (>= 1).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    loss_fn = loss_fn or nn.functional.cross_entropy
    probe = copy.deepcopy(model).train()
    formats = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}
    inputs = {name: images.contiguous(memory_format=fmt) for name, fmt in formats.items()}
    best: Dict[str, float] = {}
    for name, fmt in formats.items():  # untimed first pass of each format
        probe.to(memory_format=fmt)
        _pass_seconds(probe, inputs[name], labels, loss_fn, amp)
    for r in range(rounds):
        for name, fmt in formats.items():
            probe.to(memory_format=fmt)
            probe.zero_grad(set_to_none=True)
            t = _pass_seconds(probe, inputs[name], labels, loss_fn, amp)
            best[name] = min(best.get(name, t), t)
        if best["channels-last"] > 2 * best["contiguous"]:
            break
    del probe
    ms = {k: round(v * 1e3, 3) for k, v in best.items()}
    channels_last = best["channels-last"] < best["contiguous"]
    reason = (f"auto: one forward/backward took {ms['channels-last']:.1f} ms channels-last, "
              f"{ms['contiguous']:.1f} ms contiguous on {images.device.type}, batch {images.shape[0]}")
    return MemoryFormatChoice(channels_last, reason, ms)


def auto_memory_format(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, amp: bool = False,
                       loss_fn: Optional[Callable] = None) -> MemoryFormatChoice:
    """The trainer's default: contiguous on the CPU (see the module notes), the faster format on CUDA.

    Args: as :func:`pick_memory_format`.
    """
    if images.device.type != "cuda":
        return MemoryFormatChoice(False, "auto: contiguous on the CPU, where channels-last can be far slower "
                                         "and can crash; --channels-last to try it", {})
    return pick_memory_format(model, images, labels, amp=amp, loss_fn=loss_fn)
