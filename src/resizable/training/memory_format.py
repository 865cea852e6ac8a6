"""The memory format that makes training fast on the device.

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

import copy
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
from torch import nn

from ..evaluation.walker import autocast

__all__ = ["MemoryFormatChoice", "auto_memory_format", "pick_memory_format", "memory_format_name"]


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
