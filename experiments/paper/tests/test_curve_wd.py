"""The weight decay checked again at the budget curve's longest budget: /4 and x4 around each side's tuned value,
scored on val, a preference only beyond the one-seed noise."""
from suite.curve import BUDGETS, alone_step, rs_step
from suite.curve_wd import NOISE, WD_FACTORS, analyse_wd_check, plan_wd_check
from suite.protocol import Protocol
from suite.screen import methods


def _selection(p):
    ms = {}
    for m in methods(p):
        if m.side == "alone" or m.name in ("fair", "paper"):
            wd = 1e-4 if m.name == "alone-0.65" else 5e-4
            ms[m.name] = {"fixed": dict(m.train), "best": {"point": {"lr": 0.2, "warmup_epochs": 2.0,
                                                                     "weight_decay": wd}, "val_score": 88.0}}
    return {"recipes": {"methods": ms}}


def _result(value, configs):
    return {"curve": [{"split": "val", "top1": {c: value for c in configs}}]}


def test_every_side_at_the_longest_budget_with_its_weight_decay_divided_and_multiplied():
    p = Protocol()
    sel = _selection(p)
    steps = {s.name: s for s in plan_wd_check(p, sel)}
    epochs = BUDGETS[-1] * p.epochs
    assert len(steps) == (len(p.factors) + 1) * len(WD_FACTORS)
    s = steps[f"curve-wd-alone0.65-e{epochs}-wd2.5e-05-s0"]
    tuned = alone_step(p, sel, 0.65, epochs, 0)
    assert s.train == {**tuned.train, "weight_decay": 2.5e-5} and s.evals == tuned.evals
    assert steps[f"curve-wd-rs-e{epochs}-wd0.002-s0"].train == {**rs_step(p, sel, epochs, 0).train,
                                                                "weight_decay": 2e-3}


def test_a_weight_decay_is_preferred_only_beyond_the_noise():
    p = Protocol()
    sel = _selection(p)
    epochs = BUDGETS[-1] * p.epochs
    rs_cfgs = ["0.45,0.45,0.45", "0.65,0.65,0.65", "0.85,0.85,0.85", "1,1,1"]
    results = {rs_step(p, sel, epochs, 0).name: _result(90.0, rs_cfgs),
               f"curve-wd-rs-e{epochs}-wd0.000125-s0": _result(90.0 + NOISE + 0.1, rs_cfgs),
               f"curve-wd-rs-e{epochs}-wd0.002-s0": _result(89.0, rs_cfgs)}
    for s in p.factors:
        c = [",".join([f"{s:g}"] * 3)]
        name = alone_step(p, sel, s, epochs, 0).name
        wd = 1e-4 if s == 0.65 else 5e-4
        results[name] = _result(91.0, c)
        for f in WD_FACTORS:  # within the noise: the tuned value holds
            results[f"curve-wd-alone{s:g}-e{epochs}-wd{wd * f:g}-s0"] = _result(91.0 + NOISE / 2, c)
    out = analyse_wd_check(p, results, sel)
    sides = out["json"]["sides"]
    assert sides["rs"]["moves"] and sides["rs"]["best"] == 1.25e-4
    assert not any(sides[f"alone-{s:g}"]["moves"] for s in p.factors)
    assert "it moves for rs" in "\n".join(out["md"])
    del results[f"curve-wd-rs-e{epochs}-wd0.002-s0"]
    assert "not every run has finished" in "\n".join(analyse_wd_check(p, results, sel)["md"])


def test_the_unfinished_runs_are_estimated_from_their_counted_macs_and_the_finished_runs_rate():
    from suite.estimate import estimate_line, steps_of, unfinished_hours
    from suite.steps import Step

    p = Protocol()
    train = {"sampling": "single", "single_config": (1.0, 1.0, 1.0), "epochs": 2}
    assert steps_of(p, train) == 2 * ((60000 - p.val_size) // p.batch_size)
    assert steps_of(p, {**train, "max_steps_per_epoch": 10}) == 20
    done = {"a": {"train_seconds": 100.0, "cost": {"total_macs": 2e12}}}  # 20 GMAC/s
    est = unfinished_hours(p, [Step("a"), Step("b", train=train), Step("c", kind="adapt")], done)
    assert est["trainings"] == 1 and est["others"] == ["c"] and est["rate"] == 2e10
    assert est["hours"] == est["macs"] / 2e10 / 3600 > 0
    assert "1 unfinished training runs" in estimate_line(est) and "1 other unfinished steps" in estimate_line(est)
    assert estimate_line(unfinished_hours(p, [Step("a")], done)) is None
