"""What Resizable-Adapt's commands share: the run on a device with its BN statistics, the images of a split or
of a part of one, and a progress bar.

**Which images do what.** Labels and the classifier, the knobs (a cascade's thresholds, which
classifier serves a target cost) and the Pareto front are each chosen on their own images, carved
from the images the network was not trained on: parts of ``val`` when the run holds one out
(``resizable train --val-size``), else of ``train`` (:data:`PART_SHARES`). The test split is for
reporting only.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from ..utils.console import progress_enabled
from ..data.splits import SplitPart, parse_split_part
from ..trained_run import TrainedRun
from .labels import PathLike

__all__ = ["PART_SHARES", "open_run", "default_part", "split_images", "subset", "with_bar"]

# the default part of the held-out images for each purpose (disjoint)
PART_SHARES: Dict[str, Tuple[float, float]] = {"labels": (0.0, 0.5), "knobs": (0.5, 0.75), "front": (0.75, 1.0)}


def open_run(checkpoint: PathLike, device: str, bn_statistics: str, dataset: Optional[str] = None,
             data_dir: Optional[str] = None, input_size: Optional[int] = None) -> TrainedRun:
    """The run on ``device``, normalising with ``bn_statistics`` (labels, classifier and routing must agree)."""
    from ..utils.distributed import resolve_device

    run = TrainedRun.open(checkpoint, dataset=dataset, data_dir=data_dir, input_size=input_size)
    run.model.to(resolve_device(device))
    run.use_bn_statistics(bn_statistics)
    return run


def default_part(run: TrainedRun, purpose: str) -> SplitPart:
    """The default images for ``purpose`` (``labels``, ``knobs`` or ``front``): a part of val, else of train."""
    if purpose not in PART_SHARES:
        raise ValueError(f"unknown purpose {purpose!r}; accepted: {', '.join(PART_SHARES)}")
    start, stop = PART_SHARES[purpose]
    return SplitPart("val" if run.val_split is not None else "train", start, stop)


def subset(data: Any, indices: torch.Tensor) -> Any:
    """The images of ``data`` at ``indices`` (an in-memory dataset stays one)."""
    from ..data.datasets import TensorImageDataset

    if isinstance(data, TensorImageDataset):
        return TensorImageDataset(data.images.index_select(0, indices), data.labels.index_select(0, indices),
                                  data.mean, data.std, augment=False, pad=data.pad)
    return torch.utils.data.Subset(data, indices.tolist())


def split_images(run: TrainedRun, spec: "str | SplitPart") -> Tuple[Any, SplitPart]:
    """The images of a split or a part of one (``val``, ``val:0.5-0.75``), unaugmented, in split order."""
    part = spec if isinstance(spec, SplitPart) else parse_split_part(spec)
    data = run.split(part.split)
    return (data if part.whole else subset(data, part.indices(len(data)))), part


def with_bar(total: int, desc: str, enabled: bool, work: Callable[[Optional[Callable[[], None]]], Any]) -> Any:
    """``work(on_batch)`` with a progress bar that ``on_batch`` advances (none when progress is off)."""
    bar = None
    if progress_enabled(enabled):
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False)
    try:
        return work((lambda: bar.update(1)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
