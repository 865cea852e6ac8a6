"""Fig 3d: Resizable-Adapt against the NAS pick at equal mean MACs, and against the line of the val front.

Both are read on two bases, the BN running averages as trained and the network's statistics bank;
nothing here trains or types a number (see :mod:`claims` for the shape every ``analyse_*`` returns).
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional, Sequence

from .protocol import Protocol
from .runs import Results, all_top1, mmacs
from .stats import compare, fmt, fmt_diff, summary, verdict_line

def nas_pick(val: Dict[str, float], costs: Dict[str, float], budget: float) -> Optional[str]:
    """The configuration a NAS search on val returns under ``budget`` MMACs (best val top-1, then fewer MACs)."""
    feasible = [c for c in val if costs.get(c, math.inf) <= budget]
    return max(feasible, key=lambda c: (val[c], -costs[c])) if feasible else None


def val_front(val: Dict[str, float], costs: Dict[str, float]) -> List[str]:
    """The NAS Pareto front of the val table: configurations by MACs, each more accurate on val than all cheaper."""
    front: List[str] = []
    for c in sorted((c for c in val if c in costs), key=lambda c: (costs[c], -val[c])):
        if not front or val[c] > val[front[-1]]:
            front.append(c)
    return front


def front_mix(val: Dict[str, float], test: Dict[str, float], costs: Dict[str, float],
              budget: float) -> Optional[float]:
    """Expected test top-1 of routing each image at random between the two val-front configurations around
    ``budget`` MMACs, with the odds that make the mean cost ``budget``: the line a plot of the front draws."""
    front = val_front(val, costs)
    below = [c for c in front if costs[c] <= budget]
    if not below:
        return None
    lo = below[-1]
    above = front[len(below):]
    if not above:
        return test[lo]
    hi = above[0]
    w = (budget - costs[lo]) / (costs[hi] - costs[lo])
    return (1 - w) * test[lo] + w * test[hi]


FIG3D_BASELINES = ("the NAS pick at equal MACs", "a random mix of the two val-front picks around Adapt's MACs")


FIG3D_BASES = (("as trained", "adapt-s{}"), ("statistics bank", "adapt-bank-s{}"))
FREE = "no budget"


def fig3d_tables(results: Results, basis: str, s: int, adapt: Dict[str, Any]):
    """(val top-1, test top-1, MMACs) by configuration: the RS run's raw tables, or the bank step's own."""
    if basis == "as trained":
        rs = f"rs-s{s}"
        return all_top1(results, rs, "val_raw"), all_top1(results, rs, "test_raw"), mmacs(results, rs, "test_raw")
    tables = adapt.get("tables", {})
    if "val" not in tables or "test" not in tables:
        return None, None, {}
    val, test = ({c: float(v["top1"]) for c, v in tables[split].items()} for split in ("val", "test"))
    return val, test, {c: float(v["mmacs"]) for c, v in tables["test"].items()}


def analyse_fig3d(p: Protocol, seeds: Sequence[int], results: Results) -> Dict[str, Any]:
    data: Dict[str, Any] = {}
    rows = []
    for basis, pattern in FIG3D_BASES:
        here: Dict[str, Any] = {"points": {}}
        per_seed: Dict[Any, Dict[str, List[Optional[float]]]] = {}
        for s in seeds:
            adapt = results.get(pattern.format(s))
            if adapt is None:
                continue
            val, test, costs = fig3d_tables(results, basis, s, adapt)
            if val is None or test is None:
                continue
            for clf, seed_rows in adapt["classifiers"].items():
                for row in seed_rows:
                    key = FREE if row["budget_mmacs"] is None else (
                        "budget: the routed cost of the second-dearest configuration routed to without a budget "
                        "(the dearest one barred)")
                    pick = nas_pick(val, costs, row["mean_mmacs"])
                    if row["budget_mmacs"] is None:
                        top, n = max(row["usage"].items(), key=lambda kv: kv[1])
                        here.setdefault("most_used", []).append(
                            {"seed": s, "classifier_seed": int(clf), "config": top,
                             "share": n / sum(row["usage"].values()), "distinct": len(row["usage"])})
                    here["points"].setdefault(key, []).append(
                        {"seed": s, "classifier_seed": int(clf), "adapt_top1": row["top1"],
                         "adapt_mmacs": row["mean_mmacs"], "nas_config": pick,
                         "nas_mmacs": costs.get(pick) if pick else None, "nas_top1": test[pick] if pick else None,
                         "front_mix_top1": front_mix(val, test, costs, row["mean_mmacs"])})
            for key in here["points"]:
                mine = [x for x in here["points"][key] if x["seed"] == s]
                for base, field in zip(FIG3D_BASELINES, ("nas_top1", "front_mix_top1")):
                    have = [x for x in mine if x[field] is not None]
                    acc = per_seed.setdefault((key, base), {"adapt": [], "base": []})
                    acc["adapt"].append(statistics.fmean(x["adapt_top1"] for x in have) if have else None)
                    acc["base"].append(statistics.fmean(x[field] for x in have) if have else None)
        for (key, base), acc in per_seed.items():
            c = compare(acc["adapt"], acc["base"])
            here.setdefault(key, {})[base] = c
            macs = summary([x["adapt_mmacs"] for x in here["points"][key]])
            rows.append(f"| {basis} | {key} | {base} | {fmt(macs, 3)} | {fmt(c['paper_side'])} | {fmt(c['other'])} | "
                        f"{fmt_diff(c)} | {c['verdict']} |")
        data[basis] = here
    none = {"verdict": "inconclusive", "why": "no values"}
    main = data.get("statistics bank", {}).get(FREE, {}).get(FIG3D_BASELINES[0], none)
    line = data.get("statistics bank", {}).get(FREE, {}).get(FIG3D_BASELINES[1], none)
    data["verdict"] = main["verdict"]
    gap = line.get("paper_side", {}).get("mean"), line.get("other", {}).get("mean")
    goal = ("no values" if None in gap else
            f"Adapt is {'above' if gap[0] > gap[1] else 'below'} the val front's line by "
            f"{abs(gap[0] - gap[1]):.2f} points (mean over seeds; {line['verdict']} at the seeds' t critical value)")
    data["front_line_goal"] = goal
    routing = []
    for basis, _ in FIG3D_BASES:
        used = data.get(basis, {}).get("most_used", [])
        if used:
            tops = sorted({u["config"] for u in used})
            routing.append(f"{basis}: {100 * statistics.fmean(u['share'] for u in used):.1f} % of the test images "
                           f"go to the most used configuration ({', '.join(tops)}), "
                           f"{statistics.fmean(u['distinct'] for u in used):.1f} configurations used on average")
    md = [
        "Resizable-Adapt on the RS network: labels from the val images, the configuration classifier trained with "
        f"{len(p.adapt_seeds)} seeds, images routed on test. Two bases: the BN running averages as trained (every "
        "configuration shares them), and the network's statistics bank (each configuration its own BN statistics, "
        "measured on the training images minus val); each basis is compared with the tables of the same network "
        "on the same basis. The comparison is the NAS pick at equal mean MACs: the configuration a search of the "
        "val table returns within Adapt's mean MACs (classifier and feature pass included), reported on test. A "
        "second row sets Adapt against the line between the val front's points (the front as a plot draws it, "
        "which routing images at random between two front configurations reaches at the same mean MACs). Paper "
        "(Fig 3d): Adapt is above the NAS Pareto front.",
        "",
        "| BN statistics | per-image budget | against | Adapt mean MMACs | Adapt top-1 | its top-1 | Adapt - it "
        "| verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
        *rows,
        "",
        f"Goal (statistics bank, no budget): Adapt above the val front's line. {goal}.",
        "",
        "Where the routed images go without a budget (classifier seeds and training seeds pooled): "
        + ("; ".join(routing) or "no values") + ". Adapt's labels name, for each val image, the cheapest "
        "configuration that classifies it correctly; the more accurate the cheap configurations are, the more "
        "images that rule sends to the cheapest one, and Adapt becomes that one configuration plus its "
        "classifier's cost.",
        "",
        verdict_line("Fig 3d earlier network", main, "statistics bank: Adapt minus NAS at equal mean MACs, no budget, classifier "
                                      "seeds averaged"),
    ]
    return {"json": data, "md": md, "flags": {}}
