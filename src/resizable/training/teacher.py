"""Frozen teachers: a trained network (``--teacher``) or a snapshot of the running one (a warm start's switch).

A frozen teacher runs its full configuration in eval mode (its BN running averages), without
gradients; it is never in the optimizer, and its weights never change.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from .step import soft_targets
from ..checkpoint import check_model_fits, load_model
from ..evaluation.walker import autocast
from ..net import ResizableNet

__all__ = ["load_teacher", "frozen_copy", "teacher_probs"]


def _freeze(teacher: ResizableNet) -> ResizableNet:
    teacher.set_config(teacher.max_config)
    teacher.requires_grad_(False)
    return teacher.eval()


def load_teacher(path: str, info: Any, device: torch.device) -> ResizableNet:
    """The frozen teacher of ``--teacher PATH`` (a checkpoint or run folder), checked against the data ``info``."""
    teacher, payload = load_model(path)
    kw = payload["model_kwargs"]
    check_model_fits(int(kw.get("num_classes", 0)), int(kw.get("in_chans", 0)), info, path)
    return _freeze(teacher).to(device)


def frozen_copy(model: ResizableNet) -> ResizableNet:
    """A frozen copy of ``model`` as it is now (weights and BN statistics), on the same device."""
    return _freeze(copy.deepcopy(model))


@torch.no_grad()
def teacher_probs(teacher: ResizableNet, images: torch.Tensor, amp: bool = False,
                  temperature: float = 1.0) -> torch.Tensor:
    """The teacher's soft labels on ``images`` at ``temperature`` (``(B, classes)``, float32, no gradient)."""
    with autocast(images.device, amp):
        return soft_targets(teacher(images), temperature)
