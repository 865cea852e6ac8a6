"""Fig 5, T9, T11 + T8 and the rows beyond the paper on the default recipe's network: their steps carry the
recipe's options (a new default changes them), the earlier network's steps are not planned, and the report shows
the earlier network's rows under a heading of their own."""
import json

import pytest

from suite.claims_default import (CLAIMS_ON_DEFAULT, ANALYSES_ON_DEFAULT, default_names, earlier_steps,
                                  plan_default)
from suite.confirm import FROM_SCRATCH
from suite.plan import plan
from suite.protocol import Protocol
from suite.recipes import plan_recipes, recipe_options
from suite.runs import cfg
from suite.screen import methods
from suite.steps import Context, Step, execute, step_key

SEEDS = [0, 1, 2]
OLD = ("rs-s", "rs2x-", "single-", "sharedbn-s", "aug-s", "augshared-s", "random-s", "convert-", "distill-s")


def _selection(p, winner="fair", **fixed):
    """A finished screening in which ``winner`` has the best val score (``fixed``: more of its fixed options)."""
    ms = {}
    for m in methods(p):
        if m.side == "alone" or m.name in FROM_SCRATCH:
            point = {"lr": 0.2 if m.name != winner else 0.3, "warmup_epochs": 2.0, "weight_decay": 5e-4}
            ms[m.name] = {"fixed": {**m.train, **(fixed if m.name == winner else {})},
                          "best": {"point": point, "val_score": 90.0 if m.name == winner else 80.0}}
    for name in ("t2-alone-1", "t2-aug"):
        ms[name] = {"fixed": {"sampling": "single"}, "best": {"point": {"lr": 0.1}, "val_score": 80.0}}
    return {"recipes": {"methods": ms}}


def _planned(p, selection):
    return plan(p, SEEDS, CLAIMS_ON_DEFAULT) + plan_default(p, SEEDS, CLAIMS_ON_DEFAULT, selection)


def test_the_claims_plan_their_steps_on_the_default_recipe_and_not_the_old_ones():
    p = Protocol()
    sel = _selection(p)
    steps = _planned(p, sel)
    names = {s.name for s in steps}
    assert not [n for n in names if n.startswith(OLD)]  # the earlier network's steps: shown, never planned
    assert names == {f"{what}-s{x}" for x in SEEDS for what in (
        "full-fair", "dr-alone-1", "dr-sharedbn", "t2r-aug", "t2r-augshared", "dr-random", "timing", "dr-distill",
        "dr-convert", "dr-raw")} | {"dr-convert-lr"}
    recipe = recipe_options(sel, "fair")
    changed = {"dr-random": {"sampling"}, "dr-sharedbn": {"model_args"}, "dr-convert": {"epochs", "warmup_epochs"},
               "dr-distill": {"distill"}, "full-fair": set()}
    for s in steps:
        what = s.name.rsplit("-s", 1)[0] if s.name != "dr-convert-lr" else "dr-convert"
        if what in changed:
            assert {k: v for k, v in recipe.items() if k not in changed[what]}.items() <= s.train.items(), s.name
            assert all(s.train[k] != recipe.get(k) for k in changed[what] - {"warmup_epochs"}), s.name
    assert all(s.train["epochs"] == p.epochs for s in steps if s.name.startswith(("dr-random", "dr-sharedbn")))
    assert next(s for s in steps if s.name == "dr-sharedbn-s1").train["model_args"]["scale_bn"] is False
    twin = next(s for s in steps if s.name == "dr-alone-1-s0")
    assert recipe_options(sel, "alone-1").items() <= twin.train.items() and twin.keep_weights
    assert set(twin.evals) == {"test_cal", "test_raw"}
    convert = next(s for s in steps if s.name == "dr-convert-lr")
    assert convert.params["lrs"] == [0.3, 0.03, 0.003] and convert.init_from == "dr-alone-1-s0"
    # the default network is the recipes claim's run, its options and evaluations (its key) untouched
    ours = next(s for s in steps if s.name == "full-fair-s0")
    theirs = next(s for s in plan_recipes(p, SEEDS, sel) if s.name == "full-fair-s0")
    assert (ours.train, ours.evals) == (theirs.train, theirs.evals) and ours.keep_weights
    raw = next(s for s in steps if s.name == "dr-raw-s2")
    assert raw.kind == "evaluate" and raw.params["network"] == "full-fair-s2" and raw.evals == ("test_raw",)
    # every step the analyses read is planned
    read = {pattern.format(x) for pattern in default_names(p, sel).values() for x in SEEDS}
    assert read <= names


def test_a_new_default_recipe_changes_the_steps_and_their_keys():
    p = Protocol()
    ctx = Context(p, "work", "results")
    before = {s.name: step_key(ctx, s) for s in plan_default(p, SEEDS, CLAIMS_ON_DEFAULT, _selection(p))}
    sel = _selection(p, winner="paper")
    after = {s.name: s for s in plan_default(p, SEEDS, CLAIMS_ON_DEFAULT, sel)}
    assert "full-paper-s0" in after and "full-fair-s0" not in after
    assert default_names(p, sel)["rs"] == "full-paper-s{}"
    for name in ("dr-random-s0", "dr-sharedbn-s1", "dr-distill-s2", "dr-convert-s0", "dr-raw-s0"):
        assert step_key(ctx, after[name]) != before[name], name
    assert after["dr-random-s0"].train["loss_reduction"] == "sum"  # the paper's recipe, its own lr
    assert after["dr-random-s0"].train["lr"] == recipe_options(sel, "paper")["lr"]


