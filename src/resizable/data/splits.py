"""The held-out validation split: ``val`` images carved out of the training set, never trained on.

``resizable train --val-size N`` draws a permutation of the training set from ``val_seed`` (a
``torch.Generator``, nothing global) and holds out its last ``N`` images. The split is recorded in
the checkpoint (``payload["val_split"] = {"size", "seed", "total", "dataset"}``), so every command
rebuilds exactly the same two sets from the checkpoint alone:

- ``split="train"`` is the training set minus the held-out images (training, BN calibration);
- ``split="val"`` is the held-out images (model selection: tables, search, Adapt's labels);
- ``split="test"`` is the dataset's test set, for reporting only.

**Parts of a split** (:class:`SplitPart`, written ``val:0.5-0.75``): a share of a split's images,
positions ``[start, stop)`` of a permutation of that split drawn from seed 0. Parts of one split with
ranges that do not overlap hold different images, so one held-out set serves several purposes
(Resizable-Adapt labels on ``val:0-0.5``, chooses its knobs on ``val:0.5-0.75`` and its Pareto
front on ``val:0.75-1``).

``--train-size N`` then trains on the first ``N`` images of another permutation of that training
set (:func:`training_subset`), drawn from ``val_seed`` too, so runs of every seed share them.

Without a held-out split, ``val`` is refused for Fashion-MNIST and CIFAR (it used to be an alias of
``test``, which let selection see the test set). An image folder's ``val/`` folder stays its own
split: ``--val-size`` is for the in-memory datasets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import datasets as datasets
from .datasets import NO_VAL_SPLIT, TensorImageDataset

__all__ = ["ValSplit", "NO_VAL_SPLIT", "val_split_of", "load_split", "default_split", "check_val_size",
           "training_subset", "SplitPart", "parse_split_part", "PART_SEED"]

PART_SEED = 0  # the permutation every part of a split is cut from (fixed, so parts are disjoint across commands)


@dataclass(frozen=True)
class ValSplit:
    """``size`` training images held out as ``val``, the last ones of a permutation drawn from ``seed``."""

    size: int
    seed: int = 0
    total: Optional[int] = None  # size of the training set it was drawn from (checked when rebuilt)
    dataset: Optional[str] = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"val_size must be >= 1 for a held-out split, got {self.size}")

    def indices(self, total: int) -> Tuple[Tensor, Tensor]:
        """``(train, val)``: sorted positions in a training set of ``total`` images; disjoint, covering it."""
        check_val_size(self.size, total)
        if self.total is not None and self.total != total:
            raise ValueError(f"the held-out split was drawn from {self.total} training images, this training set has "
                             f"{total}; is the dataset folder the one the run trained on?")
        order = torch.randperm(total, generator=torch.Generator().manual_seed(self.seed))
        return order[: total - self.size].sort().values, order[total - self.size:].sort().values

    def to_dict(self) -> Dict[str, Any]:
        return {"size": self.size, "seed": self.seed, "total": self.total, "dataset": self.dataset}


def check_val_size(size: int, total: int) -> None:
    if not 0 <= size < total:
        raise ValueError(f"val_size must be in [0, {total}) (the training set has {total} images), got {size}")


def val_split_of(payload: Dict[str, Any]) -> Optional[ValSplit]:
    """The held-out split a checkpoint records (``val_split``; else its options' ``val_size``), or None."""
    record = payload.get("val_split")
    if isinstance(record, dict) and int(record.get("size") or 0) > 0:
        total = record.get("total")
        return ValSplit(int(record["size"]), int(record.get("seed") or 0), int(total) if total else None,
                        record.get("dataset"))
    options = payload.get("train_options") or payload.get("train_config") or {}
    if int(options.get("val_size") or 0) > 0:
        return ValSplit(int(options["val_size"]), int(options.get("val_seed") or 0), None, options.get("dataset"))
    return None


def default_split(payload: Dict[str, Any], fallback: str = "test") -> str:
    """``val`` when the checkpoint holds a held-out split, else ``fallback`` (what selecting commands default to)."""
    return "val" if val_split_of(payload) is not None else fallback


def _subset(data: TensorImageDataset, positions: Tensor, augment: bool) -> TensorImageDataset:
    out = TensorImageDataset(data.images.index_select(0, positions), data.labels.index_select(0, positions),
                             data.mean, data.std, augment=augment, pad=data.pad)
    before = getattr(data, "source_indices", None)  # where each image sits in the full training set
    out.source_indices = positions if before is None else before.index_select(0, positions)
    return out


def load_split(name: str, split: str, *, val_split: Optional[ValSplit] = None, **kwargs: Any) -> Dataset:
    """:func:`resizable.data.datasets.load_dataset`, with ``train`` and ``val`` taken from the held-out split.

    Args:
        name, split: as in ``load_dataset``; ``val`` needs ``val_split`` unless the dataset is an image folder.
        val_split: the run's held-out split (:func:`val_split_of`), or None.
        **kwargs: passed to ``load_dataset`` (``data_dir``, ``augment``, ``input_size``, ...).
    """
    key = str(split).strip().lower()
    imagefolder = str(name).strip().lower() == "imagefolder"
    if val_split is not None and val_split.dataset and imagefolder is False and \
            str(name).strip().lower().replace("_", "-") != val_split.dataset:
        val_split = None  # another dataset than the run's: its split does not apply
    if imagefolder or val_split is None or key not in ("train", "val"):
        if key == "val" and not imagefolder and val_split is None:
            raise ValueError(NO_VAL_SPLIT)
        return datasets.load_dataset(name, split, **kwargs)
    augment = kwargs.pop("augment", None)
    augment = (key == "train") if augment is None else bool(augment)
    full = datasets.load_dataset(name, "train", augment=False, **kwargs)
    if not isinstance(full, TensorImageDataset):  # pragma: no cover - every non-folder dataset is in memory
        raise ValueError(f"--val-size needs an in-memory dataset, not {name}")
    train_idx, val_idx = val_split.indices(len(full))
    return _subset(full, train_idx if key == "train" else val_idx, augment)


def training_subset(data: Dataset, size: int, seed: int = 0) -> Dataset:
    """The first ``size`` images of a permutation of ``data`` drawn from ``seed`` (``--train-size``).

    ``size`` 0 returns ``data`` itself. The images keep their order in ``data``; an in-memory
    dataset stays one (with ``source_indices`` pointing into the full training set).
    """
    total = len(data)  # type: ignore[arg-type]
    if not 0 <= size <= total:
        raise ValueError(f"train_size must be in [0, {total}] (the training set has {total} images after the "
                         f"held-out ones), got {size}")
    if size == 0 or size == total:
        return data
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    positions = order[:size].sort().values
    if isinstance(data, TensorImageDataset):
        return _subset(data, positions, data.augment)
    return torch.utils.data.Subset(data, positions.tolist())


@dataclass(frozen=True)
class SplitPart:
    """Positions ``[start, stop)`` (fractions) of a permutation of ``split`` drawn from ``seed``; ``val:0.5-0.75``."""

    split: str
    start: float = 0.0
    stop: float = 1.0
    seed: int = PART_SEED

    def __post_init__(self) -> None:
        if not 0.0 <= self.start < self.stop <= 1.0:
            raise ValueError(f"a split part needs 0 <= start < stop <= 1, got {self.start:g}-{self.stop:g}")

    @property
    def whole(self) -> bool:
        """True when the part is the whole split."""
        return self.start == 0.0 and self.stop == 1.0

    def indices(self, total: int) -> Tensor:
        """Sorted positions of the part's images in a split of ``total`` images (none is an error)."""
        if self.whole:
            return torch.arange(total)
        order = torch.randperm(total, generator=torch.Generator().manual_seed(self.seed))
        lo, hi = int(round(self.start * total)), int(round(self.stop * total))
        if hi <= lo:
            raise ValueError(f"the part {self} of a split of {total} images holds no image; take a wider range")
        return order[lo:hi].sort().values

    def overlaps(self, other: "SplitPart") -> bool:
        """True when both parts may hold the same image (same split and seed, overlapping ranges)."""
        if self.split != other.split:
            return False
        return self.seed != other.seed or (self.start < other.stop and other.start < self.stop)

    def __str__(self) -> str:
        return self.split if self.whole else f"{self.split}:{self.start:g}-{self.stop:g}"


def parse_split_part(text: str, splits: Tuple[str, ...] = ("train", "test", "val")) -> SplitPart:
    """``"val"`` (the whole split) or ``"val:0.5-0.75"`` (a part of it) -> :class:`SplitPart`."""
    name, _, span = str(text).strip().partition(":")
    name = name.strip().lower()
    if name not in splits:
        raise ValueError(f"unknown split {name!r} in {text!r}; accepted: {', '.join(splits)}, optionally with "
                         f"a part such as val:0.5-0.75")
    if not span:
        return SplitPart(name)
    lo, sep, hi = span.partition("-")
    try:
        start, stop = float(lo), float(hi)
    except ValueError:
        sep = ""
    if not sep or not 0.0 <= start < stop <= 1.0:
        raise ValueError(f"a split part is SPLIT:START-STOP with fractions 0 <= START < STOP <= 1 (e.g. "
                         f"val:0.5-0.75), got {text!r}")
    return SplitPart(name, start, stop)
