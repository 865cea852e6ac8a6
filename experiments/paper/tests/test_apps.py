"""Fig 3(a)-(c) and Fig 3d on the default recipe's network: the planned steps, the budgets, the narrower network."""
import json

import pytest
from pathlib import Path

from suite.apps import choose_budgets, midpoints, narrow_widths, search, val_front
from suite.fig3abc import plan_fig3abc
from suite.fig3d_front import goal, plan_fig3d_front
from suite.plan import CLAIMS
from suite.protocol import Protocol
from suite.recipes import plan_recipes, recipe_options
from suite.suite import parse_claims, unique_steps

HOME = Path(__file__).resolve().parent.parent


def _selection():
    return json.loads((HOME / "results" / "selection.json").read_text())


def test_both_sections_share_the_curves_network_and_keep_its_weights():
    p, sel = Protocol(), _selection()
    steps = unique_steps(plan_recipes(p, [0, 1, 2], sel) + plan_fig3abc(p, [0, 1, 2], sel)
                         + plan_fig3d_front(p, [0, 1, 2], sel))
    by = {s.name: s for s in steps}
    from suite.curve import curve_method

    net = f"full-{curve_method(sel)}-s1"
    assert by[net].keep_weights and by[net].kind == "train"  # the recipes' (and the curve's) step, not a new one
    assert by["adapt-front-s1"].deps == (net, "nas-tables-s0") and by["nas-tables-s0"].params["choose_budgets"]
    assert not by["nas-tables-s2"].params["choose_budgets"]
    for i in range(4):
        assert {f"nas-ft1-b{i}-s2", f"nas-ft15-b{i}-s2", f"nas-alone-b{i}-s2", f"nas-narrow-b{i}-s2"} <= set(by)
    alone = by["nas-alone-b0-s0"].train
    # the network alone at its tuned point: the confirmation's once it has confirmed it, else the screening's
    assert alone["lr"] == recipe_options(sel, "alone-1")["lr"] and alone["epochs"] == p.epochs
    names = [s.name for s in steps]  # in a one-job run, every step comes after those it reads
    assert all(names.index(d) < names.index(s.name) for s in steps for d in s.deps)
    assert {"fig3abc", "fig3d"} <= set(CLAIMS) and "fig3abc" in parse_claims("all")


def test_budgets_span_the_val_front_and_the_search_stays_within_them():
    costs = {"a": 1.0, "b": 1.5, "c": 2.0, "d": 3.0, "e": 4.5, "f": 6.0, "g": 8.0, "h": 2.5}
    tops = {"a": 80.0, "b": 82.0, "c": 83.0, "d": 85.0, "e": 86.0, "f": 87.0, "g": 88.0, "h": 82.5}
    val = {c: {"mmacs": costs[c], "top1": tops[c]} for c in costs}
    assert val_front(val) == ["a", "b", "c", "d", "e", "f", "g"]  # h is dearer than c and worse
    budgets = choose_budgets(val)
    assert len(budgets) == 4 and budgets == sorted(budgets) and budgets[0] > 1.0 and budgets[-1] < 8.0
    assert all(b in costs.values() for b in budgets)  # front points
    mids = midpoints(val, budgets)
    front = [costs[c] for c in val_front(val)]
    assert len(mids) == 4 and all(not any(abs(m - c) < 1e-9 for c in front) for m in mids)  # between front points
    assert search(val, 2.4) == "c" and search(val, 0.5) is None


@pytest.mark.slow
def test_the_narrower_network_matches_the_budget_in_whole_channels():
    p = Protocol()
    train = {**p.train_args(), "sampling": "single", "single_config": (1.0, 1.0, 1.0)}
    _, full = narrow_widths(train, 1e9)
    widths, got = narrow_widths(train, full / 3)
    assert all(isinstance(w, int) and w < b for w, b in zip(widths, p.model_args["widths"]))
    assert abs(got - full / 3) / (full / 3) < 0.1


def test_the_fig3d_goal_names_the_oracles_room_when_no_method_beats_the_line():
    flat = {"mean": -0.2, "verdict": "inconclusive", "oracle_share": -0.1}
    data = {"budgets": [2.0], "oracle": {"2.00": {"mean": 3.0}}, "methods": {"cascade": {"2.00": flat}}}
    text = goal(data)
    assert text.startswith("**not met**") and "oracle +3.00" in text and "cascade -10 %" in text
    data["methods"]["cascade"]["2.00"] = {"mean": 0.4, "verdict": "agrees", "oracle_share": 0.13}
    assert goal(data).startswith("**met**")
