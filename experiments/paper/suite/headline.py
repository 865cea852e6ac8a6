"""The READMEs' results block: three lines, computed (the equal-cost line, what it stands on, the links).

The first line has one fixed form, which checks read::

    Equal cost (full regime, default recipe, N seeds): mean gain +X.XX (95 % CI a .. b), worst configuration -Y.YY (c)

It comes from the budget curve's longest budget at which the networks alone converged (T2's rule,
every configuration and seed) once the curve has one; until then from the recipes claim's full
regime at equal epochs (equal cost: a fair-sampling step costs one step of each network alone),
its headline seeds; else from the curve's first budget.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from .cost import run_cost, tmacs
from .protocol import PINNED, Protocol
from .recipes import step_name
from .runs import Results


def _source(p: Protocol, recipes: Optional[Dict[str, Any]], curve: Optional[Dict[str, Any]],
            results: Results) -> Optional[Dict[str, Any]]:
    """The comparison the line reports: gains per configuration, the mean gain's verdict, budget, convergence."""
    if curve:
        done = [pt for pt in curve["budgets"]["equal"] if pt["all_converged"] and pt["complete"]]
        if done:
            pt = done[-1]
            return {"configs": pt["configs"], "mean": pt["mean_gain"], "epochs": pt["alone_epochs"],
                    "converged": "converged", "alone_cost": pt["alone_cost"], "rs_cost": pt["rs_cost"],
                    "where": "the budget curve's longest converged budget"}
    if recipes and recipes["regimes"]["full"].get("chosen", {}).get("equal_epochs", {}).get("mean_gain", {}).get("n"):
        row = recipes["regimes"]["full"]["chosen"]
        conv = [x["converged"] for c in recipes["regimes"]["full"].get("alone_convergence", {}).values()
                for x in c.values()]
        method = recipes["recipes"]["chosen"]["method"]
        alone = [sum(run_cost(results.get(step_name("full", f"alone-{s:g}", x)))[0] or 0 for s in p.factors)
                 for x in row["seeds"]]
        rs = [run_cost(results.get(step_name("full", method, x)))[0] for x in row["seeds"]]
        return {"configs": row["equal_epochs"]["configs"], "mean": row["equal_epochs"]["mean_gain"],
                "epochs": p.epochs, "converged": f"not converged by T2's rule ({sum(conv)} of {len(conv)} runs)",
                "alone_cost": sum(alone) / len(alone) if all(alone) else None,
                "rs_cost": sum(rs) / len(rs) if all(rs) else None, "where": "the recipes claim's full regime"}
    if curve and curve["budgets"]["equal"][0]["complete"]:
        pt = curve["budgets"]["equal"][0]
        conv = [x for v in pt["converged"].values() for x in v]
        return {"configs": pt["configs"], "mean": pt["mean_gain"], "epochs": pt["alone_epochs"],
                "converged": f"not converged by T2's rule ({sum(conv)} of {len(conv)} runs)",
                "alone_cost": pt["alone_cost"], "rs_cost": pt["rs_cost"], "where": "the budget curve's first budget"}
    return None


def equal_cost_line(src: Dict[str, Any]) -> str:
    m = src["mean"]
    worst = min((c for c in src["configs"].items() if c[1].get("mean") is not None), key=lambda kv: kv[1]["mean"])
    ci = f"95 % CI {m['ci'][0]:+.2f} .. {m['ci'][1]:+.2f}" if m.get("ci") else "no interval: one seed"
    return (f"Equal cost (full regime, default recipe, {m['n']} seeds): mean gain {m['mean']:+.2f} ({ci}), "
            f"worst configuration {worst[1]['mean']:+.2f} ({worst[0]})")


def readme_lines(p: Protocol, recipes: Optional[Dict[str, Any]], curve: Optional[Dict[str, Any]], results: Results,
                 readme: Path, report: Path, paper_readme: Path) -> Optional[List[str]]:
    """The block between a README's paper marks (None when no comparison has finished)."""
    src = _source(p, recipes, curve, results)
    if src is None:
        return None
    basis = "the statistics bank" if PINNED.get("bn_bank", True) else (
        "BN recalibrated (the suite's runs keep no statistics bank)")
    rel = lambda path: os.path.relpath(path, readme.parent)  # noqa: E731
    return [equal_cost_line(src),
            f"Test top-1 %, RS minus each uniform configuration trained alone, from {src['where']}: {src['epochs']} "
            f"epochs of each network alone ({tmacs(src['alone_cost'])} TMACs counted for the four) against one RS "
            f"training of {src['epochs']} epochs ({tmacs(src['rs_cost'])} TMACs); the networks alone "
            f"{src['converged']}; {basis}.",
            f"The budget curve, every claim and verdict: [{rel(report)}]({rel(report)}); the suite and how to run it: "
            f"[{rel(paper_readme)}]({rel(paper_readme)})."]
