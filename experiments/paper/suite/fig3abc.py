"""Fig 3(a)-(c) and Table B: Resizable-NAS on the default recipe's RS network, budget by budget.

At each budget (:func:`apps.choose_budgets`: points of the first seed's val front spanning it) the
configuration a search of each seed's val table returns is measured on test as it is, after
``resizable finetune`` for 1 % and 15 % of the RS training's epochs, against the uniform configuration of
the same network nearest in MACs, the same configuration trained alone (at the networks-alone tuned point),
and a narrower network (the family's widths scaled to the budget) trained alone. BN recalibrated throughout.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .apps import BUDGET_POSITIONS, FINETUNE_FRACTIONS, search, tables_name
from .cost import seconds
from .estimate import full_epoch_steps
from .curve import default_network
from .protocol import Protocol
from .recipes import recipe_options, regime_args, step_name
from .runs import Results, cfg, top1
from .stats import compare, fmt, fmt_diff, summary, verdict_line
from .steps import Step
from .figures import pyplot, save_figure

COMPARISONS = (  # (name, the paper's side, the other side)
    ("searched vs uniform of similar MACs", "as_is", "uniform"),
    ("fine-tuned 1 % vs as is", "ft1", "as_is"),
    ("fine-tuned 15 % vs as is", "ft15", "as_is"),
    ("searched vs trained alone", "as_is", "alone"),
    ("fine-tuned 15 % vs trained alone", "ft15", "alone"),
    ("searched vs narrower network", "as_is", "narrow"),
    ("fine-tuned 15 % vs narrower network", "ft15", "narrow"),
)


def ft_name(fraction: float, i: int, seed: int) -> str:
    return f"nas-ft{round(100 * fraction)}-b{i}-s{seed}"


def plan_network(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any]) -> List[Step]:
    """The default recipe's network per seed and its tables; the first seed's tables choose the budgets."""
    first, steps = seeds[0], []
    for seed in seeds:
        net = default_network(p, selection, seed)
        steps.append(net)
        steps.append(Step(tables_name(seed), kind="tables", seed=seed, deps=(net.name,),
                          params={"network": net.name, "choose_budgets": seed == first}))
    return steps


def plan_fig3abc(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any]) -> List[Step]:
    first, steps = tables_name(seeds[0]), plan_network(p, seeds, selection)
    alone = {**recipe_options(selection, "alone-1"), **regime_args(p, "full")}
    for seed in seeds:
        net, mine = default_network(p, selection, seed).name, tables_name(seed)
        for s in p.factors:  # the uniform configurations trained alone (the recipes claim's runs)
            steps.append(Step(step_name("full", f"alone-{s:g}", seed), seed=seed, evals=("own_cal",),
                              train={**recipe_options(selection, f"alone-{s:g}"), **regime_args(p, "full")}))
        for i in range(len(BUDGET_POSITIONS)):
            for f in FINETUNE_FRACTIONS:
                steps.append(Step(ft_name(f, i, seed), kind="finetune", seed=seed, deps=(net, mine, first),
                                  params={"network": net, "tables": mine, "budgets_from": first, "budget_index": i,
                                          "fraction": f}))
            steps.append(Step(f"nas-alone-b{i}-s{seed}", seed=seed, train=alone, evals=("own_cal",),
                              deps=(mine, first), params={"pick_from": mine, "budgets_from": first,
                                                          "budget_index": i}))
            steps.append(Step(f"nas-narrow-b{i}-s{seed}", seed=seed, train=alone, evals=("own_cal",),
                              deps=(first,), params={"narrow_from": first, "budget_index": i}))
    return steps


def _uniform_near(p: Protocol, test: Dict[str, Dict[str, float]], mmacs: float) -> str:
    return min((cfg(s) for s in p.factors), key=lambda c: abs(math.log(test[c]["mmacs"] / mmacs)))


def _values(p: Protocol, results: Results, seed: int, i: int, budget: float) -> Optional[Dict[str, Any]]:
    """One seed at one budget: the pick and every side's test top-1 (None where a run has not finished)."""
    tables = results.get(tables_name(seed))
    if not tables:
        return None
    pick = search(tables["val"], budget)
    test = tables["test"]
    uni = _uniform_near(p, test, test[pick]["mmacs"])
    narrow = results.get(f"nas-narrow-b{i}-s{seed}")
    ft = {f: results.get(ft_name(f, i, seed)) for f in FINETUNE_FRACTIONS}
    return {"pick": pick, "mmacs": test[pick]["mmacs"], "as_is": test[pick]["top1"], "uniform": test[uni]["top1"],
            "uniform_config": uni, "uniform_mmacs": test[uni]["mmacs"],
            "ft1": ft[0.01]["after"]["test"]["top1"] if ft[0.01] else None,
            "ft15": ft[0.15]["after"]["test"]["top1"] if ft[0.15] else None,
            "ft_steps": {f: r["steps"] for f, r in ft.items() if r},
            "alone": top1(results, f"nas-alone-b{i}-s{seed}", "own_cal", pick),
            "narrow": top1(results, f"nas-narrow-b{i}-s{seed}", "own_cal", cfg(1.0)),
            "narrow_mmacs": (narrow or {}).get("evals", {}).get("own_cal", {}).get(cfg(1.0), {}).get("mmacs"),
            "narrow_widths": (narrow or {}).get("options", {}).get("model_args", {}).get("widths")}


