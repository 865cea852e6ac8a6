"""The identity of a network's weights: one SHA-256 over its state (names, dtypes, shapes and values).

Every file computed from a trained network records this hash (statistics banks, lookup tables,
Adapt's label and classifier files, export sidecars), so a reader can tell whether the weights it
has now are the ones the file was computed from. The state includes the BN running averages: a
training step that moves them gives other weights.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterator, Mapping, Optional, Tuple

import torch
from torch import nn

__all__ = ["state_sha256", "weights_sha256", "first_non_finite"]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash its bits
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def state_sha256(state: Mapping[str, Any]) -> str:
    """SHA-256 of a ``state_dict`` (tensors by name, in name order): the same weights, the same hash."""
    h = hashlib.sha256()
    for name, value in sorted(state.items()):
        if not torch.is_tensor(value):
            continue
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        h.update(_tensor_bytes(value))
    return h.hexdigest()


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of ``model.state_dict()`` (see :func:`state_sha256`)."""
    return state_sha256(model.state_dict())


def _tensors(value: Any, path: str) -> Iterator[Tuple[str, torch.Tensor]]:
    if torch.is_tensor(value):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tensors(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{path}[{i}]")


def first_non_finite(value: Any, path: str = "") -> Optional[str]:
    """The path (``a.b[2]``) of the first floating-point tensor in ``value`` (nested dicts, lists, tuples)
    that holds NaN or an infinity, or None when every one is finite."""
    for name, t in _tensors(value, path):
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            return name
    return None
