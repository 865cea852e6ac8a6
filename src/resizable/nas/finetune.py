"""Fine-tune one sub-network chosen by Resizable-NAS (paper section 4.2: 1 epoch helps, 15 is best).

The trainer runs with ``sampling="single"`` at the chosen configuration S, starting from the
checkpoint's weights: every step trains the shared convolution weights and S's BN branches only
(the other branches get no gradient, so neither the optimizer nor weight decay touches them). The
run folder is an ordinary training run whose checkpoint ``resizable export --config S`` accepts;
S is evaluated before and after (val and test) and both results land in ``finetune.json``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from ..utils.distributed import resolve_device
from ..configs import format_config, parse_config
from ..utils.fileio import atomic_write_text
from ..evaluation.walker import Calibration, evaluate
from ..trained_run import bn_statistics_option
from ..utils.options import check_options, option, required
from ..training.trainer import TrainOptions, train
from ..trained_run import TrainedRun

__all__ = ["FinetuneOptions", "finetune_checkpoint"]

_ARCH_KEYS = ("factors", "num_classes", "in_chans")


@dataclass(frozen=True)
class FinetuneOptions:
    """What ``resizable finetune`` needs; the rest of the recipe comes from the checkpoint's run."""

    checkpoint: Optional[str] = required("the trained ResizableNet (file or run folder)")
    config: Optional[str] = required("the sub-network to fine-tune, e.g. 0.45,0.65,1 (see resizable search)")
    epochs: int = option(1, "fine-tuning epochs (paper: 1 helps, 15 is best)", min=1)
    lr: Optional[float] = option(None, "peak learning rate, cosine-decayed "
                                       "(default: a tenth of the run's)", above=0.0, max=1e3)
    batch_size: Optional[int] = option(None, "batch size (default: the run's)", min=1)
    dataset: Optional[str] = option(None, "dataset (default: the run's)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the run's)")
    out_dir: str = option("runs", "parent folder of the new run folder")
    name: Optional[str] = option(None, "run folder name (default: <run>-ft-<config>)", component=True)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "seed of data order and augmentation", min=0, max=2**63 - 1)
    eval_batch_size: int = option(512, "evaluation batch size", min=1)
    bn_statistics: str = bn_statistics_option("score before and after with these BN statistics: bank (each "
                                              "configuration its own; built for the source weights when their "
                                              "checkpoint has none) or as-trained (the running averages)")
    calibrate_bn: int = option(0, "score before and after with BN statistics recomputed on "
                                  "this many training batches, as resizable table "
                                  "--calibrate-bn does (0: --bn-statistics)", min=0)
    calibrate_batch_size: int = option(256, "batch size of those batches (use the "
                                            "table's, to compare with it)", min=1)
    max_steps_per_epoch: Optional[int] = option(None, "cut epochs short (quick runs)", min=1)
    progress: bool = option(True, "progress bars")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def _train_options(cfg: FinetuneOptions, run: TrainedRun, config: tuple) -> TrainOptions:
    """The trainer's options: the run's recipe, fine-tuning ``config`` alone from the run's weights."""
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    base = {k: v for k, v in run.options.items() if k in known}
    kwargs = dict(run.payload["model_kwargs"])
    run_name = run.run_dir.name if run.is_run_folder else run.checkpoint.stem
    base.update(
        model=run.model_name,
        model_args={k: v for k, v in kwargs.items() if k not in _ARCH_KEYS},
        factors=tuple(kwargs.get("factors") or base.get("factors") or TrainOptions.factors),
        dataset=run.dataset, data_dir=run.data_dir,
        input_size=None if run.input_size == run.info.input_size else run.input_size,
        epochs=cfg.epochs,
        lr=cfg.lr if cfg.lr is not None else 0.1 * float(base.get("lr", TrainOptions.lr)),
        batch_size=cfg.batch_size or base.get("batch_size", TrainOptions.batch_size),
        schedule="cosine", milestones=(), warmup_epochs=0.0,
        sampling="single", single_config=config, num_configs=None, distill="none", teacher=None,
        warm_start="none",  # a warm start is how the source run began; fine-tuning one configuration has none
        recipe="standard", target=None,
        eval_configs=format_config(config),
        eval_batch_size=cfg.eval_batch_size,
        seed=cfg.seed, out_dir=cfg.out_dir,
        name=cfg.name or f"{run_name}-ft-{format_config(config, sep='-')}",
        resume=None, init_checkpoint=str(run.checkpoint),
        device=cfg.device, max_steps_per_epoch=cfg.max_steps_per_epoch, progress=cfg.progress,
    )
    return TrainOptions(**base)


def _basis(run: TrainedRun, cfg: FinetuneOptions) -> str:
    """Put ``run``'s network on the basis ``cfg`` asks for (building a missing bank by the trainer's rule)."""
    if cfg.calibrate_bn:
        return (f"recalibrated on {cfg.calibrate_bn} batches of {cfg.calibrate_batch_size}: "
                f"{run.calibration_note(cfg.calibrate_batch_size)}")
    if cfg.bn_statistics == "bank" and run.model.bank is None:
        run.model.attach_bank(run.build_bank(device=resolve_device(cfg.device)))
    return run.use_bn_statistics(cfg.bn_statistics)


def _scores(run: TrainedRun, model: Any, config: tuple, cfg: FinetuneOptions) -> Dict[str, Any]:
    """``config``'s top-1/top-5/loss on val (when the run holds images out) and test, on one BN basis."""
    model.to(resolve_device(cfg.device))
    calibrate = (Calibration(run.calibration_loader(cfg.calibrate_batch_size), cfg.calibrate_bn)
                 if cfg.calibrate_bn else None)
    splits = (["val"] if run.val_split is not None else []) + ["test"]
    return {split: evaluate(model, run.loader(split, cfg.eval_batch_size), [config], progress=cfg.progress,
                            calibrate=calibrate)[config] for split in splits}


def finetune_checkpoint(opts: FinetuneOptions) -> Path:
    """Fine-tune the sub-network ``opts.config`` of a trained checkpoint; returns the new run folder.

    The folder holds the trainer's files plus ``finetune.json``: the configuration and its scores
    before and after, on val (when the run holds images out) and test, with BN statistics as trained
    or recalibrated by the one rule of :class:`TrainedRun` (training images minus val).
    """
    run = TrainedRun.open(opts.checkpoint, dataset=opts.dataset, data_dir=opts.data_dir)
    config = run.model.check_config(parse_config(opts.config, run.model.factors, run.model.num_stages))
    tc = _train_options(opts, run, config)
    basis = _basis(run, opts)
    before = _scores(run, run.model, config, opts)  # before and after on one basis
    run_dir = train(tc)  # its checkpoint gets the bank of the fine-tuned weights (the trainer's rule)
    tuned = TrainedRun.open(run_dir, dataset=run.dataset, data_dir=run.data_dir)
    after_basis = _basis(tuned, opts)
    after = _scores(tuned, tuned.model, config, opts)
    summary = {"config": format_config(config), "from": str(run.checkpoint), "epochs": opts.epochs, "lr": tc.lr,
               "dataset": run.dataset, "splits": list(before), "bn_statistics": basis,
               "bn_statistics_after": after_basis,
               "before": before, "after": after}
    atomic_write_text(run_dir / "finetune.json", json.dumps(summary, indent=1) + "\n")
    return run_dir
