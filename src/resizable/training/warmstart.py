"""A warm start at equal total cost: the full configuration alone first, then resizable training.

``--warm-start full``: the full configuration (every stage at the largest factor) trains alone
for a share of the budget (``--warm-start-share``, a fraction of the run's counted cost, as
:mod:`resizable.training.cost` counts it), then the run switches to the resizable recipe (the
``--sampling`` mode over the whole list L) for the rest. ``--warm-start progressive`` adds the
smaller factors in steps after the full-only phase, as once-for-all's progressive shrinking does:
first the two largest factors, then the three largest, ..., then all k, the rest of the budget
split equally (in counted cost) between these k - 1 phases.

The budget is the counted cost of ``--epochs`` epochs of the same command without the warm start
(the same sampling over L, no teaching: ``--distill`` and ``--teacher`` stay unset with a warm start):
a warm-started run costs what that command costs, to within one step, its teaching included. With
``--sampling fair`` that is what the k uniform networks trained alone for ``--epochs`` cost, so a warm start
is compared with them at equal counted cost: the full configuration's extra pass of in-place
teaching and a snapshot's forwards come out of the budget, as the full-only phase does. Because a
full-only step costs less than a resizable one, the run has more steps than ``--epochs`` epochs;
its last epoch may be short. The plan
(switch steps, total steps) is computed before the first step from ``(seed, step)`` alone, so a
resumed run repeats it exactly.

After the switch the full configuration teaches (``--warm-start-teacher``): ``inplace`` is
in-place distillation from the running network (``--distill full``: the full configuration on the
labels, the others ``(1 - w) CE + w KD``); ``snapshot`` is a copy of the network frozen at the
switch (``--teacher``: every configuration ``CE + --teacher-weight KD``; the snapshot is kept in the
checkpoint); ``none`` is plain resizable training.

At each switch, every scale-aware BN branch of a factor that starts training is copied (affine
weights and running statistics) from the branch of the nearest larger factor already trained: at
the first switch, from the full configuration's branch. One learning-rate schedule runs over the
whole run (its warm-up, then its decay over every step); the switch does not restart it, and the
optimizer's momentum carries over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .cost import BACKWARD_FACTOR, TrainingCost
from .step import pass_order
from .teacher import frozen_copy
from ..bnbank import scale_batchnorms
from ..net import Config, ResizableNet
from ..sampling import ConfigSampler

__all__ = ["WARM_STARTS", "WARM_TEACHERS", "Phase", "WarmStart", "start_new_branches"]

WARM_STARTS = ("none", "full", "progressive")
WARM_TEACHERS = ("inplace", "snapshot", "none")


@dataclass(frozen=True)
class Phase:
    """From step ``start`` (to the next phase's start) the step's configurations come from ``sampler``."""

    start: int
    sampler: ConfigSampler
    distill: str = "none"  # the step's in-place distillation (``train_step``'s ``distill``)
    snapshot: bool = False  # the network frozen at the first switch teaches

    @property
    def factors(self) -> Tuple[float, ...]:
        """The factors whose BN branches this phase trains."""
        if self.sampler.mode == "single":
            return tuple(sorted(set(self.sampler.single_config)))
        return self.sampler.factors

    @property
    def name(self) -> str:
        if self.sampler.mode == "single":
            return "full only"
        return f"factors {','.join(format(x, 'g') for x in self.factors)}"


def start_new_branches(model: ResizableNet, trained: Sequence[float], new: Sequence[float]) -> int:
    """Copy into each scale-aware BN branch of a factor in ``new`` the branch of the nearest larger factor in
    ``trained`` (weights, biases, running statistics); returns the number of branches copied."""
    index = {f: i for i, f in enumerate(model.factors)}
    sources = {}
    for f in new:
        larger = [t for t in trained if t > f]
        if not larger:
            raise ValueError(f"factor {f:g} has no larger trained factor to start from (trained: {list(trained)})")
        sources[index[f]] = index[min(larger)]
    copied = 0
    with torch.no_grad():
        for _, bank in scale_batchnorms(model):
            for dst, src in sources.items():
                bank[dst].load_state_dict(bank[src].state_dict())  # copied in place: the optimizer keeps its tensors
                copied += 1
    return copied


class WarmStart:
    """The phases of a run: which configurations each step trains and who teaches them.

    Without a warm start (``mode="none"``) it hands each step the sampler, distillation and teacher of the
    run's options, and the run is ``epochs`` epochs long. Build it with :meth:`plan`.
    """

    def __init__(self, mode: str, phases: List[Phase], total_steps: int, steps_per_epoch: int,
                 teaching: str = "none", teacher: Optional[ResizableNet] = None, model: Optional[ResizableNet] = None,
                 budget: int = 0, planned: int = 0) -> None:
        self.mode, self.phases, self.teaching = mode, phases, teaching
        self.total_steps, self.steps_per_epoch = int(total_steps), int(steps_per_epoch)
        self.teacher, self.model = teacher, model  # the run's --teacher; the network (for the snapshot)
        self.snapshot: Optional[ResizableNet] = None
        self._saved_snapshot: Optional[Dict[str, torch.Tensor]] = None  # a resumed run's, made when first used
        self.budget, self.planned = budget, planned  # counted MACs: of --epochs of the recipe, of this plan

    @property
    def epochs(self) -> int:
        """Epochs the run trains (the last one may be short)."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def switch_step(self) -> Optional[int]:
        """The first step of resizable training (0-based), or None without a warm start."""
        return self.phases[1].start if len(self.phases) > 1 else None

    def phase_at(self, step: int) -> int:
        """Index of the phase that step ``step`` belongs to."""
        return max(i for i, p in enumerate(self.phases) if p.start <= step)

    def before_step(self, step: int, sampler: ConfigSampler) -> Tuple[List[Config], str, Optional[ResizableNet]]:
        """The configurations, the distillation mode and the frozen teacher of step ``step``; at a switch
        (the first step of a phase) the new factors' BN branches are started and the snapshot is taken.

        ``sampler`` (the epoch's, e.g. Resizable-Aug's) draws the step when the run has no warm start.
        """
        if self.mode == "none":
            return sampler.sample(step), self.phases[0].distill, self.teacher
        i = self.phase_at(step)
        phase = self.phases[i]
        if i > 0 and step == phase.start:
            before = self.phases[i - 1].factors
            start_new_branches(self.model, before, [f for f in phase.factors if f not in before])
            if phase.snapshot and self.snapshot is None:
                self.snapshot = frozen_copy(self.model)
        if phase.snapshot and self.snapshot is None and self._saved_snapshot is not None:
            # made here, not at resume: the copy then has the memory format the run chose on its first batch
            self.snapshot = frozen_copy(self.model)
            self.snapshot.load_state_dict(self._saved_snapshot)
        return phase.sampler.sample(step), phase.distill, self.snapshot if phase.snapshot else None

    # ------------------------------------------------------------------ records
    def phase_name(self, step: int) -> Optional[str]:
        """The name of the phase that step ``step`` (0-based) trains in; None without a warm start."""
        return None if self.mode == "none" else self.phases[self.phase_at(step)].name

    def record(self, first: int, end: int) -> Dict[str, Any]:
        """The phases of steps ``first .. end - 1`` for an epoch's record (nothing without a warm start)."""
        if self.mode == "none":
            return {}
        names = [p.name for i, p in enumerate(self.phases)
                 if p.start < end and (i + 1 == len(self.phases) or self.phases[i + 1].start > first)]
        return {"warm_start": names}

    def describe(self) -> str:
        """What the plan does, in one line (printed when the run starts)."""
        if self.mode == "none":
            return ""
        full = self.phases[1].start
        rest = ", ".join(f"{p.name} from step {p.start + 1}" for p in self.phases[1:])
        teach = {"inplace": "the running full configuration teaches (in-place distillation)",
                 "snapshot": "a snapshot frozen at the switch teaches", "none": "no teacher"}[self.teaching]
        last = self.total_steps - (self.epochs - 1) * self.steps_per_epoch
        return (f"warm start ({self.mode}): the full configuration alone for steps 1..{full}, then {rest}, to step "
                f"{self.total_steps} ({self.epochs} epochs, the last of {last} steps); {teach}; planned cost "
                f"{self.planned / 1e9:.4g} GMACs for a budget of {self.budget / 1e9:.4g} GMACs (--epochs of the "
                f"recipe without the warm start); BN branches of new factors copied from the nearest larger one")

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> Optional[Dict[str, Any]]:
        """The plan and the snapshot, for the checkpoint (None without a warm start)."""
        if self.mode == "none":
            return None
        return {"mode": self.mode, "total_steps": self.total_steps,
                "phases": [[p.start, list(p.sampler.factors), p.sampler.mode] for p in self.phases],
                "snapshot": self.snapshot.state_dict() if self.snapshot is not None else None}

    def load_state_dict(self, state: Optional[Dict[str, Any]], step: int) -> None:
        """Check that a resumed run (at ``step``) plans as the saved one did; restore the snapshot it took."""
        mine = self.state_dict() or {"mode": "none"}
        saved = state or {"mode": "none"}
        if mine["mode"] == "none" and saved["mode"] == "none":
            return
        diff = {k: (saved.get(k), mine.get(k)) for k in ("mode", "total_steps", "phases") if saved.get(k) != mine.get(k)}
        if diff:
            raise ValueError(f"the checkpoint's warm start was planned differently (saved, now): {diff}; a warm-"
                             f"started run plans its switch from --epochs and the data, so keep them on resume")
        if saved.get("snapshot") is not None:
            self._saved_snapshot = saved["snapshot"]
        elif self.teaching == "snapshot" and self.switch_step is not None and step > self.switch_step:
            raise ValueError("the checkpoint is past the warm start's switch but holds no snapshot to teach from")

    # ------------------------------------------------------------------ planning
    @classmethod
    def plan(cls, mode: str, share: float, teaching: str, *, model: ResizableNet, sampler: ConfigSampler,
             distill: str, teacher: Optional[ResizableNet], num_configs: Optional[int], epochs: int,
             steps_per_epoch: int, batch_size: int, input_size: int, cost: TrainingCost) -> "WarmStart":
        """The run's phases: ``mode`` (one of :data:`WARM_STARTS`), ``share`` of the counted cost on the full
        configuration alone, then the ``teaching`` of :data:`WARM_TEACHERS`.

        Args:
            model, sampler: the network and the run's sampler (``--sampling`` over L).
            distill, teacher: the run's ``--distill`` and ``--teacher`` (used as they are without a warm start).
            num_configs: ``--num-configs`` (random sampling over fewer factors draws at most that many).
            epochs, steps_per_epoch, batch_size, input_size: the budget's length, the global batch, the image size.
            cost: the run's counter (its forward costs price the plan).
        """
        if mode not in WARM_STARTS:
            raise ValueError(f"unknown warm start {mode!r}; accepted: {', '.join(WARM_STARTS)}")
        if teaching not in WARM_TEACHERS:
            raise ValueError(f"unknown warm-start teacher {teaching!r}; accepted: {', '.join(WARM_TEACHERS)}")
        if mode == "none":
            return cls(mode, [Phase(0, sampler, distill)], epochs * steps_per_epoch, steps_per_epoch, teacher=teacher)
        if not 0.0 < share < 1.0:
            raise ValueError(f"the warm start's share must be > 0 and < 1, got {share}")
        after = dict(distill="full" if teaching == "inplace" else "none", snapshot=teaching == "snapshot")
        later = [sampler] if mode == "full" else _progressive_samplers(sampler, num_configs)
        price = _Pricing(model, cost, batch_size, (input_size, input_size))
        # the budget: the same command without the warm start (plain sampling: the options keep --distill and
        # --teacher unset with one), so that the teaching after the switch is paid for out of it
        budget = sum(price.step(sampler, t) for t in range(epochs * steps_per_epoch))
        full_only = ConfigSampler(model.factors, model.num_stages, "single", sampler.seed)
        warm = max(1, round(share * budget / price.step(full_only, 0)))
        spent, t = warm * price.step(full_only, 0), warm
        phases = [Phase(0, full_only)]
        for p, phase_sampler in enumerate(later, 1):
            phases.append(Phase(t, phase_sampler, **after))
            target = spent + (budget - spent) / (len(later) - p + 1)  # an equal share of what is left
            while True:
                c = price.step(phase_sampler, t, **after)
                if t > phases[-1].start and spent + c / 2 >= target:  # the step that lands nearest the target
                    break
                spent, t = spent + c, t + 1
        return cls(mode, phases, t, steps_per_epoch, teaching, model=model, budget=budget, planned=spent)


class _Pricing:
    """The counted cost (MACs, resizes included) of a step before it runs, from the counter's forward costs."""

    def __init__(self, model: ResizableNet, cost: TrainingCost, batch: int, size: Tuple[int, int]) -> None:
        self.model, self.cost, self.batch, self.size = model, cost, batch, size
        self.teacher = sum(cost.forward(model.max_config, size)) * batch  # the snapshot is the full configuration

    def step(self, sampler: ConfigSampler, t: int, distill: str = "none", snapshot: bool = False) -> int:
        passes = pass_order(self.model, sampler.sample(t), distill)
        macs = sum(sum(self.cost.forward(c, self.size)) for c in passes) * (1 + BACKWARD_FACTOR) * self.batch
        return macs + (self.teacher if snapshot else 0)


def _progressive_samplers(sampler: ConfigSampler, num_configs: Optional[int]) -> List[ConfigSampler]:
    """The samplers of progressive shrinking: the two largest factors, the three largest, ..., all of L (``sampler``)."""
    factors, n = sampler.factors, sampler.num_stages
    out = []
    for m in range(2, len(factors)):
        some = factors[-m:]
        count = min(num_configs, m ** n) if (sampler.mode == "random" and num_configs) else None
        out.append(ConfigSampler(some, n, sampler.mode, sampler.seed, count))
    return out + [sampler]
