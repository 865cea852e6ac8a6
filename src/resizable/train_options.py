"""The options of a training run: one frozen dataclass, checked when built, written to ``RUN/config.yaml``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .step import DISTILL_MODES, LOSS_REDUCTIONS
from .imagefolder import BAD_IMAGES
from .options import option
from .sampling import SAMPLING_MODES

__all__ = ["TrainOptions", "SCHEDULES", "RECIPES", "LOSS_REDUCTIONS"]

SCHEDULES = ("cosine", "step", "linear", "constant")
RECIPES = ("standard", "aug")


@dataclass(frozen=True)
class TrainOptions:
    """Everything a training run needs; written to ``RUN/config.yaml``."""

    # what to train
    model: str = option("resnet20", "registered model name (see `resizable models`)")
    model_args: Dict[str, Any] = option({}, "architecture arguments, YAML mapping, e.g. '{widths: [8, 16, 32]}'")
    factors: Tuple[float, ...] = option((0.45, 0.65, 0.85, 1.0), "scaling factor list L, comma-separated")
    # data
    dataset: str = option("fashion-mnist", "fashion-mnist, cifar10, cifar100 or imagefolder")
    data_dir: Optional[str] = option(None, "dataset folder (default: the system location)")
    download: bool = option(False, "download the dataset if missing (needs internet)")
    input_size: Optional[int] = option(None, "input resolution (default: the dataset's)")
    augment: bool = option(True, "random crop and flip on training images")
    val_size: int = option(0, "hold out this many training images as the 'val' split (the last ones of a permutation "
                            "drawn from --val-seed; never trained on; recorded in the checkpoint). 0: no val split")
    val_seed: int = option(0, "seed of the permutation that picks the held-out images (independent of --seed, so "
                            "runs of several seeds hold out the same images)")
    train_size: int = option(0, "train on only this many training images (after --val-size's are held out): the "
                              "first ones of a permutation drawn from --val-seed, the same for every --seed. "
                              "0: all of them")
    workers: int = option(0, "data-loading worker processes (imagefolder)")
    bad_images: str = option("error", "imagefolder: an unreadable image stops the run naming it (error), is left out "
                                    "with a warning (skip), or every image is checked before training (scan)",
                           choices=BAD_IMAGES)
    # optimisation (units: epochs, images per step over all ranks, learning rate per step)
    epochs: int = option(10, "training epochs")
    batch_size: int = option(128, "global mini-batch size (split over ranks)")
    lr: float = option(0.1, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(False, "Nesterov momentum")
    weight_decay: float = option(5e-4, "weight decay (not on BN parameters and biases)")
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    milestones: Tuple[int, ...] = option((), "epochs where the step schedule multiplies the rate by gamma")
    gamma: float = option(0.1, "step schedule factor")
    warmup_epochs: float = option(0.0, "linear warm-up length in epochs")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy")
    # Algorithm 1
    sampling: str = option("fair", "how each step picks its configurations", choices=SAMPLING_MODES)
    num_configs: Optional[int] = option(None, "configurations per step for random/single (default: k / 1)")
    single_config: Optional[Tuple[float, ...]] = option(None, "the configuration of --sampling single (default all max)")
    recipe: str = option("standard", "standard, or aug: fair sampling then fine-tune --target", choices=RECIPES)
    target: Optional[Tuple[float, ...]] = option(None, "Resizable-Aug target configuration (default all max)")
    aug_fraction: float = option(2 / 3, "Resizable-Aug: fraction of epochs with fair sampling")
    loss_reduction: str = option("sum", "how a step's k losses combine: sum (Algorithm 1: gradients add up) or mean "
                                      "(divided by k, the gradient scale of one network)", choices=LOSS_REDUCTIONS)
    distill: str = option("none", "distillation inside the step: none; full (the full configuration, on the labels, "
                                "teaches the step's others with its detached softmax; an extra pass when the "
                                "sampling does not draw it); largest (the step's largest configuration teaches); "
                                "ensemble (every configuration on the labels, plus KD from the learned ensemble of "
                                "the step's logits)", choices=DISTILL_MODES)
    distill_weight: float = option(1.0, "--distill full/largest: the taught configurations' loss is (1 - w) CE + w KD; "
                                      "--distill ensemble: CE + w KD")
    teacher: Optional[str] = option(None, "a frozen teacher (checkpoint or run folder, e.g. the network the run starts "
                                        "from): every configuration's loss is CE + --teacher-weight x KD")
    teacher_weight: float = option(1.0, "--teacher: weight of the KD term")
    # evaluation and bookkeeping
    eval_configs: str = option("default", "configs evaluated each epoch: default (each factor at every stage), "
                                        "minmax, all, or a list like '0.45,0.45,0.45;1,1,1'")
    eval_batch_size: int = option(512, "evaluation batch size")
    eval_calibrate_bn: int = option(10, "training batches to recompute each evaluated configuration's BN "
                                      "statistics on (0: use the running statistics)")
    seed: int = option(0, "seed of weights init, data order, augmentation and configuration sampling")
    out_dir: str = option("runs", "parent folder of run folders")
    name: Optional[str] = option(None, "run folder name (default: model-dataset-time)")
    resume: Optional[str] = option(None, "run folder (or checkpoint) to continue")
    init_checkpoint: Optional[str] = option(None, "start from these weights (a checkpoint or run folder)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    amp: bool = option(False, "mixed precision (float16 on CUDA, bfloat16 on CPU)")
    channels_last: Optional[bool] = option(None, "channels-last memory format (--no-channels-last: contiguous); "
                                                 "default: contiguous on a CPU, on CUDA the faster of the two in "
                                                 "one forward/backward on the first batch")
    max_steps_per_epoch: Optional[int] = option(None, "cut every epoch after this many steps (quick runs)")
    log_every: int = option(50, "write the training loss to RUN/steps.jsonl every N steps (and each of the first N)")
    progress: bool = option(True, "show progress bars (the line per epoch is printed either way)")

    def __post_init__(self) -> None:
        if isinstance(self.distill, bool):  # the option was a switch: true meant the step's largest configuration
            object.__setattr__(self, "distill", "largest" if self.distill else "none")
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (0 < self.aug_fraction <= 1, f"aug_fraction must be in (0, 1], got {self.aug_fraction}"),
            (self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; accepted: {', '.join(SCHEDULES)}"),
            (self.sampling in SAMPLING_MODES, f"unknown sampling {self.sampling!r}; accepted: {', '.join(SAMPLING_MODES)}"),
            (self.loss_reduction in LOSS_REDUCTIONS,
             f"unknown loss_reduction {self.loss_reduction!r}; accepted: {', '.join(LOSS_REDUCTIONS)}"),
            (0 <= self.distill_weight <= 1, f"distill_weight must be in [0, 1], got {self.distill_weight}"),
            (self.distill in DISTILL_MODES,
             f"unknown distill {self.distill!r}; accepted: {', '.join(DISTILL_MODES)}"),
            (self.teacher_weight >= 0, f"teacher_weight must be >= 0, got {self.teacher_weight}"),
            (self.teacher is None or self.distill == "none",
             f"--teacher and --distill {self.distill} exclude each other: use one source of soft labels"),
            (self.val_size >= 0, f"val_size must be >= 0, got {self.val_size}"),
            (self.train_size >= 0, f"train_size must be >= 0 (0: every training image), got {self.train_size}"),
            (self.val_size == 0 or self.dataset != "imagefolder",
             "--val-size is for fashion-mnist and cifar: an image folder's val/ folder is its validation split"),
            (self.recipe in RECIPES, f"unknown recipe {self.recipe!r}; accepted: {', '.join(RECIPES)}"),
            (self.bad_images in BAD_IMAGES,
             f"unknown bad_images {self.bad_images!r}; accepted: {', '.join(BAD_IMAGES)}"),
            (self.input_size is None or self.input_size >= 1, f"input_size must be >= 1, got {self.input_size}"),
            (self.workers >= 0, f"workers must be >= 0, got {self.workers}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (isinstance(self.model_args, dict), f"model_args must be a mapping, got {self.model_args!r}"),
            (self.eval_calibrate_bn >= 0, f"eval_calibrate_bn must be >= 0, got {self.eval_calibrate_bn}"),
            (self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
             f"max_steps_per_epoch must be >= 1, got {self.max_steps_per_epoch}"),
            (self.schedule != "step" or bool(self.milestones), "the step schedule needs --milestones, e.g. 30,60,80"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
