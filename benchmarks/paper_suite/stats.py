"""Mean +- std over seeds, and the verdict rule of the report.

A comparison is a list of per-seed differences ``d_s`` (the paper's side minus the other, both from
the same seed), signed so that the paper's claim says ``d > 0``. With ``n`` seeds, ``se = std(d) /
sqrt(n)``; the verdict is ``agrees`` when ``mean(d) > 2 se``, ``disagrees`` when ``mean(d) < -2 se``,
``inconclusive`` otherwise, and always ``inconclusive`` with fewer than two seeds (no error bar).
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["summary", "compare", "verdict", "fmt", "fmt_diff"]


def summary(values: Sequence[Optional[float]]) -> Dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` of the values that exist (None: a seed that has none)."""
    known = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    mean = statistics.fmean(known) if known else None
    std = statistics.stdev(known) if len(known) > 1 else None
    return {"mean": mean, "std": std, "n": len(known), "values": list(values)}


def verdict(diffs: Sequence[float]) -> Dict[str, Any]:
    """The verdict on per-seed differences (positive: the paper's direction)."""
    d = [float(x) for x in diffs if x is not None and math.isfinite(float(x))]
    out: Dict[str, Any] = {"diffs": list(diffs), "n": len(d)}
    if not d:
        out.update(mean=None, se=None, verdict="inconclusive", why="no values")
        return out
    mean = statistics.fmean(d)
    out["mean"] = mean
    if len(d) < 2:
        out.update(se=None, verdict="inconclusive", why="one seed: no standard error")
        return out
    se = statistics.stdev(d) / math.sqrt(len(d))
    out["se"] = se
    if mean > 2 * se:
        out["verdict"] = "agrees"
    elif mean < -2 * se:
        out["verdict"] = "disagrees"
    else:
        out["verdict"] = "inconclusive"
    out["why"] = f"mean difference {mean:+.2f}, 2 standard errors {2 * se:.2f} over {len(d)} seeds"
    return out


def compare(paper_side: Sequence[Optional[float]], other: Sequence[Optional[float]]) -> Dict[str, Any]:
    """Summaries of both sides and the verdict on their per-seed differences (pairs with a missing side skipped)."""
    diffs: List[float] = [a - b for a, b in zip(paper_side, other) if a is not None and b is not None]
    return {"paper_side": summary(paper_side), "other": summary(other), **verdict(diffs)}


def fmt(s: Dict[str, Any], digits: int = 2) -> str:
    """``92.31 +- 0.12`` (or ``92.31`` with one seed, ``-`` with none)."""
    if s.get("mean") is None:
        return "-"
    if s.get("std") is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} +- {s['std']:.{digits}f}"


def fmt_diff(c: Dict[str, Any]) -> str:
    if c.get("mean") is None:
        return "-"
    se = f" (se {c['se']:.2f})" if c.get("se") is not None else ""
    return f"{c['mean']:+.2f}{se}"
