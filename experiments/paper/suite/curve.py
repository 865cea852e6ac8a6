"""The budget curve: one RS training against the networks it replaces, at equal counted cost, budget by budget.

Fair sampling runs each factor of each stage once per step, so one RS step costs what one step of
each of the k uniform networks costs (counted MACs, :mod:`cost`): equal epochs are equal cost. At
each budget ``b`` of ``BUDGETS`` (multiples of the protocol's E epochs, full regime):

| side | epochs | step |
| --- | --- | --- |
| each uniform configuration alone, at its own tuned point | b E | ``curve-alone-<s>-e<bE>-s<seed>`` |
| RS, the default recipe (the val winner), equal cost | b E | ``curve-rs-e<bE>-s<seed>`` |
| the same RS at twice the cost (``TWICE_BUDGETS``: not at the longest) | 2 b E | ``curve-rs-e<2bE>-s<seed>`` |

Each point is a run with its own full schedule. A point that is a recipes-claim run already
(the networks alone at E, RS at E and 2E: ``full-alone-*``, ``full-<method>``, ``full-<method>-2x``)
is that step, with its name and key. The RS recipe is ``chosen_recipes(selection)[0]``, read from
the selection, so a new default changes the curve's steps (and their keys). Steps run cheapest first.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .claims import converged
from .cost import run_cost, seconds, step_cost, tmacs
from .estimate import full_epoch_steps
from .protocol import Protocol
from .recipes import chosen_recipes, recipe_options, regime_args, step_name
from .runs import Results, cfg, top1
from .stats import compare, fmt, fmt_diff, verdict
from .steps import ALONE_EVALS, RS_EVALS, Step
from .figures import pyplot, save_figure

BUDGETS = (1, 2, 4)          # the networks alone's epochs, in multiples of E
# the budgets with an RS point at twice the cost: RS at 2 x 24 epochs (48, about 6 CPU hours for 3 seeds) is cut to
# fit the machine; at the longest budget RS runs at equal cost only (its 24 epochs are the 2x point of 12 alone)
TWICE_BUDGETS = BUDGETS[:-1]
CURVE_SEEDS = 3              # the suite's first seeds
MACHINE_HOURS = 40.0         # what the curve may take on the suite's 2-core machine, one run at a time
# Table 8: the factor lists of RS with 1, 2, 4 and 6 factors (4: the protocol's L)
TABLE8_FACTORS = {1: (1.0,), 2: (0.45, 1.0), 6: (0.45, 0.55, 0.65, 0.75, 0.85, 1.0)}


def curve_method(selection: Dict[str, Any]) -> str:
    """The curve's RS recipe: the default one, the best RS method from scratch on val."""
    return chosen_recipes(selection)[0][1]


def alone_step(p: Protocol, selection: Dict[str, Any], s: float, epochs: int, seed: int) -> Step:
    """(s, s, s) trained alone at its tuned point for ``epochs`` (at E: the recipes claim's run)."""
    opts = {**recipe_options(selection, f"alone-{s:g}"), **regime_args(p, "full"), "epochs": epochs}
    name = (step_name("full", f"alone-{s:g}", seed) if epochs == p.epochs else f"curve-alone-{s:g}-e{epochs}-s{seed}")
    return Step(name, seed=seed, train=opts, evals=ALONE_EVALS)


def rs_step(p: Protocol, selection: Dict[str, Any], epochs: int, seed: int) -> Step:
    """The default recipe for ``epochs`` (at E and 2E: the recipes claim's runs)."""
    method = curve_method(selection)
    opts = {**recipe_options(selection, method), **regime_args(p, "full"), "epochs": epochs}
    reuse = {p.epochs: step_name("full", method, seed), 2 * p.epochs: step_name("full", f"{method}-2x", seed)}
    return Step(reuse.get(epochs, f"curve-rs-e{epochs}-s{seed}"), seed=seed, train=opts, evals=RS_EVALS)


def default_network(p: Protocol, selection: Dict[str, Any], seed: int) -> Step:
    """The default recipe's RS network at E epochs (this curve's first RS point), its weights kept for the
    applications (Fig 3(a)-(d)); keeping them does not change the step's key."""
    import dataclasses

    return dataclasses.replace(rs_step(p, selection, p.epochs, seed), keep_weights=True)


