"""Fig 3d along the whole front: every Resizable-Adapt method against the NAS front on the default recipe's network.

Per seed, one step (``adapt-front-s<seed>``) labels the first half of val with the paper's rule per
threshold (one threshold per configuration of the labelled images' front), trains one classifier per
threshold and one per cost-aware lambda, and runs ``adapt eval`` at the budgets (the first seed's
val front, :mod:`apps`): each method at its knob chosen on ``val:0.5-0.75`` against the front of
``val:0.75-1`` (the NAS pick and the line between its points) and the oracle, on test, BN from the
statistics bank. The step also routes the test images of each chosen classifier to count the
configurations used.
"""
from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .apps import COST_WEIGHTS, budgets_of, tables_name
from .curve import default_network
from .fig3abc import plan_network
from .protocol import Protocol
from .runs import Results
from .stats import fmt_diff, summary, fmt, verdict, verdict_line
from .steps import Context, Step, kept_weights
from .figures import pyplot, save_figure

LABELS = {"classifier (paper rule, per threshold)": "paper rule per threshold",
          "classifier (cost-aware)": "cost-aware rule", "cascade": "cascade"}
REFERENCES = ("nas", "front-line", "oracle")


def plan_fig3d_front(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any]) -> List[Step]:
    steps, first = plan_network(p, seeds, selection), tables_name(seeds[0])
    for seed in seeds:
        net = default_network(p, selection, seed).name
        steps.append(Step(f"adapt-front-s{seed}", kind="adapt_front", seed=seed, deps=(net, first),
                          params={"network": net, "budgets_from": first, "cost_weights": list(COST_WEIGHTS)}))
    return steps


def _banked(ctx: Context, weights: Path, folder: Path) -> Path:
    """The kept weights with their statistics bank (a working copy gets one when they have none)."""
    from resizable import TrainedRun, write_bank

    if TrainedRun.open(weights, data_dir=ctx.data_dir).model.bank is not None:
        return weights
    banked = folder / "banked.pt"
    if not banked.is_file():
        shutil.copyfile(weights, folder / "banked.tmp")
        run = TrainedRun.open(folder / "banked.tmp", data_dir=ctx.data_dir)
        write_bank(folder / "banked.tmp", run.build_bank(device=ctx.device))
        (folder / "banked.tmp").replace(banked)
    return banked


