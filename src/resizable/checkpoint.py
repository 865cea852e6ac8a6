"""Checkpoints: written atomically, self-describing (a model can be rebuilt from one alone)."""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from .bnbank import StatisticsBank, scale_batchnorms
from .utils.fileio import atomic_path
from .fingerprint import first_non_finite, state_sha256, weights_sha256
from .net import ResizableNet
from .registry import create_model

__all__ = ["read_torch_file", "atomic_save", "save_checkpoint", "load_checkpoint", "load_model", "load_weights",
           "resolve_checkpoint", "check_model_fits", "CHECKPOINT_NAME", "VERSION", "CheckpointError",
           "write_bank", "AsTrainedStatisticsWarning", "StaleBankWarning", "WeightsMovedOnWarning",
           "weights_moved_on", "warn_if_moved_on", "non_finite_state"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "resizable-checkpoint"
VERSION = 1  # the newest checkpoint format this code reads and writes
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

    Raises :class:`CheckpointError` (and writes nothing) when a tensor of the weights, BN statistics or
    ``state`` holds NaN or infinite values: such a file could never be used (see :func:`non_finite_state`).
    """
    payload = {"format": FORMAT, "version": VERSION, "model_name": model_name,
               "model_kwargs": dict(model_kwargs), "model": model.state_dict(), **state}
    if model.bank is not None and "bn_bank" not in state:
        stale = model.bank.weights_sha256 and model.bank.mismatch(state_sha256(payload["model"]))
        if stale:  # the weights changed after the bank was attached (e.g. trained on): the bank is not theirs
            warnings.warn(f"{path}: the attached statistics bank {stale}; it is left out of the checkpoint (build "
                          f"the bank of these weights with: resizable calibrate {path})", StaleBankWarning,
                          stacklevel=2)
        else:
            payload["bn_bank"] = model.bank.state_dict()
    problem = non_finite_state(payload)
    if problem:
        raise CheckpointError(f"{path}: not written: {problem}")
    atomic_save(payload, path)


def non_finite_state(payload: Dict[str, Any]) -> Optional[str]:
    """What in a checkpoint's ``payload`` holds NaN or infinite values, in words (the first tensor of the
    weights, BN statistics, optimizer state or anything else), or None when every tensor is finite."""
    model = payload.get("model") or {}
    bad = first_non_finite(model)
    if bad is not None:
        what = "BN statistics" if bad.rsplit(".", 1)[-1].startswith("running_") else "weights"
        return f"the {what} hold NaN or infinite values (first in {bad})"
    bad = first_non_finite({k: v for k, v in payload.items() if k != "model"})
    if bad is not None:
        what = "optimizer state" if bad.startswith("optimizer") else "saved state"
        return f"the {what} holds NaN or infinite values (first in {bad})"
    return None


def write_bank(path: PathLike, bank: StatisticsBank) -> Path:
    """Store ``bank`` in the checkpoint at ``path`` (file or run folder), replacing any bank it had; the rest of
    the checkpoint is kept as it was, and the file is rewritten atomically. Returns the checkpoint file.

    The checkpoint is read again just before writing, and a bank that was not measured on the weights it
    holds then (a training saved an epoch meanwhile) raises :class:`CheckpointError`: nothing is written."""
    p = resolve_checkpoint(path)
    payload = load_checkpoint(p)
    problem = bank.mismatch(state_sha256(payload["model"]))
    if problem:
        raise CheckpointError(f"{p}: statistics bank not written: it {problem}; the checkpoint's weights changed "
                              f"while it was measured? build it again: resizable calibrate {p}")
    payload["bn_bank"] = bank.state_dict()
    atomic_save(payload, p)
    return p


class AsTrainedStatisticsWarning(UserWarning):
    """A checkpoint without a statistics bank: its configurations share the BN running averages as trained."""


class StaleBankWarning(AsTrainedStatisticsWarning):
    """A checkpoint whose statistics bank belongs to other weights: not used, the BN statistics as trained are."""


class WeightsMovedOnWarning(UserWarning):
    """A file computed from a run's weights, read after the run's checkpoint moved on to other weights."""


_WARNED: set = set()


def resolve_checkpoint(path: PathLike) -> Path:
    """A checkpoint file, or a run folder holding ``checkpoint.pt``."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (give a checkpoint file or a run folder with {CHECKPOINT_NAME})")
    return p


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, not a resizable checkpoint, or refused."""


def read_torch_file(p: Path, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain values only, so a file can never
    run code while it loads. Every failure becomes one :class:`CheckpointError` naming the file."""
    import pickle
    import warnings
    import zipfile

    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(f"{p}: empty file (0 bytes), not a checkpoint")
    with open(p, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive; files from torch < 1.6 start with a pickled magic number
    if not zipfile.is_zipfile(p) and head[:3] != b"\x80\x02\x8a":
        kind = "a zip archive cut short (truncated?)" if head[:2] == b"PK" else "another kind of file"
        raise CheckpointError(f"{p}: not a torch checkpoint ({size} bytes; {kind})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        found = re.search(r"GLOBAL ([\w.]+)|global: ([\w.]+)", text)
        if found:
            what = next(g for g in found.groups() if g)
            raise CheckpointError(f"{p}: refused: loading it would call {what}, and only tensors and plain "
                                  f"values are loaded (resizable checkpoints never need more)") from None
        raise CheckpointError(f"{p}: refused: its data is not made of tensors and plain values only "
                              f"({_first_line(text)[:120]})") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, KeyError... for damaged archives
        detail = _first_line(str(e)).split(". ")[0][:160]
        raise CheckpointError(f"{p}: corrupt torch checkpoint ({size} bytes; {type(e).__name__}: {detail})") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (file or run folder).

    Loads tensors and plain values only (``weights_only=True``): a crafted file cannot run code.
    Raises :class:`CheckpointError` (a ``ValueError``) naming the file when it is empty, truncated,
    corrupt, refused, or not a resizable checkpoint.
    """
    p = resolve_checkpoint(path)
    payload = read_torch_file(p, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a resizable checkpoint (no format={FORMAT!r} field)")
    missing = [k for k in ("model_name", "model_kwargs", "model") if k not in payload]
    if missing or not isinstance(payload.get("model_kwargs"), dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{p}: damaged resizable checkpoint (missing or malformed: "
                              f"{', '.join(missing) or 'model_kwargs/model'})")
    version = payload.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise CheckpointError(f"{p}: checkpoint format version {version!r}, and this version of resizable reads "
                              f"versions 1..{VERSION} (a newer resizable wrote it? upgrade to read it)")
    bad = first_non_finite(payload["model"])
    if bad is not None:
        raise CheckpointError(f"{p}: the weights hold NaN or infinite values (first in {bad}): the run that wrote "
                              f"them diverged; nothing it computes would mean anything")
    return payload


def load_weights(model: nn.Module, state: Dict[str, Any], source: Any) -> None:
    """``model.load_state_dict(state)``, with a short :class:`CheckpointError` naming ``source`` and the first
    differences instead of torch's list of every mismatched tensor."""
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    extra = [k for k in state if k not in mine]
    shapes = [k for k in mine
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(mine[k].shape)]
    if missing or extra or shapes:
        parts = []
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} tensor(s) of another shape, e.g. {k}: file {tuple(state[k].shape)}, "
                         f"model {tuple(mine[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if extra:
            parts.append(f"{len(extra)} unexpected, e.g. {extra[0]}")
        raise CheckpointError(f"{source}: the weights do not fit this model ({'; '.join(parts)})")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as e:
        raise CheckpointError(f"{source}: the weights do not load ({_first_line(str(e))})") from None


def load_model(path: PathLike, map_location: Any = "cpu") -> Tuple[ResizableNet, Dict[str, Any]]:
    """Rebuild the model of a checkpoint, with its weights, in eval mode; also returns the checkpoint.

    Args:
        path: a checkpoint file or a run folder.
        map_location: where to load tensors (as in ``torch.load``).
    """
    payload = load_checkpoint(path, map_location)
    try:
        model = create_model(payload["model_name"], **payload["model_kwargs"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{resolve_checkpoint(path)}: cannot rebuild its model ({_first_line(str(e))})") from None
    source = resolve_checkpoint(path)
    load_weights(model, payload["model"], source)
    _attach_stored_bank(model, payload, source)
    model.eval()
    return model, payload


def _attach_stored_bank(model: ResizableNet, payload: Dict[str, Any], source: Path) -> None:
    """Attach the checkpoint's statistics bank when it belongs to the checkpoint's weights; without one, or
    with one of other weights, say once per file (and bank) how to build it."""
    if payload.get("bn_bank") is not None:
        try:
            bank = StatisticsBank.from_state_dict(payload["bn_bank"], source)
            bank.check_fits(model)
        except ValueError as e:
            raise CheckpointError(f"{source}: its statistics bank does not fit the network ({e})") from None
        problem = bank.mismatch(weights_sha256(model))
        if problem is None:
            model.attach_bank(bank)
        elif (str(source), bank.weights_sha256) not in _WARNED:
            _WARNED.add((str(source), bank.weights_sha256))
            warnings.warn(f"{source}: its statistics bank {problem}, so it is not used: every configuration uses the "
                          f"BN statistics as trained; build the bank of these weights with: resizable calibrate "
                          f"{source}", StaleBankWarning, stacklevel=3)
        return
    if scale_batchnorms(model) and str(source) not in _WARNED:
        _WARNED.add(str(source))
        warnings.warn(f"{source} has no statistics bank, so every configuration uses the BN statistics as trained; "
                      f"build the bank once with: resizable calibrate {source}", AsTrainedStatisticsWarning,
                      stacklevel=3)


def weights_moved_on(checkpoint: Any, recorded: Optional[str], what: Any) -> Optional[str]:
    """A one-line note when ``what`` (a file computed from ``checkpoint``'s weights, whose SHA-256 it records as
    ``recorded``) no longer matches the weights that checkpoint holds now; None when they match, or when
    there is nothing to compare (no record, or the checkpoint is gone or unreadable)."""
    if not recorded or not checkpoint or checkpoint == "-":
        return None
    try:
        payload = load_checkpoint(checkpoint)
    except (OSError, ValueError):
        return None
    if state_sha256(payload["model"]) == recorded:
        return None
    at = f" (now at epoch {payload['epoch'] + 1})" if isinstance(payload.get("epoch"), int) else ""
    return (f"{what} was computed from weights that {resolve_checkpoint(checkpoint)} no longer holds: its weights "
            f"have moved on since{at}; compute it again to match them")


def warn_if_moved_on(checkpoint: Any, recorded: Optional[str], what: Any) -> Optional[str]:
    """:func:`weights_moved_on`, said as a :class:`WeightsMovedOnWarning`; returns the note."""
    note = weights_moved_on(checkpoint, recorded, what)
    if note:
        warnings.warn(note, WeightsMovedOnWarning, stacklevel=2)
    return note


def run_options(payload: Dict[str, Any]) -> Dict[str, Any]:
    """The training options a checkpoint records (``train_options``; ``train_config`` in older files)."""
    return dict(payload.get("train_options") or payload.get("train_config") or {})


def check_model_fits(num_classes: int, in_chans: int, info: Any, source: Any) -> None:
    """Raise ``ValueError`` when a dataset (a :class:`resizable.data.datasets.DatasetInfo`) has another number of
    classes or channels than the model of ``source`` (a checkpoint) was built for."""
    problems = []
    if info.num_classes != num_classes:
        problems.append(f"{info.num_classes} classes, the model {num_classes}")
    if info.in_chans != in_chans:
        problems.append(f"{info.in_chans} input channel(s), the model {in_chans}")
    if problems:
        raise ValueError(f"{info.name} does not fit the checkpoint {source}: the data has {' and '.join(problems)}")