def rs_epochs_of(p: Protocol, b: int) -> Tuple[int, ...]:
    """RS's epochs at budget ``b``: equal cost, and twice it where the curve has that point (``TWICE_BUDGETS``)."""
    return (b * p.epochs, 2 * b * p.epochs) if b in TWICE_BUDGETS else (b * p.epochs,)


def curve_seeds(seeds: Sequence[int]) -> List[int]:
    return list(seeds)[:CURVE_SEEDS]


def plan_curve(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any]) -> List[Step]:
    """Every point of the curve, cheapest run first (by counted cost), so a stopped suite keeps whole runs."""
    steps: Dict[str, Step] = {}
    for seed in curve_seeds(seeds):
        for b in BUDGETS:
            for step in [alone_step(p, selection, s, b * p.epochs, seed) for s in p.factors] + [
                    rs_step(p, selection, epochs, seed) for epochs in rs_epochs_of(p, b)]:
                steps.setdefault(step.name, step)
    return sorted(steps.values(), key=lambda s: (step_cost({**p.train_args(), **s.train, "seed": s.seed})
                                                 * s.train["epochs"], s.seed))


def estimate_hours(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any], results: Results) -> Dict[str, Any]:
    """CPU hours of the curve's unfinished runs at one run at a time: each run's epochs times the measured seconds
    per epoch of the committed runs of the same kind at E (the median epoch of each, the median over seeds)."""
    method = curve_method(selection)
    per_epoch = {f"alone-{s:g}": seconds(results, [step_name("full", f"alone-{s:g}", x) for x in range(10)])
                 for s in p.factors}
    per_epoch["rs"] = seconds(results, [step_name("full", method, x) for x in range(10)])
    planned = plan_curve(p, seeds, selection)
    todo, hours = hours_left(planned, results, per_epoch)
    return {"unfinished": todo, "planned": len(planned), "hours": hours, "seconds_per_epoch": per_epoch,
            "measured": all(v is not None for v in per_epoch.values())}


def hours_left(steps: Sequence[Step], results: Results, per_epoch: Dict[str, Optional[float]]
               ) -> Tuple[List[str], float]:
    """The unfinished ``steps`` and their CPU hours at one run at a time: each one's epochs times ``per_epoch`` of
    its kind (``rs``, or ``alone-<s>``; a kind without a measured run counts 0)."""
    todo, hours = [], 0.0
    for step in steps:
        if results.get(step.name):
            continue
        kind = "rs" if step.train.get("sampling") != "single" else f"alone-{step.train['single_config'][0]:g}"
        todo.append(step.name)
        hours += (per_epoch.get(kind) or 0.0) * step.train["epochs"] / 3600
    return todo, hours


def _point(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any], results: Results, epochs: int,
           rs_epochs: int) -> Dict[str, Any]:
    """One budget: per configuration alone against RS, the mean gain's verdict, costs, and convergence alone."""
    per_seed: Dict[int, List[float]] = {s: [] for s in seeds}
    configs, conv, alone_cost = {}, {}, []
    rs_names = [rs_step(p, selection, rs_epochs, seed).name for seed in seeds]
    for s in p.factors:
        c = cfg(s)
        names = [alone_step(p, selection, s, epochs, seed).name for seed in seeds]
        alone = [top1(results, n, "own_cal", c) for n in names]
        mine = [top1(results, n, "test_cal", c) for n in rs_names]
        configs[c] = compare(mine, alone)
        for seed, x, y in zip(seeds, mine, alone):
            if x is not None and y is not None:
                per_seed[seed].append(x - y)
        conv[c] = [converged([{"epoch": r["epoch"], "val_top1": r["top1"].get(c), "train_top1": r["train_top1"]}
                              for r in results[n]["curve"]])["converged"] for n in names if results.get(n)]
        alone_cost.append([run_cost(results.get(n)) for n in names])
    rs_cost = [run_cost(results.get(n)) for n in rs_names]
    mean = verdict([statistics.fmean(v) for v in per_seed.values() if len(v) == len(p.factors)])
    known = [sum(c[i][0] for c in alone_cost) for i in range(len(seeds)) if all(c[i][0] for c in alone_cost)]
    rs_known = [c for c, _ in rs_cost if c]
    sources = sorted({src for row in alone_cost for _, src in row} | {src for _, src in rs_cost})
    complete = all(v["n"] == len(seeds) for v in (mean,)) and len(seeds) > 0
    return {"alone_epochs": epochs, "rs_epochs": rs_epochs, "configs": configs, "mean_gain": mean,
            "converged": conv, "all_converged": complete and all(len(v) == len(seeds) and all(v)
                                                                 for v in conv.values()),
            "alone_cost": statistics.fmean(known) if known else None,
            "rs_cost": statistics.fmean(rs_known) if rs_known else None, "cost_sources": sources,
            "complete": complete}