def test_a_recipe_that_distils_gets_no_distillation_row():
    p = Protocol()
    sel = _selection(p, distill="full")
    names = {s.name for s in plan_default(p, SEEDS, ["beyond"], sel)}
    assert not any(n.startswith("dr-distill") for n in names) and "dr-convert-s0" in names
    md = "\n".join(ANALYSES_ON_DEFAULT["beyond"](p, SEEDS, {}, sel)["md"])
    assert "no distillation row: the default recipe distils already" in md


def _run(p, kind, value, spread=0.0):
    """A finished run whose ``kind`` table holds every configuration (``value``, lower by ``spread`` per step)."""
    configs = [",".join(f"{f:g}" for f in (a, b, c)) for a in p.factors for b in p.factors for c in p.factors]
    table = {c: {"top1": value - spread * i, "mmacs": 1.0 + i} for i, c in enumerate(configs)}
    return {"evals": {kind: table}, "options": {"lr": 0.2},
            "curve": [{"epoch": 1, "step": 10, "seconds": 5.0, "split": "val",
                       "top1": {cfg(s): value for s in p.factors}}]}


def test_the_report_shows_the_earlier_network_under_its_own_heading():
    p = Protocol()
    sel = _selection(p)
    old = {}
    for x in SEEDS:  # the earlier network's committed Fig 5 rows: RS far above the twin as trained
        old[f"rs-s{x}"] = _run(p, "test_cal", 89.0 + 0.1 * x)
        old[f"single-1-s{x}"] = {"evals": {**_run(p, "test_cal", 60.0 + x)["evals"],
                                           **_run(p, "test_raw", 20.0 + x)["evals"]}}
    for claim in CLAIMS_ON_DEFAULT:  # the new runs not trained yet: '-' and no values, the earlier rows below
        md = ANALYSES_ON_DEFAULT[claim](p, SEEDS, dict(old), sel)["md"]
        heading = next(i for i, line in enumerate(md) if line.startswith("#### Earlier network: Algorithm 1"))
        assert "`full-fair-s<seed>`" in md[0] and "| - |" in "\n".join(md[:heading]), claim
        tag = {"fig5": "Fig 5", "t9": "T9", "t11": "T11", "beyond": None}[claim]
        if tag:
            new = [i for i, line in enumerate(md) if line.startswith(f"**Verdict ({tag}): ")]
            earlier = [i for i, line in enumerate(md) if line.startswith(f"**Verdict ({tag}, earlier network): ")]
            assert len(new) == len(earlier) == 1 and new[0] < heading < earlier[0], claim
            assert "95 % CI" in md[earlier[0]] or claim != "fig5"
    fig5 = ANALYSES_ON_DEFAULT["fig5"](p, SEEDS, dict(old), sel)
    assert fig5["json"]["earlier"]["mean over the other 63 configurations"]["rs_minus_twin_as_trained"][
        "verdict"] == "agrees"
    assert fig5["json"]["mean over the other 63 configurations"]["rs_minus_twin_as_trained"]["n"] == 0
    # the new rows read the default recipe's steps
    new = {**old, **{f"full-fair-s{x}": _run(p, "test_cal", 91.0 + 0.1 * x) for x in SEEDS},
           **{f"dr-alone-1-s{x}": {"evals": {**_run(p, "test_cal", 70.0)["evals"],
                                             **_run(p, "test_raw", 30.0 + x, spread=0.1)["evals"]}} for x in SEEDS}}
    fig5 = ANALYSES_ON_DEFAULT["fig5"](p, SEEDS, new, sel)
    diff = fig5["json"]["mean over the other 63 configurations"]["rs_minus_twin_as_trained"]
    # per seed: RS 91 + 0.1 x against the twin's mean over the other 63, 30 + x - 0.1 x 31: 64.1 - 0.9 x
    assert diff["verdict"] == "agrees" and diff["n"] == 3 and abs(diff["mean"] - 63.2) < 1e-6


def test_the_earlier_steps_are_read_only_for_the_claims_shown():
    assert earlier_steps(["fig5"], [0]) == ["rs-s0", "single-1-s0"]
    assert earlier_steps(["t1", "t2"], [0]) == []
    assert "convert-lr" in earlier_steps(["beyond"], [0, 1]) and "timing-s1" in earlier_steps(["t11"], [0, 1])


@pytest.mark.slow
def test_an_evaluation_step_reads_the_kept_weights_again(tiny_fmnist, tmp_path):
    from suite.protocol import quick_protocol

    p = quick_protocol()
    ctx = Context(p, str(tmp_path / "work"), str(tmp_path / "res"), data_dir=tiny_fmnist)
    net = Step("net-s0", train={"sampling": "fair", "epochs": 1, "eval_configs": "1,1,1"},
               evals=("test_raw",), keep_weights=True)
    execute(ctx, net)
    again = Step("net-raw-s0", kind="evaluate", deps=(net.name,), evals=("test_raw",),
                 params={"network": net.name, "network_train": net.train})
    execute(ctx, again)
    first, second = (json.loads(ctx.result_path(n).read_text()) for n in (net.name, again.name))
    assert second["evals"]["test_raw"] == first["evals"]["test_raw"] and len(first["evals"]["test_raw"]) == 64
    assert second["network"] == "net-s0"
