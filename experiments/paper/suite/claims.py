"""Each claim's numbers from the finished steps: per-seed values, mean +- std, the computed verdict.

Every ``analyse_*`` takes the protocol, the seeds and ``results`` (step name -> result record) and
returns ``{"json": ..., "md": [lines], "flags": {...}}``; nothing here trains or types a number.
Accuracies are test top-1 in percent, configurations BN-recalibrated on training images (the held-out
val images excluded) unless a row says "as trained".

Fig 5, T9, T11 + T8 and the rows beyond the paper read their sides through ``names`` (a side's role ->
its step's name, ``{}`` standing for the seed): :mod:`claims_default` hands them the default recipe's
steps, and ``EARLIER`` names the earlier network's (Algorithm 1), shown under a heading of its own.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .fig3d import analyse_fig3d
from .protocol import Protocol
from .runs import Results, all_top1, cfg, mmacs, top1
from .stats import compare, fmt, fmt_diff, summary, verdict, verdict_line

# the earlier network's steps (fair sampling, the k losses summed, the protocol's lr): committed, no longer planned
EARLIER = {"rs": "rs-s{}", "rs_raw": "rs-s{}", "twin": "single-1-s{}", "sharedbn": "sharedbn-s{}",
           "aug": "aug-s{}", "augshared": "augshared-s{}", "fair": "rs-s{}", "random": "random-s{}",
           "timing": "timing-s{}", "convert": "convert-s{}", "convert_lr": "convert-lr", "distill": "distill-s{}"}


def named(names: Mapping[str, str], role: str, seeds: Sequence[int]) -> List[str]:
    """The step of one side per seed (``names[role]`` with the seed in its ``{}``)."""
    return [names[role].format(s) for s in seeds]


def _agg(results: Results, names: Sequence[str], kind: str, fn, exclude: Sequence[str] = ()) -> List[Optional[float]]:
    out = []
    for name in names:
        table = all_top1(results, name, kind)
        vals = [v for c, v in (table or {}).items() if c not in exclude]
        out.append(fn(vals) if vals else None)
    return out


def _mean(vals):
    return statistics.fmean(vals)


def _std(vals):
    return statistics.pstdev(vals)


def _row(label: str, c: Dict[str, Any], digits: int = 2) -> str:
    return f"| {label} | {fmt(c['paper_side'], digits)} | {fmt(c['other'], digits)} | {fmt_diff(c)} | {c['verdict']} |"


# ---------------------------------------------------------------------------- T1
def analyse_t1(p: Protocol, seeds: Sequence[int], results: Results) -> Dict[str, Any]:
    rows, data = [], {"configs": {}}
    per_seed_a: Dict[int, List[float]] = {s: [] for s in seeds}
    per_seed_b: Dict[int, List[float]] = {s: [] for s in seeds}
    costs = mmacs(results, f"rs-s{seeds[0]}", "test_cal")
    for s in p.factors:
        c = cfg(s)
        single_kind = "test_cal" if s == max(p.factors) else "own_cal"
        indiv = [top1(results, f"single-{s:g}-s{seed}", single_kind, c) for seed in seeds]
        rs = [top1(results, f"rs-s{seed}", "test_cal", c) for seed in seeds]
        rs2 = [top1(results, f"rs2x-s{seed}", "test_cal", c) for seed in seeds]
        a, b = compare(rs, indiv), compare(rs2, indiv)
        for seed, x, y, z in zip(seeds, rs, rs2, indiv):
            if x is not None and z is not None:
                per_seed_a[seed].append(x - z)
            if y is not None and z is not None:
                per_seed_b[seed].append(y - z)
        data["configs"][c] = {"mmacs": costs.get(c), "individual": summary(indiv), "rs": a, "rs_2x": b}
        rows.append(f"| {c} | {costs.get(c, float('nan')):.2f} | {fmt(a['other'])} | {fmt(a['paper_side'])} | "
                    f"{fmt_diff(a)} | {a['verdict']} | {fmt(b['paper_side'])} | {fmt_diff(b)} | {b['verdict']} |")
    mean_a = verdict([statistics.fmean(v) for v in per_seed_a.values() if len(v) == len(p.factors)])
    mean_b = verdict([statistics.fmean(v) for v in per_seed_b.values() if len(v) == len(p.factors)])
    data["mean_gain_equal_epochs"], data["mean_gain_rs_2x"] = mean_a, mean_b
    twin = summary([top1(results, f"single-1-s{seed}", "test_cal", cfg(1.0)) for seed in seeds])
    data["twin"] = twin
    floor = "met" if twin["mean"] is not None and twin["mean"] >= p.twin_floor else "NOT met"
    n2x = sum(1 for seed in seeds if f"rs2x-s{seed}" in results)
    md = [
        f"RS network trained with the paper's recipe (fair sampling, the k losses summed as Algorithm 1 writes it, "
        f"no warm-up, lr {p.lr:g}; {p.epochs} epochs; (b): {2 * p.epochs} epochs) against the (s,s,s) networks "
        f"trained alone for {p.epochs} epochs at the same lr; test top-1 %, BN recalibrated. Gain = RS - individual "
        f"(paper: > 0). The recipe chosen on val, each side at its own tuned point, is in the recipes section when "
        f"it has run.",
        "",
        "| config | MMACs | individual | RS (a) equal epochs | gain (a) | verdict (a) | RS (b) 2x epochs | gain (b) "
        "| verdict (b) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
        *rows,
        "",
        verdict_line(f"T1 (a), Algorithm 1 at lr {p.lr:g}, equal epochs", mean_a,
                      "mean gain over the four configurations, per seed", effect="T1"),
        "",
        verdict_line(f"T1 (b), Algorithm 1 at lr {p.lr:g}, RS at 2x epochs", mean_b,
                      f"mean gain over the four configurations; {n2x} seed(s)", effect="T1"),
        "",
        f"Regime check: the all-1.0 network trained alone reaches {fmt(twin)} % test top-1 (floor "
        f"{p.twin_floor:g} %): **{floor}**.",
    ]
    flags = {"rs_behind": mean_a.get("mean") is not None and mean_a["mean"] < 0}
    return {"json": data, "md": md, "flags": flags}


# ---------------------------------------------------------------------------- Fig 5
def analyse_fig5(p: Protocol, seeds: Sequence[int], results: Results, names: Mapping[str, str] = EARLIER,
                 tag: str = "") -> Dict[str, Any]:
    """The all-1.0 network alone (``twin``) against the RS network (``rs``) at the other configurations."""
    top = cfg(max(p.factors))
    twins, rs = named(names, "twin", seeds), named(names, "rs", seeds)
    rows, data = [], {}
    for label, fn in (("mean over the other 63 configurations", _mean), ("worst of the other 63", min)):
        rs_v = _agg(results, rs, "test_cal", fn, exclude=[top])
        raw = _agg(results, twins, "test_raw", fn, exclude=[top])
        cal = _agg(results, twins, "test_cal", fn, exclude=[top])
        a, b = compare(rs_v, raw), compare(rs_v, cal)
        data[label] = {"rs_minus_twin_as_trained": a, "rs_minus_twin_recalibrated": b}
        rows.append(f"| {label} | {fmt(a['other'])} | {fmt(b['other'])} | {fmt(a['paper_side'])} | {fmt_diff(a)} | "
                    f"{a['verdict']} | {fmt_diff(b)} | {b['verdict']} |")
    at_top = [top1(results, n, "test_cal", top) for n in twins]
    data["twin_at_all_1"] = summary(at_top)
    main = data["mean over the other 63 configurations"]["rs_minus_twin_as_trained"]
    md = [
        f"The all-1.0 network trained alone ({fmt(summary(at_top))} % at {top}) run at every other configuration, "
        "with its BN statistics as trained and recalibrated, against the RS network (recalibrated). "
        "Paper: without resizable training, accuracy collapses.",
        "",
        "| over configurations | twin as trained | twin recalibrated | RS | RS - twin as trained | verdict | "
        "RS - twin recalibrated | verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
        *rows,
        "",
        verdict_line(f"Fig 5{tag}", main, "RS minus the twin as trained, mean over the other 63 configurations"),
    ]
    return {"json": data, "md": md, "flags": {}}


# ---------------------------------------------------------------------------- T9
def analyse_t9(p: Protocol, seeds: Sequence[int], results: Results, names: Mapping[str, str] = EARLIER,
               tag: str = "") -> Dict[str, Any]:
    """Scale-aware BN (``rs``, ``rs_raw``: its as-trained table; ``aug``) against one shared BN (``sharedbn``,
    ``augshared``)."""
    top = cfg(max(p.factors))
    rows, data = [], {}
    for label, a_role, b_role, kind, fn in (
        ("RS network, mean over 64 configs, recalibrated", "rs", "sharedbn", "test_cal", _mean),
        ("RS network, mean over 64 configs, as trained", "rs_raw", "sharedbn", "test_raw", _mean),
        ("RS-Aug at all-1.0, recalibrated", "aug", "augshared", "own_cal", None),
        ("RS-Aug at all-1.0, as trained", "aug", "augshared", "own_raw", None),
    ):
        a_names, b_names = named(names, a_role, seeds), named(names, b_role, seeds)
        if fn is None:
            a, b = [top1(results, n, kind, top) for n in a_names], [top1(results, n, kind, top) for n in b_names]
        else:
            a, b = _agg(results, a_names, kind, fn), _agg(results, b_names, kind, fn)
        c = compare(a, b)
        data[label] = c
        rows.append(_row(label, c))
    main = data["RS-Aug at all-1.0, recalibrated"]
    md = [
        "Scale-aware BN (one BN per factor) against one shared BN (`model_args: {scale_bn: false}`), both trained "
        "with the same recipe (the RS-Aug rows in T2's regime); paper (Table 9): scale-aware BN is better (RS-Aug "
        "ResNet-50: 78.8 vs 76.9).",
        "",
        "| row | scale-aware BN | shared BN | difference | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
        *rows,
        "",
        verdict_line(f"T9{tag}", main, "the paper's Table 9 row: RS-Aug, scale-aware minus shared BN"),
    ]
    return {"json": data, "md": md, "flags": {}}


# ---------------------------------------------------------------------------- T11 + T8
def steps_to_reach(result: Optional[Dict[str, Any]], config: str, target: float) -> Optional[float]:
    """The optimizer step at the end of the first epoch whose val top-1 at ``config`` reaches ``target``."""
    for r in (result or {}).get("curve", []):
        if r["top1"].get(config, -1) >= target:
            return float(r["step"])
    return None


def analyse_t11(p: Protocol, seeds: Sequence[int], results: Results, names: Mapping[str, str] = EARLIER,
                tag: str = "") -> Dict[str, Any]:
    """Fair (``fair``) against random sampling (``random``); T8: their seconds, and ``timing``'s back to back."""
    fair, rand = named(names, "fair", seeds), named(names, "random", seeds)
    rows, data = [], {}
    for label, fn, paper_fair_higher in (("min over 64 configs", min, True), ("max over 64 configs", max, True),
                                         ("std over 64 configs", _std, False), ("mean over 64 configs", _mean, True)):
        f, r = _agg(results, fair, "test_cal", fn), _agg(results, rand, "test_cal", fn)
        c = compare(f, r) if paper_fair_higher else compare(r, f)
        data[label] = {"fair": summary(f), "random": summary(r), **c}
        rows.append(f"| {label} | {fmt(summary(f))} | {fmt(summary(r))} | {fmt_diff(c)} | {c['verdict']} |")
    speed_rows = []
    for label, config in (("smallest", cfg(min(p.factors))), ("largest", cfg(max(p.factors)))):
        f = [steps_to_reach(results.get(n), config, p.target_top1) for n in fair]
        r = [steps_to_reach(results.get(n), config, p.target_top1) for n in rand]
        c = compare(r, f)
        data[f"steps to {p.target_top1:g} % val top-1, {label}"] = {"fair": summary(f), "random": summary(r), **c}
        speed_rows.append(f"| steps to {p.target_top1:g} % val top-1, {label} ({config}) | {fmt(summary(f), 0)} | "
                          f"{fmt(summary(r), 0)} | {fmt_diff(c)} | {c['verdict']} |")
    # the median epoch of each run: an epoch slowed by the machine (a paused or shared core) does not count
    sec_f, sec_r = ([statistics.median(x["seconds"] for x in results[n]["curve"]) if results.get(n) else None
                     for n in side] for side in (fair, rand))
    runs_t8 = compare(sec_r, sec_f)
    data["seconds per epoch (median epoch of each run)"] = {"fair": summary(sec_f), "random": summary(sec_r),
                                                            **runs_t8}
    speed_rows.append(f"| seconds per epoch, the runs' median epoch (sharing the machine) | {fmt(summary(sec_f), 1)} "
                      f"| {fmt(summary(sec_r), 1)} | {fmt_diff(runs_t8)} | {runs_t8['verdict']} |")
    # the controlled measure (paper_suite/timing.py): both modes timed back to back in one process
    timed = {m: [results[n]["modes"][m]["seconds_per_epoch"] if results.get(n) else None
                 for n in named(names, "timing", seeds)] for m in ("fair", "random")}
    t8 = compare(timed["random"], timed["fair"])
    if t8["n"]:
        data["seconds per epoch (timed back to back)"] = {"fair": summary(timed["fair"]),
                                                          "random": summary(timed["random"]), **t8}
        speed_rows.append(f"| seconds per epoch, timed back to back in one process | {fmt(summary(timed['fair']), 1)} "
                          f"| {fmt(summary(timed['random']), 1)} | {fmt_diff(t8)} | {t8['verdict']} |")
        how = "seconds per epoch, random minus fair, timed back to back in one process"
    else:
        t8, how = runs_t8, "seconds per epoch, random minus fair, the runs' median epochs"
    std = data["std over 64 configs"]
    md = [
        "Fair sampling (every factor of every stage once per step) against random sampling (each stage's factor "
        "drawn independently), both k = 4 configurations per step, same epochs. Test top-1 % over all 64 "
        "configurations, recalibrated. Paper (Table 11): fair sampling evens accuracy out across configurations; "
        "(Table 8): fair sampling trains about 10 % faster. Difference: the paper's side minus the other "
        "(positive: the paper's direction).",
        "",
        "| T11 | fair | random | difference | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
        *rows,
        "",
        verdict_line(f"T11{tag}", std, "random minus fair, std of top-1 over the 64 configurations"),
        "",
        "| T8 | fair | random | difference (random - fair) | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
        *speed_rows,
        "",
        verdict_line(f"T8{tag}", t8, how),
        "",
        f"Steps to {p.target_top1:g} %: the step at the end of the first epoch whose val top-1 reached it; a run that "
        "never reached it counts as missing (shown as -, with fewer seeds behind the mean).",
        "",
        "The runs' epoch times depend on what shared the machine with them; the back-to-back timing "
        "(`experiments/paper/suite/timing.py`: blocks of training steps of each mode in alternating order, the "
        "protocol's RS network, data loading left out) is the controlled measure and gives the verdict when present.",
    ]
    return {"json": data, "md": md, "flags": {}}