def _trend(points: List[Dict[str, Any]], seeds: Sequence[int]) -> Tuple[str, Optional[Dict[str, Any]]]:
    """How the mean gain at equal cost moves from the first to the last complete budget (a t verdict on each
    seed's change): the gap shrinks, grows, or stays within the seeds' noise."""
    done = [pt for pt in points if pt["complete"]]
    if len(done) < 2:
        return "not known yet (fewer than two budgets finished)", None
    first, last = done[0]["mean_gain"], done[-1]["mean_gain"]
    change = verdict([b - a for a, b in zip(first["diffs"], last["diffs"]) if a is not None and b is not None])
    word = {"agrees": "rises", "disagrees": "falls", "inconclusive": "stays"}[change["verdict"]]
    gap = ("shrinks" if first["mean"] < 0 else "RS's lead grows") if word == "rises" else (
        ("grows" if first["mean"] <= 0 else "RS's lead shrinks") if word == "falls" else "stays")
    return (f"from {done[0]['alone_epochs']} to {done[-1]['alone_epochs']} epochs alone the mean gain at equal cost "
            f"goes from {first['mean']:+.2f} to {last['mean']:+.2f}: it {word} ({change['verdict']} on the per-seed "
            f"change, {change.get('why', 'no values')}), so the gap {gap}" if gap != "stays" else
            f"from {done[0]['alone_epochs']} to {done[-1]['alone_epochs']} epochs alone the mean gain at equal cost "
            f"goes from {first['mean']:+.2f} to {last['mean']:+.2f}: a change the seeds do not resolve "
            f"({change.get('why', 'no values')}), so the gap stays"), change


def _peaks(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any], results: Results) -> Dict[str, Any]:
    """Per configuration, the budget at which each side's mean test top-1 is highest (over the runs finished)."""
    out = {}
    rs_epochs = sorted({e for b in BUDGETS for e in rs_epochs_of(p, b)})
    for s in p.factors:
        c = cfg(s)
        alone = {b * p.epochs: [top1(results, alone_step(p, selection, s, b * p.epochs, x).name, "own_cal", c)
                                for x in seeds] for b in BUDGETS}
        rs = {e: [top1(results, rs_step(p, selection, e, x).name, "test_cal", c) for x in seeds] for e in rs_epochs}
        means = {side: {e: statistics.fmean(v) for e, v in d.items() if v and all(x is not None for x in v)}
                 for side, d in (("alone", alone), ("rs", rs))}
        out[c] = {side: ({"epochs": max(m, key=m.get), "top1": max(m.values()), "last": max(m) == max(m, key=m.get)}
                         if m else None) for side, m in means.items()}
    return out