def analyse_fig3abc(p: Protocol, seeds: Sequence[int], results: Results, selection: Dict[str, Any]) -> Dict[str, Any]:
    first = results.get(tables_name(seeds[0]))
    budgets = (first or {}).get("budgets", {}).get("nas", [])
    data: Dict[str, Any] = {"budgets": budgets, "network": default_network(p, selection, seeds[0]).name,
                            "points": {}, "comparisons": {}}
    rows, lines = [], []
    for i, b in enumerate(budgets):
        per = [_values(p, results, s, i, b) for s in seeds]
        data["points"][f"{b:.2f}"] = per
        got = [v for v in per if v]
        side = {k: [v[k] if v else None for v in per] for k in ("as_is", "ft1", "ft15", "alone", "narrow", "uniform")}
        picks = sorted({v["pick"] for v in got})
        narrow = [v["narrow_mmacs"] for v in got if v["narrow_mmacs"]]
        rows.append(f"| {b:.2f} | {'; '.join(picks)} | {statistics.fmean(v['mmacs'] for v in got):.2f} | "
                    + " | ".join(fmt(summary(side[k])) for k in ("as_is", "ft1", "ft15",
                                                                                       "alone"))
                    + f" | {fmt(summary(side['narrow']))} "
                      f"({got[0]['narrow_widths'] if got else '-'}, "
                      f"{statistics.fmean(narrow) if narrow else float('nan'):.2f}) | "
                    + f"{fmt(summary(side['uniform']))} "
                      f"({', '.join(sorted({v['uniform_config'] for v in got}))}) |")
        for name, a, o in COMPARISONS:
            c = compare(side[a], side[o])
            data["comparisons"].setdefault(name, {})[f"{b:.2f}"] = c
            lines += [verdict_line(f"Fig 3a-c, {name}, {b:.2f} MMACs", c, f"{a} minus {o}, test top-1, per seed",
                                   effect="Fig 3a-c slim" if o == "narrow" else None), ""]
    ft = [x for pts in data["points"].values() for v in pts if v for x in v["ft_steps"].items()]
    steps = {f: sorted({n for g, n in ft if g == f}) for f in FINETUNE_FRACTIONS}
    md = [f"Resizable-NAS on the default recipe's RS network (`{data['network'].rsplit('-s', 1)[0]}-s<seed>`, "
          f"{p.epochs} epochs, the budget curve's first RS point), seeds {', '.join(map(str, seeds))}. Budgets: "
          "points of the first seed's val front spanning it (" + ", ".join(f"{b:.2f}" for b in budgets)
          + " MMACs); at each, the configuration a search of each seed's val table returns (best val top-1 within "
          "the budget), on test: as it is; after `resizable finetune` for 1 % and 15 % of the RS training's epochs "
          f"(the paper's 1 and 15 of 100+; less than an epoch here, so one epoch cut to "
          + ", ".join(f"{', '.join(map(str, steps[f])) or '-'} steps for {100 * f:g} %" for f in FINETUNE_FRACTIONS)
          + " of the RS run's steps per epoch, lr a tenth of the RS run's); trained alone for "
          f"{p.epochs} epochs at the networks-alone tuned point (`alone-1`); against the uniform configuration of "
          "the same network nearest in MACs, and a narrower network (the family's widths scaled by one factor so "
          "that its MACs match the budget, trained alone as the last): the individual baseline of width "
          "slimming. Test top-1 %, BN recalibrated (10 batches of training images), mean +- std over seeds. "
          "Paper (Fig 3(a)-(c), Table B): the searched and fine-tuned configuration beats all of them "
          "(RS-NAS 76.8 against Slim-ResNet50 75.0 at 2.3 G).", "",
          "| budget MMACs | val picks | pick MMACs | as is | fine-tuned 1 % | fine-tuned 15 % | trained alone | "
          "narrower (widths, MMACs) | uniform of similar MACs |",
          "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, "", *lines]
    md += summary_lines(data)
    planned = plan_fig3abc(p, seeds, selection)
    todo = [st.name for st in planned if not results.get(st.name)]
    data["estimate_hours"] = estimate_hours(p, seeds, selection, results, planned)
    md += [f"**Compute.** {len(todo)} of the section's {len(planned)} steps unfinished; their trainings and "
           f"fine-tunings take an estimated {data['estimate_hours']:.1f} CPU hours at one run at a time (epochs x "
           "the committed runs' seconds per epoch: RS for the network, the all-1.0 network alone for every run "
           "trained alone, an upper bound; evaluations not counted).", ""]
    return {"json": data, "md": md, "flags": {}}


def summary_lines(data: Dict[str, Any]) -> List[str]:
    """What the verdicts say about the two questions of the section."""
    def tally(name: str) -> str:
        got = data["comparisons"].get(name, {})
        words = [c["verdict"] for c in got.values()]
        means = ", ".join(f"{b}: {fmt_diff(c)}" for b, c in got.items())
        return (f"{words.count('agrees')} of {len(words)} budgets agree, {words.count('disagrees')} disagree, "
                f"{words.count('inconclusive')} inconclusive (mean differences {means or '-'})")

    return [f"**Do non-uniform configurations earn their search?** The val pick as it is against the uniform "
            f"configuration of similar MACs: {tally('searched vs uniform of similar MACs')}.", "",
            f"**Resizing the feature map against narrowing the network at equal MACs:** "
            f"{tally('searched vs narrower network')}; after 15 % fine-tuning: "
            f"{tally('fine-tuned 15 % vs narrower network')}.", ""]


def estimate_hours(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any], results: Results,
                   steps: Sequence[Step]) -> float:
    """CPU hours of the section's unfinished runs: epochs x the committed runs' seconds per epoch (the networks
    alone at all-1.0 for every run trained alone, an upper bound; RS for its network; fine-tuning by steps)."""
    method = default_network(p, selection, seeds[0]).name.rsplit("-s", 1)[0]
    rs = seconds(results, [f"{method}-s{x}" for x in range(10)]) or 0.0
    alone = seconds(results, [step_name("full", "alone-1", x) for x in range(10)]) or 0.0
    per_epoch = full_epoch_steps(p)
    per_step = alone / per_epoch
    hours = 0.0
    for s in steps:
        if results.get(s.name):
            continue
        if s.kind == "train":
            hours += (rs if s.train.get("sampling") != "single" else alone) * s.train.get("epochs", p.epochs) / 3600
        elif s.kind == "finetune":
            hours += per_step * max(1, round(s.params["fraction"] * p.epochs * per_epoch)) / 3600
    return hours


