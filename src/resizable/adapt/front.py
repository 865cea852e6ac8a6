"""Resizable-Adapt against the NAS front: every method as a curve of (mean MACs per image, top-1).

Three sets of images take part, so that nothing is chosen on the images it is reported on:

- the **front images** give the lookup table whose Pareto front is the NAS answer at each cost
  (and the cascade's candidate configurations);
- the **knob images** choose each method's knob for a target mean cost: the most accurate setting
  whose mean cost on them is within the target (:func:`pick_setting`);
- the **report images** (test) measure the chosen settings, the front's configurations, the
  straight line between neighbouring front points (what sending images at random to the two
  configurations reaches at the same mean cost: :func:`line_top1`) and the oracle (each image at
  its cheapest correct configuration within a per-image cap: :func:`oracle_setting`, the most any
  router could gain on these images).

A method's gain is its top-1 minus the line's at the method's own mean cost on the report images.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..configs import Config, format_config
from ..utils.fileio import atomic_path, atomic_write_text
from .labels import ConfigOutcomes, PathLike

__all__ = ["FrontPoint", "pareto_indices", "front_points", "nas_pick", "line_top1", "Setting", "pick_setting",
           "oracle_setting", "curve_rows", "Comparison", "CURVE_COLUMNS"]

CURVE_COLUMNS = ["method", "target_mmacs", "knob", "knob_mean_mmacs", "knob_top1_pct", "mean_mmacs",
                 "mean_interp_mmacs", "top1_pct", "nas_config", "nas_top1_pct", "line_top1_pct", "gain_vs_line_pct",
                 "gain_vs_nas_pct"]


@dataclass(frozen=True)
class FrontPoint:
    """A configuration of the Pareto front (chosen on the front images), measured on the report images."""

    config: Config
    mmacs: float  # the cost counted (with interpolation when it is counted)
    interp_mmacs: float
    front_top1_pct: float  # on the front images (what chose it)
    top1_pct: float  # on the report images


def pareto_indices(top1: Sequence[float], cost: Sequence[float]) -> List[int]:
    """Indices of the Pareto front, cheapest first, by the rule of :func:`resizable.nas.lookup.pareto_front`:
    cheaper first (ties: more accurate, then earlier); one joins only when more accurate than every cheaper one."""
    order = sorted(range(len(top1)), key=lambda j: (cost[j], -top1[j], j))
    front, best = [], -math.inf
    for j in order:
        if top1[j] > best:
            front.append(j)
            best = top1[j]
    return front


def front_points(front_outcomes: ConfigOutcomes, report_outcomes: ConfigOutcomes, macs: Sequence[int],
                 interp: Sequence[int], count_interp: bool = False) -> List[FrontPoint]:
    """The Pareto front of ``front_outcomes`` (cost: ``macs``, plus ``interp`` when counted), measured on
    ``report_outcomes`` (the same configurations, in the same order)."""
    if front_outcomes.configs != report_outcomes.configs:
        raise ValueError("the front and report outcomes must hold the same configurations in the same order")
    cost = [m + (r if count_interp else 0) for m, r in zip(macs, interp)]
    chosen, reported = front_outcomes.top1_pct(), report_outcomes.top1_pct()
    return [FrontPoint(front_outcomes.configs[j], cost[j] / 1e6, interp[j] / 1e6, chosen[j], reported[j])
            for j in pareto_indices(chosen, cost)]


def nas_pick(front: Sequence[FrontPoint], mmacs: float) -> Optional[FrontPoint]:
    """The NAS answer within ``mmacs``: the front configuration most accurate on the front images (the dearest
    one within it); None when the cheapest is dearer."""
    within = [p for p in front if p.mmacs <= mmacs * (1 + 1e-12)]
    return max(within, key=lambda p: (p.front_top1_pct, -p.mmacs)) if within else None


def line_top1(front: Sequence[FrontPoint], mmacs: float) -> Optional[float]:
    """Report top-1 on the straight line between the two front points around ``mmacs`` (the dearest point's beyond
    it; None below the cheapest): what sending each image at random to one of the two reaches at that mean cost."""
    points = sorted(front, key=lambda p: p.mmacs)
    if not points or mmacs < points[0].mmacs * (1 - 1e-12):
        return None
    for lo, hi in zip(points, points[1:]):
        if mmacs <= hi.mmacs:
            share = (mmacs - lo.mmacs) / (hi.mmacs - lo.mmacs) if hi.mmacs > lo.mmacs else 1.0
            return lo.top1_pct + max(0.0, share) * (hi.top1_pct - lo.top1_pct)
    return points[-1].top1_pct


@dataclass
class Setting:
    """One knob of a method, measured on the knob images (which choose it) and on the report images."""

    method: str
    knob: str
    knob_mean_mmacs: Optional[float]
    knob_top1_pct: Optional[float]
    mean_mmacs: float  # per image on the report images, the cost counted (with interpolation when counted)
    mean_interp_mmacs: float
    top1_pct: float
    detail: Dict[str, Any] = field(default_factory=dict)


def pick_setting(settings: Sequence[Setting], target_mmacs: float) -> Optional[Setting]:
    """The most accurate setting on the knob images among those whose mean cost there is within the target
    (ties: the cheaper, then the earlier); None when none fits."""
    within = [(i, s) for i, s in enumerate(settings)
              if s.knob_mean_mmacs is not None and s.knob_mean_mmacs <= target_mmacs * (1 + 1e-12)]
    if not within:
        return None
    return max(within, key=lambda t: (t[1].knob_top1_pct, -t[1].knob_mean_mmacs, -t[0]))[1]


def oracle_setting(outcomes: ConfigOutcomes, macs: Sequence[int], interp: Sequence[int], cap_mmacs: float,
                   count_interp: bool = False) -> Optional[Setting]:
    """Each image at its cheapest correct configuration among those costing at most ``cap_mmacs`` (an image none
    of them gets right at the cheapest of them): the ceiling of routing on these images."""
    cost = torch.tensor([m + (r if count_interp else 0) for m, r in zip(macs, interp)], dtype=torch.float64)
    extra = torch.tensor(list(interp), dtype=torch.float64)
    allowed = cost <= cap_mmacs * 1e6 * (1 + 1e-12)
    if not bool(allowed.any()):
        return None
    correct = outcomes.correct.bool() & allowed
    priced = torch.where(correct, cost, math.inf)
    cheapest_allowed = int(torch.where(allowed, cost, math.inf).argmin())
    choice = torch.where(correct.any(dim=1), priced.argmin(dim=1), torch.full_like(priced[:, 0], cheapest_allowed,
                                                                                    dtype=torch.int64))
    n = max(1, len(choice))
    return Setting("oracle", f"per-image cap {cap_mmacs:g}", None, None, float(cost[choice].sum()) / n / 1e6,
                   float(extra[choice].sum()) / n / 1e6, 100.0 * float(correct.any(dim=1).double().sum()) / n)


def curve_rows(settings_per_target: Sequence[Optional[Setting]], targets: Sequence[float],
               front: Sequence[FrontPoint]) -> List[Dict[str, Any]]:
    """One row per target with a setting: the setting on the report images, and the NAS pick and the line at
    the setting's own mean cost there."""
    rows = []
    for target, s in zip(targets, settings_per_target):
        if s is None:
            continue
        nas = nas_pick(front, s.mean_mmacs)
        line = line_top1(front, s.mean_mmacs)
        rows.append({"method": s.method, "target_mmacs": target, "knob": s.knob,
                     "knob_mean_mmacs": s.knob_mean_mmacs, "knob_top1_pct": s.knob_top1_pct,
                     "mean_mmacs": s.mean_mmacs, "mean_interp_mmacs": s.mean_interp_mmacs, "top1_pct": s.top1_pct,
                     "nas_config": format_config(nas.config) if nas else None,
                     "nas_top1_pct": nas.top1_pct if nas else None, "line_top1_pct": line,
                     "gain_vs_line_pct": s.top1_pct - line if line is not None else None,
                     "gain_vs_nas_pct": s.top1_pct - nas.top1_pct if nas else None, **s.detail})
    return rows


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@dataclass
class Comparison:
    """Every method's curve against the front, with what made it (see the module notes)."""

    meta: Dict[str, Any]
    front: List[FrontPoint]
    rows: List[Dict[str, Any]]

    def to_dict(self) -> Dict[str, Any]:
        front = [{**asdict(p), "config": format_config(p.config)} for p in self.front]
        return {"meta": self.meta, "front": front, "rows": self.rows}

    def methods(self) -> List[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    def write(self, path: PathLike) -> List[Path]:
        """``PATH.csv`` (one row per method and target) and ``PATH.json`` (everything), atomically; a ``.csv``
        or ``.json`` suffix on ``path`` is replaced."""
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".csv", ".json") else base
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CURVE_COLUMNS)
        for r in self.rows:
            writer.writerow([_csv_value(r.get(c)) for c in CURVE_COLUMNS])
        csv_path, json_path = base.with_name(base.name + ".csv"), base.with_name(base.name + ".json")
        atomic_write_text(csv_path, out.getvalue())
        atomic_write_text(json_path, json.dumps(self.to_dict(), indent=1) + "\n")
        return [csv_path, json_path]

    def plot(self, path: PathLike, title: Optional[str] = None) -> Path:
        """Top-1 against mean MMACs per image: the front (points and the line between them), every method's
        curve, the oracle dashed. PNG/PDF/SVG by the suffix (matplotlib, Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        pts = sorted(self.front, key=lambda p: p.mmacs)
        ax.plot([p.mmacs for p in pts], [p.top1_pct for p in pts], "-o", color="0.4", ms=4,
                label="NAS front (line between its points)")
        for method in self.methods():
            if method in ("front-line", "nas"):
                continue
            rows = sorted((r for r in self.rows if r["method"] == method), key=lambda r: r["mean_mmacs"])
            style = "--" if method == "oracle" else "-s"
            ax.plot([r["mean_mmacs"] for r in rows], [r["top1_pct"] for r in rows], style, ms=4, label=method)
        ax.set_xlabel("mean MMACs per image" + (" (interpolation counted)" if self.meta.get("count_interp") else ""))
        ax.set_ylabel(f"top-1 (%) on {self.meta.get('report_split', 'the report images')}")
        ax.set_title(title or "Resizable-Adapt along the front")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150)
        plt.close(fig)
        return path
