"""Training a ResizableNet (paper Algorithm 1), single process or under torchrun/DDP.

One step: the sampler gives the step's configurations; the same mini-batch goes through each of
them, each loss is back-propagated on its own (activations of one configuration at a time), the
gradients add up, and the optimizer steps once. Under DDP the first k-1 backward passes run in
``no_sync`` and the last one all-reduces every gradient, including those of BN branches that only
earlier configurations used (hence ``find_unused_parameters=True``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..utils import distributed
from .cost import TrainingCost
from .memory_format import MemoryFormatChoice, auto_memory_format
from .schedule import build_optimizer, lr_factor
from .step import EnsembleWeights, StepTally, train_step
from .teacher import load_teacher, teacher_probs
from .warmstart import WarmStart
from ..bnbank import scale_batchnorms
from ..checkpoint import CHECKPOINT_NAME, check_model_fits, load_checkpoint, load_weights, save_checkpoint
from ..utils.options import write_options
from ..utils.console import progress_enabled
from ..data.datasets import dataset_info, load_dataset, make_loader
from ..configs import format_config, parse_configs
from ..evaluation.walker import Calibration, evaluate
from ..utils.fileio import atomic_write_text
from ..data.imagefolder import scan_images
from ..registry import create_model
from .run_folder import (check_new_run_folder, hold_run_folder, record_resume, resume_changes, resume_folder,
                         saved_options)
from ..sampling import ConfigSampler
from .steplog import STEPS_FILE, StepLog
from .tensorboard import TensorBoardLog, require_tensorboard
from ..data.splits import ValSplit, check_val_size, load_split, training_subset, val_split_of
from .options import TrainOptions
from .divergence import TrainingDiverged, loss_limit, state_problem, step_problem, stopped

__all__ = ["TrainOptions", "TrainingDiverged", "train", "TrainingRun", "build_optimizer", "lr_factor"]



# ---------------------------------------------------------------------------- the run
def _with_warmup(cfg: TrainOptions) -> TrainOptions:
    """``cfg`` with its warm-up fixed: as given, else the resumed run's, else half of ``epochs`` (the default)."""
    if cfg.warmup_epochs is not None:
        return cfg
    run = resume_folder(cfg.resume) if cfg.resume else None
    before = saved_options(run, TrainOptions).get("warmup_epochs") if run is not None and (
        (run / "config.yaml").is_file() or (run / CHECKPOINT_NAME).is_file()) else None
    return dataclasses.replace(cfg, warmup_epochs=before if before is not None else cfg.warmup)


