"""Scaling configurations as text: one way to write them, one way to read them.

A configuration is written as its factors joined by commas, each in its shortest round-tripping
form (``(0.45, 0.65, 1.0)`` -> ``"0.45,0.65,1"``). That is the ``config`` column of every table
and CSV, what ``--config`` takes, and what run names and file names use (with ``-`` instead of
``,``).
"""
from __future__ import annotations

import itertools
import math
import re
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

Config = Tuple[float, ...]

__all__ = ["Config", "format_factor", "format_config", "parse_config", "parse_configs", "all_configs",
           "CONFIG_SETS", "shared_prefix"]

# Named sets of configurations that ``parse_configs`` understands.
CONFIG_SETS = ("default", "minmax", "all")


def format_factor(f: float) -> str:
    """Shortest round-tripping positional form: ``0.45`` -> ``"0.45"``, ``1.0`` -> ``"1"``; never an exponent."""
    return np.format_float_positional(float(f), trim="-")


def format_config(config: Sequence[float], sep: str = ",") -> str:
    """``(0.45, 0.65, 1.0)`` -> ``"0.45,0.65,1"`` (``sep="-"`` for file and run names)."""
    return sep.join(format_factor(f) for f in config)


def _expected(factors: Optional[Sequence[float]], num_stages: Optional[int]) -> str:
    if factors is None:
        return "expected factors like 0.45,0.65,1"
    accepted = f"accepted factors: {tuple(sorted(float(f) for f in factors))}"
    if num_stages is None:
        return accepted
    return f"{accepted}, one per stage (e.g. {format_config([max(factors)] * num_stages)}), or 'min' / 'max'"


def _match(value: float, factors: Sequence[float], text: str) -> float:
    match = [f for f in factors if math.isclose(f, value, rel_tol=0, abs_tol=1e-9)]
    if not match:
        raise ValueError(f"configuration {text!r}: factor {value:g} is not in the factor list; "
                         f"accepted: {tuple(sorted(float(f) for f in factors))}")
    return float(match[0])


def parse_config(text: Union[str, Sequence[float]], factors: Optional[Sequence[float]] = None,
                 num_stages: Optional[int] = None) -> Config:
    """Read ``"0.45,0.65,1"``, ``"0.45-0.65-1"``, ``"(0.45, 0.65, 1.0)"`` or a sequence of numbers.

    With both ``factors`` and ``num_stages``, ``"min"`` and ``"max"`` are accepted too.

    Args:
        text: the configuration.
        factors: when given, every factor must be one of these (matched up to 1e-9).
        num_stages: when given, the configuration must have this many factors.
    Raises:
        ValueError: naming the problem and what is accepted.
    """
    if isinstance(text, str):
        word = text.strip().lower()
        if word in ("min", "max") and factors is not None and num_stages is not None:
            return (float(min(factors) if word == "min" else max(factors)),) * num_stages
        parts = [p for p in re.split(r"[\s,;/\-]+", word.strip("()[]")) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"cannot read configuration {text!r}: not a comma-separated list of numbers; "
                             f"{_expected(factors, num_stages)}") from None
    else:
        try:
            values = [float(v) for v in text]
        except (TypeError, ValueError):
            raise ValueError(f"a configuration is a sequence of numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"cannot read configuration {text!r}: no factors; {_expected(factors, num_stages)}")
    if num_stages is not None and len(values) != num_stages:
        raise ValueError(f"configuration {text!r} has {len(values)} factors, expected {num_stages} "
                         f"(the model needs {num_stages} factors); {_expected(factors, num_stages)}")
    if factors is None:
        return tuple(values)
    return tuple(_match(v, factors, str(text)) for v in values)


def all_configs(factors: Sequence[float], num_stages: int) -> List[Config]:
    """Every configuration, lexicographic in factor index, min first (``ResizableNet.configs()`` order)."""
    return [tuple(c) for c in itertools.product(sorted(float(f) for f in factors), repeat=num_stages)]


def parse_configs(text: str, factors: Sequence[float], num_stages: int) -> List[Config]:
    """A list of configurations: ``default`` (each factor at every stage), ``minmax``, ``all``, or
    configurations separated by ``;`` (``"0.45,0.45,1;1,1,1"``).

    Args:
        text: the list.
        factors: the model's factor list.
        num_stages: the model's number of stages.
    """
    text = text.strip()
    factors = sorted(float(f) for f in factors)
    if text == "minmax":  # one configuration when there is one factor
        return list(dict.fromkeys([(factors[0],) * num_stages, (factors[-1],) * num_stages]))
    if text == "default":
        return [(f,) * num_stages for f in factors]
    if text == "all":
        return all_configs(factors, num_stages)
    configs = [parse_config(part, factors, num_stages) for part in text.split(";") if part.strip()]
    repeated = sorted({format_config(c) for c in configs if configs.count(c) > 1})
    if repeated:
        raise ValueError(f"configuration(s) {', '.join(repeated)} listed more than once in {text!r}")
    if not configs:
        raise ValueError(f"no configuration given; use one of {', '.join(CONFIG_SETS)} or e.g. "
                         f"'{format_config([factors[0]] * num_stages)}'")
    return configs


def shared_prefix(a: Sequence[float], b: Sequence[float]) -> int:
    """How many leading stages two configurations share (their activations up to there are the same)."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
