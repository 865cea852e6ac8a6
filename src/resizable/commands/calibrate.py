"""``resizable calibrate``: build a run's statistics bank (every configuration's BN statistics) into its checkpoint."""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Optional

from ..utils.options import check_options, option, required

HELP = "measure every configuration's BN statistics into the checkpoint (the statistics bank)"


@dataclass(frozen=True)
class CalibrateOptions:
    """What ``resizable calibrate`` needs; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("run folder or checkpoint file (a converted one too); rewritten atomically")
    batches: Optional[int] = option(None, "training batches to average over (default 8, fewer when the "
                                          "training images hold fewer)", min=1)
    batch_size: int = option(256, "images per batch", min=1)
    dtype: str = option("float32", "how the statistics are stored: float16 halves the bank's size",
                        choices=("float32", "float16"))
    dataset: Optional[str] = option(None, "dataset (default: the run's; needed for a converted checkpoint)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the run's)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")

    def __post_init__(self) -> None:
        check_options(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, CalibrateOptions)
    parser.add_argument("run", nargs="?", metavar="RUN", help="run folder or checkpoint file (same as --checkpoint)")


def calibrate_checkpoint(opts: CalibrateOptions) -> dict:
    """Build the bank of ``opts.checkpoint`` and store it there; returns what was done (bank size, time, rule).

    A run folder's checkpoint is measured and written under the run's lock (``RUN/.lock``, see
    :func:`resizable.training.run_folder.hold_run_folder`): while a training holds it, this raises
    :class:`~resizable.training.run_folder.RunFolderBusy` naming the holder, and nothing is written. The bank
    records the weights it was measured on, and is written only into a checkpoint that still holds them.
    """
    import warnings

    import torch

    from ..bnbank import size_report
    from ..checkpoint import CHECKPOINT_NAME, AsTrainedStatisticsWarning, resolve_checkpoint, write_bank
    from ..utils.distributed import resolve_device
    from ..trained_run import TrainedRun
    from ..training.run_folder import hold_run_folder

    checkpoint = resolve_checkpoint(opts.checkpoint)
    # only a run folder's checkpoint.pt is rewritten by a training; another file has no run to wait for
    lock = hold_run_folder(checkpoint.parent, "resizable calibrate") if checkpoint.name == CHECKPOINT_NAME else None
    try:
        with warnings.catch_warnings():  # the missing (or another weights') bank is what this command makes
            warnings.simplefilter("ignore", AsTrainedStatisticsWarning)
            run = TrainedRun.open(checkpoint, dataset=opts.dataset, data_dir=opts.data_dir)
        t0 = time.perf_counter()
        bank = run.build_bank(opts.batches, opts.batch_size, device=resolve_device(opts.device),
                              dtype=getattr(torch, opts.dtype))
        seconds = time.perf_counter() - t0
        path = write_bank(run.checkpoint, bank)
    finally:
        if lock is not None:
            lock.close()
    return {"checkpoint": str(path), "seconds": seconds, "bank": bank, **size_report(bank, run.model)}


def run(args: argparse.Namespace) -> int:
    from ..utils.options import resolve_options

    if args.run and getattr(args, "checkpoint", None) not in (None, args.run):
        raise ValueError(f"two checkpoints given: {args.run} and --checkpoint {args.checkpoint}; give one")
    opts = resolve_options(CalibrateOptions, args, **({"checkpoint": args.run} if args.run else {}))
    done = calibrate_checkpoint(opts)
    bank = done["bank"]
    print(f"{done['checkpoint']}: {bank.describe()}")
    print(f"{bank.meta['configs']} configurations in {done['rows']} rows, {done['bank_bytes'] / 1e6:.3f} MB "
          f"({100 * done['ratio']:.1f} % of the weights' {done['weights_bytes'] / 1e6:.2f} MB), "
          f"{done['seconds']:.1f} s")
    return 0
