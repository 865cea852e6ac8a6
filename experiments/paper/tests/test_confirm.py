"""The confirmation: the best screened RS candidates and the networks alone tuned again at the full budget, a claim
run reused when a point is that run, the edge rule on the lr, and the default recipe following the winner."""
import json

import pytest

from suite.confirm import (CANDIDATES, FROM_SCRATCH, SEEDS, adopt, candidates, confirm_method, confirm_step,
                           confirmation_table, reuse, winner)
from suite.protocol import Protocol
from suite.recipes import chosen_recipes, plan_recipes, recipe_options
from suite.screen import methods
from suite.steps import Context, step_key


def _selection(p, scores):
    """A finished screening: every network alone and every RS method from scratch at a best point."""
    ms = {}
    for m in methods(p):
        if m.side == "alone" or m.name in FROM_SCRATCH:
            point = {"lr": 0.2, "warmup_epochs": 2.0, "weight_decay": 5e-4}
            ms[m.name] = {"fixed": dict(m.train), "best": {"point": point, "val_score": scores.get(m.name, 80.0)}}
    for name in ("t2-alone-1", "t2-aug"):  # T2's sides (the recipes claim plans them too)
        ms[name] = {"fixed": {"sampling": "single"}, "best": {"point": {"lr": 0.1}, "val_score": 80.0}}
    return {"recipes": {"methods": ms}}


def _fake(ctx, step, value, configs):
    """A finished run of ``step`` whose last val score is ``value`` at every configuration of ``configs``."""
    path = ctx.result_path(step.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": step.name, "key": step_key(ctx, step), "evals": {e: {} for e in step.evals},
                                "curve": [{"split": "val", "top1": {c: value for c in configs}}]}))


def test_candidates_are_every_network_alone_and_the_best_rs_methods():
    p = Protocol()
    sel = _selection(p, {"warm-full": 88.0, "fair": 87.0, "sandwich-full-v2": 86.5, "paper": 86.0})
    names = [m.name for m in candidates(p, sel)]
    assert names == ["alone-0.45", "alone-0.65", "alone-0.85", "alone-1", "warm-full", "fair", "sandwich-full-v2"]
    assert len(names) == len(p.factors) + CANDIDATES
    del sel["recipes"]["methods"]["warm-snapshot"]["best"]
    with pytest.raises(ValueError, match="warm-snapshot"):
        candidates(p, sel)


def test_a_point_equal_to_a_claim_run_is_that_run_and_others_are_not(tmp_path):
    p = Protocol()
    sel = _selection(p, {})
    by = {m.name: m for m in methods(p)}
    ctx = Context(p, str(tmp_path / "w"), str(tmp_path / "claims"))
    claim = {s.name: s for s in plan_recipes(p, [0], sel)}["full-alone-1-s0"]
    _fake(ctx, claim, 91.0, ["1,1,1"])
    conf = Context(p, str(tmp_path / "w"), str(tmp_path / "conf"))
    point = sel["recipes"]["methods"]["alone-1"]["best"]["point"]
    step = confirm_step(p, by["alone-1"], point, 0)
    assert step.name == "conf-alone1-lr0.2-w2-s0" and step.train["epochs"] == p.epochs
    assert "max_steps_per_epoch" not in step.train
    assert reuse(conf, step, [ctx.result_path(claim.name)]) == "full-alone-1-s0"
    copied = json.loads(conf.result_path(step.name).read_text())
    assert copied["key"] == step_key(conf, step) and copied["reused_from"] == "full-alone-1-s0"
    other = confirm_step(p, by["alone-1"], {**point, "lr": 0.4}, 0)
    assert reuse(conf, other, [ctx.result_path(claim.name)]) is None  # other options: trained, not copied
    assert not conf.result_path(other.name).exists()


def test_a_claim_run_is_the_confirmation_run_with_its_options_and_evaluations(tmp_path):
    p = Protocol()
    sel = _selection(p, {})
    by = {m.name: m for m in methods(p)}
    conf = Context(p, str(tmp_path / "w"), str(tmp_path / "conf"))
    point = sel["recipes"]["methods"]["alone-1"]["best"]["point"]
    alone, rs = confirm_step(p, by["alone-1"], point, 0), confirm_step(p, by["paper"], point, 1)
    assert alone.evals == ("own_cal",) and rs.evals == ("test_cal",)  # what the recipes claim evaluates
    for step in (alone, rs):
        _fake(conf, step, 90.0, ["1,1,1"])
    ctx = Context(p, str(tmp_path / "w"), str(tmp_path / "claims"))
    planned = {s.name: s for s in plan_recipes(p, [0, 1], sel)}
    steps = [planned[n] for n in ("full-alone-1-s0", "full-alone-1-s1", "full-paper-s1", "full-paper-2x-s1")]
    assert adopt(ctx, steps, tmp_path / "conf") == ["full-alone-1-s0", "full-paper-s1"]
    copied = json.loads(ctx.result_path("full-paper-s1").read_text())
    assert copied["reused_from"] == rs.name and copied["key"] == step_key(ctx, planned["full-paper-s1"])
    assert not ctx.result_path("full-alone-1-s1").exists()  # another seed: trained
    assert not ctx.result_path("full-paper-2x-s1").exists()  # another budget: trained
    assert adopt(ctx, steps, tmp_path / "conf") == []  # adopted once
    # a step that keeps its weights is the twins' (the run folder is copied and evaluated), not adopted here
    import dataclasses

    kept = dataclasses.replace(planned["full-alone-1-s0"], name="full-alone-1-s0-kept", keep_weights=True)
    assert adopt(ctx, [kept], tmp_path / "conf") == []


