"""``resizable eval``: top-1/top-5 of a checkpoint at listed configurations (or all of them)."""
from __future__ import annotations

import argparse
import csv
from ..utils.fileio import atomic_path

HELP = "evaluate a checkpoint at listed configurations, or --all"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..evaluation.checkpoint_eval import EvalOptions
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, EvalOptions)
    parser.add_argument("--all", action="store_true", help="evaluate all k^N configurations")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.checkpoint_eval import EvalOptions, evaluate_checkpoint
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
