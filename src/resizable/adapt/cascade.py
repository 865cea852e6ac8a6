"""Resizable-Adapt by confidence: a cascade of configurations (anytime inference, as in MSDNet and RANet).

Every image first runs the cheapest configuration of a chain; when its top softmax probability is
below the step's threshold it goes on to the next, dearer configuration, and so on; the last step
answers whatever its confidence. A step starts from the activations an earlier step already
computed for the stages it shares with it (the same leading factors), so those stages run once
per image; the cost an image is counted is what ran for it: the stem, every stage that ran, and
the head of every step it reached (:class:`CascadePlan`). Interpolation is counted on its own, as
in the lookup table.

The chain and its threshold are knobs: :func:`choose_cascades` evaluates every increasing chain of
up to ``max_steps`` configurations of the Pareto front (one threshold shared by its steps, on a grid
of the first step's confidence quantiles) on recorded outcomes of the knob images, and keeps, for
each target mean cost, the most accurate one whose mean cost on those images is within the target.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..configs import Config, format_config, parse_config, shared_prefix
from ..costs import part_costs
from ..evaluation.walker import evaluating
from ..utils.fileio import atomic_write_text, read_text
from ..net import ResizableNet, SizeLike, to_size2d
from .labels import AdaptError, ConfigOutcomes, PathLike, check_identity, model_identity

__all__ = ["CASCADE_FORMAT", "CascadePlan", "cascade_plan", "Cascade", "CascadeChoice", "cascade_chains",
           "threshold_grid", "choose_cascades", "save_cascade", "load_cascade"]

CASCADE_FORMAT = "resizable-adapt-cascade"


@dataclass(frozen=True)
class CascadePlan:
    """What each step of a cascade runs and costs, with shared leading stages reused.

    Step ``j`` runs stages ``start[j]..N-1`` of its configuration and the head, starting from the
    output of stage ``start[j] - 1`` that step ``source[j]`` computed (``-1``: from the stem's
    output). An image that stops at step ``j`` costs ``exit_macs[j]`` (steps ``0..j``).
    """

    configs: Tuple[Config, ...]
    start: Tuple[int, ...]
    source: Tuple[int, ...]
    step_macs: Tuple[int, ...]  # step 0 includes the stem
    step_interp: Tuple[int, ...]
    exit_macs: Tuple[int, ...]
    exit_interp: Tuple[int, ...]

    def exit_costs(self, count_interp: bool = False) -> List[int]:
        """Per-image cost of stopping at each step (with the interpolation MACs when ``count_interp``)."""
        return [m + (r if count_interp else 0) for m, r in zip(self.exit_macs, self.exit_interp)]


def cascade_plan(model: ResizableNet, input_size: SizeLike, configs: Sequence[Config],
                 parts: Optional[Dict[Config, List[Tuple[int, int]]]] = None) -> CascadePlan:
    """The :class:`CascadePlan` of a chain of distinct configurations.

    Args:
        model: the ResizableNet.
        input_size: the input resolution.
        configs: the chain.
        parts: :func:`resizable.costs.part_costs` of (at least) these configurations at ``input_size``,
            when already at hand.
    """
    configs = [model.check_config(c) for c in configs]
    if not configs or len(set(configs)) != len(configs):
        raise ValueError(f"a cascade needs one or more distinct configurations, got "
                         f"{[format_config(c) for c in configs]}")
    if parts is None or any(c not in parts for c in configs):
        parts = part_costs(model, input_size, configs)
    start, source, macs, interp = [], [], [], []
    for j, c in enumerate(configs):
        shares = [shared_prefix(c, configs[i]) for i in range(j)]
        s = max(shares, default=0)
        # the earliest step with the longest shared prefix computed that stage itself (a later one reused it)
        source.append(shares.index(s) if s > 0 else -1)
        start.append(s)
        run = ([parts[c][0]] if j == 0 else []) + parts[c][1 + s:]  # [stem] + stages s+1..N + head
        macs.append(sum(m for m, _ in run))
        interp.append(sum(r for _, r in run))
    cum = list(itertools.accumulate(macs))
    cum_interp = list(itertools.accumulate(interp))
    return CascadePlan(tuple(configs), tuple(start), tuple(source), tuple(macs), tuple(interp), tuple(cum),
                       tuple(cum_interp))


def _exits(conf: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Where each image stops: (G, N) step indices for confidences ``conf`` (N, m) and thresholds (G, m - 1)."""
    n, m = conf.shape
    stop = torch.ones(thresholds.shape[0], n, m, dtype=torch.bool)
    if m > 1:
        stop[:, :, :-1] = conf[None, :, :-1] >= thresholds[:, None, :]
    return stop.to(torch.uint8).argmax(dim=2)  # the first step confident enough (the last one always is)


