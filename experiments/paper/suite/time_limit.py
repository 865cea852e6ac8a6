"""The suite's time limit (``--time-limit``): on a machine lent for some hours, a run cut short loses everything since
its last epoch, so :func:`steps.run_steps` starts no step estimated to end after the limit (a shorter one after it
still starts) and raises :class:`TimeUp` once the steps that fit have finished; the same command goes on from there.
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Sequence, Tuple


class TimeUp(Exception):
    """Raised by :func:`steps.run_steps` once every step that fits the time limit has finished and others are left."""


# (the time after which no step may still be running, the estimated seconds of a step): set by --time-limit
TIME_LIMIT: List[Tuple[float, Callable[[Any], float]]] = []


def set_time_limit(until: float, seconds_of: Callable[[Any], float]) -> None:
    """From now on, :func:`steps.run_steps` starts no step that ``seconds_of`` says would end after ``until``."""
    TIME_LIMIT[:] = [(until, seconds_of)]


def fits(step: Any) -> bool:
    """Whether ``step``, started now, is estimated to end within the time limit (always, without one)."""
    if not TIME_LIMIT:
        return True
    until, seconds_of = TIME_LIMIT[0]
    return time.time() + seconds_of(step) <= until


def left_out(skipped: Sequence[Any], todo: Sequence[Any]) -> TimeUp:
    names = [s.name for s in [*skipped, *todo]]
    return TimeUp(f"{len(names)} step(s) not started, estimated to end after the time limit "
                  f"({', '.join(names[:6])}{', ...' if len(names) > 6 else ''}); the same command goes on from here")