def analyse_curve(p: Protocol, seeds: Sequence[int], results: Results, selection: Dict[str, Any]) -> Dict[str, Any]:
    these = curve_seeds(seeds)
    method = curve_method(selection)
    points = {"equal": [], "2x": []}
    for b in BUDGETS:
        points["equal"].append(_point(p, these, selection, results, b * p.epochs, b * p.epochs))
        points["2x"].append(_point(p, these, selection, results, b * p.epochs, 2 * b * p.epochs))
    trend, change = _trend(points["equal"], these)
    peaks = _peaks(p, these, selection, results)
    converged_at = [pt["alone_epochs"] for pt in points["equal"] if pt["all_converged"]]
    estimate = estimate_hours(p, seeds, selection, results)
    data = {"method": method, "options": recipe_options(selection, method), "seeds": these, "budgets": points,
            "trend": trend, "trend_change": change, "peaks": peaks, "converged_budgets": converged_at,
            "estimate": estimate}
    md = [f"One RS training with the default recipe (`{method}`, the val winner: {recipe_options(selection, method)}) "
          f"against the {len(p.factors)} uniform configurations trained alone (each at its own tuned point), full "
          f"regime, at {', '.join(str(b * p.epochs) for b in BUDGETS)} epochs of the networks alone; RS at equal "
          "counted cost (the same epochs: a fair-sampling step costs one step of each network alone) and at twice "
          f"it. Each point its own run and schedule; seeds {', '.join(map(str, these))}; test top-1 %, BN "
          "recalibrated (these runs keep no statistics bank); gain = RS - alone, mean over the configurations per "
          "seed; cost in TMACs counted (`cost.py`): the networks alone's is the four together.", "",
          "| alone epochs | cost alone (4 networks) | RS epochs | cost RS | mean gain, equal cost | verdict | "
          "RS epochs (2x) | mean gain, 2x cost | verdict | alone converged (T2's rule) |",
          "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |"]
    for b, eq, two in zip(BUDGETS, points["equal"], points["2x"]):
        conv = ", ".join(f"{c} {sum(v)}/{len(v)}" for c, v in eq["converged"].items() if v) or "-"
        twice = (f"{two['rs_epochs']} | {fmt_diff(two['mean_gain'])} | {two['mean_gain']['verdict']}"
                 if b in TWICE_BUDGETS else f"{two['rs_epochs']} | cut to fit the machine | -")
        md.append(f"| {eq['alone_epochs']} | {tmacs(eq['alone_cost'])} | {eq['rs_epochs']} | {tmacs(eq['rs_cost'])} | "
                  f"{fmt_diff(eq['mean_gain'])} | {eq['mean_gain']['verdict']} | {twice} | {conv} |")
    md += ["", "Per configuration, RS minus alone at equal cost (and at 2x):", "",
           "| config | " + " | ".join(f"{pt['alone_epochs']} epochs" for pt in points["equal"]) + " | peak alone | "
           "peak RS |", "| --- | " + " | ".join("---:" for _ in points["equal"]) + " | --- | --- |"]
    for c in points["equal"][0]["configs"]:
        cells = [f"{fmt_diff(eq['configs'][c])} ({fmt_diff(two['configs'][c])})"
                 for eq, two in zip(points["equal"], points["2x"])]
        pk = peaks[c]
        md.append(f"| {c} | " + " | ".join(cells) + " | " + " | ".join(
            "-" if pk[side] is None else f"{pk[side]['top1']:.2f} at {pk[side]['epochs']} epochs"
            + (" (the longest run: may still rise)" if pk[side]["last"] else "") for side in ("alone", "rs")) + " |")
    for pt in points["equal"]:
        md += ["", f"**Verdict (equal cost, {pt['alone_epochs']} epochs): {pt['mean_gain']['verdict']}** "
                   f"({pt['mean_gain'].get('why', 'no values')})"]
    longest = points["equal"][-1]
    md += ["", f"**The gap with the budget:** {trend}.", "",
           "**Converged?** " + (
               f"the networks alone converged by T2's rule (every configuration, every seed) at "
               f"{', '.join(map(str, converged_at))} epochs" if converged_at else
               f"not known yet: the networks alone at {longest['alone_epochs']} epochs, the longest budget, have not "
               "all run" if any(len(v) < len(these) for v in longest["converged"].values()) else
               f"the networks alone did not converge by T2's rule at any budget of the curve (at "
               f"{longest['alone_epochs']} epochs: " + ", ".join(f"{c} {sum(v)} of {len(v)}" for c, v in
                                                               longest["converged"].items())
               + "); the next budget to add is twice the longest, " f"{2 * longest['alone_epochs']} epochs alone, "
                 f"RS at {2 * longest['alone_epochs']} and {4 * longest['alone_epochs']}")
           + ".", ""]
    md += compute_lines(estimate, these)
    md += table8(p, results, seeds, method)
    return {"json": data, "md": md, "flags": {}}


