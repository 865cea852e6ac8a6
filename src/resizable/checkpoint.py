"""Checkpoints: written atomically, self-describing (a model can be rebuilt from one alone)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from .fileio import atomic_path
from .net import ResizableNet
from .registry import create_model

__all__ = ["atomic_save", "save_checkpoint", "load_checkpoint", "load_model", "resolve_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "resizable-checkpoint"
PathLike = Union[str, os.PathLike]


def atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(path: PathLike, model: ResizableNet, model_name: str, model_kwargs: Dict[str, Any], **state: Any) -> None:
    """Write a checkpoint holding the model's weights, how to rebuild it, and any training ``state``.

    Args:
        path: file to write (atomically).
        model: the (unwrapped) ResizableNet.
        model_name: its registered name.
        model_kwargs: the arguments of :func:`resizable.create_model` that rebuild it
            (``factors``, ``num_classes``, ``in_chans`` and architecture arguments).
        **state: anything else (optimizer, scheduler, epoch, RNG state, train config...).
    """
    payload = {"format": FORMAT, "version": 1, "model_name": model_name,
               "model_kwargs": dict(model_kwargs), "model": model.state_dict(), **state}
    atomic_save(payload, path)


def resolve_checkpoint(path: PathLike) -> Path:
    """A checkpoint file, or a run folder holding ``checkpoint.pt``."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (give a checkpoint file or a run folder with {CHECKPOINT_NAME})")
    return p


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (file or run folder)."""
    p = resolve_checkpoint(path)
    payload = torch.load(p, map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{p} is not a resizable checkpoint (no format={FORMAT!r} field)")
    return payload


def load_model(path: PathLike, map_location: Any = "cpu") -> Tuple[ResizableNet, Dict[str, Any]]:
    """Rebuild the model of a checkpoint, with its weights, in eval mode; also returns the checkpoint.

    Args:
        path: a checkpoint file or a run folder.
        map_location: where to load tensors (as in ``torch.load``).
    """
    payload = load_checkpoint(path, map_location)
    model = create_model(payload["model_name"], **payload["model_kwargs"])
    model.load_state_dict(payload["model"])
    model.eval()
    return model, payload


def load_model_for_data(path: PathLike, dataset: Optional[str] = None, data_dir: Optional[str] = None,
                        input_size: Optional[int] = None) -> Tuple[ResizableNet, Dict[str, Any], str, Optional[str], int, Any]:
    """A checkpoint's model plus the data it runs on: the given dataset, else the training run's.

    Returns ``(model, payload, dataset, data_dir, input_size, DatasetInfo)``; raises ``ValueError`` when the
    dataset is unknown or its classes/channels do not fit the model.
    """
    from .data import dataset_info

    model, payload = load_model(path)
    train_cfg = payload.get("train_config") or {}
    dataset = dataset or train_cfg.get("dataset")
    if not dataset:
        raise ValueError("the checkpoint does not name its dataset; pass --dataset")
    data_dir = data_dir or train_cfg.get("data_dir")
    info = dataset_info(dataset, data_dir)
    if info.num_classes != model.num_classes or info.in_chans != model.in_chans:
        raise ValueError(f"{dataset} has {info.num_classes} classes and {info.in_chans} channels, the model "
                         f"{model.num_classes} and {model.in_chans}")
    size = int(input_size or payload.get("input_size") or train_cfg.get("input_size") or info.input_size)
    return model, payload, dataset, data_dir, size, info
