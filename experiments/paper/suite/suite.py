"""Run the suite: plan the steps, run the unfinished ones (resuming the one cut short), analyse, report."""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .claims import ANALYSES
from .claims_default import ANALYSES_ON_DEFAULT, CLAIMS_ON_DEFAULT, earlier_steps, plan_default, plot_fig5
from .plan import CLAIMS, conditional, plan
from .recipes import analyse_recipes, plan_recipes
from .protocol import READMES, REPORT, RESULTS, Protocol
from .report import plot_claim, write_readme_block, write_report
from .apps import resolve_app, run_finetune, run_tables
from .fig3d_front import run_adapt_front
from .stale import set_aside, stale_line, stale_results
from .steps import Context, Step, load_result, run_steps

# the applications' step kinds (apps.py, fig3d_front.py), handed to the steps through the context
APP_RUNNERS = (("tables", run_tables), ("finetune", run_finetune), ("adapt_front", run_adapt_front))


def parse_claims(text: str) -> List[str]:
    names = [c.strip().lower() for c in text.split(",") if c.strip()]
    if names == ["all"]:
        return list(CLAIMS)
    unknown = [c for c in names if c not in CLAIMS]
    if unknown or not names:
        raise ValueError(f"unknown claim(s) {unknown or text!r}; accepted: all, {', '.join(CLAIMS)}")
    return [c for c in CLAIMS if c in names]