def test_the_lr_grid_grows_at_its_edge_and_the_score_is_the_seeds_mean(tmp_path):
    p = Protocol()
    m = {x.name: x for x in methods(p)}["fair"]
    ctx = Context(p, str(tmp_path / "w"), str(tmp_path / "conf"))
    start = {"lr": 0.2, "warmup_epochs": 3.0, "weight_decay": 5e-4}
    # val rises with the lr up to 0.8, then falls; seed 1 is one point lower everywhere
    by_lr = {0.1: 85.0, 0.2: 86.0, 0.4: 87.0, 0.8: 88.0, 1.6: 84.0}
    for lr, v in by_lr.items():
        for seed in SEEDS:
            _fake(ctx, confirm_step(p, m, {**start, "lr": lr}, seed), v - seed, m.score_configs)
    record = confirm_method(ctx, p, m, start, jobs=1, sources={})
    assert record["lrs"] == [0.1, 0.2, 0.4, 0.8, 1.6] and record["edge_rounds"] == 2
    assert record["best"]["point"]["lr"] == 0.8 and record["best"]["val_score"] == pytest.approx(87.5)
    assert not record["on_edge"] and record["runs_trained"] == 10


def test_the_default_recipe_and_each_sides_options_follow_the_confirmation():
    p = Protocol()
    sel = _selection(p, {"fair": 88.0, "warm-full": 87.0, "sandwich-full-v2": 86.0})
    assert chosen_recipes(sel)[0] == ("chosen", "fair")  # the screening's best until the confirmation ends
    conf = {"candidates": ["alone-1", "fair", "warm-full", "sandwich-full-v2"], "methods": {
        "alone-1": {"best": {"point": {"lr": 0.4, "warmup_epochs": 2.0, "weight_decay": 5e-4}, "val_score": 92.0}},
        "fair": {"best": {"point": {"lr": 0.1, "warmup_epochs": 2.0, "weight_decay": 5e-4}, "val_score": 89.0}},
        "warm-full": {"best": {"point": {"lr": 0.4, "warmup_epochs": 2.0, "weight_decay": 5e-4}, "val_score": 89.5}}}}
    assert winner(conf) is None  # sandwich-full-v2 not confirmed yet
    conf["methods"]["sandwich-full-v2"] = {"best": {"point": {"lr": 0.2}, "val_score": 88.0}}
    assert winner(conf) == "warm-full"
    sel["confirmation"] = conf
    assert chosen_recipes(sel)[0] == ("chosen", "warm-full")
    assert recipe_options(sel, "alone-1")["lr"] == 0.4 and recipe_options(sel, "alone-0.45")["lr"] == 0.2
    for name, m in conf["methods"].items():
        m.update({"lrs": [0.1, 0.2, 0.4], "runs_trained": 6, "runs_reused": 0, "seconds": 7200.0, "on_edge": False})
    md = "\n".join(confirmation_table(sel))
    assert "| `warm-full` | 0.2, 87.00 | 0.1, 0.2, 0.4 | 0.4 | 89.50 |" in md and "`warm-full`." in md


@pytest.mark.slow
def test_a_claim_run_trained_as_a_confirmation_run_is_evaluated_not_trained_again(tiny_fmnist, tmp_path):
    from suite.protocol import quick_protocol
    from suite.steps import Step, execute

    p = quick_protocol()
    ctx = Context(p, str(tmp_path / "work"), str(tmp_path / "res"), data_dir=tiny_fmnist)
    train = {"sampling": "single", "single_config": (1.0, 1.0, 1.0), "epochs": 1, "eval_configs": "1,1,1"}
    execute(ctx, Step("conf-x-s0", train=train))  # a confirmation run: val only
    execute(ctx, Step("other-s0", train={**train, "lr": 0.05}, evals=("own_cal",)))  # other options: trained
    execute(ctx, Step("full-x-s0", train=train, evals=("own_cal",), keep_weights=True))
    trained = [json.loads(line)["run"] for line in (tmp_path / "res" / "trainings.jsonl").read_text().splitlines()]
    assert trained == ["conf-x-s0", "other-s0"]
    full, conf = (json.loads(ctx.result_path(n).read_text()) for n in ("full-x-s0", "conf-x-s0"))
    assert full["trained_as"] == "conf-x-s0" and full["curve"] == conf["curve"] and "own_cal" in full["evals"]
    assert full["key"] != conf["key"] and (tmp_path / "res" / "weights" / "full-x-s0.pt").is_file()
    assert "trained_as" not in json.loads(ctx.result_path("other-s0").read_text())
    ctx.result_path("full-x-s0").unlink()  # cut short after the copy, before its result: resumed, still the twin's
    execute(ctx, Step("full-x-s0", train=train, evals=("own_cal",), keep_weights=True))
    assert json.loads(ctx.result_path("full-x-s0").read_text())["trained_as"] == "conf-x-s0"
    # a twin whose result was deleted (to train it again as the library is now) is not copied any more
    import shutil

    for n in ("conf-x-s0", "full-x-s0"):
        ctx.result_path(n).unlink()
    shutil.rmtree(tmp_path / "work" / "full-x-s0")
    execute(ctx, Step("full-x-s0", train=train, evals=("own_cal",)))
    assert "trained_as" not in json.loads(ctx.result_path("full-x-s0").read_text())
    assert [json.loads(line)["run"] for line in (tmp_path / "res" / "trainings.jsonl").read_text().splitlines()][-1] \
        == "full-x-s0"


