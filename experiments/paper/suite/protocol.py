"""The one protocol every claim shares: network, data, hyper-parameters, epochs (full and --quick).

The network is a CIFAR-style ResNet-14 on Fashion-MNIST whose three stages run at 14/7/7 px (a
pooled stride-2 stem, stage strides 1/2/1): with L = (0.45, 0.65, 0.85, 1) every stage gets four
distinct resolutions (14: 6/9/12/14, 7: 3/5/6/7), so all 64 configurations are different networks.
The learning rate and the augmentation come from ``selection.json`` (chosen on val by
``select.py``); everything else is fixed here and shared by the RS network and every baseline.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

HOME = Path(__file__).resolve().parent.parent  # experiments/paper
RESULTS = HOME / "results"
SELECTION = RESULTS / "selection.json"
REPORT = RESULTS / "report.md"
# the READMEs that quote the headline between their paper marks (the repository's and the suite's own)
READMES = (HOME.parent.parent / "README.md", HOME / "README.md")


# TrainOptions defaults the suite's first results were trained with. The trainer's defaults are now the recipe
# chosen on val; every run of the suite that does not set these trains as it did then, and they stay out of a
# step's key when they come from here, so the results made before keep their keys.
# The statistics bank the trainer now measures after the last epoch is left out too: every evaluation of the suite
# names its BN statistics, and the Adapt step that uses a bank measures its own (a bank costs seconds per run).
PINNED = {"loss_reduction": "sum", "warmup_epochs": 0.0, "bn_bank": False}


@dataclass(frozen=True)
class Protocol:
    """Everything the suite's runs share (units: epochs, images, learning rate per step)."""

    model: str = "resnet14"
    model_args: Dict[str, Any] = field(default_factory=lambda: {
        "widths": [16, 32, 64], "stem_stride": 2, "stem_pool": True, "strides": [1, 2, 1]})
    factors: Tuple[float, ...] = (0.45, 0.65, 0.85, 1.0)
    dataset: str = "fashion-mnist"
    val_size: int = 5000          # held out of the 60k training images, the same for every run and seed
    val_seed: int = 0
    epochs: int = 6               # E: the RS network's and every baseline's epochs (T1 (b): RS gets 2E)
    batch_size: int = 128
    lr: float = 0.1               # replaced by the selection's choice
    augment: bool = True          # replaced by the selection's choice
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    max_steps_per_epoch: Optional[int] = None
    eval_calibrate_bn: int = 10   # BN recalibration batches (of eval_batch_size) before any evaluation
    eval_batch_size: int = 500
    # T2 and T9's Aug column: a training subset on which the all-1.0 baseline converges (train top-1 near 100 %,
    # val flat) within the same kind of step budget; the epochs were chosen on the first seed's val curve
    t2_train_size: int = 8000
    t2_epochs: int = 30
    target_top1: float = 88.0     # T11/T8: "steps to reach" this val top-1
    twin_floor: float = 92.0      # the all-1.0 twin must reach this test top-1 for the regime to count
    adapt_seeds: Tuple[int, ...] = (0, 1)
    adapt_epochs: int = 15
    quick: bool = False

    def train_args(self) -> Dict[str, Any]:
        """TrainOptions fields every run of the suite shares."""
        return dict(model=self.model, model_args=dict(self.model_args), factors=tuple(self.factors),
                    dataset=self.dataset, val_size=self.val_size, val_seed=self.val_seed, epochs=self.epochs,
                    batch_size=self.batch_size, lr=self.lr, augment=self.augment, weight_decay=self.weight_decay,
                    momentum=self.momentum, schedule=self.schedule, max_steps_per_epoch=self.max_steps_per_epoch,
                    eval_calibrate_bn=self.eval_calibrate_bn, eval_batch_size=self.eval_batch_size, progress=False)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def quick_protocol() -> Protocol:
    """Seconds per run: a narrow network, a few steps; exercises every path, proves nothing."""
    return Protocol(model_args={"widths": [4, 8, 8], "stem_stride": 2, "stem_pool": True, "strides": [1, 2, 1]},
                    val_size=200, epochs=2, batch_size=32, max_steps_per_epoch=3, eval_calibrate_bn=1,
                    eval_batch_size=100, t2_train_size=200, t2_epochs=2, target_top1=20.0, adapt_seeds=(0, 1),
                    adapt_epochs=1, quick=True)


def load_protocol(quick: bool, selection: Path = SELECTION) -> Tuple[Protocol, Dict[str, Any]]:
    """The protocol with the selection's hyper-parameters (when ``selection.json`` exists) and its record."""
    base = quick_protocol() if quick else Protocol()
    if quick or not selection.is_file():
        return base, {"source": "defaults (no selection.json)" if not quick else "quick mode: defaults"}
    record = json.loads(selection.read_text())
    chosen = record["chosen"]
    return dataclasses.replace(base, lr=float(chosen["lr"]), augment=bool(chosen["augment"])), record
