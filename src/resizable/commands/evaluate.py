"""``resizable eval``: one checkpoint evaluated at listed configurations (or all of them), top-1/top-5 per
configuration with its MACs."""
from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..trained_run import bn_statistics_option
from ..configs import CONFIG_SETS, format_config, parse_configs
from ..costs import config_costs
from ..evaluation.walker import Calibration, evaluate
from ..trained_run import TrainedRun
from ..utils.distributed import resolve_device
from ..utils.fileio import atomic_path
from ..utils.options import check_options, option, required

__all__ = ["EvalOptions", "evaluate_checkpoint"]

HELP = "evaluate a checkpoint at listed configurations, or --all"


@dataclass(frozen=True)
class EvalOptions:
    """What ``resizable eval`` evaluates; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("checkpoint file or run folder")
    configs: str = option("default", f"{', '.join(CONFIG_SETS)}, or '0.45,0.65,1;1,1,1'")
    dataset: Optional[str] = option(None, "dataset (default: the training one)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training one)")
    split: str = option("test", "split to evaluate: val is the run's held-out images (train --val-size)",
                        choices=("train", "test", "val"))
    batch_size: int = option(512, "evaluation batch size", min=1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    bn_statistics: str = bn_statistics_option()
    calibrate_bn: int = option(0, "recompute BN statistics per configuration on N training batches first "
                                  "(0: --bn-statistics)", min=0)
    out: Optional[str] = option(None, "also write the results to this CSV (columns as in resizable table: "
                                      "mmacs, top1_pct, ...)")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def evaluate_checkpoint(opts: EvalOptions) -> List[Dict[str, Any]]:
    """Evaluate a checkpoint at ``opts.configs``; one row per configuration with the lookup table's
    column names: ``config``, ``mmacs`` (millions of MACs, interpolation excluded),
    ``interp_mmacs``, ``top1_pct``, ``top5_pct`` (more than 5 classes), ``loss``, and
    ``bn_statistics``: the basis of the numbers (the statistics bank, as trained, or recalibrated per
    configuration).

    The dataset and its folder default to the training run's; their classes and channels must fit
    the model.
    """
    run = TrainedRun.open(opts.checkpoint, dataset=opts.dataset, data_dir=opts.data_dir)
    model = run.model
    chosen = parse_configs(opts.configs, model.factors, model.num_stages)
    model.to(resolve_device(opts.device))
    loader = run.loader(opts.split, opts.batch_size)
    calibrate = (Calibration(run.calibration_loader(opts.batch_size), opts.calibrate_bn)
                 if opts.calibrate_bn else None)
    basis = (f"recalibrated on {opts.calibrate_bn} training batches of {opts.batch_size}" if opts.calibrate_bn
             else run.use_bn_statistics(opts.bn_statistics))
    results = evaluate(model, loader, chosen, progress=opts.progress, calibrate=calibrate)
    costs = config_costs(model, run.input_size, chosen)
    return [{"config": format_config(c), "mmacs": costs[c][0] / 1e6, "interp_mmacs": costs[c][1] / 1e6,
             **{f"{k}_pct": results[c][k] for k in ("top1", "top5") if k in results[c]}, "loss": results[c]["loss"],
             "bn_statistics": basis}
            for c in chosen]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, EvalOptions)
    parser.add_argument("--all", action="store_true", help="evaluate all k^N configurations")


def run(args: argparse.Namespace) -> int:
    from ..utils.options import resolve_options

    from ..training.run_folder import output_path

    opts = resolve_options(EvalOptions, args, **({"configs": "all"} if args.all else {}))
    out = output_path(opts.out, "eval.csv") if opts.out else None  # refused before the work, not after
    rows = evaluate_checkpoint(opts)
    print(f"{opts.split} split, BN statistics: {rows[0]['bn_statistics']}")
    print(f"{'config':<28}{'MMACs':>10}{'top-1 %':>10}{'top-5 %':>10}")
    for r in rows:
        print(f"{r['config']:<28}{r['mmacs']:>10.2f}{r['top1_pct']:>10.2f}{r.get('top5_pct', float('nan')):>10.2f}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {out}")
    return 0