def test_a_warm_started_run_is_finished_at_its_last_planned_step_not_at_its_epochs():
    from suite.twins import finished

    # a warm start trains more epochs than --epochs (cheaper full-only steps first): epoch 6 of 6 is not its end
    assert not finished({"epoch": 5, "step": 640, "warm_start": {"total_steps": 769}}, 6)
    assert finished({"epoch": 6, "step": 769, "warm_start": {"total_steps": 769}}, 6)
    assert finished({"epoch": 5, "step": 480, "warm_start": None}, 6) and not finished({"epoch": 4, "step": 400}, 6)


def test_a_result_made_with_other_options_than_its_step_has_now_is_named_stale(tmp_path):
    from suite.steps import Step
    from suite.stale import stale_line, stale_results

    p = Protocol()
    ctx = Context(p, str(tmp_path / "w"), str(tmp_path / "res"))
    now, before = Step("a-s0", train={"lr": 0.2}), Step("a-s0", train={"lr": 0.1})
    fresh = Step("b-s0", train={"lr": 0.2})
    results = {"a-s0": {"key": step_key(ctx, before)}, "b-s0": {"key": step_key(ctx, fresh)}, "c-s0": None}
    stale = stale_results(ctx, [now, fresh, Step("c-s0")], results)
    assert stale == ["a-s0"] and "a-s0" in stale_line(stale) and stale_line([]) is None


def test_rerun_stale_sets_aside_the_stale_run_and_what_was_made_from_it(tmp_path):
    from suite.stale import made_from, set_aside
    from suite.steps import Step

    ctx = Context(Protocol(), str(tmp_path / "w"), str(tmp_path / "res"))
    steps = [Step("a-s0", train={"lr": 0.2}), Step("e-s0", kind="evaluate", deps=("a-s0",)),
             Step("f-s0", kind="evaluate", deps=("e-s0",)), Step("b-s0", train={"lr": 0.2})]
    assert made_from(steps, ["a-s0"]) == ["a-s0", "e-s0", "f-s0"]
    for name in ("a-s0", "e-s0", "b-s0"):  # f-s0 never finished
        ctx.result_path(name).parent.mkdir(parents=True, exist_ok=True)
        ctx.result_path(name).write_text(json.dumps({"key": name}))
    ctx.weights_path("a-s0").parent.mkdir(parents=True, exist_ok=True)
    ctx.weights_path("a-s0").write_bytes(b"w")
    (tmp_path / "w" / "a-s0").mkdir(parents=True)
    (tmp_path / "w" / "a-s0" / "checkpoint.pt").write_bytes(b"c")
    assert set_aside(ctx, steps, ["a-s0"]) == ["a-s0", "e-s0"]
    gone = tmp_path / "res" / "superseded"
    assert not ctx.result_path("a-s0").exists() and not ctx.result_path("e-s0").exists()
    assert ctx.result_path("b-s0").is_file()  # not made from a-s0: kept
    assert json.loads((gone / "runs" / "a-s0.json").read_text()) == {"key": "a-s0"}
    assert (gone / "weights" / "a-s0.pt").read_bytes() == b"w"
    assert (tmp_path / "w" / "superseded" / "a-s0" / "checkpoint.pt").read_bytes() == b"c"
    # set aside again later: the earlier copy is kept, the new one takes a numbered name
    ctx.result_path("a-s0").write_text(json.dumps({"key": "again"}))
    assert set_aside(ctx, steps, ["a-s0"]) == ["a-s0"]
    assert json.loads((gone / "runs" / "a-s0.2.json").read_text()) == {"key": "again"}
    assert json.loads((gone / "runs" / "a-s0.json").read_text()) == {"key": "a-s0"}


def test_rerun_stale_does_not_go_with_report_only(capsys):
    from suite.cli import main

    assert main(["--rerun-stale", "--report-only"]) != 0
    assert "--rerun-stale" in capsys.readouterr().err
