"""Finished runs made with earlier options than their steps have now, and setting them aside to run again.

The selection moves (a new tuned point, a new default recipe), and a step's key with it; a result made under the old
key is *stale*. A plain run refuses it before anything trains; ``--rerun-stale`` moves it (its record, kept weights
and run folder) under ``superseded/`` instead, with every finished step that was made from it, so nothing is lost and
the steps run again.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .steps import Context, Step, resolve, step_key

SUPERSEDED = "superseded"


def stale_results(ctx: Context, steps: Sequence[Step], results: Dict[str, Any]) -> List[str]:
    """The finished steps whose result was made with other options than the step has now (its key differs): the
    selection moved since (a new tuned point or default recipe). A step whose choices cannot be made yet (it takes
    them from an unfinished step) is not judged."""
    out = []
    for s in steps:
        done = results.get(s.name)
        if done is None:
            continue
        try:
            key = step_key(ctx, resolve(ctx, s))
        except ValueError:
            continue
        if done.get("key") != key:
            out.append(s.name)
    return out


def stale_line(stale: Sequence[str]) -> Optional[str]:
    """The report's line naming the runs made with earlier options than their steps have now."""
    if not stale:
        return None
    return (f"- **made with earlier options**: {len(stale)} finished runs were made before the selection moved their "
            f"step's options (a new tuned point or default recipe); their numbers below are those runs', at the "
            f"options each records, until they are re-run: {', '.join(stale)}")


def made_from(steps: Sequence[Step], names: Sequence[str]) -> List[str]:
    """``names`` and every step that depends on one of them, directly or not, in the steps' order."""
    out = set(names)
    grew = True
    while grew:
        grew = False
        for s in steps:
            if s.name not in out and set(s.deps) & out:
                out.add(s.name)
                grew = True
    return [s.name for s in steps if s.name in out] + sorted(set(names) - {s.name for s in steps})


def _free(target: Path) -> Path:
    """``target``, or ``target`` with a number added when that name is taken (an earlier set-aside)."""
    n, free = 1, target
    while free.exists():
        n += 1
        free = target.with_name(f"{target.stem}.{n}{target.suffix}")
    return free


def set_aside(ctx: Context, steps: Sequence[Step], stale: Sequence[str]) -> List[str]:
    """Move the stale steps' results, and those of every finished step made from them, under ``superseded/`` in the
    results folder (their kept weights too) and their run folders under ``superseded/`` in the work folder. Returns
    the names moved; a step with nothing on disk is left out."""
    moved = []
    results, work = Path(ctx.results), Path(ctx.work)
    for name in made_from(steps, stale):
        pairs = [(ctx.result_path(name), results / SUPERSEDED / "runs" / f"{name}.json"),
                 (ctx.weights_path(name), results / SUPERSEDED / "weights" / f"{name}.pt"),
                 (work / name, work / SUPERSEDED / name)]
        record = pairs[0][0]
        if not record.is_file():
            continue
        for source, target in pairs[1:] + pairs[:1]:  # the record last: a crash leaves the step still finished
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), str(_free(target)))
        moved.append(name)
    return moved
