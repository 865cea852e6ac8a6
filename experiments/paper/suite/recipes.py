"""T1 again, with every side tuned on val: the chosen recipe and the paper's against networks trained alone.

The screening (:mod:`screen`) gives each method its best grid point on val, and the confirmation
(:mod:`confirm`) tunes the best RS candidates and the networks alone again at the full budget. This claim takes

- the **chosen recipe** (the default recipe): the confirmation's winner once it has confirmed every
  candidate, until then the RS method from scratch with the best screening score among those whose
  screening has finished (``FROM_SCRATCH``: fair sampling, the warm starts, ensemble and sandwich
  distillation; the twin-teacher path starts from a trained network, so it is reported beside, not
  chosen at an equal budget);
- the **paper's recipe** (fair sampling, summed loss, no warm-up) at its own best learning rate;
- each uniform configuration **trained alone** at its own best point,

and runs them with the suite's seeds in two regimes:

| regime | training images | networks alone | RS (a) | RS (b) |
| --- | --- | --- | --- | --- |
| ``full`` | 55,000 (60k minus val) | E epochs | E | 2E |
| ``small`` | ``t2_train_size`` (as T2) | ``t2_epochs`` (converged by T2's rule) | same | 2x |

Test top-1 with BN recalibrated; verdicts by the t rule of :mod:`stats`. The goal the report
states: at 2x epochs RS >= trained alone at every uniform configuration (verdict ``agrees``, or a
mean gain >= 0 when inconclusive), and at equal epochs a gap of at most ``EQUAL_EPOCH_GAP`` points.
"""
from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .claims import converged
from .confirm import FROM_SCRATCH, confirmation_table, confirmed_point, winner
from .cost import cost_line
from .protocol import Protocol
from .runs import Results, cfg, top1
from .screen import grid_value, screening_table
from .stats import compare, effect_text, fmt, fmt_diff, verdict
from .steps import ALONE_EVALS, RS_EVALS, Step

EQUAL_EPOCH_GAP = 0.5
REGIMES = ("full", "small")


def _method(selection: Dict[str, Any], name: str) -> Dict[str, Any]:
    try:
        m = selection["recipes"]["methods"][name]
    except KeyError:
        raise ValueError(f"the selection has no screened method {name!r}: run experiments/paper/run.py --select") from None
    if m.get("best") is None:
        raise ValueError(f"the screening of {name!r} has not finished: run experiments/paper/run.py --select")
    return m


def recipe_options(selection: Dict[str, Any], name: str) -> Dict[str, Any]:
    """A screened method's fixed options with its best grid point: the confirmation's when it has confirmed the
    method (:mod:`confirm`), else the screening's."""
    m = _method(selection, name)
    opts = {**m["fixed"], **m["best"]["point"], **(confirmed_point(selection, name) or {})}
    if "single_config" in opts:
        opts["single_config"] = tuple(opts["single_config"])
    return opts


def chosen_recipes(selection: Dict[str, Any]) -> List[Tuple[str, str]]:
    """``[(label, method)]``: the best RS method from scratch on val, then the paper's recipe (once if the same)."""
    screened = selection.get("recipes", {}).get("methods", {})
    scored = [(name, _method(selection, name)["best"]["val_score"]) for name in FROM_SCRATCH
              if (screened.get(name) or {}).get("best")]  # a method still being screened is not chosen yet
    if not scored:
        raise ValueError("the selection has screened no RS method from scratch: run experiments/paper/run.py --select")
    best = winner(selection.get("confirmation") or {}) or max(scored, key=lambda x: x[1])[0]
    out = [("chosen", best)]
    if recipe_options(selection, best) != recipe_options(selection, "paper"):
        out.append(("paper", "paper"))
    return out


AUG_METHODS = ("t2-alone-1", "t2-aug")


