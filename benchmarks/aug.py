"""Benchmark: Resizable-Aug vs the same network trained at one configuration (paper section 4.1, Table 2).

For every seed, two runs of the same model, epochs, steps, batch and learning-rate schedule on
Fashion-MNIST:

- baseline: ``sampling=single`` at the target configuration for all epochs;
- RS-Aug: ``recipe=aug``: fair sampling (k configurations per step) for round(epochs * aug_fraction)
  epochs, then the target configuration alone.

Each product is exported to a plain static network (``resizable.export``) whose test top-1 is
measured directly; wall-clock training time is recorded (RS-Aug runs k forward/backward passes per
step in its first phase). Writes ``benchmarks/results/aug.json`` and ``aug.md``.

    PYTHONPATH=src python benchmarks/aug.py                        # ~10 minutes on 2 busy CPU cores
    PYTHONPATH=src python benchmarks/aug.py --epochs 30 --max-steps-per-epoch 0 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

import resizable
from resizable.checkpoint import load_model
from resizable.data import load_dataset, make_loader
from resizable.latency import device_description
from resizable.configs import format_config
from resizable.train import TrainOptions, train

RESULTS = Path(__file__).parent / "results"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--widths", default="8,16,32", help="stage widths of the model")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--max-steps-per-epoch", type=int, default=60, help="0: full epochs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--target", default=None, help="target configuration (default: all factors 1.0)")
    p.add_argument("--aug-fraction", type=float, default=2 / 3)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the system location)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--work-dir", default="runs/bench-aug", help="run folders (replaced)")
    p.add_argument("--out", default=str(RESULTS / "aug.json"))
    return p.parse_args()


@torch.no_grad()
def static_top1(run: Path, target: tuple, data_dir) -> dict:
    """Export the run's target configuration to a plain network and measure its test top-1."""
    model, _ = load_model(run)
    net = resizable.export(model, target, 28).eval()
    test = load_dataset("fashion-mnist", "test", data_dir=data_dir, augment=False)
    correct = n = 0
    for images, labels in make_loader(test, 500, shuffle=False):
        correct += int(net(images).argmax(1).eq(labels).sum())
        n += len(labels)
    return {"top1_pct": 100.0 * correct / n, "images": n,
            "static_modules": sorted({type(m).__name__ for m in net.modules()})}


