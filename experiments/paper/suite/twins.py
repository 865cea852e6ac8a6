"""A training another step has already done: the same training options and seed under another name.

The confirmation trains each candidate at the full budget on seeds 0 and 1, and its winning points are, option for
option, the recipes claim's and the budget curve's first runs (``full-<method>-s<seed>``), which differ only in what
they evaluate afterwards. Such a step does not train again: the twin's finished run folder is copied under the
step's name and the step evaluates it. What a run was trained with is its *training key* (the step's key without
its evaluations), written beside each run as ``.suite-train-key``; a run whose step evaluates nothing has its
training key as its ``.suite-key`` already.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, Optional

TRAIN_KEY = ".suite-train-key"
STEP_KEY = ".suite-key"
TWIN_OF = ".suite-twin-of"  # in a copied run folder: the run it was copied from


def finished(payload: Dict[str, Any], epochs: int) -> bool:
    """Whether a run's checkpoint (its payload) is its last: the last planned step of a warm start (which trains
    more epochs than ``--epochs``, cheaper steps first), else the last of ``epochs`` epochs."""
    warm = payload.get("warm_start") or {}
    if warm.get("total_steps"):
        return int(payload["step"]) >= int(warm["total_steps"])
    return int(payload["epoch"]) + 1 >= epochs


def _finished(run: Path, epochs: int) -> bool:
    """Whether ``run``'s checkpoint is of its last step (as the suite judges a run it resumes)."""
    from resizable import load_checkpoint

    if not (run / "checkpoint.pt").is_file():
        return False
    return finished(load_checkpoint(run), epochs)


def find_twin(work: Path, train_key: str, epochs: int, name: str, results: Path) -> Optional[Path]:
    """A finished run folder in ``work`` (not ``name``'s) trained with ``train_key`` whose step has its result in
    ``results`` (any ``runs/`` folder under it: a folder whose result was deleted, to train that step again with the
    library as it is now, is not a twin), or None."""
    for run in sorted({p.parent for key in (TRAIN_KEY, STEP_KEY) for p in work.glob(f"*/{key}")}):
        keys = {(run / key).read_text().strip() for key in (TRAIN_KEY, STEP_KEY) if (run / key).is_file()}
        if (run.name != name and train_key in keys and _finished(run, epochs)
                and next(results.glob(f"**/runs/{run.name}.json"), None) is not None):
            return run
    return None


def seed_from_twin(twin: Path, run: Path, step_key: str, train_key: str) -> None:
    """Copy ``twin`` to ``run`` (which has no checkpoint) as one move: a copy cut short leaves nothing at ``run``."""
    part = run.with_name(run.name + ".twin-part")
    if part.exists():
        shutil.rmtree(part)
    shutil.copytree(twin, part)
    (part / STEP_KEY).write_text(step_key + "\n")
    (part / TRAIN_KEY).write_text(train_key + "\n")
    (part / TWIN_OF).write_text(twin.name + "\n")
    if run.exists():  # a folder made for a training that never finished an epoch: nothing in it to keep
        shutil.rmtree(run)
    part.rename(run)


def twin_of(run: Path) -> Optional[str]:
    """The run ``run`` was copied from (None when it trained itself)."""
    path = run / TWIN_OF
    return path.read_text().strip() if path.is_file() else None
