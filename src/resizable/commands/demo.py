"""``resizable demo``: a small RS-ResNet trained with fair sampling on Fashion-MNIST, then every
configuration evaluated and reported (table, CSV, accuracy-vs-FLOPs plot). The built-in default of the main job."""
from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..utils.fileio import atomic_path, atomic_write_text
from ..utils.options import check_options, option

__all__ = ["DemoOptions", "demo", "write_table", "plot_accuracy_vs_macs"]

HELP = "train a small RS-ResNet on Fashion-MNIST and report every configuration (the built-in demo)"


@dataclass(frozen=True)
class DemoOptions:
    """Options of ``resizable demo`` (the defaults are the documented demo)."""

    model: str = option("resnet14", "registered model")
    model_args: Dict[str, Any] = option({"widths": [16, 32, 64], "stem_stride": 2, "stem_pool": True,
                                         "strides": [1, 2, 1]},
                                        "architecture arguments (YAML mapping); the default runs its stages at "
                                        "14/7/7 px, so all 64 configurations have distinct resolutions")
    factors: Tuple[float, ...] = option((0.45, 0.65, 0.85, 1.0), "scaling factor list", min=0.05, max=1.0)
    epochs: int = option(3, "training epochs", min=1)
    batch_size: int = option(128, "mini-batch size", min=1)
    lr: float = option(0.2, "peak learning rate (cosine schedule; chosen on val for batch 128)", above=0.0, max=1e3)
    weight_decay: float = option(5e-4, "weight decay", min=0.0, max=1.0)
    loss_reduction: str = option("mean", "how a step's 4 losses combine: mean (chosen on val) or sum (the paper's "
                                         "Algorithm 1)", choices=("mean", "sum"))
    warmup_epochs: Optional[float] = option(None, "linear warm-up in epochs (default: half of --epochs, chosen on val)",
                                            min=0.0)
    augment: bool = option(False, "random crop and flip (slower to converge in a short run)")
    seed: int = option(0, "random seed", min=0, max=2**63 - 1)
    calibrate_bn: int = option(0, "training batches (of 512) to recompute each configuration's BN statistics on "
                                  "before testing it (0: the statistics bank training ends with)", min=0)
    data_dir: Optional[str] = option(None, "Fashion-MNIST folder (default: system copy)")
    out_dir: str = option("runs", "parent of the run folder")
    name: Optional[str] = option(None, "run folder name (default: demo-TIME)", component=True)
    device: str = option("auto", "auto, cpu, cuda")
    channels_last: Optional[bool] = option(True, "channels-last memory format (faster for this model on a CPU; "
                                                 "--no-channels-last: contiguous; on a CPU channels-last can be far "
                                                 "slower for other models, with few channels per layer)")
    progress: bool = option(True, "progress bars")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def write_table(rows: List[Dict[str, Any]], path: Path) -> None:
    """Write rows as CSV (atomically); column names carry their units."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["config", "mmacs", "interp_mmacs", "top1_pct", "top5_pct", "loss", "bn_statistics"])
        for r in rows:
            writer.writerow([r["config"], f"{r['mmacs']:.4f}", f"{r['interp_mmacs']:.4f}", f"{r['top1_pct']:.2f}",
                             f"{r['top5_pct']:.2f}", f"{r['loss']:.4f}", r["bn_statistics"]])


def plot_accuracy_vs_macs(rows: List[Dict[str, Any]], path: Path, title: str) -> None:
    """Scatter of top-1 against MMACs for every configuration, the extremes labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    xs = [r["mmacs"] for r in rows]
    ys = [r["top1_pct"] for r in rows]
    ax.scatter(xs, ys, s=18, alpha=0.8, label=f"{len(rows)} configurations")
    for r in (min(rows, key=lambda r: r["mmacs"]), max(rows, key=lambda r: r["mmacs"])):
        ax.annotate(r["config"], (r["mmacs"], r["top1_pct"]), textcoords="offset points", xytext=(4, -12), fontsize=7)
    ax.set_xlabel("MMACs (multiply-accumulates, millions; the paper's MFLOPs)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def demo(opts: DemoOptions) -> Path:
    """Train, evaluate every configuration, print the table, write ``configs.csv``,
    ``accuracy_vs_macs.png`` and ``summary.json`` (full, worst and best configuration, times)
    into the run folder; returns the run folder."""
    import torch  # the command line's parser is built without torch; running the demo needs it

    from ..registry import create_model
    from ..training.trainer import TrainOptions, train
    from .evaluate import EvalOptions, evaluate_checkpoint

    start = time.perf_counter()
    name = opts.name or f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    train_cfg = TrainOptions(model=opts.model, model_args=dict(opts.model_args), factors=tuple(opts.factors),
                            dataset="fashion-mnist", data_dir=opts.data_dir, epochs=opts.epochs,
                            batch_size=opts.batch_size, lr=opts.lr, weight_decay=opts.weight_decay,
                            schedule="cosine", sampling="fair", loss_reduction=opts.loss_reduction,
                            warmup_epochs=opts.warmup_epochs,
                            seed=opts.seed, out_dir=opts.out_dir, name=name, device=opts.device,
                            progress=opts.progress, augment=opts.augment, channels_last=opts.channels_last,
                            eval_configs="minmax",
                            eval_calibrate_bn=opts.calibrate_bn or 5)
    probe = create_model(opts.model, num_classes=10, in_chans=1, factors=tuple(opts.factors), **dict(opts.model_args))
    configs = probe.configs()
    distinct = len({tuple(probe.stage_sizes(28, c)) for c in configs})
    print(f"training {opts.model} {dict(opts.model_args)} on the 60,000 Fashion-MNIST training images, factors "
          f"{tuple(opts.factors)}: {len(configs)} configurations, {distinct} with distinct stage resolutions; "
          f"fair sampling, the {opts.loss_reduction} of the 4 losses, lr {opts.lr:g} after a warm-up of "
          f"{train_cfg.warmup:g} epochs, {opts.epochs} epochs", flush=True)
    run_dir = train(train_cfg)
    train_seconds = time.perf_counter() - start
    rows = evaluate_checkpoint(EvalOptions(checkpoint=str(run_dir), configs="all", device=opts.device,
                                           progress=opts.progress, calibrate_bn=opts.calibrate_bn))
    rows.sort(key=lambda r: (r["mmacs"], r["config"]))
    print(f"\n{'config':<24}{'MMACs':>9}{'top-1 %':>9}")
    for r in rows:
        print(f"{r['config']:<24}{r['mmacs']:>9.2f}{r['top1_pct']:>9.2f}")
    full = max(rows, key=lambda r: r["mmacs"])
    worst = min(rows, key=lambda r: r["top1_pct"])
    write_table(rows, run_dir / "configs.csv")
    plot_accuracy_vs_macs(rows, run_dir / "accuracy_vs_macs.png",
                           f"RS-{opts.model} on Fashion-MNIST ({len(rows)} configurations, one network)")
    total = time.perf_counter() - start
    best = max(rows, key=lambda r: (r["top1_pct"], -r["mmacs"]))
    summary = {
        "model": opts.model, "model_args": dict(opts.model_args), "factors": list(opts.factors),
        "epochs": opts.epochs, "batch_size": opts.batch_size, "lr": opts.lr, "weight_decay": opts.weight_decay,
        "loss_reduction": opts.loss_reduction, "warmup_epochs": train_cfg.warmup,
        "seed": opts.seed,
        "calibrate_bn": opts.calibrate_bn, "num_configs": len(rows), "distinct_resolutions": distinct,
        "full": {"config": full["config"], "top1": full["top1_pct"], "mmacs": full["mmacs"]},
        "worst": {"config": worst["config"], "top1": worst["top1_pct"], "mmacs": worst["mmacs"]},
        "best": {"config": best["config"], "top1": best["top1_pct"], "mmacs": best["mmacs"]},
        "gap_points": full["top1_pct"] - worst["top1_pct"],
        "seconds": {"total": total, "train": train_seconds, "evaluate": total - train_seconds},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nfull configuration {full['config']}: {full['top1_pct']:.2f}% top-1 at {full['mmacs']:.2f} MMACs")
    print(f"worst configuration {worst['config']}: {worst['top1_pct']:.2f}% "
          f"({full['top1_pct'] - worst['top1_pct']:.2f} points below the full one)")
    print(f"wrote {run_dir / 'configs.csv'} and {run_dir / 'accuracy_vs_macs.png'}")
    print(f"time: {total:.0f} s (training {train_seconds:.0f} s, evaluating {total - train_seconds:.0f} s)")
    return run_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, DemoOptions)


def run(args: argparse.Namespace) -> int:
    from ..utils.options import resolve_options

    demo(resolve_options(DemoOptions, args))
    return 0