def compute_lines(estimate: Dict[str, Any], seeds: Sequence[int]) -> List[str]:
    """The curve's planned CPU time, from measured seconds per epoch, and what was cut to fit the machine."""
    n, hours = len(estimate["unfinished"]), estimate["hours"]
    per = ", ".join(f"{k} {v:.0f} s" if v is not None else f"{k} -" for k, v in estimate["seconds_per_epoch"].items())
    fits = hours <= MACHINE_HOURS
    return [f"**Compute.** {n} of the curve's {estimate['planned']} runs unfinished; estimated {hours:.1f} CPU hours at one run at a time "
            f"(each run's epochs x the measured seconds per epoch of the committed full-regime runs: {per}), against "
            f"the {MACHINE_HOURS:g} hours this 2-core machine gives the curve: "
            + ("it fits" if fits else "it does not fit") + f". Cut to fit: {len(seeds)} seeds (not the headline "
            f"row's 5), budgets up to {BUDGETS[-1]}x E (no longer budget planned until this one is known to "
            f"leave the networks alone unconverged), RS at twice the cost only up to {TWICE_BUDGETS[-1]}x E (RS at "
            f"{2 * BUDGETS[-1]}x E is not planned), and the networks alone at E and RS at E and 2E reused from the "
            "recipes claim." + ("" if estimate["measured"] else " (Some kinds have no measured run yet: they count 0.)"),
            ""]


