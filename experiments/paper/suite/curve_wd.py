"""The weight decay checked again at the budget curve's longest budget, on both sides.

The screening tuned every side's weight decay at 480 steps; a longer training can want another. At the curve's
longest budget (``BUDGETS[-1]`` x E epochs of the networks alone, RS at equal counted cost), each side trains
again at its tuned point with the weight decay divided and multiplied by ``WD_FACTORS`` (the screening's step of
4), seed 0. Each run is scored on val as the screening and the confirmation score (:func:`screen.score`: its own
configuration for a network alone, the uniform configurations' mean for RS) and set against the curve's own run
at that budget and seed (the tuned weight decay). One seed: a difference within about 0.3 points (the val
score's binomial standard error near 90 % on 5,000 images, for a mean of four networks about half of it) is not
read as a preference.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Dict, List, Optional, Sequence

from .curve import BUDGETS, alone_step, analyse_curve, hours_left, rs_step
from .protocol import Protocol
from .runs import Results, cfg
from .screen import grid_value, score
from .steps import Step

WD_FACTORS = (0.25, 4.0)
WD_SEED = 0
NOISE = 0.3   # val points a one-seed difference must exceed to count as a preference


def _variant(step: Step, wd: float, side: str) -> Step:
    epochs = step.train["epochs"]
    return dataclasses.replace(step, name=f"curve-wd-{side}-e{epochs}-wd{grid_value(wd)}-s{step.seed}",
                               train={**step.train, "weight_decay": wd})


def _sides(p: Protocol, selection: Dict[str, Any]) -> Dict[str, Step]:
    """Each side's run at the longest budget, seed ``WD_SEED``, at its tuned point."""
    epochs = BUDGETS[-1] * p.epochs
    factors = p.factors[-1:] if p.quick else p.factors  # --quick: one network alone (every path, fewer runs)
    out = {f"alone-{s:g}": alone_step(p, selection, s, epochs, WD_SEED) for s in factors}
    out["rs"] = rs_step(p, selection, epochs, WD_SEED)
    return out


def _tuned_wd(p: Protocol, step: Step) -> float:
    return float(step.train.get("weight_decay", p.weight_decay))


def plan_wd_check(p: Protocol, selection: Dict[str, Any]) -> List[Step]:
    """The check's runs: every side at the longest budget with its weight decay /4 and x4 (the networks alone's
    first: they are the cheaper)."""
    steps = []
    for side, step in _sides(p, selection).items():
        tag = side.replace("alone-", "alone")
        steps += [_variant(step, _tuned_wd(p, step) * f, tag) for f in WD_FACTORS]
    return steps


def _configs(p: Protocol, side: str) -> Sequence[str]:
    return [cfg(s) for s in p.factors] if side == "rs" else [cfg(float(side.split("-", 1)[1]))]


def analyse_wd_check(p: Protocol, results: Results, selection: Dict[str, Any]) -> Dict[str, Any]:
    """Per side: the val score at the tuned weight decay and at /4 and x4, and whether another one is preferred."""
    rows = {}
    for side, step in _sides(p, selection).items():
        tag = side.replace("alone-", "alone")
        wd = _tuned_wd(p, step)
        scores: Dict[float, Optional[float]] = {}
        for w, s in [(wd, step)] + [(wd * f, _variant(step, wd * f, tag)) for f in WD_FACTORS]:
            result = results.get(s.name)
            scores[w] = score(result, _configs(p, side)) if result else None
        known = {w: v for w, v in scores.items() if v is not None}
        best = max(known, key=known.get) if len(known) == len(scores) else None
        moves = best is not None and best != wd and known[best] - known[wd] > NOISE
        rows[side] = {"tuned": wd, "scores": {grid_value(w): v for w, v in scores.items()},
                      "best": best, "moves": moves}
    done = [r for r in rows.values() if r["best"] is not None]
    epochs = BUDGETS[-1] * p.epochs
    md = ["#### The weight decay at the longest budget", "",
          f"Each side at its tuned point, {epochs} epochs alone (RS at equal counted cost), seed {WD_SEED}, with the "
          f"weight decay /4 and x4; val top-1 % (RS: the uniform configurations' mean). A preference needs more than "
          f"{NOISE} points (one seed).", "",
          "| side | tuned wd | val at tuned | val at wd/4 | val at wd x4 | verdict |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for side, r in rows.items():
        cells = [("-" if v is None else f"{v:.2f}") for v in r["scores"].values()]
        word = ("not run yet" if r["best"] is None else
                f"wd {grid_value(r['best'])} is better by {r['scores'][grid_value(r['best'])] - r['scores'][grid_value(r['tuned'])]:.2f}"
                if r["moves"] else "the tuned weight decay holds")
        md.append(f"| {side} | {grid_value(r['tuned'])} | " + " | ".join(cells) + f" | {word} |")
    moved = [s for s, r in rows.items() if r["moves"]]
    md += ["", ("**Weight decay at the longest budget:** not every run has finished." if len(done) < len(rows) else
                "**Weight decay at the longest budget:** the tuned values hold on both sides." if not moved else
                f"**Weight decay at the longest budget:** it moves for {', '.join(moved)}; the curve's runs keep the "
                "tuned values, so read that side's points at the longest budget as a lower bound."), ""]
    gaps = [r["scores"][grid_value(r["best"])] - r["scores"][grid_value(r["tuned"])] for r in done]
    return {"json": {"sides": rows, "epochs": epochs, "seed": WD_SEED, "noise": NOISE,
                     "largest_gain": max(gaps) if gaps else None,
                     "mean_gain": statistics.fmean(gaps) if gaps else None}, "md": md}


def analyse_curve_and_wd(p: Protocol, seeds: Sequence[int], results: Results, selection: Dict[str, Any]
                         ) -> Dict[str, Any]:
    """The budget curve's section with the weight-decay check at its longest budget after it."""
    out = analyse_curve(p, seeds, results, selection)
    wd = analyse_wd_check(p, results, selection)
    _, left = hours_left(plan_wd_check(p, selection), results, out["json"]["estimate"]["seconds_per_epoch"])
    wd["json"]["hours_unfinished"] = left
    out["json"]["weight_decay_check"] = wd["json"]
    out["md"] = out["md"] + wd["md"][:-1] + [f"Its unfinished runs: about {left:.1f} CPU hours at one run at a time "
                                             "(the curve's measured seconds per epoch).", ""]
    return out
