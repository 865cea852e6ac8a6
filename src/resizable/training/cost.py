"""What a training run has computed: the multiply-accumulates of every pass that ran.

A pass of configuration ``c`` over ``B`` images costs ``B * fwd(c)`` forward, where ``fwd(c)`` is
:func:`resizable.count_macs` of ``c`` at the batch's image size (convolutions and linear layers, the
paper's "FLOPs"; the stage resizes counted apart, as everywhere in the library). A backward pass is
counted as twice its forward (the gradients with respect to the activations and to the weights
each cost about one forward), so a trained pass costs ``3 * B * fwd(c)``. A frozen teacher's
forward costs ``B * fwd(teacher)`` and has no backward. Counted: every pass a training step runs
(the step's configurations, the extra full pass of in-place distillation when the sampling did not
draw it, the members of ensemble distillation, the full configuration alone of a warm start) and
every teacher forward (``--teacher``, the warm start's snapshot). Not counted: evaluation, BN
calibration, the statistics bank, the one-time memory-format probe, and the element-wise work
(BN, activations, losses) that MACs leave out everywhere.

``B`` is the global batch (every rank's images): each rank counts the whole step, so every rank
holds the same totals and the run folder's record does not depend on the number of ranks.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch

from ..costs import config_costs
from ..macs import count_macs
from ..net import Config, ResizableNet

__all__ = ["BACKWARD_FACTOR", "TrainingCost"]

BACKWARD_FACTOR = 2  # a backward pass counted as this many forwards

Size = Tuple[int, int]


class TrainingCost:
    """Counts the MACs of a run's training passes, per epoch and in total (resumable with the checkpoint).

    Args:
        model: the (unwrapped) network being trained.
        world_size: the number of ranks (each one's batch is ``1 / world_size`` of the step's images).
    """

    def __init__(self, model: ResizableNet, world_size: int = 1) -> None:
        self.model = model
        self.world_size = int(world_size)
        self._tables: Dict[Size, Dict[Config, Tuple[int, int]]] = {}
        self._teachers: Dict[Tuple[int, int, int], Tuple[int, int]] = {}
        self.total = [0, 0]  # (macs, interp_macs) since the run started
        self.epoch = [0, 0]  # since the current epoch started
        self.counted_from_step = 0  # > 0 only for a run resumed from a checkpoint written before costs were counted

    # ------------------------------------------------------------------ forward costs per image
    def forward(self, config: Sequence[float], size: Size) -> Tuple[int, int]:
        """``(macs, interp_macs)`` of one image through ``config`` at ``size`` (``(H, W)``)."""
        size = (int(size[0]), int(size[1]))
        if size not in self._tables:  # every configuration at once, from k^2 counted forwards
            table = config_costs(self.model, size)
            self._tables[size] = {c: (m, r) for c, (m, r, _) in table.items()}
        return self._tables[size][tuple(float(f) for f in config)]

    def teacher_forward(self, teacher: ResizableNet, size: Size) -> Tuple[int, int]:
        """``(macs, interp_macs)`` of one image through a frozen teacher's active configuration."""
        key = (id(teacher), int(size[0]), int(size[1]))
        if key not in self._teachers:
            report = count_macs(teacher, None, (key[1], key[2]))
            self._teachers[key] = (report.macs, report.interp_macs)
        return self._teachers[key]

    def ranker(self, size: Size) -> Callable[[Config], int]:
        """``config -> forward MACs`` (resizes included) at ``size``: what "dearer" means in a step."""
        return lambda c: sum(self.forward(c, size))

    # ------------------------------------------------------------------ counting
    def step_cost(self, passes: Iterable[Sequence[float]], images: int, size: Size,
                  teacher: Optional[ResizableNet] = None) -> Tuple[int, int]:
        """``(macs, interp_macs)`` of one step: ``passes`` trained (forward and backward) on ``images``
        images (the global batch), plus one forward of ``teacher`` when given. Counts nothing."""
        macs = interp = 0
        for config in passes:
            m, r = self.forward(config, size)
            macs, interp = macs + m, interp + r
        macs, interp = macs * (1 + BACKWARD_FACTOR) * images, interp * (1 + BACKWARD_FACTOR) * images
        if teacher is not None:
            m, r = self.teacher_forward(teacher, size)
            macs, interp = macs + m * images, interp + r * images
        return macs, interp

    def add_step(self, passes: Iterable[Sequence[float]], images: torch.Tensor,
                 teacher: Optional[ResizableNet] = None) -> None:
        """Count a step that ran: ``passes`` are the configurations it trained (as
        :func:`resizable.training.step.train_step` reports them), ``images`` this rank's batch ``(B, C, H, W)``,
        ``teacher`` the frozen network whose forward gave the step's soft labels, if any."""
        macs, interp = self.step_cost(passes, images.shape[0] * self.world_size, tuple(images.shape[-2:]), teacher)
        self.epoch[0] += macs
        self.epoch[1] += interp
        self.total[0] += macs
        self.total[1] += interp

    def end_epoch(self) -> Dict[str, Any]:
        """The epoch's record (for ``metrics.jsonl``); the epoch's count starts again."""
        record = {"macs": self.epoch[0], "interp_macs": self.epoch[1], "total_macs": self.total[0],
                  "total_interp_macs": self.total[1], "backward_factor": BACKWARD_FACTOR}
        if self.counted_from_step:
            record["counted_from_step"] = self.counted_from_step
        self.epoch = [0, 0]
        return record

    def state_dict(self) -> Dict[str, Any]:
        return {"total_macs": self.total[0], "total_interp_macs": self.total[1],
                "counted_from_step": self.counted_from_step}

    def load_state_dict(self, state: Optional[Dict[str, Any]], step: int) -> None:
        """Continue the count of a checkpoint written at ``step``; one without a count (written before
        costs were counted) starts the total there, and every record says from which step it counts."""
        if state is None:
            self.total, self.counted_from_step = [0, 0], int(step)
        else:
            self.total = [int(state["total_macs"]), int(state["total_interp_macs"])]
            self.counted_from_step = int(state.get("counted_from_step", 0))
        self.epoch = [0, 0]