class TrainingRun:
    """State of one training run (kept off the model: models hold no training logic)."""

    def __init__(self, cfg: TrainOptions) -> None:
        self.cfg = cfg = _with_warmup(cfg)
        if cfg.tensorboard:
            require_tensorboard()  # a missing package stops the run before it writes or loads anything
        self.dist = distributed.setup(cfg.device)
        if cfg.batch_size % self.dist.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {self.dist.world_size} ranks")
        if cfg.amp and self.dist.device.type == "cpu" and not hasattr(torch, "bfloat16"):
            raise ValueError("amp on CPU needs bfloat16 support")
        # Everything is checked before the run folder is made: a refused run leaves nothing behind.
        self.run_dir, self.resume_changes, self.reused = self._plan_run_dir()
        self.lock = None  # RUN/.lock, held by the main process from the first write to the end
        self._setup_data()
        self._setup_model()
        self._setup_sampling()
        self._setup_optimisation()
        self.start_epoch = 0
        self.step = 0
        self.history: List[Dict[str, Any]] = []
        self.loss_start: Optional[float] = None  # the loss of the run's first step: what --divergence-ratio scales
        if cfg.resume and (self.run_dir / CHECKPOINT_NAME).is_file():
            self._load_resume()
        elif cfg.resume:
            self._say(f"{self.run_dir} holds no finished epoch; starting it from the beginning")
        self._open_run_dir()
        self.steplog = StepLog(self.run_dir / STEPS_FILE, cfg.log_every, resume_step=self.step,
                               enabled=self.dist.is_main)
        self.tb = TensorBoardLog(cfg.tensorboard, self.run_dir.name, resume_step=self.step, enabled=self.dist.is_main)
        self.ddp: Optional[nn.parallel.DistributedDataParallel] = None  # made once the memory format is set

    def _setup_data(self) -> None:
        """The dataset's description, the held-out split, and the training, evaluation and calibration images."""
        cfg = self.cfg
        if cfg.dataset == "imagefolder":  # listing a large folder takes a while: say what is happening
            self._say(f"reading the image folder {cfg.data_dir} (classes, channels, size, statistics) ...")
        info = self.info = dataset_info(cfg.dataset, cfg.data_dir)
        self.input_size = cfg.input_size or info.input_size
        self._say(f"data: {info.note}" if info.note else
                  f"data: {info.name}, {info.num_classes} classes, {info.in_chans} channel(s), {self.input_size} px")
        if info.name == "imagefolder" and cfg.bad_images == "scan" and self.dist.is_main:
            self._say(f"scanning every image of {cfg.data_dir} (--bad-images scan) ...")
            self._say(f"all {scan_images(str(cfg.data_dir))} images are readable")
        load = dict(data_dir=cfg.data_dir, input_size=cfg.input_size, bad_images=cfg.bad_images)
        self.val_split = self._val_split(load)
        self.train_set = training_subset(load_split(cfg.dataset, "train", val_split=self.val_split,
                                                    download=cfg.download, augment=cfg.augment, **load),
                                         cfg.train_size, cfg.val_seed)
        # with a held-out split, the per-epoch evaluation (what a user picks epochs by) never sees the test set
        self.eval_split = "val" if self.val_split is not None else "test"
        self.eval_set = load_split(cfg.dataset, self.eval_split, val_split=self.val_split, download=cfg.download,
                                   augment=False, **load)
        labels = getattr(self.train_set, "labels", None)
        if labels is not None and labels.unique().numel() < 2:
            raise ValueError(f"every training image of {cfg.dataset} ({cfg.data_dir or 'the system copy'}) has the "
                             f"same label; a classifier needs at least 2 classes")
        # BN recalibration before evaluation sees training images as the test will see them
        self.calib_set = (training_subset(load_split(cfg.dataset, "train", val_split=self.val_split, augment=False,
                                                     **load), cfg.train_size, cfg.val_seed)
                          if cfg.eval_calibrate_bn else None)

    def _setup_model(self) -> None:
        """The network (seeded), its initial weights when given, its device and memory format, the teacher."""
        cfg, info = self.cfg, self.info
        self.model_kwargs = {"factors": tuple(cfg.factors), "num_classes": info.num_classes,
                             "in_chans": info.in_chans, **cfg.model_args}
        torch.manual_seed(cfg.seed)  # weight init only; DDP also broadcasts rank 0's weights
        self.model = create_model(cfg.model, **self.model_kwargs)
        if cfg.init_checkpoint:
            self._load_initial_weights()
        self.model.to(self.dist.device)
        self.memory_format: Optional[MemoryFormatChoice] = None
        if cfg.channels_last is not None:
            self._use_memory_format(MemoryFormatChoice(cfg.channels_last, f"set: channels_last={cfg.channels_last}",
                                                       {}))
        self.teacher = load_teacher(cfg.teacher, info, self.dist.device) if cfg.teacher else None

    def _load_initial_weights(self) -> None:
        cfg = self.cfg
        payload = load_checkpoint(cfg.init_checkpoint)
        kw = payload["model_kwargs"]
        check_model_fits(int(kw.get("num_classes", 0)), int(kw.get("in_chans", 0)), self.info, cfg.init_checkpoint)
        if payload["model_name"] != cfg.model:
            raise ValueError(f"--init-checkpoint {cfg.init_checkpoint} holds {payload['model_name']}, not {cfg.model}")
        load_weights(self.model, payload["model"], cfg.init_checkpoint)
        before = val_split_of(payload)
        if before is not None and (self.val_split is None or before.seed != self.val_split.seed
                                   or before.size != self.val_split.size):
            self._say(f"warning: {cfg.init_checkpoint} was trained with the held-out split {before.to_dict()}; "
                      f"this run holds out {self.val_split.to_dict() if self.val_split else 'nothing'}, so its "
                      f"training images may include images the initial weights were selected on")

    def _setup_sampling(self) -> None:
        """Which configurations each step trains, which ones each epoch evaluates, and Resizable-Aug's switch."""
        cfg, model = self.cfg, self.model
        self.eval_configs = parse_configs(cfg.eval_configs, model.factors, model.num_stages)
        self.target = model.check_config(tuple(cfg.target) if cfg.target else model.max_config)
        if cfg.single_config:
            model.check_config(cfg.single_config)
        self.sampler = ConfigSampler(model.factors, model.num_stages, cfg.sampling, cfg.seed, cfg.num_configs,
                                     cfg.single_config)
        self.finetune_sampler = ConfigSampler(model.factors, model.num_stages, "single", cfg.seed,
                                              single_config=self.target)
        self.switch_epoch = int(round(cfg.epochs * cfg.aug_fraction)) if cfg.recipe == "aug" else math.inf

    def _setup_optimisation(self) -> None:
        """Optimizer (with the ensemble's learned weights), steps per epoch, schedule, loss scaler and loss."""
        cfg = self.cfg
        # the learned weights of ensemble distillation train with the network (no weight decay: 1-d)
        self.ensemble = (EnsembleWeights(len(self.sampler.sample(0))).to(self.dist.device)
                         if cfg.distill == "ensemble" else None)
        self.optimizer = build_optimizer(nn.ModuleList([self.model, self.ensemble]) if self.ensemble is not None
                                         else self.model, cfg)
        per_rank = cfg.batch_size // self.dist.world_size
        n_batches = len(make_loader(self.train_set, per_rank, shuffle=True, seed=cfg.seed, epoch=0,
                                    rank=self.dist.rank, world_size=self.dist.world_size, drop_last=True))
        if n_batches == 0:
            raise ValueError(f"batch_size {cfg.batch_size} is larger than the training set")
        self.steps_per_epoch = min(n_batches, cfg.max_steps_per_epoch or n_batches)
        self.cost = TrainingCost(self.model, self.dist.world_size)  # MACs of the passes that ran (cost.py)
        self.warm = WarmStart.plan(cfg.warm_start, cfg.warm_start_share, cfg.warm_start_teacher, model=self.model,
                                   sampler=self.sampler, distill=cfg.distill, teacher=self.teacher,
                                   num_configs=cfg.num_configs, epochs=cfg.epochs, steps_per_epoch=self.steps_per_epoch,
                                   batch_size=cfg.batch_size, input_size=self.input_size, cost=self.cost)
        self.epochs = self.warm.epochs  # --epochs; more with a warm start (equal cost, cheaper steps first)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.steps_per_epoch, cfg, self.warm.total_steps))
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and self.dist.device.type == "cuda")
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def _teacher_probs(self, images: torch.Tensor, teacher: Optional[nn.Module] = None) -> Optional[torch.Tensor]:
        """Soft labels of ``teacher`` (default: ``--teacher``'s), or None without one."""
        teacher = teacher or self.teacher
        return None if teacher is None else teacher_probs(teacher, images, self.cfg.amp, self.cfg.distill_temperature)

    def _val_split(self, load: Dict[str, Any]) -> Optional[ValSplit]:
        """The held-out split of ``--val-size`` (checked against the training set's size), or None."""
        cfg = self.cfg
        if not cfg.val_size:
            return None
        total = len(load_dataset(cfg.dataset, "train", download=cfg.download, augment=False, **load))
        check_val_size(cfg.val_size, total)
        return ValSplit(cfg.val_size, cfg.val_seed, total, self.info.name)

    def _say(self, line: str) -> None:
        if self.dist.is_main:
            print(line, flush=True)

    def _plan_run_dir(self) -> Tuple[Path, Dict[str, Tuple[Any, Any]], bool]:
        """The run folder and, on resume, the options changed from the run's; nothing is written yet."""
        cfg = self.cfg
        if cfg.resume:
            run_dir = resume_folder(cfg.resume)
            return run_dir, resume_changes(cfg, saved_options(run_dir, TrainOptions), run_dir), False
        name = cfg.name or f"{cfg.model}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(cfg.out_dir) / name
        return run_dir, {}, check_new_run_folder(run_dir)

    def _open_run_dir(self) -> None:
        """Make (or re-use) the run folder once every check has passed; record the options."""
        if self.dist.is_main:
            if self.reused:
                self._say(f"re-using {self.run_dir}: it holds no finished epoch")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock = hold_run_folder(self.run_dir)  # before anything is written: a second training stops here
            for stale in self.run_dir.glob(".*.tmp"):  # an atomic write cut short by a kill
                stale.unlink()
            metrics = self.run_dir / "metrics.jsonl"
            if not self.cfg.resume or not (self.run_dir / "config.yaml").is_file():
                write_options(self.cfg, self.run_dir / "config.yaml")
            else:
                note = record_resume(self.run_dir, self.cfg, self.resume_changes, self.start_epoch)
                if note:
                    self._say(note)
            # the metrics are the checkpoint's history: a kill between the two writes leaves no extra line
            atomic_write_text(metrics, "".join(json.dumps(r) + "\n" for r in self.history))
        distributed.barrier()

    def _load_resume(self) -> None:
        payload = load_checkpoint(self.run_dir)
        if payload["model_name"] != self.cfg.model:
            raise ValueError(f"the run {self.run_dir} trains {payload['model_name']}, not {self.cfg.model}")
        load_weights(self.model, payload["model"], self.run_dir / CHECKPOINT_NAME)
        if self.ensemble is not None:
            self.ensemble.load_state_dict(payload["ensemble"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.scheduler.base_lrs[0] != self.cfg.lr:  # --lr changed on resume (e.g. after a divergence)
            self.scheduler.base_lrs = [self.cfg.lr] * len(self.optimizer.param_groups)
            factor = lr_factor(payload["step"], self.steps_per_epoch, self.cfg, self.warm.total_steps)
            for group in self.optimizer.param_groups:
                group["initial_lr"], group["lr"] = self.cfg.lr, self.cfg.lr * factor
        self.scaler.load_state_dict(payload["scaler"])
        self.sampler.load_state_dict(payload["sampler"])
        self.cost.load_state_dict(payload.get("cost"), payload["step"])
        self.warm.load_state_dict(payload.get("warm_start"), payload["step"])
        torch.set_rng_state(payload["rng"]["torch"])
        if self.dist.device.type == "cuda" and payload["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(payload["rng"]["cuda"], self.dist.device)
        self.start_epoch = payload["epoch"] + 1
        if self.epochs < self.start_epoch:
            raise ValueError(f"--epochs {self.cfg.epochs}: {self.run_dir} has already finished {self.start_epoch} "
                             f"epochs; --resume continues a run, so --epochs must be >= {self.start_epoch}")
        self.step = payload["step"]
        self.loss_start = payload.get("loss_start")  # None from older checkpoints: this process's first step
        self.history = list(payload.get("history", []))
        if self.memory_format is None and payload.get("memory_format"):
            # the automatic choice is made once per run: a resumed run keeps its numerics
            self._use_memory_format(MemoryFormatChoice(payload["memory_format"] == "channels-last",
                                                       "chosen when the run started", {}))

    def _use_memory_format(self, choice: MemoryFormatChoice) -> None:
        self.memory_format = choice
        self.model.to(memory_format=torch.channels_last if choice.channels_last else torch.contiguous_format)
        if self.dist.is_main:
            print(choice.line(), flush=True)

    def _pick_memory_format(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        choice = None
        if self.dist.is_main:
            with self.model.using(self.model.max_config):
                choice = auto_memory_format(self.model, images, labels, amp=self.cfg.amp, loss_fn=self.criterion)
        self._use_memory_format(distributed.broadcast_object(choice))

    def _wrap_ddp(self) -> None:
        # after the memory format is final: DDP lays out its gradient buckets by the parameters' strides
        if self.dist.enabled and self.ddp is None:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.dist.device.index] if self.dist.device.type == "cuda" else None,
                find_unused_parameters=True)

    def _save(self, epoch: int) -> None:
        if not self.dist.is_main:
            return
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.dist.device) if self.dist.device.type == "cuda" else None}
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, self.model, self.cfg.model, self.model_kwargs,
                        optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                        scaler=self.scaler.state_dict(), sampler=self.sampler.state_dict(), rng=rng,
                        epoch=epoch, step=self.step, history=self.history,
                        train_options=dataclasses.asdict(self.cfg), input_size=self.input_size,
                        val_split=self.val_split.to_dict() if self.val_split is not None else None,
                        data=data_record(self.info, self.input_size),
                        memory_format=self.memory_format.name if self.memory_format else None,
                        ensemble=self.ensemble.state_dict() if self.ensemble is not None else None,
                        cost=self.cost.state_dict(), warm_start=self.warm.state_dict(),
                        loss_start=self.loss_start)

    def _loss_limit(self, loss: float) -> float:
        """The loss past which a step diverged (:mod:`.divergence`); the run's first call fixes its start."""
        if self.loss_start is None:
            self.loss_start = loss
        return loss_limit(self.loss_start, self.cfg.divergence_ratio, self.info.num_classes)

    def _check_finite(self, epoch: int) -> None:
        """Stop (:class:`TrainingDiverged`) when the state an epoch leaves is not finite, before anything of the
        epoch is written; rank 0 decides for every rank."""
        problem = state_problem(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                                ensemble=self.ensemble.state_dict() if self.ensemble is not None else None
                                ) if self.dist.is_main else None
        problem = distributed.broadcast_object(problem)
        if problem:
            raise stopped(f"training diverged in epoch {epoch + 1} (by step {self.step}): {problem}, although every "
                          f"step's loss was finite", self.run_dir, epoch, self.cfg.lr)

    def sampler_for(self, epoch: int) -> ConfigSampler:
        return self.sampler if epoch < self.switch_epoch else self.finetune_sampler

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        from tqdm import tqdm

        cfg, dev = self.cfg, self.dist.device
        sampler = self.sampler_for(epoch)
        loader = make_loader(self.train_set, cfg.batch_size // self.dist.world_size, shuffle=True, seed=cfg.seed,
                             epoch=epoch, rank=self.dist.rank, world_size=self.dist.world_size, drop_last=True,
                             num_workers=cfg.workers)
        self.model.train()
        loss_sum, seen, tally, first = 0.0, 0, StepTally(), self.step
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False,
                   disable=not progress_enabled(cfg.progress and self.dist.is_main))
        for i, (images, labels) in enumerate(loader):
            if i >= self.steps_per_epoch or self.step >= self.warm.total_steps:  # a warm start's last epoch is short
                break
            images, labels = images.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
            if self.memory_format is None:
                self._pick_memory_format(images, labels)
            self._wrap_ddp()
            if self.memory_format.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            configs, distill, teacher = self.warm.before_step(self.step, sampler)  # a switch acts here
            if distill == "ensemble" and len(configs) == 1:
                distill = "none"  # an ensemble of one member is that member (Resizable-Aug's fine-tune epochs)
            passes: list = []
            step_loss = train_step(self.model, images, labels, configs, self.optimizer, self.criterion, amp=cfg.amp,
                                   scaler=self.scaler if self.scaler.is_enabled() else None, ddp=self.ddp,
                                   loss_reduction=cfg.loss_reduction, distill=distill,
                                   distill_weight=cfg.distill_weight, ensemble=self.ensemble,
                                   teacher_probs=self._teacher_probs(images, teacher), teacher_weight=cfg.teacher_weight,
                                   temperature=cfg.distill_temperature, top_down=cfg.distill_top_down,
                                   rank_by=self.cost.ranker(images.shape[-2:]), tally=tally, losses=passes)
            self.cost.add_step([c for c, _ in passes], images, teacher)
            lr = self.optimizer.param_groups[0]["lr"]
            step_loss = distributed.mean_over_ranks(step_loss, dev)  # every rank then stops at the same step
            phase = self.warm.phase_name(self.step)  # the step's warm-start phase, for its log line
            if not math.isfinite(step_loss) or step_loss > self._loss_limit(step_loss):
                self.tb.add_step(self.steplog.add(self.step + 1, epoch + 1, step_loss, lr, phase))
                why = step_problem(passes, step_loss, lr, self.cfg.divergence_ratio, self.loss_start)
                raise stopped(f"training diverged at step {self.step + 1} (epoch {epoch + 1}): {why}", self.run_dir,
                              epoch, self.cfg.lr)
            self.scheduler.step()
            self.step += 1
            self.tb.add_step(self.steplog.add(self.step, epoch + 1, step_loss, lr, phase))
            loss_sum += step_loss
            seen += 1
            bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.4f}")
            bar.update(1)
        bar.close()
        self.model.set_config(self.model.max_config)
        # top-1 of the predictions the step made anyway (augmented images, weights changing within the epoch)
        return {"train_loss": loss_sum / max(1, seen), "lr": self.optimizer.param_groups[0]["lr"],
                "train_top1": tally.top1(), "train_top1_of": "the largest configuration of each step",
                "cost": self.cost.end_epoch(), **self.warm.record(first, self.step)}

    def run(self) -> Path:
        cfg = self.cfg
        if self.start_epoch >= self.epochs:
            self._say(f"{self.run_dir} has finished all {self.epochs} epochs; nothing to train "
                      f"(--resume {self.run_dir} --epochs N trains it longer)")
        elif self.dist.is_main:
            self._say(f"training {cfg.model} ({sum(p.numel() for p in self.model.parameters()) / 1e6:.3f} M params) "
                      f"into {self.run_dir}: epochs {self.start_epoch + 1}..{self.epochs}, {self.steps_per_epoch} "
                      f"steps of {len(self.sampler.sample(0))} configuration(s) each; lr {cfg.lr:g} after a "
                      f"{cfg.warmup_epochs:g}-epoch warm-up, the {cfg.loss_reduction} of the step's losses")
            if self.warm.switch_step is not None:
                self._say(self.warm.describe())
        eval_loader = make_loader(self.eval_set, cfg.eval_batch_size, shuffle=False)
        for epoch in range(self.start_epoch, self.epochs):
            t0 = time.perf_counter()
            record: Dict[str, Any] = {"epoch": epoch + 1, "step": 0,
                                      "phase": "train" if epoch < self.switch_epoch else "finetune"}
            record.update(self.train_epoch(epoch))
            self._check_finite(epoch)  # before the epoch's metrics line and checkpoint
            record["step"] = self.step
            record["train_seconds"] = time.perf_counter() - t0
            if self.dist.is_main:
                calib = (make_loader(self.calib_set, cfg.eval_batch_size, shuffle=True, seed=cfg.seed)
                         if self.calib_set is not None else None)
                calibrate = Calibration(calib, cfg.eval_calibrate_bn) if calib is not None and cfg.eval_calibrate_bn else None
                results = evaluate(self.model, eval_loader, self.eval_configs, amp=cfg.amp, calibrate=calibrate)
                record["eval_split"] = self.eval_split
                record["eval"] = {format_config(c): r for c, r in results.items()}
                self.history.append(record)
                with open(self.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                self.tb.add_epoch(record)
                # one line per epoch, with or without progress bars
                best = ", ".join(f"{k}: {v['top1']:.2f}" for k, v in record["eval"].items())
                phase = ""
                if cfg.recipe == "aug":  # which half of Resizable-Aug this epoch belongs to
                    phase = ("  [fair sampling]" if epoch < self.switch_epoch
                             else f"  [fine-tuning {format_config(self.target)}]")
                print(f"epoch {epoch + 1}/{self.epochs}{phase}  loss {record['train_loss']:.4f}  train top-1 "
                      f"{record['train_top1']:.2f}  {record['train_seconds']:.1f}s  {self.eval_split} top-1 [{best}]",
                      flush=True)
            self._save(epoch)
            distributed.barrier()
        if cfg.bn_bank and self.dist.is_main:
            self._build_bank()
        distributed.barrier()
        return self.run_dir

    def _build_bank(self) -> None:
        """The statistics bank of the final weights, by the rule every command uses (``resizable calibrate``)."""
        import warnings

        from ..checkpoint import AsTrainedStatisticsWarning, CheckpointError, write_bank
        from ..trained_run import TrainedRun

        path = self.run_dir / CHECKPOINT_NAME
        if not scale_batchnorms(self.model):
            self._say("shared BN: no statistics bank (every configuration uses the same BN layers)")
            return
        try:
            if not path.is_file():
                return  # nothing trained
            with warnings.catch_warnings():  # a bank of other weights is not attached: it is rebuilt below
                warnings.simplefilter("ignore", AsTrainedStatisticsWarning)
                run = TrainedRun.open(path)
        except CheckpointError as e:  # weights a diverged run left: the training is over, nothing to measure
            print(f"warning: no statistics bank: {e}", file=sys.stderr, flush=True)
            return
        if run.model.bank is not None:
            return  # the checkpoint's bank was measured on these very weights
        if run.payload.get("bn_bank") is not None:
            self._say(f"the statistics bank in {path} belongs to other weights: measuring the final weights' own")
        bank = run.build_bank(device=self.dist.device)
        write_bank(path, bank)
        self._say(f"{bank.describe()}: {bank.meta['configs']} configurations, {bank.nbytes() / 1e6:.2f} MB, "
                  f"{bank.meta['seconds']:.1f} s")


def train(cfg: TrainOptions) -> Path:
    """Train (or continue, with ``cfg.resume``) and return the run folder.

    The folder holds ``config.yaml`` (resolved options), ``metrics.jsonl`` (one JSON record per
    epoch with the evaluated configurations' top-1/top-5/loss) and ``checkpoint.pt`` (rewritten
    atomically after every epoch; enough to resume exactly or to rebuild the model).
    """
    run = TrainingRun(cfg)
    try:
        return run.run()
    except KeyboardInterrupt:
        if run.dist.is_main:
            print(f"interrupted: {run.run_dir} keeps its last finished epoch; continue with: resizable train "
                  f"--resume {run.run_dir}", file=sys.stderr, flush=True)
        raise
    finally:
        run.tb.close()
        if run.lock is not None:
            run.lock.close()
        distributed.cleanup()


def data_record(info: Any, input_size: int) -> Dict[str, Any]:
    """What a deployment needs to feed the network: preprocessing and class names (stored in checkpoints)."""
    return {"dataset": info.name, "input_size": int(input_size), "in_chans": info.in_chans,
            "mean": list(info.mean), "std": list(info.std), "classes": list(info.classes)}
