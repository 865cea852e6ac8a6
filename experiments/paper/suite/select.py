"""The suite's hyper-parameter selection, on val: learning rate x augmentation, scored on the all-1.0 twin.

A small grid (``LRS`` x ``AUGMENT``) of the protocol's all-1.0 network trained alone (``--sampling
single``), each run for the protocol's epochs cut to ``--steps`` steps per epoch (a third of an
epoch by default: the cosine schedule is the full one, compressed), scored by its top-1 on the
held-out val images (BN as trained). The best score wins; the RS network and every baseline then use it.
Writes ``experiments/paper/results/selection.json`` with every run's curve, the device and the time.

    python experiments/paper/run.py --select [--steps 130] [--jobs 1]
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .protocol import PINNED, SELECTION, Protocol

LRS = (0.05, 0.1, 0.2)
AUGMENT = (True, False)


def _one(args: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    from resizable.training import TrainOptions, train

    torch.set_num_threads(args.pop("threads"))
    work = args.pop("work")
    t0 = time.perf_counter()
    cfg = TrainOptions(**args["train"], out_dir=work, name=args["name"], device=args["device"])
    run = Path(work) / args["name"]
    if (run / "checkpoint.pt").is_file():
        cfg = dataclasses.replace(cfg, resume=str(run))
    train(cfg)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [{"epoch": r["epoch"], "val_top1": r["eval"]["1,1,1"]["top1"], "train_top1": r["train_top1"],
              "train_loss": r["train_loss"]} for r in records]
    return {"name": args["name"], "lr": args["lr"], "augment": args["augment"], "val_top1": curve[-1]["val_top1"],
            "curve": curve, "seconds": time.perf_counter() - t0}


def run_selection(protocol: Protocol, *, steps: Optional[int], work: Path, out: Path = SELECTION,
                  data_dir: Optional[str] = None, jobs: int = 1, threads: int = 1, device: str = "cpu",
                  lrs: Sequence[float] = LRS, augment: Sequence[bool] = AUGMENT) -> Dict[str, Any]:
    """Train the grid, pick the best val top-1, write ``out`` (atomically); returns the record."""
    from resizable import atomic_write_text
    from resizable.nas import device_description

    t0 = time.time()
    tasks = []
    for lr in lrs:
        for aug in augment:
            base = dataclasses.replace(protocol, lr=lr, augment=aug, max_steps_per_epoch=steps)
            train_args = dict(PINNED, **base.train_args(), data_dir=data_dir, sampling="single",
                              single_config=(1.0, 1.0, 1.0),
                              eval_configs="1,1,1", eval_calibrate_bn=0, seed=0)
            tasks.append({"train": train_args, "name": f"select-lr{lr:g}-aug{int(aug)}-s{steps or 0}", "lr": lr,
                          "augment": aug, "threads": threads, "work": str(work), "device": device})
    if jobs > 1:
        import multiprocessing

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs: List[Dict[str, Any]] = list(pool.map(_one, tasks))
    else:
        runs = [_one(t) for t in tasks]
    best = max(runs, key=lambda r: (r["val_top1"], -r["lr"]))
    record = {
        "what": "learning rate x augmentation for the whole suite, chosen on val (the held-out images)",
        "score": "val top-1 of the all-1.0 network trained alone (BN as trained), last epoch",
        "network": {"model": protocol.model, "model_args": protocol.model_args, "factors": list(protocol.factors)},
        "fixed": {"epochs": protocol.epochs, "steps_per_epoch": steps or "full", "batch_size": protocol.batch_size,
                  "weight_decay": protocol.weight_decay, "momentum": protocol.momentum,
                  "schedule": protocol.schedule, "val_size": protocol.val_size, "val_seed": protocol.val_seed},
        "grid": {"lr": list(lrs), "augment": list(augment)},
        "runs": runs,
        "chosen": {"lr": best["lr"], "augment": best["augment"], "val_top1": best["val_top1"]},
        "device": f"{device}: {device_description(device)}, {os.cpu_count()} cores, {threads} torch thread(s) per "
                  f"run, {jobs} run(s) at a time",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "wall_seconds": time.time() - t0,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    return record
