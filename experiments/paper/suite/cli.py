"""``experiments/paper/run.py``: parse the command line, then select hyper-parameters or run the suite."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from .protocol import RESULTS, SELECTION, Protocol, load_protocol
from .time_limit import TimeUp

WORK = Path("runs") / "paper"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="experiments/paper/run.py", description="The paper's claims on Fashion-MNIST.")
    p.add_argument("--claims", default="all", help="all, or a comma-separated list of: recipes, curve, t1, "
                                                   "fig5, t9, t11, t2, fig3abc, fig3d, beyond")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    p.add_argument("--headline-seeds", default=None,
                   help="recipes claim: more seeds for the headline row only (full regime: the networks alone and "
                        "the chosen recipe at E and 2E), comma-separated, e.g. 3,4")
    p.add_argument("--quick", action="store_true", help="tiny epochs and network, one seed: every path in a minute "
                                                        "(results under --results-dir, default runs/paper-quick)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the system copy)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip finished runs and continue the unfinished one (default); --no-resume restarts "
                        "unfinished runs from their first epoch (finished ones are still skipped)")
    p.add_argument("--jobs", type=int, default=1, help="training runs at a time (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--work-dir", default=None, help=f"run folders (git-ignored; default {WORK})")
    p.add_argument("--results-dir", default=None, help=f"results (default {RESULTS}; quick: runs/paper-quick)")
    p.add_argument("--select", action="store_true", help="tune every compared method on val (screen.py) instead of "
                                                         "running the suite")
    p.add_argument("--confirm", action="store_true",
                   help="tune the screening's best RS candidates and the networks alone again on val at the full "
                        "regime's budget, two seeds (confirm.py; needs a finished screening)")
    p.add_argument("--methods", "--screen-methods", dest="methods", default=None,
                   help="--select: only these methods, comma-separated, screened in the suite's order (default: all: "
                        "the networks alone first, then each RS family)")
    p.add_argument("--screen-stages", type=int, default=None,
                   help="--select: run only each method's first N stages (1: lr x warm-up, 2: + weight decay, "
                        "3 on: + the family's own knobs, one a stage); a method cut short is recorded unfinished (default: all)")
    p.add_argument("--select-defaults", action="store_true", help="the first selection: lr x augmentation of the "
                                                                  "all-1.0 network alone (select.py), the suite's "
                                                                  "defaults")
    p.add_argument("--steps", type=int, default=None, help="--select: steps per epoch of each selection run "
                                                           "(default 80; --select-defaults: 130)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report (and the README's headline) from the runs already finished; "
                        "a missing run shows as '-' and its verdict as 'no values'")
    p.add_argument("--rerun-stale", action="store_true",
                   help="run again the finished steps made with earlier options than they have now (the selection "
                        "moved since), and every step made from them: their records, kept weights and run folders "
                        "are moved under superseded/ first (without it such a step stops the run before anything "
                        "trains)")
    p.add_argument("--time-limit", type=float, default=None, metavar="HOURS",
                   help="start no run that the estimate (its counted MACs over the finished runs' throughput) says "
                        "would end later than HOURS from now; a run that does not fit is left and the next that fits "
                        "starts, and the command ends with status 3 once they have finished (the same command goes "
                        "on from there)")
    p.add_argument("--device", default="cpu", help="cpu or cuda: where every run trains and evaluates (with --jobs N, "
                                                   "N runs share one GPU)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.jobs < 1 or args.threads < 1:
            raise ValueError("--jobs and --threads must be >= 1")
        if args.rerun_stale and (args.report_only or args.select or args.confirm):
            raise ValueError("--rerun-stale runs the suite's claims again; it does not go with --report-only, "
                             "--select or --confirm")
        if args.screen_stages is not None and args.screen_stages < 1:
            raise ValueError("--screen-stages must be >= 1")
        protocol, selection = load_protocol(args.quick)
        quick_dir = Path(args.results_dir or "runs/paper-quick")
        if args.time_limit is not None:
            limit_time(protocol, args.time_limit, quick_dir if args.quick or args.results_dir else RESULTS)
        if args.select_defaults:
            from .select import run_selection

            work = Path(args.work_dir or WORK)
            out = SELECTION if not args.quick else quick_dir / "selection.json"
            record = run_selection(protocol, steps=args.steps or 130, work=work, out=out, data_dir=args.data_dir,
                                   jobs=args.jobs, threads=args.threads, device=args.device)
            print(f"chosen: {record['chosen']} -> {out}")
            return 0
        if args.confirm:
            from .confirm import confirm_results, run_confirm
            from .suite import small_copy

            only = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
            work = Path(args.work_dir or ("runs/paper-quick-work" if args.quick else WORK))
            out = quick_dir / "selection.json" if args.quick else SELECTION
            if not out.is_file():
                raise ValueError(f"{out} does not exist: run the screening (--select) first")
            record = run_confirm(protocol, json.loads(out.read_text()), work=work, out=out,
                                 results=confirm_results(quick_dir, args.quick),
                                 sources=quick_dir if args.quick else RESULTS,
                                 data_dir=args.data_dir or (small_copy(work / "data", None) if args.quick else None),
                                 jobs=args.jobs, threads=args.threads, device=args.device, only=only)["confirmation"]
            for name, m in record["methods"].items():
                print(f"{name}: lr {m['best']['point']['lr']:g} val {m['best']['val_score']:.2f}"
                      f"{'  (on the grid edge)' if m['on_edge'] else ''}")
            print(f"winner: {record.get('winner')}")
            return 0
        if args.select:
            from .screen import SCREEN_RESULTS, SCREEN_STEPS, run_screen
            from .suite import small_copy

            work = Path(args.work_dir or ("runs/paper-quick-work" if args.quick else WORK))
            data_dir = args.data_dir or (small_copy(work / "data", None) if args.quick else None)
            only = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
            record = run_screen(protocol, steps=args.steps or (2 if args.quick else SCREEN_STEPS), work=work,
                                results=quick_dir / "select" if args.quick else SCREEN_RESULTS,
                                out=quick_dir / "selection.json" if args.quick else SELECTION,
                                data_dir=data_dir, jobs=args.jobs, threads=args.threads, only=only,
                                device=args.device, max_stages=args.screen_stages)
            for name, m in record["recipes"]["methods"].items():
                best = m.get("best") or m.get("best_so_far")
                if best and (only is None or name in only):
                    print(f"{name}: best {best['point']} val {best['val_score']:.2f}"
                          f"{'' if m.get('best') else ' (stages ' + str(m.get('stages_done')) + ')'}"
                          f"{'  (on the grid edge)' if m['on_edge'] else ''}")
            return 0
        from .suite import run_suite

        return run_suite(args, protocol, selection)
    except TimeUp as e:
        print(f"[paper] time limit: {e}", flush=True)
        return 3
    except ValueError as e:
        print(f"paper.py: error: {e}", file=sys.stderr)
        return 2


def limit_time(p: Protocol, hours: float, results: Path) -> None:
    """--time-limit: every run's estimate from the throughput of the finished runs under ``results``."""
    import functools
    import time

    from .estimate import step_seconds, throughput
    from .time_limit import set_time_limit

    if hours <= 0:
        raise ValueError(f"--time-limit must be a positive number of hours, got {hours:g}")
    done = {str(f): json.loads(f.read_text()) for f in results.glob("**/runs/*.json")}
    rate = throughput(done)
    if rate is None:
        raise ValueError(f"--time-limit needs a finished run with a known cost under {results} to estimate from")
    set_time_limit(time.time() + hours * 3600.0, functools.partial(step_seconds, p, rate))

