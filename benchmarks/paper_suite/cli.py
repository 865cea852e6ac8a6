"""``benchmarks/paper.py``: parse the command line, then select hyper-parameters or run the suite."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from .protocol import RESULTS, SELECTION, load_protocol

WORK = Path("runs") / "paper"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/paper.py", description="The paper's claims on Fashion-MNIST.")
    p.add_argument("--claims", default="all", help="all, or a comma-separated list of: t1, fig5, t9, t11, t2, "
                                                   "fig3d, beyond")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    p.add_argument("--quick", action="store_true", help="tiny epochs and network, one seed: every path in a minute "
                                                        "(results under --results-dir, default runs/paper-quick)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the system copy)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip finished runs and continue the unfinished one (default); --no-resume restarts "
                        "unfinished runs from their first epoch (finished ones are still skipped)")
    p.add_argument("--jobs", type=int, default=1, help="training runs at a time (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--work-dir", default=None, help=f"run folders (git-ignored; default {WORK})")
    p.add_argument("--results-dir", default=None, help=f"results (default {RESULTS}/paper; quick: runs/paper-quick)")
    p.add_argument("--select", action="store_true", help="run the hyper-parameter selection instead of the suite")
    p.add_argument("--steps", type=int, default=130, help="--select: steps per epoch of each selection run")
    p.add_argument("--device", default="cpu", help="--select: cpu or cuda")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.jobs < 1 or args.threads < 1:
            raise ValueError("--jobs and --threads must be >= 1")
        protocol, selection = load_protocol(args.quick)
        if args.select:
            from .select import run_selection

            work = Path(args.work_dir or WORK)
            out = SELECTION if not args.quick else Path(args.results_dir or "runs/paper-quick") / "selection.json"
            record = run_selection(protocol, steps=args.steps, work=work, out=out, data_dir=args.data_dir,
                                   jobs=args.jobs, threads=args.threads, device=args.device)
            print(f"chosen: {record['chosen']} -> {out}")
            return 0
        from .suite import run_suite

        return run_suite(args, protocol, selection)
    except ValueError as e:
        print(f"paper.py: error: {e}", file=sys.stderr)
        return 2
