"""The options of a training run: one frozen dataclass, checked when built, written to ``RUN/config.yaml``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .step import DISTILL_MODES, LOSS_REDUCTIONS
from .warmstart import WARM_STARTS, WARM_TEACHERS
from ..data.imagefolder import BAD_IMAGES
from ..utils.options import check_options, option
from ..sampling import SAMPLING_MODES

__all__ = ["TrainOptions", "SCHEDULES", "RECIPES", "LOSS_REDUCTIONS"]

SCHEDULES = ("cosine", "step", "linear", "constant")
RECIPES = ("standard", "aug")
MODEL_ARGS_FROM_DATA = ("num_classes", "in_chans", "factors")


@dataclass(frozen=True)
class TrainOptions:
    """Everything a training run needs; written to ``RUN/config.yaml``."""

    # what to train
    model: str = option("resnet20", "registered model name (see `resizable models`)")
    model_args: Dict[str, Any] = option({}, "architecture arguments, YAML mapping, e.g. '{widths: [8, 16, 32]}'")
    factors: Tuple[float, ...] = option((0.45, 0.65, 0.85, 1.0), "scaling factor list L, comma-separated",
                                        min=0.05, max=1.0)
    # data
    dataset: str = option("fashion-mnist", "fashion-mnist, cifar10, cifar100 or imagefolder")
    data_dir: Optional[str] = option(None, "dataset folder (default: the system location)")
    download: bool = option(False, "download the dataset if missing (needs internet)")
    input_size: Optional[int] = option(None, "input resolution (default: the dataset's)", min=1, max=4096)
    augment: bool = option(True, "random crop and flip on training images")
    val_size: int = option(0, "hold out this many training images as the 'val' split (the last ones of a permutation "
                            "drawn from --val-seed; never trained on; recorded in the checkpoint). 0: no val split", min=0)
    val_seed: int = option(0, "seed of the permutation that picks the held-out images (independent of --seed, so "
                            "runs of several seeds hold out the same images)", min=0, max=2**63 - 1)
    train_size: int = option(0, "train on only this many training images (after --val-size's are held out): the "
                              "first ones of a permutation drawn from --val-seed, the same for every --seed. "
                              "0: all of them", min=0)
    workers: int = option(0, "data-loading worker processes (imagefolder)", min=0, max=256)
    bad_images: str = option("error", "imagefolder: an unreadable image stops the run naming it (error), is left out "
                                    "with a warning (skip), or every image is checked before training (scan)",
                           choices=BAD_IMAGES)
    # optimisation (units: epochs, images per step over all ranks, learning rate per step)
    epochs: int = option(10, "training epochs", min=1, max=100000)
    batch_size: int = option(128, "global mini-batch size (split over ranks)", min=1)
    lr: float = option(0.2, "peak learning rate (the default was chosen on val with --batch-size 128)", above=0.0,
                       max=1e3)
    momentum: float = option(0.9, "SGD momentum", min=0.0, below=1.0)
    nesterov: bool = option(False, "Nesterov momentum")
    weight_decay: float = option(5e-4, "weight decay (not on BN parameters and biases)", min=0.0, max=1.0)
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    milestones: Tuple[int, ...] = option((), "epochs where the step schedule multiplies the rate by gamma", min=1)
    gamma: float = option(0.1, "step schedule factor", above=0.0, max=1.0)
    warmup_epochs: Optional[float] = option(None, "linear warm-up length in epochs (default: half of --epochs, "
                                                  "chosen on val; fixed when the run starts: config.yaml records "
                                                  "it and --resume keeps it)",
                                            min=0.0)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy", min=0.0, below=1.0)
    # Algorithm 1
    sampling: str = option("fair", "how each step picks its configurations", choices=SAMPLING_MODES)
    num_configs: Optional[int] = option(None, "configurations per step for random/single (default: k / 1)", min=1)
    single_config: Optional[Tuple[float, ...]] = option(None, "the configuration of --sampling single (default all max)")
    recipe: str = option("standard", "standard, or aug: fair sampling then fine-tune --target", choices=RECIPES)
    target: Optional[Tuple[float, ...]] = option(None, "Resizable-Aug target configuration (default all max)")
    aug_fraction: float = option(2 / 3, "Resizable-Aug: fraction of epochs with fair sampling", above=0.0, max=1.0)
    loss_reduction: str = option("mean", "how a step's k losses combine: mean (divided by k, the gradient scale of "
                                       "one network; the default, chosen on val) or sum (the paper's Algorithm 1: "
                                       "the k gradients add up)", choices=LOSS_REDUCTIONS)
    distill: str = option("none", "distillation inside the step: none; full (the full configuration, on the labels, "
                                "teaches the step's others with its detached softmax; an extra pass when the "
                                "sampling does not draw it); largest (the step's largest configuration teaches); "
                                "ensemble (every configuration on the labels, plus KD from the learned ensemble of "
                                "the step's logits)", choices=DISTILL_MODES)
    distill_weight: float = option(1.0, "--distill full/largest (and --warm-start-teacher inplace): the taught "
                                      "configurations' loss is (1 - w) CE + w KD; --distill ensemble: CE + w KD",
                                   min=0.0, max=1.0)
    distill_temperature: float = option(1.0, "temperature T of every distillation term (--distill, --teacher, "
                                            "--warm-start-teacher): the teacher's softmax(z/T) against the student's "
                                            "log_softmax(z/T), the term multiplied by T^2; 1 is plain soft labels",
                                        above=0.0, max=100.0)
    distill_top_down: bool = option(True, "--distill ensemble: each configuration also learns from the detached "
                                          "output of every dearer configuration of the step (by counted MACs), the "
                                          "KD terms scaled by 2/(k+1), as RS-Nets; --no-distill-top-down: from the "
                                          "ensemble alone")
    teacher: Optional[str] = option(None, "a frozen teacher (checkpoint or run folder, e.g. the network the run starts "
                                        "from): every configuration's loss is CE + --teacher-weight x KD")
    teacher_weight: float = option(1.0, "--teacher (and --warm-start-teacher snapshot): weight of the KD term",
                                   min=0.0, max=1e3)
    warm_start: str = option("none", "full: the full configuration alone for --warm-start-share of the counted cost, "
                                   "then --sampling over every factor; the run costs what --epochs epochs without "
                                   "the warm start cost, so it has more steps (docs/training.md). progressive: after "
                                   "the full configuration alone, the smaller factors join one at a time",
                             choices=WARM_STARTS)
    warm_start_share: float = option(0.3, "--warm-start: share of the run's counted training cost (MACs) spent on the "
                                          "full configuration alone", above=0.0, below=1.0)
    warm_start_teacher: str = option("inplace", "--warm-start: who teaches after the switch: inplace (the running "
                                                "full configuration, as --distill full), snapshot (the network frozen "
                                                "at the switch, as --teacher) or none", choices=WARM_TEACHERS)
    # evaluation and bookkeeping
    eval_configs: str = option("default", "configs evaluated each epoch: default (each factor at every stage), "
                                        "minmax, all, or a list like '0.45,0.45,0.45;1,1,1'")
    eval_batch_size: int = option(512, "evaluation batch size", min=1)
    eval_calibrate_bn: int = option(10, "training batches to recompute each evaluated configuration's BN "
                                      "statistics on (0: use the running statistics)", min=0)
    seed: int = option(0, "seed of weights init, data order, augmentation and configuration sampling", min=0, max=2**63 - 1)
    out_dir: str = option("runs", "parent folder of run folders")
    name: Optional[str] = option(None, "run folder name (default: model-dataset-time)", component=True)
    resume: Optional[str] = option(None, "run folder (or checkpoint) to continue")
    init_checkpoint: Optional[str] = option(None, "start from these weights (a checkpoint or run folder)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    amp: bool = option(False, "mixed precision (float16 on CUDA, bfloat16 on CPU)")
    channels_last: Optional[bool] = option(None, "channels-last memory format (--no-channels-last: contiguous); "
                                                 "default: contiguous on a CPU, on CUDA the faster of the two in "
                                                 "one forward/backward on the first batch")
    max_steps_per_epoch: Optional[int] = option(None, "cut every epoch after this many steps (quick runs)", min=1)
    log_every: int = option(50, "write the training loss to RUN/steps.jsonl every N steps (and each of the first N)",
                             min=1)
    tensorboard: Optional[str] = option(None, "also write the epoch metrics, the step log's loss and the learning "
                                              "rate as TensorBoard scalars, into the folder of DIR named as the run "
                                              "folder (needs: pip install 'resizable[tensorboard]'); --resume RUN "
                                              "--tensorboard '' stops writing them", metavar="DIR")
    divergence_ratio: float = option(100.0, "stop as diverged at a step whose loss (the mean over its "
                                            "configurations) is more than this many times the loss of the run's "
                                            "first step, or of ln(classes) (a uniform guess) when that is larger; "
                                            "0: only a NaN or infinite loss stops. Either way an epoch whose "
                                            "weights, BN statistics or optimizer state are not finite stops the "
                                            "run before its checkpoint is written", min=0.0)
    bn_bank: bool = option(True, "after the last epoch, measure every configuration's BN statistics into the "
                                 "checkpoint (the statistics bank that eval, table, export and adapt use; "
                                 "resizable calibrate RUN builds it later)")
    progress: bool = option(True, "show progress bars (the line per epoch is printed either way)")

    @property
    def warmup(self) -> float:
        """The warm-up in epochs: ``warmup_epochs``, or half of ``epochs`` when it is None (the default)."""
        return self.epochs / 2 if self.warmup_epochs is None else self.warmup_epochs

    def __post_init__(self) -> None:
        if isinstance(self.distill, bool):  # the option was a switch: true meant the step's largest configuration
            object.__setattr__(self, "distill", "largest" if self.distill else "none")
        if self.tensorboard == "":  # how a resumed run turns the option off
            object.__setattr__(self, "tensorboard", None)
        check_options(self)  # types and the bounds declared above
        fixed = sorted(set(self.model_args) & set(MODEL_ARGS_FROM_DATA))
        checks = [
            (not fixed, f"--model-args {fixed}: set by the data and --factors, not by --model-args (accepted there: "
                        f"the architecture's own arguments, e.g. widths)"),
            (self.teacher is None or self.distill == "none",
             f"--teacher and --distill {self.distill} exclude each other: use one source of soft labels"),
            (self.warm_start == "none" or (self.distill == "none" and self.teacher is None),
             "--warm-start sets who teaches after its switch (--warm-start-teacher inplace, snapshot or none); "
             "leave --distill none and --teacher unset"),
            (self.warm_start == "none" or (self.recipe == "standard" and self.sampling != "single"),
             "--warm-start switches to resizable training: it needs --recipe standard and --sampling fair, "
             "sandwich or random"),
            (self.val_size == 0 or self.dataset != "imagefolder",
             "--val-size is for fashion-mnist and cifar: an image folder's val/ folder is its validation split"),
            (self.schedule != "step" or bool(self.milestones), "the step schedule needs --milestones, e.g. 30,60,80"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
