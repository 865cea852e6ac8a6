"""Mean +- std over seeds, and the verdict rule of the report.

A comparison is a list of per-seed differences ``d_s`` (the paper's side minus the other, both from
the same seed), signed so that the paper's claim says ``d > 0``. With ``n`` seeds, ``se = std(d) /
sqrt(n)`` and ``t = t_{0.975, n-1}``, the two-sided 95 % critical value of Student's t distribution
with the seeds' degrees of freedom (12.71 for 2 seeds, 4.30 for 3, 2.78 for 5); the verdict is
``agrees`` when ``mean(d) > t se``, ``disagrees`` when ``mean(d) < -t se``, ``inconclusive``
otherwise, and always ``inconclusive`` with fewer than two seeds (no error bar). A paired t-test
at the 5 % level, in other words: with 2-3 seeds only a large, steady difference is called. Every
verdict also gives its 95 % interval ``mean(d) +- t se``; where the paper states an effect size
(``PAPER_EFFECTS``), the report says whether the interval excludes it.
"""
from __future__ import annotations

import functools
import math
import statistics
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["summary", "compare", "verdict", "verdict_line", "fmt", "fmt_diff", "t_cdf", "t_critical", "PAPER_EFFECTS",
           "effect_check", "effect_text"]

# The effect sizes the paper states, in top-1 points (RS's side minus the other), with where it states them. A
# verdict's 95 % interval either excludes such an effect (our measurement rules it out at this scale) or not.
PAPER_EFFECTS: Dict[str, Dict[str, Any]] = {
    "T1": {"low": 0.7, "high": 1.4, "source": "Table 1: ResNet-50 sub-networks of one RS network against the same "
                                              "configurations trained individually, ImageNet top-1"},
    "Fig 3d": {"low": 0.0, "high": 0.5, "source": "Fig 3d: Resizable-Adapt above the NAS Pareto front by about 0 to "
                                                  "0.5 points, ImageNet top-1"},
    "Fig 3a-c slim": {"low": 1.8, "high": 1.8, "source": "Fig 3(a)-(c), Table B: RS-NAS 76.8 against Slim-ResNet50 "
                                                         "75.0 at 2.3 GFLOPs, ImageNet top-1"},
    "T2": {"low": 2.4, "high": 2.4, "source": "Table 2: ResNet-50, RS-Aug 78.8 against the baseline 76.4, ImageNet "
                                              "top-1"},
}


def _t_pdf(x: float, df: int) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def t_cdf(x: float, df: int) -> float:
    """Student's t distribution function with ``df`` degrees of freedom (Simpson's rule on the density)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if x < 0:
        return 1.0 - t_cdf(-x, df)
    # substitute x = tan(u): the density times sec^2 is smooth and bounded on [0, atan(x)]
    top, n = math.atan(x), 2000
    h = top / n
    f = [_t_pdf(math.tan(i * h), df) / math.cos(i * h) ** 2 for i in range(n + 1)]
    area = h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))
    return 0.5 + area


@functools.lru_cache(maxsize=None)
def t_critical(df: int, level: float = 0.95) -> float:
    """The two-sided critical value: ``P(|T| <= t) = level`` for ``T`` with ``df`` degrees of freedom."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    target, lo, hi = 0.5 + level / 2, 0.0, 1.0
    while t_cdf(hi, df) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < target else (lo, mid)
    return (lo + hi) / 2


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
    t = t_critical(len(d) - 1)
    out.update(se=se, t_critical=t, df=len(d) - 1, ci=[mean - t * se, mean + t * se])
    if mean > t * se:
        out["verdict"] = "agrees"
    elif mean < -t * se:
        out["verdict"] = "disagrees"
    else:
        out["verdict"] = "inconclusive"
    out["why"] = (f"mean difference {mean:+.2f}, 95 % CI {mean - t * se:+.2f} .. {mean + t * se:+.2f}: "
                  f"t x se = {t:.2f} x {se:.2f} = {t * se:.2f} ({len(d) - 1} df) over {len(d)} seeds")
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


def effect_check(claim: str, c: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Whether the verdict's 95 % interval excludes the paper's stated effect for ``claim`` (a key of
    ``PAPER_EFFECTS``); None when the paper states none or the verdict has no interval."""
    effect = PAPER_EFFECTS.get(claim)
    if effect is None or not c.get("ci"):
        return None
    lo, hi = c["ci"]
    return {**effect, "ci": [lo, hi], "excluded": hi < effect["low"] or lo > effect["high"]}


def effect_text(claim: str, c: Dict[str, Any]) -> str:
    """``; the paper's effect +0.70 .. +1.40 (Table 1: ...) is excluded by the interval`` (or ``lies within``);
    empty when there is nothing to compare."""
    e = effect_check(claim, c)
    if e is None:
        return ""
    paper = f"{e['low']:+.2f}" if e["low"] == e["high"] else f"{e['low']:+.2f} .. {e['high']:+.2f}"
    return (f"; the paper's effect {paper} ({e['source']}) "
            + ("is excluded by the interval" if e["excluded"] else "is not excluded by the interval"))


def verdict_line(name: str, c: Dict[str, Any], what: str, effect: Optional[str] = None) -> str:
    """The report's bold verdict line: ``**Verdict (T2): inconclusive** (what was compared; the t rule's numbers,
    with the 95 % interval; and, for an ``effect`` key of ``PAPER_EFFECTS``, whether it excludes the paper's)``."""
    return (f"**Verdict ({name}): {c['verdict']}** ({what}; {c.get('why', 'no values')}"
            f"{effect_text(effect, c) if effect else ''})")