# ---------------------------------------------------------------------------- T2
def destabilised(result: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The fair phase of an RS-Aug run is destabilised when a loss is not finite or rises epoch over epoch by 5 %+."""
    curve = [r for r in (result or {}).get("curve", []) if r.get("phase") == "train"]
    losses = [r["train_loss"] for r in curve]
    bad = [i + 1 for i, x in enumerate(losses) if not math.isfinite(x)]
    rises = [curve[i]["epoch"] for i in range(1, len(losses)) if losses[i] > 1.05 * losses[i - 1]]
    return {"fair_phase_losses": losses, "non_finite_epochs": bad, "rising_epochs": rises,
            "destabilised": bool(bad or rises)}


LATE_VAL_TOLERANCE = 0.5  # points of val top-1 over the last quarter of the epochs: "converged" below it


def converged(curve: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Whether a run's val top-1 had stopped moving: its change over the last quarter of the epochs."""
    if len(curve) < 2:
        return {"late_val_change": None, "final_train_top1": None, "converged": False}
    start = curve[-1 - max(1, len(curve) // 4)]
    change = curve[-1]["val_top1"] - start["val_top1"]
    return {"late_val_change": change, "final_train_top1": curve[-1]["train_top1"], "from_epoch": start["epoch"],
            "converged": abs(change) < LATE_VAL_TOLERANCE}


def analyse_t2(p: Protocol, seeds: Sequence[int], results: Results) -> Dict[str, Any]:
    top = cfg(max(p.factors))
    base = [f"t2base-s{s}" for s in seeds]
    rows, data = [], {"curves": {}}
    for label, name, kind, bkind in (("RS-Aug, recalibrated", "aug", "own_cal", "own_cal"),
                                     ("RS-Aug, as trained", "aug", "own_raw", "own_raw"),
                                     ("RS-Aug with --loss-reduction mean, recalibrated", "augmean", "own_cal",
                                      "own_cal")):
        a = [top1(results, f"{name}-s{s}", kind, top) for s in seeds]
        if all(v is None for v in a):
            continue
        c = compare(a, [top1(results, n, bkind, top) for n in base])
        data[label] = c
        rows.append(_row(label, c))
    for s in seeds:
        for n in (f"t2base-s{s}", f"aug-s{s}", f"augmean-s{s}"):
            if n in results:
                data["curves"][n] = [{"epoch": r["epoch"], "phase": r["phase"], "train_top1": r["train_top1"],
                                      "train_loss": r["train_loss"], "val_top1": r["top1"].get(top)}
                                     for r in results[n]["curve"]]
    checks = {f"aug-s{s}": destabilised(results.get(f"aug-s{s}")) for s in seeds}
    data["summed_loss_check"] = checks
    conv = {n: converged(c) for n, c in data["curves"].items() if n.startswith("t2base")}
    data["baseline_convergence"] = conv
    late = summary([c["late_val_change"] for c in conv.values()])
    train_end = summary([c["final_train_top1"] for c in conv.values()])
    unstable = [n for n, c in checks.items() if c["destabilised"]]
    main = data.get("RS-Aug, recalibrated", {"verdict": "inconclusive"})
    md = [
        f"Resizable-Aug (fair sampling for {round(p.t2_epochs * 2 / 3)} of {p.t2_epochs} epochs, then all-1.0 alone) "
        f"against the all-1.0 network trained alone with the same epochs, schedule, batch and augmentation, both on "
        f"{p.t2_train_size} of the training images (`--train-size`, the same for every seed), so that the baseline "
        "converges; test top-1 % at all-1.0. Paper (Table 2): RS-Aug beats the baseline (78.8 vs 76.4).",
        "",
        "| row | RS-Aug | baseline | difference | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
        *rows,
        "",
        verdict_line("T2", main, "RS-Aug minus baseline at all-1.0, recalibrated", effect="T2"),
        "",
        f"Convergence of the baseline: {sum(c['converged'] for c in conv.values())} of {len(conv)} seed(s) "
        f"converged (val top-1 moved by less than {LATE_VAL_TOLERANCE:g} points over the last quarter of the "
        f"epochs): it moved by {fmt(late)} points, and the final train top-1 is {fmt(train_end)} % (curves per "
        "epoch in t2.json).",
        f"Summed loss of the fair phase (k = 4 gradients added at the baseline's learning rate): "
        f"{'destabilised in ' + ', '.join(unstable) if unstable else 'no non-finite or rising epoch loss'}"
        f"{'; the --loss-reduction mean row is added' if unstable else ''}.",
    ]
    return {"json": data, "md": md, "flags": {"summed_loss_destabilises": bool(unstable)}}


# ---------------------------------------------------------------------------- beyond the paper
def last_val_mean(result: Optional[Dict[str, Any]], configs: Sequence[str]) -> Optional[float]:
    """Mean val top-1 of ``configs`` at the run's last evaluated epoch (BN as the per-epoch evaluation leaves it)."""
    evals = [e for e in (result or {}).get("curve", []) if e.get("split") == "val" and e.get("top1")]
    if not evals or not all(c in evals[-1]["top1"] for c in configs):
        return None
    return statistics.fmean(evals[-1]["top1"][c] for c in configs)


def analyse_beyond(p: Protocol, seeds: Sequence[int], results: Results, names: Mapping[str, str] = EARLIER,
                   tag: str = "") -> Dict[str, Any]:
    """The converted all-1.0 network (``convert``, its lr from ``convert_lr``) and RS with in-place distillation
    (``distill``) against the RS network from scratch (``rs``); a row whose steps are not among ``results``
    (neither planned nor committed) is left out."""
    rs = named(names, "rs", seeds)
    rows, data, flags = [], {}, {}
    uniform = [cfg(s) for s in p.factors]

    def uniform_mean(vals_by_config):
        return statistics.fmean(vals_by_config[c] for c in uniform) if vals_by_config else None

    for label, role, epochs in (("converted all-1.0 network, then RS training", "convert",
                                 max(1, round(p.epochs / 4))), ("RS with --distill", "distill", p.epochs)):
        these = named(names, role, seeds)
        if not any(n in results for n in these):
            continue
        for what, fn in (("mean over 64 configs", _mean), ("mean over the 4 uniform configs", None)):
            if fn is None:
                a = [uniform_mean(all_top1(results, n, "test_cal")) for n in these]
                b = [uniform_mean(all_top1(results, n, "test_cal")) for n in rs]
            else:
                a, b = _agg(results, these, "test_cal", fn), _agg(results, rs, "test_cal", fn)
            c = compare(a, b)
            data[f"{label}, {what}"] = {**c, "epochs": epochs}
            rows.append(_row(f"{label} ({epochs} epochs), {what}", c))
    md = [
        "Rows beyond the paper, against the RS network trained from scratch for "
        f"{p.epochs} epochs (test top-1 %, recalibrated). The converted row starts from the all-1.0 network "
        "trained alone (its BN branches copied to every factor by `resizable convert`) and trains with the RS "
        "network's sampling and loss for a quarter of the epochs. Direction tested: the new row is better.",
        "",
        "| row | new | RS from scratch | difference | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
        *(rows or ["| (no rows: the claim's steps have not run) | - | - | - | inconclusive |"]),
    ]
    distill = named(names, "distill", seeds)
    if any(results.get(n) for n in distill):
        keep = compare([last_val_mean(results.get(n), uniform) for n in distill],
                       [last_val_mean(results.get(n), uniform) for n in rs])
        helps = keep["verdict"] == "agrees"
        data["distill_keep_on_val"] = {**keep, "keep": helps}
        decision = ("it helps: in-place distillation belongs in the recipe" if helps else
                    "it does not help measurably: `--distill` stays an opt-in option, off by default, and the "
                    "recipe does not use it")
        md += ["", f"Keep in-place distillation? Decided on val, not test: the mean val top-1 of the 4 uniform "
                   f"configurations after the last epoch, RS with --distill minus RS, per seed "
                   f"{', '.join('-' if d is None else f'{d:+.2f}' for d in keep['diffs'])}: {keep['verdict']} "
                   f"({keep.get('why', 'no values')}), so {decision}."]
        flags["distill_helps"] = helps
    pick = results.get(names["convert_lr"])
    if pick:
        scores = {k: v["val_top1"] for k, v in pick["candidates"].items()}
        data["convert_lr_selection"] = {"chosen": pick["chosen"], "score": pick["score"], "candidates": scores}
        tried = ", ".join(f"{k}: {v:.2f}" for k, v in scores.items())
        own = next((results[n]["options"]["lr"] for n in rs if (results.get(n) or {}).get("options")), None)
        md += ["", f"The converted row fine-tunes at lr {pick['chosen']['lr']:g}, chosen on val on the first seed's "
                   f"all-1.0 network ({pick['score']}; lr: score = {tried}); the RS network from scratch trains at "
                   f"its recipe's lr {'-' if own is None else f'{own:g}'}."]
    return {"json": data, "md": md, "flags": flags}


# fig5, t9, t11 and beyond read the default recipe's steps: the suite builds them from the selection (claims_default)
ANALYSES = {"t1": analyse_t1, "t2": analyse_t2, "fig3d": analyse_fig3d}
TITLES = {"recipes": "T1 with every side tuned on val: the chosen recipe and the paper's, two regimes",
          "curve": "The budget curve: one RS training against the networks it replaces, at equal counted cost",
          "t1": "T1 (Table 1): RS sub-networks against the same configurations trained alone",
          "fig5": "Fig 5: a network trained at one configuration, run at all of them",
          "t9": "T9 (Table 9): scale-aware BN against one shared BN",
          "t11": "T11 + T8 (Tables 11, 8): fair against random sampling",
          "t2": "T2 (Table 2): Resizable-Aug against the plain baseline",
          "fig3abc": "Fig 3(a)-(c), Table B: Resizable-NAS, searched and fine-tuned, against the baselines",
          "fig3d": "Fig 3d: Resizable-Adapt against the NAS Pareto front",
          "beyond": "Beyond the paper: from a trained network; in-place distillation"}
