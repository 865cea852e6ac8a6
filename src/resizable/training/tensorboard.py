"""TensorBoard scalars of a training run (``--tensorboard DIR``): the epoch metrics, the step log, the learning rate.

The events of a run go to ``DIR/<run folder name>``, so that ``tensorboard --logdir DIR`` shows every
run given the same ``DIR`` beside the others, each under its own name. Every scalar's step is the
training step (the number of optimizer steps taken so far): a line of the step log
(``RUN/steps.jsonl``) at its step, an epoch's metrics at the epoch's last step. The tags:

- ``train/loss``, ``train/top1``: the epoch's mean training loss and the top-1 of its steps' predictions;
- ``<split>/top1/<config>``, ``<split>/top5/<config>``, ``<split>/loss/<config>``: each evaluated
  configuration (``<split>`` is ``val`` with ``--val-size``, else ``test``: the split the epoch evaluated);
- ``cost/macs``, ``cost/interp_macs``: the training MACs counted so far (``metrics.jsonl``'s cost entry);
- ``step/loss``, ``step/loss_mean``, ``step/loss_max``: the step log's loss, and the mean and the largest
  since its previous line;
- ``lr``: the learning rate of each step the step log records.

A continued run (``--resume``, or a run folder re-used after a run that finished no epoch) starts
its events at the checkpoint's step ``S`` with TensorBoard's restart marker for step ``S + 1``
(``SummaryWriter``'s ``purge_step``): readers then drop every earlier event at a step after ``S``,
including what a run killed after its last checkpoint had logged, so every curve has each step
once. Only the main process writes. The package is optional: ``pip install 'resizable[tensorboard]'``.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..utils.optional import require

__all__ = ["TENSORBOARD_MODULES", "TensorBoardLog", "require_tensorboard"]

TENSORBOARD_MODULES = ("tensorboard", "torch.utils.tensorboard")  # what SummaryWriter imports
_EVENT_TIME = re.compile(r"events\.out\.tfevents\.(\d+)\.")


def require_tensorboard() -> None:
    """Raise :class:`~resizable.utils.optional.MissingDependency` (one line, with the install command) unless the
    ``tensorboard`` package imports."""
    require(TENSORBOARD_MODULES, "--tensorboard")


class TensorBoardLog:
    """Writes a run's scalars under ``root / run_name``; does nothing when ``root`` is None or ``enabled`` is False.

    Args:
        root: the ``--tensorboard`` folder, or None.
        run_name: the run folder's name (the sub-folder the events go to).
        resume_step: the step the run continues from (0 for a new run).
        enabled: False on every process but the main one.
    """

    def __init__(self, root: Optional[str], run_name: str, *, resume_step: int = 0, enabled: bool = True) -> None:
        self.writer = None
        if not root or not enabled:
            return
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(root) / run_name
        earlier = _event_times(self.log_dir)
        purge = None
        if earlier:  # events written before: hide those past the step this run continues from
            purge = int(resume_step) + 1
            _wait_past(max(earlier))
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge)

    @property
    def enabled(self) -> bool:
        """Whether this process writes events."""
        return self.writer is not None

    def add_step(self, record: Optional[Dict[str, Any]]) -> None:
        """A line of the step log (:meth:`~resizable.training.steplog.StepLog.add`'s record; None: no line)."""
        if self.writer is None or record is None:
            return
        step = int(record["step"])
        for tag, key in (("step/loss", "loss"), ("step/loss_mean", "mean"), ("step/loss_max", "max"), ("lr", "lr")):
            self._scalar(tag, record.get(key), step)

    def add_epoch(self, record: Dict[str, Any]) -> None:
        """An epoch's record of ``metrics.jsonl``, at its ``step``; flushed, so that the events reach the disk
        before the epoch's checkpoint does."""
        if self.writer is None:
            return
        step = int(record["step"])
        self._scalar("train/loss", record.get("train_loss"), step)
        self._scalar("train/top1", record.get("train_top1"), step)
        split = record.get("eval_split", "val")
        for config, result in (record.get("eval") or {}).items():
            for metric in ("top1", "top5", "loss"):
                self._scalar(f"{split}/{metric}/{config}", result.get(metric), step)
        cost = record.get("cost")
        if cost:
            self._scalar("cost/macs", cost.get("total_macs"), step)
            self._scalar("cost/interp_macs", cost.get("total_interp_macs"), step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file (a second call does nothing)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # a non-finite loss is written as it is: the curve shows where the run blew up
            self.writer.add_scalar(tag, float(value), step)


def _event_times(log_dir: Path) -> List[int]:
    """The creation times (whole seconds, from their names) of the event files in ``log_dir``."""
    if not log_dir.is_dir():
        return []
    return [int(m.group(1)) for p in log_dir.iterdir() if (m := _EVENT_TIME.match(p.name))]


def _wait_past(second: int) -> None:
    """Wait until the clock is past ``second``: readers take a folder's event files in the order of their names,
    which start with the second they were made in, so the new file must not share the last one's second. (A file
    from a clock far ahead is not waited for: the wait is at most two seconds.)"""
    delay = second + 1 - time.time()
    if 0 < delay <= 2:
        time.sleep(delay + 0.01)