def summary(values: list) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    work = Path(args.work_dir)
    widths = [int(w) for w in args.widths.split(",")]
    probe = resizable.create_model(args.model, num_classes=10, in_chans=1, widths=widths)
    target = probe.check_config([float(f) for f in args.target.split(",")]) if args.target else probe.max_config
    seeds = [int(s) for s in args.seeds.split(",")]
    common = dict(model=args.model, model_args={"widths": widths}, dataset="fashion-mnist", data_dir=args.data_dir,
                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  max_steps_per_epoch=args.max_steps_per_epoch or None, eval_configs=format_config(target),
                  eval_calibrate_bn=0,  # the product keeps the BN statistics it trained with
                  out_dir=str(work), progress=False)
    methods = {
        "baseline": dict(sampling="single", single_config=target),
        "rs_aug": dict(recipe="aug", target=target, aug_fraction=args.aug_fraction),
    }
    runs = []
    for seed in seeds:
        for method, extra in methods.items():
            name = f"{method}-seed{seed}"
            shutil.rmtree(work / name, ignore_errors=True)
            cfg = TrainOptions(name=name, seed=seed, **common, **extra)
            t0 = time.perf_counter()
            run = train(cfg)
            seconds = time.perf_counter() - t0
            records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            exported = static_top1(run, target, args.data_dir)
            row = {"method": method, "seed": seed, "train_seconds": seconds,
                   "train_seconds_excluding_eval": sum(r["train_seconds"] for r in records),
                   "steps": records[-1]["step"], "phases": [r["phase"] for r in records],
                   "top1_pct": exported["top1_pct"],
                   "top1_pct_trainer_eval": records[-1]["eval"][format_config(target)]["top1"],
                   "per_epoch_top1": [r["eval"][format_config(target)]["top1"] for r in records],
                   "exported": exported}
            runs.append(row)
            print(f"{name}: top-1 {row['top1_pct']:.2f} % (exported static network), {seconds:.0f} s", flush=True)
    table = {m: {"top1_pct": summary([r["top1_pct"] for r in runs if r["method"] == m]),
                 "train_seconds": summary([r["train_seconds"] for r in runs if r["method"] == m])} for m in methods}
    gains = [a["top1_pct"] - b["top1_pct"] for a, b in zip([r for r in runs if r["method"] == "rs_aug"],
                                                           [r for r in runs if r["method"] == "baseline"])]
    steps = args.max_steps_per_epoch
    report = {
        "benchmark": "Resizable-Aug vs single-configuration baseline, same model, epochs, steps and seed",
        "command": "PYTHONPATH=src python " + " ".join(["benchmarks/aug.py"] + sys.argv[1:]),
        "machine": f"{device_description(torch.device('cpu'))}, {os.cpu_count()} CPU cores (shared with other work)",
        "torch_threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "settings": {"model": args.model, "widths": widths, "factors": list(probe.factors), "target": list(target),
                     "epochs": args.epochs, "max_steps_per_epoch": steps or None, "batch_size": args.batch_size,
                     "lr": args.lr, "schedule": "cosine", "aug_fraction": args.aug_fraction, "seeds": seeds,
                     "augment": "random crop (pad 2) + flip, both methods",
                     "images_seen_per_run": args.epochs * steps * args.batch_size if steps else None},
        "summary": table,
        "rs_aug_minus_baseline_pct": {"per_seed": gains, **summary(gains)},
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


def markdown(report: dict) -> str:
    s = report["settings"]
    cut = (f", each epoch cut to {s['max_steps_per_epoch']} steps ({s['images_seen_per_run']} training images "
           f"seen per run, out of 60000 per full epoch)" if s["max_steps_per_epoch"] else "")
    lines = [
        "# Resizable-Aug on Fashion-MNIST (benchmarks/aug.py)",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}, {report['torch_threads']} torch thread(s), torch {report['torch']}; "
        f"load average {report['load_average_1min'][0]} at the start, {report['load_average_1min'][1]} at the end  ",
        f"Date: {report['date']}  ",
        f"Settings: {s['model']} widths {s['widths']}, factors {s['factors']}, target {s['target']}; "
        f"{s['epochs']} epochs{cut}; batch {s['batch_size']}, SGD lr {s['lr']} cosine; RS-Aug: fair sampling for "
        f"round({s['epochs']} x {s['aug_fraction']:.3f}) epochs, then the target alone; seeds {s['seeds']}.",
        "",
        "Top-1 is that of the exported static network (`resizable.export` at the target) on the 10000 test "
        "images; time is the wall-clock of `train()` (including its per-epoch evaluation).",
        "",
        "| method | top-1 % mean | std | min..max | train s mean | per seed (top-1 %, s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m, label in (("baseline", "baseline (target only)"), ("rs_aug", "RS-Aug")):
        t, sec = report["summary"][m]["top1_pct"], report["summary"][m]["train_seconds"]
        per = ", ".join(f"seed {r['seed']}: {r['top1_pct']:.2f}, {r['train_seconds']:.0f}"
                        for r in report["runs"] if r["method"] == m)
        lines.append(f"| {label} | {t['mean']:.2f} | {t['std']:.2f} | {t['min']:.2f}..{t['max']:.2f} | "
                     f"{sec['mean']:.0f} | {per} |")
    g = report["rs_aug_minus_baseline_pct"]
    lines += ["", f"RS-Aug minus baseline, per seed: {', '.join(f'{v:+.2f}' for v in g['per_seed'])} points "
                  f"(mean {g['mean']:+.2f}, std {g['std']:.2f})."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
