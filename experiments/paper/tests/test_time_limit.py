"""--time-limit: a step estimated to end after the limit is not started, a shorter one after it is, steps that wait
on a left-out step are left out too, and the same command without the limit runs what is left."""
import concurrent.futures
import json

import pytest

from suite import time_limit
from suite.cli import main
from suite.estimate import EVAL_SECONDS, step_seconds
from suite.protocol import Protocol
from suite.steps import Context, Step, load_result, run_steps
from suite.time_limit import TimeUp, set_time_limit


def _noop(ctx, step):
    return {"ran": step.name}


def _plan():
    return [Step("a", kind="noop", params={"secs": 10}), Step("b", kind="noop", params={"secs": 1000}),
            Step("c", kind="noop", params={"secs": 5}, deps=("b",)), Step("d", kind="noop", params={"secs": 5})]


class _Threads(concurrent.futures.ThreadPoolExecutor):
    """The process pool's stand-in (the test's runner need not be importable by a spawned process)."""

    def __init__(self, jobs, mp_context=None, initializer=None):
        super().__init__(jobs)


@pytest.fixture(autouse=True)
def _no_limit_after():
    yield
    time_limit.TIME_LIMIT.clear()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_step_that_would_end_after_the_limit_is_left_for_the_next_call(tmp_path, monkeypatch, jobs):
    import time

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _Threads)
    ctx = Context(Protocol(), str(tmp_path / "w"), str(tmp_path / "r"), runners=(("noop", _noop),))
    set_time_limit(time.time() + 100, lambda s: s.params["secs"])
    with pytest.raises(TimeUp, match=r"2 step\(s\) not started.*\bb\b.*\bc\b"):
        run_steps(ctx, _plan(), jobs)
    assert [n for n in "abcd" if load_result(ctx, n)] == ["a", "d"]  # d, after the long b, still ran
    time_limit.TIME_LIMIT.clear()
    run_steps(ctx, _plan(), jobs)  # the same plan without the limit: what was left
    assert all(load_result(ctx, n) for n in "abcd")


def test_the_estimate_grows_with_the_epochs_and_counts_the_evaluations():
    p = Protocol()
    train = {"sampling": "single", "single_config": (1.0, 1.0, 1.0), "epochs": 2}
    short = step_seconds(p, 1e10, Step("x", train=train))
    long = step_seconds(p, 1e10, Step("x", train={**train, "epochs": 4}))
    assert long == pytest.approx(2 * short)
    evaluated = step_seconds(p, 1e10, Step("x", train=train, evals=("test_cal",)))
    assert evaluated == pytest.approx(short + EVAL_SECONDS["test_cal"])
    rs = step_seconds(p, 1e10, Step("x", train={"sampling": "fair", "epochs": 2}))
    alone = [step_seconds(p, 1e10, Step("x", train={**train, "single_config": (s,) * 3})) for s in p.factors]
    assert rs == pytest.approx(sum(alone), rel=0.01)  # fair sampling: an RS step costs the four networks' steps


def test_a_time_limit_needs_positive_hours_and_a_finished_run(tmp_path, capsys):
    assert main(["--claims", "t1", "--time-limit", "0", "--results-dir", str(tmp_path)]) == 2
    assert "--time-limit must be a positive number of hours" in capsys.readouterr().err
    assert main(["--claims", "t1", "--time-limit", "1", "--results-dir", str(tmp_path)]) == 2
    assert "needs a finished run with a known cost" in capsys.readouterr().err
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x.json").write_text(json.dumps({"train_seconds": 10.0, "cost": {"total_macs": 1e12}}))
    assert main(["--claims", "t1", "--time-limit", "1", "--results-dir", str(tmp_path), "--report-only"]) != 3
    assert time_limit.TIME_LIMIT  # set from that run's throughput