def table8(p: Protocol, results: Results, seeds: Sequence[int], method: str) -> List[str]:
    """Table 8 as the paper draws it: RS with 1, 2, 4 and 6 factors against training all its k^N configurations
    individually, per epoch of the full regime. Counted MACs for every row; seconds measured where the suite has
    runs (the four uniform networks alone, RS with L) and, for the rest, from a line fitted to the measured
    networks alone (seconds per epoch = a x passes + b x MACs)."""
    from resizable import ConfigSampler

    from .cost import TRAINED_PASS, macs_table

    names = {s: [step_name("full", f"alone-{s:g}", x) for x in range(10)] for s in p.factors}
    sample = {s: seconds(results, n) for s, n in names.items()}
    steps = full_epoch_steps(p)
    base = {**p.train_args(), "seed": 0}
    cost = lambda table, c: table[c] * TRAINED_PASS * p.batch_size * steps  # noqa: E731 (one epoch's MACs)
    table_l = macs_table(base)
    measured = [(cost(table_l, (float(s),) * 3), sec) for s, sec in sample.items() if sec is not None]
    fit = None
    if len(measured) >= 2:  # least squares of seconds on MACs: intercept = a (one pass's overhead per epoch)
        mx, my = statistics.fmean(m for m, _ in measured), statistics.fmean(t for _, t in measured)
        b = sum((m - mx) * (t - my) for m, t in measured) / sum((m - mx) ** 2 for m, _ in measured)
        fit = (my - b * mx, b)
    rs_measured = seconds(results, [step_name("full", method, x) for x in range(10)])
    rows = ["| factors | configurations | RS: TMACs per epoch | RS: s per epoch | all individually: TMACs per epoch | "
            "all individually: s per epoch | ratio (MACs) |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k in (1, 2, 4, 6):
        factors = tuple(p.factors) if k == len(p.factors) else TABLE8_FACTORS[k]
        table = macs_table({**base, "factors": list(factors)})
        sampler = ConfigSampler(factors, 3, "fair", 0)
        rs = statistics.fmean(sum(cost(table, tuple(float(f) for f in c)) for c in sampler.sample(i))
                              for i in range(64))
        every = sum(cost(table, c) for c in table)
        est = (lambda macs, passes: None if fit is None else fit[0] * passes + fit[1] * macs)
        rs_s = rs_measured if k == len(p.factors) and rs_measured is not None else est(rs, k)
        ind_s = sum(sample[c[0]] if len(set(c)) == 1 and sample.get(c[0]) is not None else est(cost(table, c), 1)
                    for c in table) if fit else None
        src = "measured" if k == len(p.factors) and rs_measured is not None else "fitted"
        rows.append(f"| {k} | {len(table)} | {rs / 1e12:.1f} | {'-' if rs_s is None else f'{rs_s:.0f} ({src})'} | "
                    f"{every / 1e12:.1f} | {'-' if ind_s is None else f'{ind_s:.0f}'} | {every / rs:.1f} |")
    timing = [results.get(f"timing-s{x}") for x in seeds]
    timing = [t for t in timing if t]
    speed = ""
    if timing:
        f = statistics.fmean(t["modes"]["fair"]["seconds_per_epoch"] for t in timing)
        r = statistics.fmean(t["modes"]["random"]["seconds_per_epoch"] for t in timing)
        speed = (f" Beside it, today's fair against random sampling, timed back to back in one process (T8): "
                 f"{f:.1f} s per epoch fair, {r:.1f} s random ({len(timing)} seed(s)); the paper's ~10 % advantage "
                 f"of fair sampling is {(r - f) / r * 100:+.1f} % here.")
    return ["#### Table 8: RS with k factors against training all its configurations individually", "",
            f"Per epoch of the full regime ({steps} steps of {p.batch_size} images). MACs counted for every row "
            "(the RS row: the mean over 64 fair-sampling steps); seconds measured for RS with L (the recipes' "
            "runs' median epoch) and the uniform networks alone, the rest from the line fitted to the networks "
            f"alone (s per epoch = a x passes + b x MACs{'' if fit is None else f'; a = {fit[0]:.1f} s, b = {fit[1] * 1e12:.2f} s per TMAC'}). "
            f"Factor lists: {', '.join(f'{k}: {v}' for k, v in sorted({**TABLE8_FACTORS, 4: tuple(p.factors)}.items()))}."
            + speed, "", *rows, ""]


def plot_budget(p: Protocol, data: Dict[str, Any], results: Results, selection: Dict[str, Any],
                out: Path) -> Optional[Path]:
    """Accuracy against counted cost, one panel per uniform configuration: the networks alone (their cost: the four
    together, what one RS training replaces) and RS (its own cost), mean over seeds with the seeds' std."""
    plt = pyplot()

    seeds = data["seeds"]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4), sharex=True)
    drawn = False
    rs_epochs = sorted({e for b in BUDGETS for e in rs_epochs_of(p, b)})
    for ax, s in zip(axes.flat, p.factors):
        c = cfg(s)
        for side, label, colour in (("alone", "networks alone", "tab:red"), ("rs", f"RS ({data['method']})",
                                                                             "tab:blue")):
            xs, ys, es = [], [], []
            epochs = [b * p.epochs for b in BUDGETS] if side == "alone" else rs_epochs
            for e in epochs:
                if side == "alone":
                    runs = [[alone_step(p, selection, f, e, x).name for f in p.factors] for x in seeds]
                    vals = [top1(results, alone_step(p, selection, s, e, x).name, "own_cal", c) for x in seeds]
                    costs = [sum(run_cost(results.get(n))[0] or 0 for n in row) for row in runs]
                else:
                    names = [rs_step(p, selection, e, x).name for x in seeds]
                    vals = [top1(results, n, "test_cal", c) for n in names]
                    costs = [run_cost(results.get(n))[0] or 0 for n in names]
                vals = [v for v in vals if v is not None]
                if vals and all(costs):
                    xs.append(statistics.fmean(costs) / 1e12)
                    ys.append(statistics.fmean(vals))
                    es.append(statistics.stdev(vals) if len(vals) > 1 else 0.0)
            if xs:
                drawn = True
                ax.errorbar(xs, ys, yerr=es, fmt="o-", c=colour, ms=4, capsize=3, label=label)
        ax.set_title(c, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xscale("log", base=2)
    if not drawn:
        plt.close(fig)
        return None
    fig.supxlabel("counted training cost, TMACs (networks alone: the four together)", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("test top-1 %")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Budget curve: RS against the networks it replaces, at counted cost (full regime)", fontsize=10)
    return save_figure(fig, out)