def parse_seeds(text: str) -> List[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs distinct integers, got {text!r}")
    return seeds


def unique_steps(steps: Sequence[Step]) -> List[Step]:
    """Each step once (claims share runs: the curve's first points are the recipes claim's); one name planned with
    two different definitions is an error, not a silent choice."""
    import dataclasses

    out: Dict[str, Step] = {}
    for s in steps:
        if s.name in out:
            # keeping the weights is not an option of the run (not in its key): a claim that needs them asks for them
            kept = out[s.name].keep_weights or s.keep_weights
            if dataclasses.replace(out[s.name], keep_weights=kept) != dataclasses.replace(s, keep_weights=kept):
                raise ValueError(f"step {s.name} is planned twice with different options")
            out[s.name] = dataclasses.replace(out[s.name], keep_weights=kept)
        out.setdefault(s.name, s)
    return list(out.values())


def small_copy(out: Path, data_dir: Optional[str], n_train: int = 2000, n_test: int = 1000) -> str:
    """The first images of Fashion-MNIST as idx files in ``out`` (the --quick suite's small data); returns ``out``."""
    import gzip
    import struct

    from resizable import atomic_path
    from resizable.data import FASHION_FILES, load_fashion_mnist

    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = load_fashion_mnist(split, data_dir, False)
        for stem, array in zip(FASHION_FILES[split], (images[:n, 0], labels[:n])):
            path = out / f"{stem}.gz"
            if path.is_file():
                continue
            data = array.contiguous().numpy().astype("uint8")
            header = struct.pack(">HBB", 0, 0x08, data.ndim) + struct.pack(">" + "I" * data.ndim, *data.shape)
            out.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, gzip.open(tmp, "wb") as f:
                f.write(header + data.tobytes())
    return str(out)


def screened(protocol: Protocol, work: Path, results_dir: Path, data_dir: Optional[str],
             args: argparse.Namespace, complete: bool = True) -> Dict[str, Any]:
    """The screening's record: read from ``selection.json``, or made first (``screen.py``) when unfinished.

    ``complete=False`` (the budget curve alone) takes the record as it is, as --report-only does: the curve
    trains the default recipe of the screening so far, and a later winner changes its steps."""
    from .protocol import SELECTION
    from .screen import SCREEN_RESULTS, SCREEN_STEPS, methods, run_screen

    from .confirm import FROM_SCRATCH, confirm_results, confirmed, run_confirm
    from .recipes import aug_methods

    out = results_dir / "selection.json" if protocol.quick else SELECTION
    screen = dict(steps=2 if protocol.quick else SCREEN_STEPS, work=work,
                  results=results_dir / "select" if protocol.quick else SCREEN_RESULTS, out=out, data_dir=data_dir,
                  jobs=args.jobs, threads=args.threads, device=args.device)

    def finished(record: Dict[str, Any], candidates: Sequence[Any]) -> bool:
        done = record.get("recipes", {}).get("methods", {})
        return all((done.get(m.name) or {}).get("best") for m in candidates)

    record = json.loads(out.read_text()) if out.is_file() else {}
    if args.report_only or not complete:
        # the networks alone and the two recipes every report compares; another RS method is chosen once screened
        needed = [m for m in methods(protocol) if m.side == "alone" or m.name in FROM_SCRATCH[:2]]
        if not finished(record, needed) or not finished(record, aug_methods(protocol, record)):
            raise ValueError(f"the screening in {out} has not finished; run experiments/paper/run.py "
                             f"--claims recipes (or --select) first")
        return record
    if not finished(record, methods(protocol)):
        record = run_screen(protocol, **screen)
    if not confirmed(protocol, record):  # the best candidates again at the full budget, two seeds (confirm.py)
        record = run_confirm(protocol, record, work=work, out=out, sources=results_dir, data_dir=data_dir,
                             results=confirm_results(results_dir, protocol.quick),
                             jobs=args.jobs, threads=args.threads, device=args.device)
    second = aug_methods(protocol, record)  # they depend on the first stage's choice
    if not finished(record, second):
        record = run_screen(protocol, **screen, candidates=second)
    return record


def run_suite(args: argparse.Namespace, protocol: Protocol, selection: Dict[str, Any]) -> int:
    from resizable import atomic_write_text

    t0 = time.time()
    claims, seeds = parse_claims(args.claims), parse_seeds(args.seeds)
    if protocol.quick:
        seeds = seeds[:1]
    default = Path("runs/paper-quick") if protocol.quick else RESULTS
    results_dir = Path(args.results_dir) if args.results_dir else default
    work = Path(args.work_dir) if args.work_dir else Path("runs") / ("paper-quick-work" if protocol.quick else "paper")
    data_dir = args.data_dir
    if protocol.quick and not args.data_dir:
        data_dir = small_copy(work / "data", None)
    ctx = Context(protocol, str(work), str(results_dir), data_dir, args.threads, args.resume, device=args.device,
                  runners=APP_RUNNERS, resolvers=(resolve_app,))
    analyses = dict(ANALYSES)
    steps = plan(protocol, seeds, [c for c in claims if c not in ("recipes", "curve")])
    if {"recipes", "curve", "fig3abc", "fig3d", *CLAIMS_ON_DEFAULT} & set(claims):  # the screening first
        selection = screened(protocol, work, results_dir, data_dir, args, complete="recipes" in claims)
    if "recipes" in claims:
        more = parse_seeds(args.headline_seeds) if args.headline_seeds and not protocol.quick else []
        steps = plan_recipes(protocol, seeds, selection, more) + steps
        analyses["recipes"] = functools.partial(analyse_recipes, selection=selection, headline_seeds=more)
    if "curve" in claims:  # the budget curve: its points that are recipes runs are those steps (deduplicated below)
        from .curve import plan_curve
        from .curve_wd import analyse_curve_and_wd, plan_wd_check

        # the weight-decay check at the longest budget runs after the curve's points (it is the dearest)
        steps = steps + plan_curve(protocol, seeds, selection) + plan_wd_check(protocol, selection)
        analyses["curve"] = functools.partial(analyse_curve_and_wd, selection=selection)
    if {"fig3abc", "fig3d"} & set(claims):  # on the default recipe's network (the curve's first RS point)
        from .fig3abc import analyse_fig3abc, plan_fig3abc
        from .fig3d_front import analyse_fig3d, plan_fig3d_front

        if "fig3abc" in claims:
            steps = steps + plan_fig3abc(protocol, seeds, selection)
            analyses["fig3abc"] = functools.partial(analyse_fig3abc, selection=selection)
        if "fig3d" in claims:
            steps = steps + plan_fig3d_front(protocol, seeds, selection)
            analyses["fig3d"] = analyse_fig3d
    on_default = [c for c in claims if c in CLAIMS_ON_DEFAULT]
    if on_default:  # on the default recipe's network; the earlier network's rows from what is committed
        steps = steps + plan_default(protocol, seeds, on_default, selection)
        analyses.update({c: functools.partial(ANALYSES_ON_DEFAULT[c], selection=selection) for c in on_default})
    steps = unique_steps(steps)
    if not args.report_only:
        from .confirm import adopt, confirm_results

        if args.rerun_stale:
            moved = set_aside(ctx, steps, stale_results(ctx, steps, {s.name: load_result(ctx, s.name) for s in steps}))
            if moved:
                print(f"[paper] set aside under superseded/ to run again (made with earlier options): "
                      f"{', '.join(moved)}", flush=True)
        adopted = adopt(ctx, steps, confirm_results(results_dir, protocol.quick))
        if adopted:
            print(f"[paper] the confirmation's runs with the same options: {', '.join(adopted)}", flush=True)
        run_steps(ctx, steps, args.jobs)
    results = {s.name: load_result(ctx, s.name) for s in steps}
    stale = stale_results(ctx, steps, results)
    if stale:  # only --report-only gets here with one: a run refuses a stale result before anything trains
        print(f"[paper] made with other options than the steps have now (the report uses and names them until they "
              f"are re-run; delete them and their run folders to re-run): {', '.join(stale)}", flush=True)
    if "curve" in claims:  # Table 8 sets T8's timing beside it when that has run (it is not planned for this)
        results.update({n: r for n in (f"timing-s{x}" for x in seeds) if n not in results
                        for r in [load_result(ctx, n)] if r})
    results.update({n: r for n in earlier_steps(on_default, seeds) if n not in results  # shown, never planned
                    for r in [load_result(ctx, n)] if r})
    if args.report_only:
        missing = [s.name for s in steps if results[s.name] is None]
        print(f"[paper] --report-only: {len(steps) - len(missing)} of {len(steps)} runs finished"
              + (f"; missing: {', '.join(missing)}" if missing else ""), flush=True)
    sections = {c: analyses[c](protocol, seeds, results) for c in claims}
    flags = {k: v for sec in sections.values() for k, v in sec["flags"].items()}
    extra = conditional(protocol, seeds, claims, flags)
    if extra:
        if not args.report_only:
            print(f"[paper] adding {', '.join(s.name for s in extra)} (flags: {flags})", flush=True)
            run_steps(ctx, extra, args.jobs)
        results.update({s.name: load_result(ctx, s.name) for s in extra})
        sections = {c: analyses[c](protocol, seeds, results) for c in claims}
    if "recipes" in sections:  # the summary the READMEs no longer carry opens the section
        sections["recipes"]["md"] = ["#### Summary", "", *sections["recipes"]["headline"], "",
                                     *sections["recipes"]["md"]]
    plots = {}
    for claim in claims:
        if claim == "curve":
            from .curve import plot_budget

            plots[claim] = plot_budget(protocol, sections[claim]["json"], results, selection,
                                       results_dir / "budget-curve.png")
        elif claim == "fig5":
            plots[claim] = plot_fig5(protocol, seeds, results, selection, results_dir / "fig5.png")
        else:
            plots[claim] = plot_claim(claim, protocol, seeds, results, results_dir / f"{claim}.png")
        record = {"claim": claim, "seeds": seeds, "protocol": protocol.to_dict(), "flags": sections[claim]["flags"],
                  "numbers": sections[claim]["json"]}
        atomic_write_text(results_dir / f"{claim}.json", json.dumps(record, indent=1, default=str) + "\n")
    report = results_dir / REPORT.name
    from .estimate import estimate_line, unfinished_hours

    current = {n: (None if n in stale else r) for n, r in results.items()}  # a stale run is to be re-run
    left = "\n".join(line for line in (estimate_line(unfinished_hours(protocol, list(steps) + list(extra), current)),
                                        stale_line(stale)) if line)
    write_report(report, protocol, seeds, claims, sections, results, selection, time.time() - t0, args.jobs,
                 args.threads, plots, results_dir, left)
    print(f"[paper] wrote {report}")
    verdicts = [line for claim in claims for line in sections[claim]["md"] if line.startswith("**Verdict")]
    if report.resolve() == REPORT.resolve() and ("recipes" in claims or "curve" in claims):  # the READMEs' block
        from .headline import readme_lines

        for readme in READMES:
            lines = readme_lines(protocol, sections.get("recipes", {}).get("json"),
                                 sections.get("curve", {}).get("json"), results, readme, report, READMES[1])
            if lines and readme.is_file() and write_readme_block(readme, lines):
                print(f"[paper] wrote the equal-cost line into {readme}: {lines[0]}")
    for line in verdicts:
        print(f"[paper] {line}")
    return 0
