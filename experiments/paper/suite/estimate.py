"""How long the suite's unfinished trainings will take here: each one's counted training MACs (its options' mean
step cost, :func:`cost.step_cost`, times its steps) over the throughput the finished runs had (their counted MACs
over their training seconds, the median over runs). A warm start counts as its sampling without it (the run
costs what its epochs cost without one); an extra teacher pass is not counted, so such runs are underestimated."""
from __future__ import annotations

import statistics
from typing import Any, Dict, Optional, Sequence

from .cost import run_cost, step_cost
from .protocol import Protocol
from .steps import Step

TRAIN_IMAGES = 60000


def throughput(results: Dict[str, Optional[Dict[str, Any]]]) -> Optional[float]:
    """Median training MACs per second of the finished runs whose cost is known (recorded, or computed from their
    options; None without any)."""
    rates = [c / r["train_seconds"] for r in results.values() if r and r.get("train_seconds")
             for c in [run_cost(r)[0]] if c]
    return statistics.median(rates) if rates else None


def full_epoch_steps(p: Protocol) -> int:
    """Steps of one epoch over every training image but val (the full regime's, whatever epochs are cut to)."""
    return (TRAIN_IMAGES - p.val_size) // p.batch_size


def steps_per_epoch(p: Protocol, train: Optional[Dict[str, Any]] = None) -> int:
    """A run's steps per epoch: a cut epoch, or its training images (val held out) over the batch."""
    opts = {**p.train_args(), **(train or {})}
    images = opts.get("train_size") or TRAIN_IMAGES - int(opts.get("val_size") or 0)
    return int(opts.get("max_steps_per_epoch") or images // int(opts["batch_size"]))


def steps_of(p: Protocol, train: Dict[str, Any]) -> int:
    """A planned run's training steps: its epochs times its steps per epoch."""
    return int({**p.train_args(), **train}["epochs"]) * steps_per_epoch(p, train)


# --time-limit's estimate of one step: training MACs over the throughput, times a margin (a teacher's extra pass is
# not counted), plus each evaluation; a step that is not a training gets a flat allowance
MARGIN = 1.2
EVAL_SECONDS = {"test_cal": 180.0, "test_raw": 120.0, "val_raw": 120.0}
OTHER_STEP_SECONDS = 600.0


def step_macs(p: Protocol, step: Step) -> float:
    """A planned training step's counted MACs (its options' mean step cost times its steps)."""
    return step_cost({**p.train_args(), **step.train, "seed": step.seed}) * steps_of(p, step.train)


def step_seconds(p: Protocol, rate: float, step: Step) -> float:
    """Estimated wall-clock seconds of ``step`` at ``rate`` training MACs per second (for --time-limit)."""
    if step.kind != "train":
        return OTHER_STEP_SECONDS
    return step_macs(p, step) / rate * MARGIN + sum(EVAL_SECONDS.get(e, 30.0) for e in step.evals)


def unfinished_hours(p: Protocol, steps: Sequence[Step], results: Dict[str, Optional[Dict[str, Any]]]
                     ) -> Dict[str, Any]:
    """Hours of one training process for the unfinished training steps, and the unfinished steps not estimated."""
    rate = throughput(results)
    trainings = [s for s in steps if not results.get(s.name) and s.kind == "train"]
    others = [s.name for s in steps if not results.get(s.name) and s.kind != "train"]
    macs = sum(step_macs(p, s) for s in trainings)
    return {"trainings": len(trainings), "macs": macs, "rate": rate, "others": others,
            "hours": macs / rate / 3600 if rate else None}


def estimate_line(est: Dict[str, Any]) -> Optional[str]:
    """The report's line on what the unfinished steps will cost (None when nothing is left)."""
    if not est["trainings"] and not est["others"]:
        return None
    hours = "unknown (no finished run with a known cost)" if est["hours"] is None else f"about {est['hours']:.1f}"
    rate = "" if est["rate"] is None else f" at the finished runs' median {est['rate'] / 1e9:.0f} GMAC/s"
    return (f"- estimated compute left: {est['trainings']} unfinished training runs, {est['macs'] / 1e15:.2f} PMACs "
            f"counted, {hours} hours of one training process{rate} (two at a time on 2 cores take a little over half the "
            "wall-clock)"
            + (f"; {len(est['others'])} other unfinished steps (evaluations, fine-tunes, Adapt) not estimated"
               if est["others"] else ""))
