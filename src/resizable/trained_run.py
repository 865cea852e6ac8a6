"""A trained run, opened once: the one place that says how to feed a trained network.

Every command that starts from a checkpoint (``eval``, ``table``, ``export``, ``latency``,
``finetune``, ``adapt``, ``convert --source RUN``) opens it as a :class:`TrainedRun`, as timm
resolves a model's ``pretrained_cfg`` and torchvision reads a weights' ``meta``: the model, the
run's options, its dataset, its input size, its held-out val split, its preprocessing, and the
loaders built from them.

**Input size**: an explicit size, else the size the run trained at (``input_size`` in the
checkpoint, else in its options), else the dataset's, else the size the architecture is built for
(224 when the stem downsamples, else 32).

**Calibration images** (one rule for every command): the run's training images minus its
held-out val images (never val, never test), no augmentation, shuffled with seed 0, whole batches
(a single short one when there are fewer images than a batch).

**BN statistics**: the checkpoint's statistics bank when it has one measured on the checkpoint's
weights (every configuration its own statistics, measured on the calibration images:
:mod:`resizable.bnbank`), else the running averages as trained (a bank of other weights is said in
one warning and not used); :meth:`TrainedRun.use_bn_statistics` chooses and says which in words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from torch.utils.data import DataLoader, Dataset

from .bnbank import BN_STATISTICS, StatisticsBank
from .checkpoint import CHECKPOINT_NAME, check_model_fits, load_model, resolve_checkpoint, run_options
from .net import ResizableNet
from .data.splits import ValSplit, default_split, load_split, val_split_of
from .utils.options import option

__all__ = ["TrainedRun", "natural_input_size", "bn_statistics_option"]


def bn_statistics_option(what: str = "BN statistics: bank (each configuration its own, from the checkpoint's "
                                      "statistics bank) or as-trained (the running averages)") -> Any:
    """The ``--bn-statistics bank|as-trained`` option of the commands that run a trained network: the one check
    of a value that comes from the command line, a YAML file or an options dataclass."""
    return option("bank", what, choices=BN_STATISTICS)

CALIBRATION_SEED = 0


def natural_input_size(model: ResizableNet) -> int:
    """The input size a model is built for: 224 when its stem downsamples (ImageNet-style), else 32."""
    return 224 if math.prod(model.stem_strides) > 1 else 32


@dataclass
class TrainedRun:
    """A checkpoint and everything needed to feed its network (see the module notes).

    ``dataset`` is None only when the checkpoint names no dataset and none was given (a converted
    torchvision model): the network still runs, and anything that needs images says so.
    """

    checkpoint: Path                  # the checkpoint file
    model: ResizableNet               # in eval mode, on the CPU
    payload: Dict[str, Any]           # the checkpoint as loaded
    options: Dict[str, Any]           # the run's training options
    dataset: Optional[str]
    data_dir: Optional[str]
    info: Any                         # resizable.data.datasets.DatasetInfo of ``dataset``, or None
    input_size: int
    val_split: Optional[ValSplit]

    @classmethod
    def open(cls, path: Any, *, dataset: Optional[str] = None, data_dir: Optional[str] = None,
             input_size: Optional[int] = None, need_data: bool = True) -> "TrainedRun":
        """Open a run folder or checkpoint file.

        Args:
            path: a run folder or a checkpoint file.
            dataset, data_dir: another dataset than the run's (its classes and channels must fit).
            input_size: another input size than the run's.
            need_data: raise ``ValueError`` when no dataset is known (False: run without one).
        """
        checkpoint = resolve_checkpoint(path)
        model, payload = load_model(checkpoint)
        return cls._feeding(checkpoint, model, payload, dataset, data_dir, input_size, need_data)

    def with_data(self, dataset: Optional[str] = None, data_dir: Optional[str] = None,
                  input_size: Optional[int] = None) -> "TrainedRun":
        """The same network (not loaded again) fed another dataset, folder or input size."""
        return self._feeding(self.checkpoint, self.model, self.payload, dataset, data_dir, input_size, True)

    @classmethod
    def _feeding(cls, checkpoint: Path, model: ResizableNet, payload: Dict[str, Any], dataset: Optional[str],
                 data_dir: Optional[str], input_size: Optional[int], need_data: bool) -> "TrainedRun":
        from .data.datasets import dataset_info

        options = run_options(payload)
        name = dataset or options.get("dataset")
        if not name and need_data:
            raise ValueError(f"{checkpoint} does not name its dataset; pass --dataset")
        # the run's data folder belongs to the run's dataset, not to another one given here
        folder = data_dir or (options.get("data_dir") if not dataset or dataset == options.get("dataset") else None)
        try:
            info = dataset_info(name, folder) if name else None
        except (ValueError, OSError):
            if need_data:
                raise
            info = None  # e.g. a run's image folder that is not on this machine: the network still runs
        if info is not None:
            check_model_fits(model.num_classes, model.in_chans, info, checkpoint)
        size = (input_size or payload.get("input_size") or (payload.get("data") or {}).get("input_size")
                or options.get("input_size") or (info.input_size if info is not None else None)
                or natural_input_size(model))
        return cls(checkpoint, model, payload, options, info.name if info is not None else None, folder, info,
                   int(size), val_split_of(payload))

    def check_size(self) -> None:
        """Raise ``ValueError`` unless the input size is within what the library runs (1..4096 px)."""
        if not 1 <= self.input_size <= 4096:
            raise ValueError(f"input size {self.input_size}: expected 1..4096 px")

    @property
    def run_dir(self) -> Path:
        """The run folder (the checkpoint's folder)."""
        return self.checkpoint.parent

    @property
    def model_name(self) -> str:
        return self.payload["model_name"]

    @property
    def is_run_folder(self) -> bool:
        return self.checkpoint.name == CHECKPOINT_NAME

    def default_split(self) -> str:
        """``val`` when the run holds images out, else ``test``: what a selecting command reads by default."""
        return default_split(self.payload)

    def _needs_data(self, what: str) -> None:
        if self.dataset is None:
            raise ValueError(f"{what} needs images, and {self.checkpoint} does not name its dataset; pass --dataset")

    def split(self, split: str) -> Dataset:
        """The images of ``split`` (``train`` minus val, ``val``, ``test``) at the run's input size, no augmentation."""
        self._needs_data(f"the {split} split")
        size = None if self.input_size == self.info.input_size else self.input_size
        # an image folder's unreadable images are handled as the run chose (--bad-images skip leaves them out)
        bad = self.options.get("bad_images") or "error"
        return load_split(self.dataset, split, val_split=self.val_split, data_dir=self.data_dir, augment=False,
                          input_size=size, bad_images=bad)

    def loader(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0,
               drop_last: bool = False) -> DataLoader:
        """A loader over :meth:`split`."""
        from .data.datasets import make_loader

        return make_loader(self.split(split), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def calibration_loader(self, batch_size: int, batches: Optional[int] = None) -> DataLoader:
        """The images BN statistics are recomputed on, by the one rule (module notes); with ``batches``, the
        loader is checked to hold that many whole batches."""
        from .data.datasets import make_loader

        images = self.split("train")  # whole batches; one short batch when there are fewer images than a batch
        loader = make_loader(images, batch_size, shuffle=True, seed=CALIBRATION_SEED,
                             drop_last=len(images) >= batch_size)
        if batches is not None and len(loader) < batches:
            raise ValueError(f"--calibrate-bn {batches}: the training images hold only {len(loader)} whole batches "
                             f"of {batch_size}")
        return loader

    def calibration_note(self, batch_size: int) -> str:
        """How :meth:`calibration_loader` draws its images, in words (tables and sidecars record it)."""
        held = f" minus the {self.val_split.size} held-out images" if self.val_split is not None else ""
        return f"train split{held}, batch {batch_size}, shuffled with seed {CALIBRATION_SEED}, no augmentation"

    def build_bank(self, batches: Optional[int] = None, batch_size: Optional[int] = None, *, device: Any = None,
                   dtype: Any = None) -> StatisticsBank:
        """The statistics bank of this run's weights, measured on :meth:`calibration_loader` (not attached).

        Args:
            batches: batches to average over (default 8; fewer when the training images hold fewer).
            batch_size: images per batch (default 256).
            device: where to run the walk (default: where the model is).
            dtype: store the statistics in this type (default float32).
        """
        import torch

        from .evaluation.bank import BANK_BATCH_SIZE, BANK_BATCHES, build_bank

        batch_size = batch_size or BANK_BATCH_SIZE
        loader = self.calibration_loader(batch_size)
        n = batches if batches is not None else min(BANK_BATCHES, len(loader))
        if len(loader) < n:
            raise ValueError(f"{n} calibration batches asked for, and the training images hold only {len(loader)} "
                             f"whole batches of {batch_size}")
        where = next(self.model.parameters()).device
        if device is not None:
            self.model.to(torch.device(device) if isinstance(device, str) else device)
        try:
            meta = {"images": self.calibration_note(batch_size), "batch_size": batch_size, "seed": CALIBRATION_SEED,
                    "split": "train minus val" if self.val_split is not None else "train"}
            return build_bank(self.model, loader, n, meta=meta, dtype=dtype)
        finally:
            self.model.to(where)

    def use_bn_statistics(self, which: str = "bank") -> str:
        """Make the network normalise with ``which`` statistics (``bank`` or ``as-trained``) and return the
        basis in words, as results record it (``bn_statistics``). ``bank`` on a checkpoint without one falls
        back to the running averages and says so."""
        if which == "bank" and self.model.bank is None:
            why = ("its statistics bank belongs to other weights" if self.payload.get("bn_bank") is not None
                   else "no statistics bank in it")
            return f"as trained ({self.checkpoint}: {why}; `resizable calibrate {self.checkpoint}` builds it)"
        self.model.set_bn_statistics(which)
        return self.model.bank.describe() if which == "bank" else "as trained (running averages)"

    def preprocessing(self) -> Dict[str, Any]:
        """How to feed the network outside this library: size, channels, scaling and normalisation, classes."""
        data = dict(self.payload.get("data") or {})
        if not data and self.info is not None:
            data = {"dataset": self.info.name, "in_chans": self.info.in_chans, "mean": list(self.info.mean),
                    "std": list(self.info.std), "classes": list(self.info.classes)}
        return data
