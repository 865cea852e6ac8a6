"""Fine-tune one sub-network chosen by Resizable-NAS (paper section 4.2: 1 epoch helps, 15 is best).

The trainer runs with ``sampling="single"`` at the chosen configuration S, starting from the
checkpoint's weights: every step trains the shared convolution weights and S's BN branches only
(the other branches get no gradient, so neither the optimizer nor weight decay touches them). The
run folder is an ordinary training run whose checkpoint ``resizable export --config S`` accepts;
S is evaluated before and after and both results land in ``finetune.json`` and in the checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from .checkpoint import (CHECKPOINT_NAME, run_options, atomic_save, check_model_fits, load_checkpoint, load_model,
                         resolve_checkpoint)
from .data import dataset_info, load_dataset, make_loader
from .distributed import resolve_device
from .configs import format_config, parse_config
from .fileio import atomic_write_text
from .evaluate import Calibration, evaluate
from .options import check_options, option, required
from .train import TrainOptions, train

__all__ = ["FinetuneOptions", "finetune"]

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
    calibrate_bn: int = option(0, "score before and after with BN statistics recomputed on "
                                  "this many training batches, as resizable table "
                                  "--calibrate-bn does (0: the statistics as trained)", min=0)
    calibrate_batch_size: int = option(256, "batch size of those batches (use the "
                                            "table's, to compare with it)", min=1)
    max_steps_per_epoch: Optional[int] = option(None, "cut epochs short (quick runs)", min=1)
    progress: bool = option(True, "progress bars")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def _train_options(cfg: FinetuneOptions, payload: Dict[str, Any], config: tuple, input_size: Optional[int]) -> TrainOptions:
    base = run_options(payload)
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    base = {k: v for k, v in base.items() if k in known}
    kwargs = dict(payload["model_kwargs"])
    dataset = cfg.dataset or base.get("dataset")
    if not dataset:
        raise ValueError("the checkpoint does not name its dataset; pass --dataset")
    source = resolve_checkpoint(cfg.checkpoint)
    run_name = source.parent.name if source.name == CHECKPOINT_NAME else source.stem
    lr = cfg.lr if cfg.lr is not None else 0.1 * float(base.get("lr", TrainOptions.lr))
    base.update(
        model=payload["model_name"],
        model_args={k: v for k, v in kwargs.items() if k not in _ARCH_KEYS},
        factors=tuple(kwargs.get("factors") or base.get("factors") or TrainOptions.factors),
        dataset=dataset,
        data_dir=cfg.data_dir or (base.get("data_dir") if dataset == base.get("dataset") else None),
        input_size=input_size,
        epochs=cfg.epochs,
        lr=lr,
        batch_size=cfg.batch_size or base.get("batch_size", TrainOptions.batch_size),
        schedule="cosine", milestones=(), warmup_epochs=0.0,
        sampling="single", single_config=config, num_configs=None,
        recipe="standard", target=None,
        eval_configs=format_config(config),
        eval_batch_size=cfg.eval_batch_size,
        seed=cfg.seed, out_dir=cfg.out_dir,
        name=cfg.name or f"{run_name}-ft-{format_config(config, sep='-')}",
        resume=None, init_checkpoint=str(source),
        device=cfg.device, max_steps_per_epoch=cfg.max_steps_per_epoch, progress=cfg.progress,
    )
    return TrainOptions(**base)


def finetune(cfg: FinetuneOptions) -> Path:
    """Fine-tune the sub-network ``cfg.config`` of a trained checkpoint; returns the new run folder.

    The folder holds the trainer's files plus ``finetune.json`` (the configuration, top-1/top-5
    before and after); its ``checkpoint.pt`` also records them under ``"finetune"``.
    """
    model, payload = load_model(cfg.checkpoint)
    config = model.check_config(parse_config(cfg.config, model.factors, model.num_stages))
    train_cfg = run_options(payload)
    dataset = cfg.dataset or train_cfg.get("dataset")
    if not dataset:
        raise ValueError("the checkpoint does not name its dataset; pass --dataset")
    data_dir = cfg.data_dir or (train_cfg.get("data_dir") if dataset == train_cfg.get("dataset") else None)
    input_size = payload.get("input_size") or train_cfg.get("input_size")
    info = dataset_info(dataset, data_dir)
    check_model_fits(model.num_classes, model.in_chans, info, resolve_checkpoint(cfg.checkpoint))
    native = info.input_size
    input_size = None if input_size in (None, native) else int(input_size)
    tc = _train_options(cfg, payload, config, input_size)

    device = resolve_device(cfg.device)
    test_set = load_dataset(dataset, "test", data_dir=data_dir, augment=False, input_size=input_size)
    loader = make_loader(test_set, cfg.eval_batch_size, shuffle=False)
    calibrate, basis = None, "as trained (running averages)"
    if cfg.calibrate_bn:
        train_set = load_dataset(dataset, "train", data_dir=data_dir, augment=False, input_size=input_size)
        calibrate = Calibration(make_loader(train_set, cfg.calibrate_batch_size, shuffle=True, seed=0, drop_last=True),
                                cfg.calibrate_bn)
        basis = (f"recalibrated on {cfg.calibrate_bn} training batches of {cfg.calibrate_batch_size} "
                 f"(shuffled with seed 0), as resizable table --calibrate-bn")
    # before and after on one basis, the one the lookup table used when it was built the same way
    before = evaluate(model.to(device), loader, [config], progress=cfg.progress, calibrate=calibrate)[config]

    run_dir = train(tc)
    tuned, tuned_payload = load_model(run_dir)
    after = evaluate(tuned.to(device), loader, [config], progress=cfg.progress, calibrate=calibrate)[config]
    summary = {"config": format_config(config), "from": str(resolve_checkpoint(cfg.checkpoint)),
               "epochs": cfg.epochs, "lr": tc.lr, "dataset": dataset, "split": "test", "bn_statistics": basis,
               "before": before, "after": after}
    atomic_write_text(run_dir / "finetune.json", json.dumps(summary, indent=1) + "\n")
    raw = load_checkpoint(run_dir)
    raw["finetune"] = summary
    atomic_save(raw, run_dir / CHECKPOINT_NAME)
    return run_dir
