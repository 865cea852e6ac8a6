"""When a training run counts as diverged, and the one line it says then.

A run stops as diverged (:class:`TrainingDiverged`, exit 3 on the command line) at the first of:

- a step whose loss is NaN or infinite;
- a step whose loss, finite, is more than ``--divergence-ratio`` times the loss the run started at
  (its first step's, or ln(classes), the loss of a uniform guess, when that is larger: a run that
  starts from trained weights is not held to its own near-zero loss); the loss compared is the
  step's mean over its configurations, so the ratio means the same for every recipe;
- an epoch that leaves weights, BN statistics or optimizer state that are not finite (a loss can
  stay finite while BN running variances overflow), checked before the epoch writes anything.

It then writes nothing more: the run folder keeps its last checkpoint, which is therefore always
finite, and the line names it and the command that continues it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

from ..checkpoint import CHECKPOINT_NAME, non_finite_state
from ..configs import format_config

__all__ = ["TrainingDiverged", "loss_limit", "state_problem", "step_problem", "stopped"]


class TrainingDiverged(RuntimeError):
    """Training diverged (see the module notes); it stopped there, and the last finished epoch's checkpoint stays."""


def loss_limit(loss_start: float, ratio: float, num_classes: int) -> float:
    """The loss past which a step counts as diverged (infinite when ``ratio`` is 0)."""
    if not ratio:
        return math.inf
    return ratio * max(loss_start, math.log(max(2, num_classes)))


def step_problem(passes: Sequence[Tuple[Any, Any]], loss: float, lr: float, ratio: float,
                 loss_start: Optional[float]) -> str:
    """What went wrong in a step, in words: the loss, the configuration that shows it, the rate.

    Args:
        passes: ``(configuration, loss)`` of each pass of the step.
        loss: the step's loss (the mean over its passes).
        lr: the step's learning rate.
        ratio, loss_start: ``--divergence-ratio`` and the loss the run started at (for a finite ``loss``).
    """
    if math.isfinite(loss):  # exploding while finite: the configuration with the largest loss
        config, worst = max(((c, float(v)) for c, v in passes), key=lambda cv: cv[1], default=(None, loss))
        start = f"{loss_start:.4g}" if loss_start is not None else "?"
        return (f"loss {loss:.4g} ({worst:.4g} for configuration {format_config(config) if config else '?'}) at lr "
                f"{lr:.4g}, more than --divergence-ratio {ratio:g} times the loss the run started at ({start}, or "
                f"ln(classes) when larger)")
    config, worst = next(((c, float(v)) for c, v in passes if not math.isfinite(float(v))), (None, loss))
    return f"loss {worst} for configuration {format_config(config) if config else '?'} at lr {lr:.4g}"


def state_problem(**state: Any) -> Optional[str]:
    """What in a training's state (``model=`` its state_dict, ``optimizer=``, anything else) is not finite, in
    words, or None when every tensor is finite."""
    return non_finite_state(state)


def stopped(where: str, run_dir: Path, epoch: int, lr: float) -> TrainingDiverged:
    """:class:`TrainingDiverged` saying ``where``, which checkpoint the run keeps (that of epoch ``epoch``, if any)
    and how to go on (a tenth of the peak rate ``lr``)."""
    if (run_dir / CHECKPOINT_NAME).is_file():
        return TrainingDiverged(f"{where}; {run_dir} keeps the checkpoint of epoch {epoch}: continue it with a lower "
                                f"peak rate, e.g. resizable train --resume {run_dir} --lr {lr / 10:.4g}")
    return TrainingDiverged(f"{where}; no epoch finished, so run the same command again with a lower --lr "
                            f"(e.g. {lr / 10:.4g})")