def _sweep(conf: torch.Tensor, correct: torch.Tensor, exit_costs: torch.Tensor, grid: torch.Tensor
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(top-1 %, mean cost) of a chain at every shared threshold of ``grid`` (G,), without a G x N tensor.

    An image goes past step ``j`` exactly when its confidence at steps ``0..j`` is below the threshold,
    i.e. when their running maximum is: each (image, step) is one event that moves the image's exit
    from ``j`` to ``j + 1`` at thresholds above that maximum; sorted, their summed effects are read at
    every threshold at once.
    """
    n, m = conf.shape
    base_correct = correct[:, 0].double().sum()
    base_cost = n * exit_costs[0]
    if m == 1:
        return (100.0 * base_correct / n).expand(len(grid)), (base_cost / n).expand(len(grid))
    top = conf[:, :-1].cummax(dim=1).values.flatten()  # (N * (m-1),)
    gain = (correct[:, 1:].double() - correct[:, :-1].double()).flatten()
    extra = (exit_costs[1:] - exit_costs[:-1]).expand(n, m - 1).flatten()
    order = top.argsort()
    gains = torch.cat([torch.zeros(1, dtype=torch.float64), gain[order].cumsum(0)])
    extras = torch.cat([torch.zeros(1, dtype=torch.float64), extra[order].cumsum(0)])
    k = torch.searchsorted(top[order].contiguous(), grid.to(top.dtype))  # events strictly below each threshold
    return 100.0 * (base_correct + gains[k]) / n, (base_cost + extras[k]) / n


class Cascade:
    """A chain of configurations run by confidence on a ResizableNet (see the module notes).

    Args:
        model: the ResizableNet.
        configs: the chain, cheapest first; distinct.
        thresholds: one per step but the last: an image goes on when its top probability is below it.
        input_size: the input resolution (for the costs).
        parts: :func:`resizable.costs.part_costs` of the chain, when already at hand.
    """

    def __init__(self, model: ResizableNet, configs: Sequence[Config], thresholds: Sequence[float],
                 input_size: SizeLike, parts: Optional[Dict[Config, List[Tuple[int, int]]]] = None) -> None:
        if len(thresholds) != len(configs) - 1:
            raise ValueError(f"a cascade of {len(configs)} configurations takes {len(configs) - 1} thresholds, "
                             f"got {len(thresholds)}")
        if any(not (0.0 <= t <= 1.0) for t in thresholds):
            raise ValueError(f"thresholds are top softmax probabilities in [0, 1], got {list(thresholds)}")
        self.model = model
        self.input_size = to_size2d(input_size)
        self.plan = cascade_plan(model, self.input_size, configs, parts)
        self.configs = list(self.plan.configs)
        self.thresholds = [float(t) for t in thresholds]

    def exits(self, conf: torch.Tensor) -> torch.Tensor:
        """(N,) the step each image stops at, given its top probability at every step ``conf`` (N, m)."""
        return _exits(conf.float().cpu(), torch.tensor([self.thresholds], dtype=torch.float32))[0]

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, classes) and the step each image of ``x`` (B, C, H, W) stopped at.

        The images still going run together as one batch at every step; each step starts from the
        stage output it shares with an earlier step (:class:`CascadePlan`), so a shared stage runs
        once per image.
        """
        model, plan = self.model, self.plan
        n, hw = model.num_stages, tuple(x.shape[-2:])
        needed = {(plan.source[j], plan.start[j] - 1) for j in range(len(self.configs)) if plan.source[j] >= 0}
        with evaluating(model):
            stem = model.forward_stem(x)
            logits = torch.empty(x.shape[0], model.num_classes, device=x.device)
            exits = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
            active = torch.arange(x.shape[0], device=x.device)
            kept: Dict[Tuple[int, int], Tuple[torch.Tensor, torch.Tensor]] = {}  # (step, stage) -> (rows, output)
            for j, config in enumerate(self.configs):
                start, src = plan.start[j], plan.source[j]
                if src < 0:
                    h = stem.index_select(0, active)
                else:
                    rows, out = kept[(src, start - 1)]
                    h = out.index_select(0, torch.searchsorted(rows, active))  # active rows are a subset of rows
                model.set_config(config)
                sizes = model.stage_sizes(hw, config)
                for i in range(start, n):
                    h = model.forward_stage(i, h, sizes[i])
                    if (j, i) in needed:
                        kept[(j, i)] = (active, h)
                out = model.forward_head(h).float()
                logits[active] = out
                exits[active] = j
                if j == len(self.configs) - 1:
                    break
                active = active[out.softmax(dim=1).max(dim=1).values < self.thresholds[j]]
                if active.numel() == 0:
                    break
        return logits, exits


@dataclass
class CascadeChoice:
    """A chain and thresholds chosen for a target mean cost, with what they did on the knob images."""

    configs: List[Config]
    thresholds: List[float]
    target_mmacs: float
    knob_top1_pct: float
    knob_mean_mmacs: float  # per image, the cost a target bounds (with interpolation when counted)
    knob_images: int
    exit_mmacs: List[float] = field(default_factory=list)
    count_interp: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {"configs": [format_config(c) for c in self.configs], "thresholds": self.thresholds,
                "target_mmacs": self.target_mmacs, "knob_top1_pct": self.knob_top1_pct,
                "knob_mean_mmacs": self.knob_mean_mmacs, "knob_images": self.knob_images,
                "exit_mmacs": self.exit_mmacs, "count_interp": self.count_interp}


def cascade_chains(front: Sequence[Config], max_steps: int) -> List[Tuple[Config, ...]]:
    """Every chain of 1..``max_steps`` configurations of ``front`` (cheapest first) in front order."""
    if max_steps < 1:
        raise ValueError(f"a cascade has at least one step, got max_steps {max_steps}")
    return [chain for m in range(1, max_steps + 1) for chain in itertools.combinations(front, m)]


def threshold_grid(conf: torch.Tensor, points: int = 101) -> torch.Tensor:
    """Thresholds that send 0 %, 1 %, ..., 100 % of the images on (quantiles of the confidences ``conf``), with 0."""
    if points < 2:
        raise ValueError(f"a threshold grid needs at least 2 points, got {points}")
    conf = conf.float()
    q = torch.quantile(conf, torch.linspace(0, 1, points, dtype=torch.float32))
    # just above a quantile (in float32, the type confidences are compared in), so the images at it go on too;
    # 0 sends no image on
    return torch.cat([torch.zeros(1), torch.nextafter(q, q + 1)]).clamp(max=1.0).unique()


def choose_cascades(model: ResizableNet, input_size: SizeLike, outcomes: ConfigOutcomes, front: Sequence[Config],
                    targets: Sequence[float], *, max_steps: int = 3, count_interp: bool = False,
                    points: int = 101, parts: Optional[Dict[Config, List[Tuple[int, int]]]] = None
                    ) -> List[Optional[CascadeChoice]]:
    """For each target mean cost (MMACs per image), the most accurate cascade on the images of ``outcomes``
    whose mean cost there is within the target (None when even the cheapest front configuration is dearer).

    Ties go to the cheaper mean cost, then to fewer steps.

    Args:
        model: the ResizableNet (for the costs).
        input_size: the input resolution.
        outcomes: :func:`resizable.adapt.config_outcomes` of the knob images, with ``p_max``, for at least ``front``.
        front: candidate configurations, cheapest first (the Pareto front of the front images).
        targets: mean costs in millions of MACs per image.
        max_steps: the longest chain.
        count_interp: costs include the resizes' interpolation MACs.
        points: size of the threshold grid.
        parts: :func:`resizable.costs.part_costs` of the front, when already at hand.
    """
    if outcomes.p_max is None:
        raise ValueError("choosing a cascade needs the top probability of every configuration (outcomes.p_max)")
    column = {c: j for j, c in enumerate(outcomes.configs)}
    missing = [format_config(c) for c in front if c not in column]
    if missing:
        raise ValueError(f"the outcomes lack the front configuration(s) {', '.join(missing)}")
    n = len(outcomes.targets)
    if parts is None or any(c not in parts for c in front):
        parts = part_costs(model, input_size, list(front))
    best: List[Optional[Tuple[tuple, CascadeChoice]]] = [None] * len(targets)
    place = {c: i for i, c in enumerate(front)}
    front_cols = torch.tensor([column[c] for c in front])
    front_conf, front_correct = outcomes.p_max[:, front_cols].float(), outcomes.correct[:, front_cols]
    grids = {i: threshold_grid(front_conf[:, i], points) for i in range(len(front))}  # by the first step
    for chain in cascade_chains(front, max_steps):
        plan = cascade_plan(model, input_size, chain, parts)
        cols = torch.tensor([place[c] for c in chain])
        conf, correct = front_conf[:, cols], front_correct[:, cols]
        grid = grids[place[chain[0]]] if len(chain) > 1 else torch.zeros(1)
        exit_costs = torch.tensor(plan.exit_costs(count_interp), dtype=torch.float64)
        top1, cost = _sweep(conf, correct, exit_costs, grid)
        cost = cost / 1e6
        for t, target in enumerate(targets):
            ok = cost <= target * (1 + 1e-12)
            if not bool(ok.any()):
                continue
            high = top1[ok].max()
            g = int(torch.where(ok & (top1 == high), cost, math.inf).argmin())  # the cheapest of the most accurate
            key = (float(top1[g]), -float(cost[g]), -len(chain))
            if best[t] is None or key > best[t][0]:
                best[t] = (key, CascadeChoice(list(chain), [float(grid[g])] * (len(chain) - 1), float(target),
                                              float(top1[g]), float(cost[g]), n,
                                              [c / 1e6 for c in plan.exit_costs(count_interp)], count_interp))
    return [b[1] if b is not None else None for b in best]


def save_cascade(choice: CascadeChoice, model: ResizableNet, path: PathLike, *, input_size: SizeLike,
                 model_name: Optional[str] = None, extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write a chosen cascade as JSON (atomically), tied to ``model``'s weights like a label file."""
    payload = {"format": CASCADE_FORMAT, "version": 1, "identity": model_identity(model, model_name),
               "input_size": list(to_size2d(input_size)), **choice.to_dict(), **(extra or {})}
    path = Path(path)
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return path


def load_cascade(path: PathLike, model: ResizableNet) -> Tuple[Cascade, Dict[str, Any]]:
    """Read a cascade file for ``model`` (refused unless it was chosen for these exact weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no cascade file at {path}")
    try:
        payload = json.loads(read_text(path, "cascade file"))
    except (ValueError, UnicodeDecodeError):
        raise AdaptError(f"{path} is not a Resizable-Adapt cascade file (not JSON)") from None
    if not isinstance(payload, dict) or payload.get("format") != CASCADE_FORMAT:
        raise AdaptError(f"{path} is not a Resizable-Adapt cascade file (no format={CASCADE_FORMAT!r} field)")
    check_identity(payload["identity"], model, f"the cascade {path}")
    configs = [parse_config(c, model.factors, model.num_stages) for c in payload["configs"]]
    thresholds = [float(t) for t in payload["thresholds"]]
    if any(math.isnan(t) for t in thresholds):
        raise AdaptError(f"{path}: a threshold is not a number")
    return Cascade(model, configs, thresholds, tuple(payload["input_size"])), payload
