"""Distributed set-up in one place: torchrun detection, process group, device choice."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "launch_info", "setup", "cleanup", "resolve_device", "barrier", "is_main_process",
           "broadcast_object"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, local rank and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda:LOCAL_RANK when CUDA is available, else cpu. Accepts cpu, cuda, cuda:N."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available; use --device cpu")
        return torch.device(device if ":" in device else f"cuda:{local_rank}")
    if device != "cpu":
        raise ValueError(f"unknown device {device!r}; accepted: auto, cpu, cuda, cuda:N")
    return torch.device("cpu")


def launch_info() -> tuple:
    """``(rank, world_size, local_rank)`` as torchrun set them (``(0, 1, 0)`` for a plain start).

    The only place the library reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``.
    """
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when started by torchrun (``RANK``/``WORLD_SIZE`` set): gloo on CPU,
    nccl on CUDA. A plain ``python`` start gives a single process."""
    rank, world_size, local_rank = launch_info()
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, dev)


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a plain process (works before and after :func:`setup`)."""
    return launch_info()[0] == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (a picklable value); the value itself in a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of ``value`` over every rank (``value`` itself in a single process), so that a decision taken
    on it (e.g. that a step diverged) is the same on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(box)
    return float(box) / dist.get_world_size()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
