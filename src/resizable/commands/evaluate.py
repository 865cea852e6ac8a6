"""``resizable eval``: top-1/top-5 of a checkpoint at listed configurations (or all of them)."""
from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass, field
from typing import Optional

from ..fileio import atomic_path

HELP = "evaluate a checkpoint at listed configurations, or --all"


@dataclass(frozen=True)
class EvalOptions:
    """Options of ``resizable eval``."""

    checkpoint: str = field(default="", metadata={"help": "checkpoint file or run folder"})
    configs: str = field(default="default", metadata={"help": "default, all, or '0.45,0.65,1;1,1,1'"})
    dataset: Optional[str] = field(default=None, metadata={"help": "dataset (default: the training one)"})
    data_dir: Optional[str] = field(default=None, metadata={"help": "dataset folder"})
    split: str = field(default="test", metadata={"help": "split to evaluate", "choices": ("train", "test", "val")})
    batch_size: int = field(default=512, metadata={"help": "evaluation batch size"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda"})
    calibrate_bn: int = field(default=0, metadata={"help": "recompute BN statistics per configuration on N "
                                                          "training batches first (0: saved statistics)"})
    out: Optional[str] = field(default=None, metadata={"help": "also write the results to this CSV (columns as "
                                                              "in resizable table: mmacs, top1_pct, ...)"})
    progress: bool = field(default=True, metadata={"help": "progress bar (shown only on a terminal)"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import add_dataclass_args

    add_dataclass_args(parser, EvalOptions)
    parser.add_argument("--all", action="store_true", help="evaluate all k^N configurations")


def run(args: argparse.Namespace) -> int:
    from ..options import resolve_options
    from ..train import evaluate_checkpoint

    opts = resolve_options(EvalOptions, args)
    if not opts.checkpoint:
        raise ValueError("--checkpoint is required (a checkpoint file or a run folder)")
    configs = "all" if args.all else opts.configs
    rows = evaluate_checkpoint(opts.checkpoint, configs, dataset=opts.dataset, data_dir=opts.data_dir,
                               split=opts.split, batch_size=opts.batch_size, device=opts.device,
                               calibrate_bn=opts.calibrate_bn, progress=opts.progress)
    basis = (f"BN statistics recalibrated on {opts.calibrate_bn} training batches" if opts.calibrate_bn
             else "BN statistics as trained")
    print(f"{opts.split} split, {basis}")
    print(f"{'config':<28}{'MMACs':>10}{'top-1 %':>10}{'top-5 %':>10}")
    for r in rows:
        print(f"{r['config']:<28}{r['mmacs']:>10.2f}{r['top1_pct']:>10.2f}{r['top5_pct']:>10.2f}")
    if opts.out:
        with atomic_path(opts.out) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {opts.out}")
    return 0
