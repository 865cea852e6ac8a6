"""The screening's design: every family tuned in the same stages (weight decay included), runs made before weight
decay was an axis reused under their names and keys, the new recipes under names of their own."""
import pytest

from suite.protocol import Protocol
from suite.screen import (RETIRED, WEIGHT_DECAYS, extend, grid_points, methods, pick, point_step, screening_table,
                          stage_grid, stages)
from suite.steps import Context, Step, step_key


def _new_runs(p, m):
    """The distinct runs of a method's stages before any edge growth, each stage at the previous one's first point."""
    names, best = set(), None
    for i in range(len(stages(m))):
        points = grid_points(stage_grid(p, m, i, best))
        names |= {point_step(p, m, pt, 80).name for pt in points}
        best = points[len(points) // 2]  # any point of the grid: the counts do not depend on which
    return len(names)


def test_every_family_gets_the_same_stages_and_runs():
    p = Protocol()
    by = {m.name: m for m in methods(p)}
    assert [n for n in by][:4] == ["alone-0.45", "alone-0.65", "alone-0.85", "alone-1"]  # the cheapest first
    for m in by.values():
        assert "weight decay x lr" in stages(m)  # weight decay tuned on both sides
    counts = {n: _new_runs(p, by[n]) for n in by}
    assert {counts[f"alone-{s:g}"] for s in p.factors} == {counts["fair"]} == {12}
    assert {counts[n] for n in ("warm-full", "warm-snapshot", "warm-progressive")} == {15}  # 3 for the knob
    # the distillation families: 3 for the temperature, 3 for the distillation weight
    assert {counts[n] for n in ("fair-ensemble-td", "sandwich-full-v2")} == {18}
    assert stages(by["fair-ensemble-td"])[2:] == ["distill_temperature x lr", "distill_weight x lr"]
    best = {"lr": 0.2, "warmup_epochs": 3.0, "weight_decay": 5e-4, "distill_temperature": 4.0, "distill_weight": 1.0}
    assert stage_grid(p, by["fair-ensemble-td"], 3, best) == {  # one knob a stage, the other at its best
        "lr": (0.1, 0.2, 0.4), "warmup_epochs": (3.0,), "weight_decay": (5e-4,), "distill_temperature": (4.0,),
        "distill_weight": (1.0, 0.5)}
    assert counts["paper"] == 9  # its recipe fixes the warm-up
    grid = stage_grid(p, by["alone-1"], 1, {"lr": 0.2, "warmup_epochs": 2.0, "weight_decay": 5e-4})
    assert grid == {"lr": (0.1, 0.2, 0.4), "warmup_epochs": (2.0,), "weight_decay": WEIGHT_DECAYS}


def test_runs_at_the_protocol_weight_decay_keep_their_names_and_keys(tmp_path):
    p = Protocol()
    ctx = Context(p, str(tmp_path), str(tmp_path))
    by = {m.name: m for m in methods(p)}
    step = point_step(p, by["alone-1"], {"lr": 0.2, "warmup_epochs": 1.0, "weight_decay": 5e-4}, 80)
    before = Step(step.name, seed=0, train={k: v for k, v in step.train.items() if k != "weight_decay"})
    assert step.name == "sel-alone1-lr0.2-w1" and step_key(ctx, step) == step_key(ctx, before)
    assert point_step(p, by["fair"], {"lr": 0.2, "warmup_epochs": 3.0, "weight_decay": 5e-4}, 80).name == \
        "sel-fair-mean-lr0.2-w3"
    other = point_step(p, by["alone-1"], {"lr": 0.2, "warmup_epochs": 1.0, "weight_decay": 2e-3}, 80)
    assert other.name == "sel-alone1-lr0.2-w1-wd0.002" and step_key(ctx, other) != step_key(ctx, step)
    # the recipes the library changed get names no earlier run has
    for new, old in (("sandwich-full-v2", "sel-sandwich-full-mean-lr0.2-w1"),
                     ("fair-ensemble-td", "sel-fair-ensemble-mean-lr0.2-w1")):
        name = point_step(p, by[new], {"lr": 0.2, "warmup_epochs": 1.0, "weight_decay": 5e-4,
                                       "distill_temperature": 1.0}, 80).name
        assert name != old and name.startswith(old.rsplit("-lr", 1)[0].replace("-mean", ""))
    # a point at the library's distillation weight is the run made before the weight was an axis
    point = {"lr": 0.2, "warmup_epochs": 5.0, "weight_decay": 5e-4, "distill_temperature": 1.0}
    made = point_step(p, by["fair-ensemble-td"], point, 80)
    at_one = point_step(p, by["fair-ensemble-td"], {**point, "distill_weight": 1.0}, 80)
    assert (at_one.name, step_key(ctx, at_one)) == (made.name, step_key(ctx, made))
    half = point_step(p, by["fair-ensemble-td"], {**point, "distill_weight": 0.5}, 80)
    assert half.name == made.name + "-dw0.5" and half.train["distill_weight"] == 0.5
    warm = point_step(p, by["warm-snapshot"], {"lr": 0.1, "warmup_epochs": 0.0, "weight_decay": 1e-4,
                                               "warm_start_share": 0.25}, 80)
    assert warm.name == "sel-fair-eq-warmfull-snapshot-mean-lr0.1-w0-wd0.0001-sh0.25"
    with pytest.raises(ValueError, match="earlier recipes"):
        pick(methods(p), ["sandwich-full"])
    with pytest.raises(ValueError, match="accepted: alone-0.45"):
        pick(methods(p), ["nope"])


def test_edge_rule_steps_weight_decay_by_four_and_keeps_a_knob():
    grid = {"lr": (0.1, 0.2, 0.4), "weight_decay": WEIGHT_DECAYS, "distill_temperature": (1.0, 4.0)}
    assert extend(grid, {"lr": 0.2, "weight_decay": 2e-3, "distill_temperature": 4.0}) == [
        {"lr": 0.2, "weight_decay": 8e-3, "distill_temperature": 4.0}]
    assert extend(grid, {"lr": 0.2, "weight_decay": 1e-4, "distill_temperature": 1.0}) == [
        {"lr": 0.2, "weight_decay": 2.5e-5, "distill_temperature": 1.0}]


def test_screening_table_has_each_familys_runs_cost_and_the_retired_apart():
    run = {"point": {"lr": 0.2, "weight_decay": 5e-4}, "run": "r", "val_score": 88.0, "seconds": 3600.0,
           "macs": 2.5e12, "stability": None}
    new = {"side": "rs", "grid": {"lr": [0.1, 0.2, 0.4]}, "runs": [run, {**run, "macs": None}], "best": run,
           "edge_rounds": 1, "on_edge": False, "macs": 2.5e12, "seconds": 7200.0, "runs_without_macs": 1}
    old = {"side": "rs", "grid": {"lr": [0.2]}, "runs": [run], "best": run, "on_edge": False}
    md = "\n".join(screening_table({"recipes": {"budget": {}, "methods": {"fair": new, "sandwich-full": old}}}))
    assert "| `fair` | rs | lr: 0.1, 0.2, 0.4 | 2 | 2.50 T (1 run(s) made before the count) | 2.0 | lr 0.2, wd 0.0005 " \
           "| 88.00 | 1 | no | - |" in md
    earlier = md.index("earlier recipes")
    assert md.index("`sandwich-full`") > earlier > md.index("`fair`") and RETIRED["sandwich-full"] in md
