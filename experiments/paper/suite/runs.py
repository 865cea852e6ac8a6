"""Reading the finished runs' records: a uniform configuration's name, one top-1, a whole table, its MACs.

``results`` maps a step's name to its result record (``None`` or absent: not run yet); every accessor
returns ``None`` (or an empty table) for a run or an evaluation that does not exist.
"""
from __future__ import annotations

import statistics
from typing import Any, Dict, Optional, Sequence

Results = Dict[str, Dict[str, Any]]


def cfg(s: float, n: int = 3) -> str:
    return ",".join([f"{s:g}"] * n)


def top1(results: Results, name: str, kind: str, config: str) -> Optional[float]:
    r = results.get(name)
    if r is None or config not in r.get("evals", {}).get(kind, {}):
        return None
    return float(r["evals"][kind][config]["top1"])


def all_top1(results: Results, name: str, kind: str) -> Optional[Dict[str, float]]:
    r = results.get(name)
    if r is None or kind not in r.get("evals", {}):
        return None
    return {c: float(v["top1"]) for c, v in r["evals"][kind].items()}


def mmacs(results: Results, name: str, kind: str) -> Dict[str, float]:
    r = results.get(name) or {}
    return {c: float(v["mmacs"]) for c, v in r.get("evals", {}).get(kind, {}).items()}


def mean_table(results: Results, names: Sequence[str], kind: str) -> Dict[str, float]:
    """Per configuration, the mean top-1 over the finished runs ``names`` (empty when none has that table)."""
    tables = [t for t in (all_top1(results, n, kind) for n in names) if t]
    return {c: statistics.fmean(t[c] for t in tables) for c in tables[0]} if tables else {}
