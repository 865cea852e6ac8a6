"""The report: ``report.md`` (machine, date, wall-clock, protocol, every claim's table and verdict) and plots."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .claims import TITLES
from .fig3d import fig3d_tables, val_front
from .plan import COSTLY_SEEDS
from .cost import cost_table
from .protocol import Protocol
from .runs import Results, all_top1, cfg, mean_table, mmacs
from .figures import pyplot, save_figure


def plot_claim(claim: str, p: Protocol, seeds: Sequence[int], results: Results, out: Path) -> Optional[Path]:
    """The claim's figure (t1, fig3abc, fig3d, t2; Fig 5's: :func:`claims_default.plot_fig5`); None for the others
    or when nothing is there to plot."""
    plt = pyplot()

    if claim in ("fig3abc", "fig3d"):  # the applications on the default recipe's network
        from .fig3abc import plot_fig3abc
        from .fig3d_front import plot_fig3d_front

        return (plot_fig3abc if claim == "fig3abc" else plot_fig3d_front)(p, seeds, results, out)
    costs = mmacs(results, f"rs-s{seeds[0]}", "test_cal") or mmacs(results, f"rs-s{seeds[0]}", "test_raw")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if claim == "t1":
        rs = mean_table(results, [f"rs-s{s}" for s in seeds], "test_cal")
        if not rs:
            plt.close(fig)
            return None
        ax.scatter([costs[c] for c in rs], list(rs.values()), s=12, c="tab:blue", alpha=0.6,
                   label=f"RS, all {len(rs)} configurations ({p.epochs} epochs)")
        rs2 = mean_table(results, [f"rs2x-s{s}" for s in seeds], "test_cal")
        if rs2:
            ax.scatter([costs[c] for c in rs2], list(rs2.values()), s=8, c="tab:green", alpha=0.4,
                       label=f"RS, {2 * p.epochs} epochs")
        for s in p.factors:
            kind = "test_cal" if s == max(p.factors) else "own_cal"
            vals = [v for v in (all_top1(results, f"single-{s:g}-s{seed}", kind) or {} for seed in seeds)]
            vals = [t[cfg(s)] for t in vals if cfg(s) in t]
            if vals:
                ax.errorbar([costs[cfg(s)]], [statistics.fmean(vals)],
                            yerr=[statistics.stdev(vals) if len(vals) > 1 else 0], fmt="rx", ms=9, capsize=3,
                            label="trained alone (s,s,s)" if s == p.factors[0] else None)
        ax.set_title("T1: every RS configuration vs networks trained alone (test)")
    elif claim == "fig3d":
        s = seeds[0]
        drawn = False
        for basis, name, colour in (("as trained", f"adapt-s{s}", "tab:blue"),
                                    ("statistics bank", f"adapt-bank-s{s}", "tab:orange")):
            adapt = results.get(name)
            if not adapt:
                continue
            val, test, at = fig3d_tables(results, basis, s, adapt)
            if not (val and test):
                continue
            drawn = True
            ax.scatter([at[c] for c in test], list(test.values()), s=6, c=colour, alpha=0.25,
                       label=f"every configuration, BN {basis}")
            front = val_front(val, at)
            ax.plot([at[c] for c in front], [test[c] for c in front], "o-", c=colour, ms=4,
                    label=f"NAS Pareto front, BN {basis} (picked on val, test accuracy)")
            for clf, rows in adapt["classifiers"].items():
                ax.scatter([r["mean_mmacs"] for r in rows], [r["top1"] for r in rows], marker="*", s=120,
                           c=colour, edgecolors="black", label=f"Adapt, BN {basis}, classifier seed {clf}")
        if not drawn:
            plt.close(fig)
            return None
        ax.set_title(f"Fig 3d: Adapt vs NAS (training seed {s})")
    elif claim == "t2":
        top = cfg(max(p.factors))
        for name, colour in ((f"t2base-s{seeds[0]}", "tab:red"), (f"aug-s{seeds[0]}", "tab:blue"),
                             (f"augmean-s{seeds[0]}", "tab:green")):
            r = results.get(name)
            if r:
                ep = [x["epoch"] for x in r["curve"]]
                ax.plot(ep, [x["top1"].get(top) for x in r["curve"]], "-o", c=colour, ms=3, label=f"{name} val")
                ax.plot(ep, [x["train_top1"] for x in r["curve"]], "--", c=colour, label=f"{name} train")
        ax.set_xlabel("epoch")
        ax.set_ylabel("top-1 % at all-1.0")
        ax.set_title("T2: training curves (seed %d)" % seeds[0])
    else:
        plt.close(fig)
        return None
    if claim != "t2":
        ax.set_xlabel("MMACs (multiply-accumulates, interpolation excluded)")
        ax.set_ylabel("test top-1 %")
    return save_figure(fig, out, ax)


def machine() -> str:
    from resizable.nas import device_description

    return f"{device_description('cpu')}, {os.cpu_count()} cores"


def suite_time(results: Results, trainings: Path) -> Dict[str, Optional[float]]:
    """The suite's time over all its sittings, from the step records and ``trainings.jsonl``.

    ``compute``: seconds of every finished step, summed over processes and sittings. A step's record times only
    its last sitting (``step_seconds``), while its curve holds every epoch's seconds; the epochs trained in
    earlier sittings are added from the curve (their evaluations between epochs are not, so this is a floor).
    ``span``: from the first training's start to the last step's end, pauses between sittings included.
    """
    import json
    from datetime import datetime

    starts: Dict[str, List[Dict[str, Any]]] = {}
    if trainings.is_file():
        for line in trainings.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                starts.setdefault(entry["run"], []).append(entry)
    compute = 0.0
    for name, r in results.items():
        if not r:  # not run yet
            continue
        seconds = float(r.get("step_seconds", 0.0))
        last = starts.get(name, [])[-1:]
        if last and r.get("curve"):  # epochs before this sitting's first are not in step_seconds
            seconds += sum(float(e["seconds"]) for e in r["curve"] if int(e["epoch"]) <= int(last[0]["from_epoch"]))
        compute += seconds
    stamps = [datetime.fromisoformat(e["time"]) for runs in starts.values() for e in runs]
    ends = [datetime.fromisoformat(r["finished"]) for r in results.values() if r and r.get("finished")]
    span = (max(ends) - min(stamps)).total_seconds() if stamps and ends else None
    return {"compute": compute, "span": span}


def write_report(path: Path, p: Protocol, seeds: Sequence[int], claims: Sequence[str], sections: Dict[str, Any],
                 results: Results, selection: Dict[str, Any], wall: float, jobs: int, threads: int,
                 plots: Dict[str, Optional[Path]], json_dir: Path, left: Optional[str] = None) -> Path:
    from resizable import atomic_write_text

    spent = suite_time(results, json_dir / "trainings.jsonl")
    missing = [name for name, r in results.items() if not r]
    span = f"{spent['span'] / 3600:.2f} h" if spent["span"] is not None else "unknown"
    chosen = selection.get("chosen")
    lines: List[str] = [
        "# The paper's claims on Fashion-MNIST",
        "",
        "Written by `experiments/paper/run.py`" + (" in --quick mode: tiny network and steps, numbers mean nothing"
                                             if p.quick else "") + "; every number below is computed from the "
        "run results in `" + os.path.relpath(json_dir / "runs", path.parent) + "/`, every verdict by the rule in `experiments/paper/suite/stats.py` (agrees: the "
        "paper's direction by more than t x se of the per-seed differences, t the two-sided 95 % critical value of "
        "Student's t for the seeds' degrees of freedom (12.71 for 2 seeds, 4.30 for 3); disagrees: the opposite; "
        "otherwise inconclusive; one seed is always inconclusive).",
        "",
        f"- machine: {machine()} (where this report was written; its runs may come from earlier sittings on other "
        f"machines of the same size); {jobs} run(s) at a time, {threads} torch thread(s) each",
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}",
        *([f"- **unfinished**: {len(missing)} of {len(results)} runs have not run yet ({', '.join(missing)}); "
           "their cells show '-', and a verdict without values says so"] if missing else []),
        *([left] if left else []),
        f"- wall-clock of this invocation: {wall / 3600:.2f} h; compute of all {len(results) - len(missing)} "
        f"finished steps "
        f"(summed over processes and sittings): {spent['compute'] / 3600:.2f} h, i.e. "
        f"{spent['compute'] / 3600 / max(1, jobs):.2f} h of wall-clock at {jobs} run(s) at a time; from the first "
        f"training's start to the last step's end, pauses between sittings included: {span}",
        f"- seeds: {', '.join(map(str, seeds))}" + (f"; in the T1 (Table 1) section, RS at 2x epochs runs the "
                                                     f"first {COSTLY_SEEDS['rs2x']} seeds only, to fit the time "
                                                     f"(the recipes' T1 runs every seed)"
                                                     if len(seeds) > COSTLY_SEEDS["rs2x"] else ""),
        f"- network: {p.model} {p.model_args}, L = {tuple(p.factors)}: stages at 14/7/7 px, all "
        f"{len(p.factors) ** 3} configurations with distinct resolutions",
        f"- data: Fashion-MNIST{' (--quick: a small copy)' if p.quick else ''}, {p.val_size} training images held "
        f"out as val (seed {p.val_seed}); every choice made on val, every table on the test images",
        f"- shared recipe: SGD momentum {p.momentum}, {p.schedule} schedule, lr {p.lr:g}, batch {p.batch_size}, "
        f"weight decay {p.weight_decay:g}, augmentation {'crop+flip' if p.augment else 'none'}, {p.epochs} epochs "
        f"(RS at 2x in T1 (b)); BN recalibrated on {p.eval_calibrate_bn} batches of {p.eval_batch_size} training "
        "images",
        f"- hyper-parameter selection: {selection.get('source') or 'selection.json'}"
        + (f": lr {chosen['lr']:g}, augmentation {chosen['augment']} (val top-1 {chosen['val_top1']:.2f}, "
           f"{selection.get('device', '')})" if chosen else ""),
        "",
    ]
    for claim in claims:
        lines += [f"## {TITLES[claim]}", ""] + sections[claim]["md"] + [""]
        if plots.get(claim):
            lines += [f"![{claim}]({os.path.relpath(plots[claim], path.parent)})", ""]
        lines += [f"Numbers per seed: `{os.path.relpath(json_dir / (claim + '.json'), path.parent)}`", ""]
    lines += cost_table(results)
    atomic_write_text(path, "\n".join(lines).rstrip() + "\n")
    return path


README_MARKS = ("<!-- paper:start -->", "<!-- paper:end -->")


def write_readme_block(readme: Path, lines: Sequence[str]) -> bool:
    """Put ``lines`` (the results block: at most three lines, :mod:`headline`) between the README's paper marks.

    Returns False (and leaves the README alone) when it has no such marks.
    """
    from resizable import atomic_write_text

    start, end = README_MARKS
    text = readme.read_text()
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{start}\n" + "\n".join(lines) + f"\n{end}{tail}")
    return True