def aug_methods(p: Protocol, selection: Dict[str, Any]) -> List[Any]:
    """The second stage of the screening: T2's two sides in T2's regime, each tuned like the first stage.

    Resizable-Aug's fair phase uses the chosen recipe's sampling and distillation; its learning rate
    and warm-up are tuned here, in T2's regime (``t2_train_size`` images) for a third of T2's epochs,
    and so are the all-1.0 network's alone (T2's baseline).
    """
    from .screen import LRS, Method

    chosen = recipe_options(selection, chosen_recipes(selection)[0][1])
    phase = {k: v for k, v in chosen.items() if k in ("sampling", "distill", "loss_reduction")}
    regime = {"train_size": p.t2_train_size, "epochs": max(1, p.t2_epochs // 3)}
    top = cfg(max(p.factors))
    grid = {"lr": LRS, "warmup_epochs": (0.0, 1.0)}
    return [Method("t2-alone-1", f"({top}) trained alone in T2's regime", {
                "sampling": "single", "single_config": (float(max(p.factors)),) * 3, "eval_configs": top, **regime},
                grid, (top,), "alone"),
            Method("t2-aug", "Resizable-Aug in T2's regime, its fair phase the chosen recipe's",
                   {"recipe": "aug", **phase, "eval_configs": top, **regime}, grid, (top,), "aug")]


def regime_args(p: Protocol, regime: str) -> Dict[str, Any]:
    return {"full": {"epochs": p.epochs}, "small": {"train_size": p.t2_train_size, "epochs": p.t2_epochs}}[regime]


def step_name(regime: str, what: str, seed: int) -> str:
    return f"{regime}-{what}-s{seed}"


def plan_aug(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any]) -> List[Step]:
    """T2 and T9 with the chosen recipe: the baseline, RS-Aug, and RS-Aug with one shared BN, each at its tuned point."""
    steps = []
    regime = {"train_size": p.t2_train_size, "epochs": p.t2_epochs}
    base, aug = recipe_options(selection, "t2-alone-1"), recipe_options(selection, "t2-aug")
    shared = {**p.model_args, "scale_bn": False}
    for seed in seeds:
        steps.append(Step(f"t2r-base-s{seed}", seed=seed, train={**base, **regime}, evals=("own_cal", "own_raw")))
        steps.append(Step(f"t2r-aug-s{seed}", seed=seed, train={**aug, **regime}, evals=("own_cal", "own_raw")))
        steps.append(Step(f"t2r-augshared-s{seed}", seed=seed, train={**aug, **regime, "model_args": shared},
                          evals=("own_cal", "own_raw")))
    return steps


def row_seeds(seeds: Sequence[int], headline_seeds: Sequence[int], regime: str, label: str) -> List[int]:
    """The seeds of one T1 row: the suite's, plus ``headline_seeds`` for the headline row (full regime, chosen)."""
    extra = [s for s in headline_seeds if s not in seeds] if (regime, label) == ("full", "chosen") else []
    return [*seeds, *extra]


def plan_recipes(p: Protocol, seeds: Sequence[int], selection: Dict[str, Any],
                 headline_seeds: Sequence[int] = ()) -> List[Step]:
    """Every run of the claim: networks alone first (cheapest), then each recipe at E and 2E, regime by regime,
    then T2 and T9 with the chosen recipe; then the headline row's extra seeds (full regime: the chosen recipe at
    2E and E and the networks alone, longest first)."""
    steps = []
    for regime in REGIMES:
        base = regime_args(p, regime)
        for seed in seeds:
            for s in p.factors:
                opts = {**recipe_options(selection, f"alone-{s:g}"), **base}
                steps.append(Step(step_name(regime, f"alone-{s:g}", seed), seed=seed, train=opts, evals=ALONE_EVALS))
        for seed in seeds:
            for _, method in chosen_recipes(selection):
                opts = {**recipe_options(selection, method), **base}
                steps.append(Step(step_name(regime, method, seed), seed=seed, train=opts, evals=RS_EVALS))
                steps.append(Step(step_name(regime, f"{method}-2x", seed), seed=seed,
                                  train={**opts, "epochs": 2 * base["epochs"]}, evals=RS_EVALS))
    steps += plan_aug(p, seeds, selection)
    extra = row_seeds(seeds, headline_seeds, "full", "chosen")[len(seeds):]
    if extra:
        base, method = regime_args(p, "full"), chosen_recipes(selection)[0][1]
        opts = {**recipe_options(selection, method), **base}
        # longest first, so that parallel jobs finish together: RS at 2E, RS at E, then the networks alone
        steps += [Step(step_name("full", f"{method}-2x", seed), seed=seed,
                       train={**opts, "epochs": 2 * base["epochs"]}, evals=RS_EVALS) for seed in extra]
        steps += [Step(step_name("full", method, seed), seed=seed, train=opts, evals=RS_EVALS) for seed in extra]
        steps += [Step(step_name("full", f"alone-{s:g}", seed), seed=seed,
                       train={**recipe_options(selection, f"alone-{s:g}"), **base}, evals=ALONE_EVALS)
                  for seed in extra for s in sorted(p.factors, reverse=True)]
    return steps


def _gains(p: Protocol, seeds: Sequence[int], results: Results, regime: str, rs: str) -> Dict[str, Any]:
    """Per configuration: alone, RS, per-seed gains and the t verdict; and the mean gain over configurations."""
    per_seed: Dict[int, List[float]] = {s: [] for s in seeds}
    configs = {}
    for s in p.factors:
        c = cfg(s)
        alone = [top1(results, step_name(regime, f"alone-{s:g}", seed), "own_cal", c) for seed in seeds]
        mine = [top1(results, step_name(regime, rs, seed), "test_cal", c) for seed in seeds]
        configs[c] = compare(mine, alone)
        for seed, x, y in zip(seeds, mine, alone):
            if x is not None and y is not None:
                per_seed[seed].append(x - y)
    mean = verdict([statistics.fmean(v) for v in per_seed.values() if len(v) == len(p.factors)])
    return {"configs": configs, "mean_gain": mean}


def goal(equal: Dict[str, Any], double: Dict[str, Any]) -> Dict[str, Any]:
    """The issue's goal on one recipe and regime: 2x epochs at least as good everywhere, equal epochs within 0.5."""
    two = [c for c in double["configs"].values() if c.get("mean") is not None]
    eq = [c for c in equal["configs"].values() if c.get("mean") is not None]
    two_ok = bool(two) and all(c["verdict"] == "agrees" or (c["verdict"] == "inconclusive" and c["mean"] >= 0)
                               for c in two)
    eq_ok = bool(eq) and all(c["mean"] >= -EQUAL_EPOCH_GAP for c in eq)
    complete = all(side["n"] == len(side["values"]) > 0 for c in (*equal["configs"].values(),
                                                                   *double["configs"].values())
                   for side in (c["paper_side"], c["other"]))
    return {"2x_at_least_alone": two_ok, "equal_within_gap": eq_ok, "met": two_ok and eq_ok, "complete": complete,
            "worst_gain_2x": min((c["mean"] for c in two), default=None),
            "worst_gain_equal": min((c["mean"] for c in eq), default=None)}


def closest(data: Dict[str, Any]) -> List[str]:
    """Which regime and recipe meet the goal; when none does (every run finished), the one that came closest:
    the highest worst-configuration gain at 2x epochs, then at equal epochs."""
    goals = {(regime, label): r["goal"] for regime, rows in data["regimes"].items() for label, r in rows.items()
             if label in data["recipes"]}
    met = [f"{regime}/{label}" for (regime, label), g in goals.items() if g["met"] and g["complete"]]
    done = {k: g for k, g in goals.items() if g["complete"]}
    data["goal_met_by"] = met
    if met:
        return [f"**Goal met by:** {', '.join(met)}.", ""]
    if not done or len(done) < len(goals):
        return []
    (regime, label), g = max(done.items(), key=lambda kv: (kv[1]["worst_gain_2x"], kv[1]["worst_gain_equal"]))
    data["closest"] = {"regime": regime, "recipe": label, **g}
    return [f"**Goal met by none.** Closest: the {label} recipe in the {regime} regime, whose worst configuration "
            f"is {_pts(g['worst_gain_2x'])} points from the networks alone at 2x epochs and "
            f"{_pts(g['worst_gain_equal'])} at equal epochs.", ""]


def _goal_word(g: Dict[str, Any]) -> str:
    """met / not met, or pending while some run of the comparison has not finished."""
    return ("met" if g["met"] else "not met") if g.get("complete") else "pending (runs unfinished)"


def _table(equal: Dict[str, Any], double: Dict[str, Any]) -> List[str]:
    rows = ["| config | alone | RS, equal epochs | gain | verdict | RS, 2x epochs | gain | verdict |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for c, a in equal["configs"].items():
        b = double["configs"][c]
        rows.append(f"| {c} | {fmt(a['other'])} | {fmt(a['paper_side'])} | {fmt_diff(a)} | {a['verdict']} | "
                    f"{fmt(b['paper_side'])} | {fmt_diff(b)} | {b['verdict']} |")
    ma, mb = equal["mean_gain"], double["mean_gain"]
    rows.append(f"| mean gain | | | {fmt_diff(ma)} | {ma['verdict']} | | {fmt_diff(mb)} | {mb['verdict']} |")
    return rows


def analyse_recipes(p: Protocol, seeds: Sequence[int], results: Results, selection: Dict[str, Any],
                    headline_seeds: Sequence[int] = ()) -> Dict[str, Any]:
    data: Dict[str, Any] = {"recipes": {}, "regimes": {}}
    md: List[str] = []
    recipes = chosen_recipes(selection)
    for label, method in recipes:
        data["recipes"][label] = {"method": method, "options": recipe_options(selection, method),
                                  "val_score": _method(selection, method)["best"]["val_score"]}
    md += ["Every side tuned on val with the same budget and rule (the screening below); the RS recipes: " +
           "; ".join(f"**{label}** = `{method}` {recipe_options(selection, method)}" for label, method in recipes)
           + ". Test top-1 %, BN recalibrated; gain = RS - alone; verdicts by the t rule.", ""]
    for regime in REGIMES:
        base = regime_args(p, regime)
        images = (f"all {60000 - p.val_size:,} training images" if regime == "full" and not p.quick else
                  "the training images" if regime == "full" else f"{p.t2_train_size} images")
        data["regimes"][regime] = {}
        for label, method in recipes:
            these = row_seeds(seeds, headline_seeds, regime, label)
            equal = _gains(p, these, results, regime, method)
            double = _gains(p, these, results, regime, f"{method}-2x")
            g = goal(equal, double)
            data["regimes"][regime][label] = {"equal_epochs": equal, "2x_epochs": double, "goal": g, "seeds": these}
            md += [f"### {regime} regime ({images}, {base['epochs']} epochs alone), {label} recipe (`{method}`)", ""]
            if these != list(seeds):
                md += [f"The headline row: seeds {', '.join(map(str, these))} (the suite's and `--headline-seeds`).",
                       ""]
            md += _table(equal, double)
            md += ["", cost_line(results, {cfg(s): [step_name(regime, f"alone-{s:g}", x) for x in these]
                                           for s in p.factors},
                                 {"at equal epochs": [step_name(regime, method, x) for x in these],
                                  "at 2x": [step_name(regime, f"{method}-2x", x) for x in these]})]
            md += ["", f"**Verdict (T1 {regime}, {label}, equal epochs): {equal['mean_gain']['verdict']}** "
                       f"({equal['mean_gain'].get('why', 'no values')}{effect_text('T1', equal['mean_gain'])})", "",
                   f"**Verdict (T1 {regime}, {label}, RS at 2x epochs): {double['mean_gain']['verdict']}** "
                   f"({double['mean_gain'].get('why', 'no values')}{effect_text('T1', double['mean_gain'])})", "",
                   f"Goal (2x epochs >= alone at every configuration; equal epochs within {EQUAL_EPOCH_GAP:g}): "
                   f"**{_goal_word(g)}** (worst gain at 2x {_pts(g['worst_gain_2x'])}, at equal "
                   f"epochs {_pts(g['worst_gain_equal'])}).", ""]
        conv = {s: {seed: converged([{"epoch": r["epoch"], "val_top1": r["top1"].get(cfg(s)),
                                      "train_top1": r["train_top1"]} for r in results[n]["curve"]])
                    for seed in row_seeds(seeds, headline_seeds, regime, "chosen")
                    for n in [step_name(regime, f"alone-{s:g}", seed)] if results.get(n)}
                for s in p.factors}
        data["regimes"][regime]["alone_convergence"] = {cfg(s): c for s, c in conv.items()}
        if any(conv.values()):
            md += ["Networks alone, converged by T2's rule (val moved < 0.5 over the last quarter of the epochs), per "
                   "configuration over the seeds that have run (val moved; last-epoch train top-1): "
                   + "; ".join(f"{cfg(s)} {sum(x['converged'] for x in c.values())} of {len(c)} ("
                               + ", ".join(f"{_pts(x['late_val_change'])}; {_pct(x['final_train_top1'])}"
                                           for x in c.values()) + ")"
                               for s, c in conv.items() if c), ""]
    md += closest(data)
    md += under_training(p, seeds, results, recipes, data)
    md += limits(data)
    md += _aug_section(p, seeds, results, data)
    flagged = sorted(n for n, r in results.items() if r and r.get("stability"))
    data["stability_flagged"] = {n: results[n]["stability"] for n in flagged}
    md += ["Stability (the training loss logged inside the epochs, `steps.jsonl`, by the rule of "
           "`resizable.training.steplog.loss_climbs`): "
           + ("; ".join(f"`{n}`: {results[n]['stability']}" for n in flagged) if flagged else
              "no run's loss climbed after its first steps") + ".", ""]
    md += screening_table(selection)
    md += confirmation_table(selection)
    return {"json": data, "md": md, "flags": {}, "headline": headline(p, seeds, data, selection)}


def _recipe_words(opts: Dict[str, Any]) -> str:
    warm = opts.get("warmup_epochs")
    combined = "summed" if opts.get("loss_reduction") == "sum" else "averaged"
    return (f"{opts.get('sampling')} sampling, the k losses {combined}, lr {grid_value(opts.get('lr'))}, "
            + ("no warm-up" if not warm else f"warm-up {grid_value(warm)} epochs")
            + (f", distillation {opts['distill']}" if opts.get("distill") not in (None, "none") else ""))


def headline(p: Protocol, seeds: Sequence[int], data: Dict[str, Any], selection: Dict[str, Any]) -> List[str]:
    """The README's summary: each recipe's mean gain in each regime, the chosen recipe's per-configuration table in
    the full regime, the under-training reading, and what the screening changed (its val scores)."""
    rows = ["| regime | recipe | RS epochs (a) / (b) | mean gain (a) | verdict (a) | mean gain (b) | verdict (b) "
            "| goal |",
            "| --- | --- | --- | ---: | --- | ---: | --- | --- |"]
    for regime in REGIMES:
        e = regime_args(p, regime)["epochs"]
        for label, r in data["regimes"][regime].items():
            if label not in data["recipes"]:
                continue
            a, b = r["equal_epochs"]["mean_gain"], r["2x_epochs"]["mean_gain"]
            rows.append(f"| {regime} | {label} | {e} / {2 * e} | {fmt_diff(a)} | {a['verdict']} | {fmt_diff(b)} | "
                        f"{b['verdict']} | {_goal_word(r['goal'])} |")
    method = data["recipes"]["chosen"]["method"]
    full = data["regimes"]["full"]["chosen"]
    scores = {name: _method(selection, name)["best"]["val_score"] for name in (method, "paper")}
    chosen_opts, paper_opts = data["recipes"]["chosen"]["options"], recipe_options(selection, "paper")
    lines = ["Each uniform configuration trained alone at its own point tuned on val, against one RS network "
             "trained with the **chosen** recipe (" + _recipe_words(chosen_opts) + ") and "
             "with the **paper**'s Algorithm 1 at its own tuned lr (" + _recipe_words(paper_opts) + "). (a): RS trains "
             "as many epochs as each network alone, (b): twice as many. Test top-1 %, BN "
             f"recalibrated, seeds {', '.join(map(str, seeds))}"
             + (f" (the full regime's chosen row: {', '.join(map(str, full['seeds']))})"
                if list(full["seeds"]) != list(seeds) else "")
             + "; gain = RS - alone, averaged over the four "
             "configurations per seed; verdicts by the t distribution for the seeds' degrees of freedom. Goal: "
             f"(b) >= alone at every configuration and (a) within {EQUAL_EPOCH_GAP:g} point.", "", *rows, "",
             f"Full regime ({60000 - p.val_size:,} images, {p.epochs} epochs alone), chosen recipe, per configuration"
             f" (seeds {', '.join(map(str, full.get('seeds', seeds)))}):",
             "", *_table(full["equal_epochs"], full["2x_epochs"]), "",
             f"What changed: the first suite trained RS with Algorithm 1 at the lr tuned for the all-1.0 network alone "
             f"(its T1 is in the report). Tuned on val with the same budget as every baseline (mean val top-1 of the "
             f"uniform configurations after the screening's short runs), Algorithm 1 scores "
             f"{scores['paper']:.2f} at its best lr, {grid_value(paper_opts['lr'])}, and the chosen "
             f"recipe {scores[method]:.2f}" + (
                 ": summed, the k losses step the shared weights about k times as far as one network's, so a lr that "
                 "suits one network throws them off in the first steps, and a lr small enough for the sum trains "
                 "slowly; averaged, with a warm-up, they train at a single network's lr"
                 if chosen_opts.get("loss_reduction") == "mean" and paper_opts.get("loss_reduction") == "sum" else "")
             + ". The recipe that won on val (averaged losses, warm-up half the epochs) is the default of "
             "`resizable train`; `--loss-reduction sum --warmup-epochs 0` is Algorithm 1."]
    if data.get("goal_met_by"):
        lines += ["", f"Goal met by: {', '.join(data['goal_met_by'])}."]
    elif data.get("closest"):
        c = data["closest"]
        lines += ["", f"Goal met by none; closest: the {c['recipe']} recipe in the {c['regime']} regime (worst "
                      f"configuration {_pts(c['worst_gain_2x'])} at 2x epochs, {_pts(c['worst_gain_equal'])} at "
                      f"equal epochs)." + (f" What limits it: {data['limits_text']}" if data.get("limits_text")
                                           else "")]
    ut = data.get("under_training", {})
    if ut:
        lines += ["", "Under-training? " + "; ".join(
            f"{k}: mean gain {v['gain_equal']:+.2f} at equal epochs, {v['gain_2x']:+.2f} at 2x ({v['reading']})"
            + ("" if v["complete"] else ", partial") for k, v in ut.items())
            + "."]
    return lines


def _final_train_top1(results: Results, names: Sequence[str]) -> Optional[float]:
    """Mean over runs of the train top-1 of the last epoch (the step's largest configuration for RS)."""
    vals = [results[n]["curve"][-1].get("train_top1") for n in names if results.get(n) and results[n].get("curve")]
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals else None


def under_training(p: Protocol, seeds: Sequence[int], results: Results, recipes: Sequence[Tuple[str, str]],
                   data: Dict[str, Any]) -> List[str]:
    """Whether RS's gap is an under-training effect: how much of the equal-epoch gap twice the epochs closes in
    each regime, and how well each side fits its training images at the end."""
    out, lines = {}, []
    top = f"{max(p.factors):g}"
    for label, method in recipes:
        for regime in REGIMES:
            r = data["regimes"][regime].get(label, {})
            eq, two = (r.get(k, {}).get("mean_gain", {}).get("mean") for k in ("equal_epochs", "2x_epochs"))
            if eq is None or two is None:
                continue
            closed = None if eq >= 0 else (two - eq) / -eq
            fit = {what: _final_train_top1(results, [step_name(regime, name, s) for s in r.get("seeds", seeds)])
                   for what, name in (("rs", method), ("rs_2x", f"{method}-2x"), ("alone_1", f"alone-{top}"))}
            if eq >= 0:
                reading = "no gap"
                words = ("RS is not below the networks alone at equal epochs, so there is no gap to close"
                         + (f"; twice the epochs lowers it by {eq - two:.2f} (RS over-fits its training images: "
                            f"train top-1 {_pct(fit['rs_2x'])} at 2x)" if two < eq else ""))
            elif two >= 0 or closed >= 0.5:
                reading = "under-training"
                words = ("twice the epochs brings RS to the networks alone or closes at least half the gap: the gap "
                         "behaves like under-training")
            else:
                reading = "more than under-training"
                words = "twice the epochs leaves most of the gap: more than under-training"
            complete = bool(r.get("goal", {}).get("complete"))
            out[f"{regime}/{label}"] = {"gain_equal": eq, "gain_2x": two, "gap_closed": closed, "train_top1": fit,
                                        "under_training": reading == "under-training", "reading": reading,
                                        "complete": complete}
            share = "" if closed is None else f", {_closing(closed, 'closing', 'gap')}"
            fits = ", ".join(f"{k} {v:.2f} %" for k, v in fit.items() if v is not None)
            lines.append(("" if complete else "(partial: some runs unfinished) ")
                         + f"{regime} regime, {label} recipe: mean gain {eq:+.2f} at equal epochs, {two:+.2f} at 2x"
                         f"{share} (last-epoch train top-1: {fits}); {words}")
    data["under_training"] = out
    if not lines:
        return []
    return ["**Is RS's gap an under-training effect?** Computed from the rows above (RS's train top-1 is that of "
            "the step's largest configuration):", "", *[f"- {line}." for line in lines], ""]


def _closing(closed: float, verb: str, gap: str) -> str:
    """How much of an equal-epoch gap twice the epochs closes: ``closing 83 % of the gap``, or the whole gap."""
    return f"{verb} the whole {gap}" if closed >= 1 else f"{verb} {100 * closed:.0f} % of the {gap}"


def limits(data: Dict[str, Any]) -> List[str]:
    """What limits the recipe closest to the goal, read from its numbers (only when no recipe meets the goal):
    at equal epochs, whether RS fits its training images less than the network alone and how much of the gap
    twice the epochs closes; at 2x epochs, whether the configurations still short of alone are within the seeds'
    noise, and, where one is really below, whether RS fits its training images as well (then the shared weights'
    compromise between resolutions, not training, is what is left)."""
    c = data.get("closest")
    if not c:
        return []
    regime, label = c["regime"], c["recipe"]
    row, ut = data["regimes"][regime][label], data.get("under_training", {}).get(f"{regime}/{label}", {})
    fit = ut.get("train_top1", {})
    rs, rs2, alone = (fit.get(k) for k in ("rs", "rs_2x", "alone_1"))
    out, reading = [], {}
    short_eq = {name: x["mean"] for name, x in row["equal_epochs"]["configs"].items()
                if x.get("mean") is not None and x["mean"] < -EQUAL_EPOCH_GAP}
    if short_eq:
        underfit = rs is not None and alone is not None and rs < alone
        closed = ut.get("gap_closed")
        reading["equal_epochs"] = "training budget" if underfit and ut.get("under_training") else "other"
        out.append(f"at equal epochs, {', '.join(f'{k} ({v:+.2f})' for k, v in short_eq.items())} miss the "
                   f"{EQUAL_EPOCH_GAP:g}-point allowance; RS's largest configuration ends at train top-1 {_pct(rs)} "
                   f"against {_pct(alone)} alone, and twice the epochs "
                   + ("keeps RS ahead on average" if closed is None else _closing(closed, "closes", "mean gap"))
                   + (": RS under-fits at equal epochs, so what limits it there is the training budget (each step's "
                      "update of the shared weights is shared by the k configurations, each adding a k-th of the "
                      "loss), not what the shared weights can learn" if reading["equal_epochs"] == "training budget"
                      else ": the gap is not only under-fitting"))
    short_2x = {name: x for name, x in row["2x_epochs"]["configs"].items()
                if x.get("mean") is not None and x["mean"] < 0}
    noise = {k: x for k, x in short_2x.items() if x["verdict"] != "disagrees"}
    real = {k: x for k, x in short_2x.items() if x["verdict"] == "disagrees"}
    if noise:
        reading["2x_within_noise"] = sorted(noise)
        out.append("at 2x epochs, " + ", ".join(
            f"{k} ({x['mean']:+.2f}, t x se = {x['t_critical'] * x['se']:.2f})" if x.get("se") is not None
            else f"{k} ({x['mean']:+.2f})" for k, x in noise.items())
            + " fall short by less than the seeds can resolve: their sign, which the goal's rule turns on, is "
              "within the noise, and more seeds would tell")
    if real:
        fits = rs2 is not None and alone is not None and rs2 >= alone
        worse = sorted(k for k, x in real.items() if x["mean"] < row["equal_epochs"]["configs"][k]["mean"])
        reading["2x_below"] = {"configs": sorted(real), "fits_as_well": fits, "lower_than_equal_epochs": worse}
        below = ", ".join(f"{k} ({x['mean']:+.2f})" for k, x in real.items())
        out.append(f"at 2x epochs, {below} stay below alone "
                   + (f"although RS fits its training images as well ({_pct(rs2)} against {_pct(alone)}): what is "
                      "left is the shared weights' compromise between resolutions, not training" if fits else
                      f"and RS still fits its training images less ({_pct(rs2)} against {_pct(alone)}): more "
                      "epochs may still help")
                   + (f"; {', '.join(worse)} lose more at 2x than at equal epochs, so there the extra epochs "
                      "over-fit" if worse else ""))
    data["limits"] = reading
    if not out:
        return []
    data["limits_text"] = "; ".join(out) + "."
    return [f"**What limits the closest recipe ({label}, {regime} regime)?** Read from its rows: "
            + data["limits_text"], ""]


def _aug_section(p: Protocol, seeds: Sequence[int], results: Results, data: Dict[str, Any]) -> List[str]:
    """T2 (RS-Aug against its baseline) and T9 (scale-aware against shared BN) with the chosen recipe."""
    top = cfg(max(p.factors))
    rows, out = [], {}
    for label, a, b, kind in (("T2: RS-Aug against the baseline, recalibrated", "t2r-aug", "t2r-base", "own_cal"),
                              ("T2: RS-Aug against the baseline, as trained", "t2r-aug", "t2r-base", "own_raw"),
                              ("T9: scale-aware against shared BN (RS-Aug), recalibrated", "t2r-aug", "t2r-augshared",
                               "own_cal")):
        c = compare([top1(results, f"{a}-s{s}", kind, top) for s in seeds],
                    [top1(results, f"{b}-s{s}", kind, top) for s in seeds])
        out[label] = c
        rows.append(f"| {label} | {fmt(c['paper_side'])} | {fmt(c['other'])} | {fmt_diff(c)} | {c['verdict']} |")
    conv = [converged([{"epoch": r["epoch"], "val_top1": r["top1"].get(top), "train_top1": r["train_top1"]}
                       for r in results[f"t2r-base-s{s}"]["curve"]]) for s in seeds if results.get(f"t2r-base-s{s}")]
    data["t2_t9_chosen_recipe"] = {**out, "baseline_convergence": conv}
    t2, t9 = out["T2: RS-Aug against the baseline, recalibrated"], out[
        "T9: scale-aware against shared BN (RS-Aug), recalibrated"]
    return [f"### T2 and T9 with the chosen recipe ({p.t2_train_size} images, {p.t2_epochs} epochs; each side at "
            f"its own point tuned on val)", "",
            "| row | paper's side | other | difference | verdict |", "| --- | ---: | ---: | ---: | --- |", *rows, "",
            f"**Verdict (T2, chosen recipe): {t2['verdict']}** ({t2.get('why', 'no values')}{effect_text('T2', t2)})",
            "",
            f"**Verdict (T9, chosen recipe): {t9['verdict']}** ({t9.get('why', 'no values')})", "",
            f"Baseline converged (T2's rule) in {sum(c['converged'] for c in conv)} of {len(conv)} seed(s).", ""]


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f} %"


def _pts(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:+.2f}"