def _usage(ctx: Context, source: Path, paths: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Per classifier: the test images routed to each configuration, and the cheapest configuration used."""
    import torch

    from resizable import TrainedRun, format_config
    from resizable.adapt import Adapter, load_classifier

    run = TrainedRun.open(source, data_dir=ctx.data_dir)
    run.use_bn_statistics("bank")
    model = run.model.to(ctx.device)
    loader = run.loader("test", ctx.protocol.eval_batch_size)
    out = {}
    for path in paths:
        adapter = Adapter.from_trained(model, load_classifier(path, model))
        adapter.classifier.to(ctx.device)
        with torch.no_grad():
            choice = torch.cat([adapter.choose(x.to(ctx.device)).cpu() for x, _ in loader])
        counts = torch.bincount(choice, minlength=len(adapter.configs)).tolist()
        costs = adapter.costs.budget_costs()
        used = [j for j, n in enumerate(counts) if n]
        cheapest = min(used, key=lambda j: costs[j])
        out[path] = {"usage": {format_config(adapter.configs[j]): counts[j] for j in used},
                     "configs_used": len(used), "cheapest": format_config(adapter.configs[cheapest]),
                     "cheapest_share": counts[cheapest] / len(choice)}
    return out


def run_adapt_front(ctx: Context, step: Step) -> Dict[str, Any]:
    """Labels, classifiers and the comparison along the front of one seed's network (see the module notes)."""
    from resizable.adapt import (ClassifierOptions, LabelOptions, RoutingOptions, evaluate_checkpoint,
                                 label_checkpoint, train_classifiers)

    p, params = ctx.protocol, step.params
    folder = Path(ctx.work) / step.name
    folder.mkdir(parents=True, exist_ok=True)
    source = _banked(ctx, kept_weights(ctx, params["network"]), folder)
    budgets = budgets_of(ctx, params["budgets_from"])["adapt"]
    labels = folder / "labels.pt"
    common = dict(device=ctx.device, progress=False)
    if not labels.is_file():
        label_checkpoint(LabelOptions(checkpoint=str(source), out=str(labels), rule="confident", front_thresholds=True,
                                      batch_size=p.eval_batch_size, data_dir=ctx.data_dir, **common))
    trained = []
    for name, extra in (("paper", {}), ("cost", {"rule": "cost-aware", "cost_weight": tuple(params["cost_weights"])})):
        trained += train_classifiers(ClassifierOptions(labels=str(labels), checkpoint=str(source),
                                                       out=str(folder / f"classifier-{name}.pt"),
                                                       epochs=p.adapt_epochs, seed=step.seed, **extra, **common))
    paths = [str(path) for _, path in trained]
    _, comparison = evaluate_checkpoint(RoutingOptions(
        checkpoint=str(source), classifier=",".join(paths), mean_mmacs=tuple(budgets), routed=False,
        curves=str(folder / "curves"), batch_size=p.eval_batch_size, data_dir=ctx.data_dir, **common))
    data = comparison.to_dict()
    by_knob = {(s["method"], s["knob"]): path for s, path in zip(data["meta"]["settings"], paths)}
    usage = _usage(ctx, source, sorted({by_knob[(r["method"], r["knob"])] for r in data["rows"]
                                        if (r["method"], r["knob"]) in by_knob}))
    for r in data["rows"]:
        if (r["method"], r["knob"]) in by_knob:
            r.update(usage[by_knob[(r["method"], r["knob"])]])
        elif r.get("exits_pct"):  # a cascade: the images that stop at each step of its chain
            r.update(configs_used=sum(1 for x in r["exits_pct"] if x > 0), cheapest=r["knob"].split(" > ")[0],
                     cheapest_share=r["exits_pct"][0] / 100)
    meta = {k: data["meta"][k] for k in ("report_split", "knob_split", "front_split", "report_images", "knob_images",
                                         "front_images", "bn_statistics", "targets_mmacs")}
    return {"network": params["network"], "budgets": budgets, "labels_split": "val:0-0.5 (the library's default)",
            "front": data["front"], "rows": data["rows"], "meta": meta,
            "classifiers": [{"path": Path(x).name, "knob": s["knob"], "method": s["method"]}
                            for s, x in zip(data["meta"]["settings"], paths)]}


def _row(result: Optional[Dict[str, Any]], method: str, budget: float) -> Optional[Dict[str, Any]]:
    for r in (result or {}).get("rows", []):
        if r["method"] == method and abs(r["target_mmacs"] - budget) < 1e-6:
            return r
    return None


def _between(result: Dict[str, Any], budget: float) -> bool:
    costs = sorted(pt["mmacs"] for pt in result["front"])
    return costs[0] < budget < costs[-1] and all(abs(c - budget) > 1e-6 for c in costs)


def analyse_fig3d_front(p: Protocol, seeds: Sequence[int], results: Results) -> Dict[str, Any]:
    got = {s: results.get(f"adapt-front-s{s}") for s in seeds}
    first = next((r for r in got.values() if r), None)
    budgets = first["budgets"] if first else []
    methods = list(dict.fromkeys([*LABELS, *(r["method"] for x in got.values() if x for r in x["rows"]
                                             if r["method"] not in REFERENCES)]))  # every method, rows or not
    data: Dict[str, Any] = {"budgets": budgets, "methods": {}, "oracle": {}, "between": {}}
    rows, lines, oddities = [], [], []
    for b in budgets:
        key = f"{b:.2f}"
        oracle = [(_row(x, "oracle", b) or {}).get("gain_vs_line_pct") for x in got.values()]
        data["oracle"][key] = summary(oracle)
        data["between"][key] = [_between(x, b) for x in got.values() if x]
        for m in methods:
            label = LABELS.get(m, m.replace(",", ""))
            per = [_row(x, m, b) for x in got.values()]
            c = verdict([r["gain_vs_line_pct"] if r else None for r in per])
            have = [r for r in per if r]
            if not have and first:
                c["why"] = "no values: no setting of the method fits the budget on the knob images (its cheapest costs more)"
            share = (c["mean"] / data["oracle"][key]["mean"] if c.get("mean") is not None
                     and data["oracle"][key]["mean"] else None)
            used = [r.get("configs_used") for r in have if r.get("configs_used")]
            inside = [r for r, x in zip(per, got.values()) if r and x and
                      min(pt["mmacs"] for pt in x["front"]) < r["mean_mmacs"] < max(pt["mmacs"] for pt in x["front"])]
            oddities += [f"{label} at {key}" for r in inside if r.get("configs_used") == 1]
            data["methods"].setdefault(label, {})[key] = {**c, "rows": per, "oracle_share": share}
            rows.append(f"| {key} | {label} | {fmt(summary([r['mean_mmacs'] for r in have]))} | "
                        f"{fmt(summary([r['top1_pct'] for r in have]))} | "
                        f"{fmt(summary([r['line_top1_pct'] for r in have]))} | "
                        f"{fmt(summary([r['nas_top1_pct'] for r in have]))} | {fmt_diff(c)} | "
                        f"{fmt(data['oracle'][key])} | {'-' if share is None else f'{100 * share:.0f} %'} | "
                        f"{fmt(summary(used), 1)} | "
                        f"{fmt(summary([100 * r['cheapest_share'] for r in have if 'cheapest_share' in r]), 0)} | "
                        f"{c['verdict']} |")
            lines += [verdict_line(f"Fig 3d, {label}, {key} MMACs", c, "method minus the front's line at its own "
                                   "mean MACs on test, per seed", effect="Fig 3d"), ""]
    data["goal"] = goal(data)
    md = [f"Resizable-Adapt on the default recipe's RS network (`{(first or {}).get('network', '-')}`: the budget curve's "
          f"first RS point, {p.epochs} epochs), seeds {', '.join(map(str, seeds))}, BN from each network's "
          "statistics bank. Separate parts of the held-out val images (the library's defaults): `val:0-0.5` "
          "labels the images and trains the classifiers, `val:0.5-0.75` chooses each method's knob for a target "
          "mean cost, `val:0.75-1` gives the NAS front; test is reported. Methods: the classifier with the "
          "paper's rule per threshold (one threshold per configuration of the labelled images' front), the "
          f"cost-aware rule (lambda {', '.join(f'{w:g}' for w in COST_WEIGHTS)}), the confidence cascade; "
          "each as (mean MACs per image including the feature pass, the classifier or the extra passes, test "
          "top-1) at the knob chosen on val for the budget, against the line between the front's points at the "
          "same mean MACs, the NAS pick, and the oracle (each image at its cheapest correct configuration within "
          "the budget). Budgets: the first seed's val front points and the midpoints after them ("
          + ", ".join(f"{b:.2f}" for b in budgets) + f" MMACs; between front points of every seed's front: "
          f"{sum(all(v) and bool(v) for v in data['between'].values())} of {len(budgets)}). Paper (Fig 3d): "
          "Adapt above the NAS front by about +0 to +0.5 points.", "",
          "| budget MMACs | method | mean MMACs | top-1 | front's line | NAS pick | method - line | oracle - line | "
          "share of the oracle's gain | configurations used | % at its cheapest | verdict |",
          "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |", *rows, "", *lines,
          f"**Goal** (a method at or above the line at every budget, above it by more than t x se at one or "
          f"more): {data['goal']}", "",
          "Routing: " + ("every method strictly inside the front routes to more than one configuration" if not oddities
                         else "one configuration only at " + ", ".join(oddities)) + "."]
    return {"json": data, "md": md, "flags": {}}


def analyse_fig3d(p: Protocol, seeds: Sequence[int], results: Results) -> Dict[str, Any]:
    """The claim: the front comparison on the default recipe's network, then the earlier network's section."""
    from .fig3d import analyse_fig3d as earlier

    new, old = analyse_fig3d_front(p, seeds, results), earlier(p, seeds, results)
    md = new["md"] + ["", "#### Earlier network: the paper's recipe (`rs-s<seed>`, summed loss), one classifier rule",
                      "", *old["md"]]
    return {"json": {**old["json"], "front": new["json"]}, "md": md, "flags": {}}


def goal(data: Dict[str, Any]) -> str:
    """Whether some method reaches the line at every budget and beats it at one; else what the oracle leaves."""
    if not data["budgets"] or not data["methods"]:
        return "no values"
    at_or_above = [any((m.get(k) or {}).get("mean") is not None and m[k]["mean"] >= 0 for m in data["methods"].values())
                   for k in data["oracle"]]
    beats = [f"{label} at {k}" for label, m in data["methods"].items() for k, c in m.items()
             if c["verdict"] == "agrees"]
    if all(at_or_above) and beats:
        return f"**met**: above the line by more than t x se: {', '.join(beats)}"
    def pct(x: Optional[float]) -> str:
        return "-" if x is None else f"{100 * x:.0f} %"

    shares = "; ".join(f"{k}: oracle {fmt_diff(o)} points over the line, " + ", ".join(
        f"{label} {pct(m.get(k, {}).get('oracle_share'))}" for label, m in data["methods"].items())
        for k, o in data["oracle"].items())
    return (f"**not met** (at or above the line at {sum(at_or_above)} of {len(at_or_above)} budgets; "
            f"{'beats it at ' + ', '.join(beats) if beats else 'beats it by t x se nowhere'}). The most any router "
            f"could gain over the line, and the share of it each method takes: {shares}")


def plot_fig3d_front(p: Protocol, seeds: Sequence[int], results: Results, out: Path) -> Optional[Path]:
    """Every method's curve with the NAS pick, the front's line and the oracle (means over seeds, per budget)."""
    plt = pyplot()

    got = [r for r in (results.get(f"adapt-front-s{s}") for s in seeds) if r]
    if not got:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.6))
    methods = list(dict.fromkeys(r["method"] for x in got for r in x["rows"]))
    for m in methods:
        xs, ys = [], []
        for b in got[0]["budgets"]:
            rows = [r for r in (_row(x, m, b) for x in got) if r]
            if rows:
                xs.append(statistics.fmean(r["mean_mmacs"] for r in rows))
                ys.append(statistics.fmean(r["top1_pct"] for r in rows))
        style = {"front-line": "-", "nas": "s:", "oracle": "--"}.get(m, "o-")
        ax.plot(xs, ys, style, ms=4, label=LABELS.get(m, m))
    ax.set_xlabel("mean MMACs per image (classifier and extra passes included)")
    ax.set_ylabel("test top-1 %")
    ax.set_title("Fig 3d along the front: Adapt methods against the NAS front (mean over seeds)")
    return save_figure(fig, out, ax)
