"""What happens inside an epoch: the training loss every N steps (``RUN/steps.jsonl``), and a check that reads it.

An epoch's mean loss hides a blow-up in its first hundred steps. The trainer therefore writes one
JSON line every ``log_every`` optimizer steps (and for each of the first ``log_every`` steps, where
a bad learning rate shows first)::

    {"step": 40, "epoch": 1, "loss": 1.93, "mean": 2.01, "max": 2.31, "steps": 20, "lr": 0.1}

``loss`` is that step's loss, ``mean`` / ``max`` cover the steps since the previous line. A resumed
run cuts the file back to the checkpoint's step, so the file always describes the run as if it had
never stopped. :func:`loss_climbs` is the stability rule the paper suite applies to it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..utils.fileio import atomic_write_text

__all__ = ["STEPS_FILE", "StepLog", "read_steps", "loss_climbs"]

STEPS_FILE = "steps.jsonl"


class StepLog:
    """Appends the loss every ``every`` steps to ``path`` (every step during the first ``every`` steps)."""

    def __init__(self, path: Path, every: int, *, resume_step: Optional[int] = None, enabled: bool = True) -> None:
        if every < 1:
            raise ValueError(f"log_every must be >= 1, got {every}")
        self.path, self.every, self.enabled = Path(path), int(every), enabled
        self._losses: List[float] = []
        if enabled:
            kept = [r for r in read_steps(self.path) if r["step"] <= (resume_step or 0)] if resume_step else []
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def add(self, step: int, epoch: int, loss: float, lr: float, phase: Optional[str] = None
            ) -> Optional[Dict[str, Any]]:
        """Record the loss of optimizer step ``step`` (1-based: the number of steps taken so far); returns the line
        written, or None when this step writes none. ``phase`` (a warm start's phase of the step) goes into the line
        when given, so that a reader can tell a switch of what the loss measures from a climb."""
        if not self.enabled:
            return None
        self._losses.append(float(loss))
        if step <= self.every or step % self.every == 0:
            finite = [v for v in self._losses if math.isfinite(v)]
            record = {"step": int(step), "epoch": int(epoch), "loss": float(loss),
                      "mean": sum(finite) / len(finite) if finite else float("nan"),
                      "max": max(self._losses, key=lambda v: v if math.isfinite(v) else math.inf),
                      "steps": len(self._losses), "lr": float(lr)}
            if phase is not None:
                record["phase"] = phase
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self._losses = []
            return record
        return None


def read_steps(path: Path) -> List[Dict[str, Any]]:
    """The records of a ``steps.jsonl`` (an empty list when there is none; a torn last line is dropped)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def loss_climbs(records: Sequence[Dict[str, Any]], *, rise: float = 0.25, slack: float = 0.05) -> Optional[str]:
    """Why a run's loss climbed after its first step, or None when it did not.

    Flagged when a step's loss is not finite; when any step after the first has a loss above
    ``(1 + rise)`` times the first step's (the untrained network's loss: a loss that climbs above
    it is going the wrong way); or when a stretch's mean rises more than ``rise`` (plus ``slack``,
    in loss units, for the noise of small windows) above the lowest mean of an earlier stretch of
    at least as many steps. A warm start's switch (a record whose ``phase`` differs from the record
    before) changes which configurations and which terms the loss averages, so the stretches are compared
    within a phase only: the lowest mean starts again after the stretch that holds the switch.
    """
    if not records:
        return None
    first = records[0]["loss"]
    best: Optional[float] = None
    phase = records[0].get("phase")
    for r in records:
        if not all(math.isfinite(r[k]) for k in ("loss", "mean", "max")):
            return f"non-finite loss by step {r['step']}"
        if r["step"] > records[0]["step"] and r["max"] > (1 + rise) * first:
            return f"loss {r['max']:.3f} by step {r['step']}, above {1 + rise:g}x the first step's {first:.3f}"
        if r.get("phase") != phase:  # the switch lies in this stretch: compare what follows with itself
            best, phase = None, r.get("phase")
            continue
        if r["steps"] > 1:  # a stretch of steps (the first ones are logged one by one)
            if best is not None and r["mean"] > (1 + rise) * best + slack:
                return (f"mean loss {r['mean']:.3f} over the {r['steps']} steps to {r['step']}, up from "
                        f"{best:.3f} earlier")
            best = r["mean"] if best is None else min(best, r["mean"])
    return None