def plot_fig3abc(p: Protocol, seeds: Sequence[int], results: Results, out: Path) -> Optional[Path]:
    """Test top-1 against MMACs at each budget: the pick as is, fine-tuned, trained alone, the narrower network,
    the uniform configuration (means over seeds), over every configuration of the first seed's network."""
    plt = pyplot()

    first = results.get(tables_name(seeds[0]))
    if not first or "budgets" not in first:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    test = first["test"]
    ax.scatter([v["mmacs"] for v in test.values()], [v["top1"] for v in test.values()], s=6, c="0.7",
               label=f"every configuration (seed {seeds[0]})")
    series = (("as_is", "mmacs", "o-", "tab:blue", "val pick, as is"), ("ft1", "mmacs", "s--", "tab:cyan",
              "fine-tuned 1 %"), ("ft15", "mmacs", "D-", "tab:green", "fine-tuned 15 %"),
              ("alone", "mmacs", "x:", "tab:red", "pick trained alone"),
              ("narrow", "narrow_mmacs", "v-", "tab:purple", "narrower network, alone"),
              ("uniform", "uniform_mmacs", "^:", "tab:orange", "uniform of similar MACs"))
    for key, x, style, colour, label in series:
        xs, ys = [], []
        for i, b in enumerate(first["budgets"]["nas"]):
            vals = [v for v in (_values(p, results, s, i, b) for s in seeds) if v and v[key] is not None and v[x]]
            if vals:
                xs.append(statistics.fmean(v[x] for v in vals))
                ys.append(statistics.fmean(v[key] for v in vals))
        if xs:
            ax.plot(xs, ys, style, c=colour, ms=5, label=label)
    ax.set_xlabel("MMACs per image")
    ax.set_ylabel("test top-1 %")
    ax.set_title("Fig 3(a)-(c): Resizable-NAS at each budget (mean over seeds)")
    return save_figure(fig, out, ax)
