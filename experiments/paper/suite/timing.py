"""T8's seconds per epoch, timed under control: fair and random sampling back to back in one process.

The training runs' own epoch times depend on what else the machine ran at that moment (the suite
runs two processes side by side, and a sitting may be paused), so they cannot resolve a difference
of a few percent. Here one process builds the protocol's RS network, keeps a few real training
batches in memory, and times blocks of training steps of each sampling mode in alternating order
(fair, random, random, fair, ...); a mode's seconds per step are the median over its blocks, and
an epoch is that times the protocol's steps per epoch. Data loading is left out: it is the same
for both modes, and what differs between them is only the configurations each step runs.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Dict, Optional, Sequence

from .protocol import PINNED, Protocol


def sampling_seconds(p: Protocol, seed: int, data_dir: Optional[str], *, modes: Sequence[str] = ("fair", "random"),
                     rounds: int = 7, steps: int = 20, batches: int = 8) -> Dict[str, Any]:
    """Seconds per training step and per epoch of each sampling mode (``rounds`` blocks of ``steps`` steps)."""
    import torch
    import torch.nn as nn

    from resizable import ConfigSampler, create_model
    from resizable.data import ValSplit, dataset_info, load_split, make_loader
    from resizable.training import TrainOptions, build_optimizer, train_step

    cfg = TrainOptions(**dict(PINNED, **p.train_args(), seed=seed, data_dir=data_dir))
    info = dataset_info(p.dataset, data_dir)
    split = ValSplit(size=p.val_size, seed=p.val_seed) if p.val_size else None
    train_set = load_split(p.dataset, "train", val_split=split, data_dir=data_dir, augment=p.augment)
    loader = make_loader(train_set, p.batch_size, shuffle=True, seed=seed, epoch=0, drop_last=True)
    per_epoch = min(len(loader), p.max_steps_per_epoch or len(loader))
    data = []
    for images, labels in loader:
        data.append((images, labels))
        if len(data) == batches:
            break
    torch.manual_seed(seed)
    model = create_model(p.model, factors=tuple(p.factors), num_classes=info.num_classes, in_chans=info.in_chans,
                         **p.model_args)
    model.train()
    optimizer = build_optimizer(model, cfg)
    criterion = nn.CrossEntropyLoss()
    samplers = {m: ConfigSampler(model.factors, model.num_stages, m, seed) for m in modes}
    counters = {m: 0 for m in modes}

    def block(mode: str) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            images, labels = data[counters[mode] % len(data)]
            train_step(model, images, labels, samplers[mode].sample(counters[mode]), optimizer, criterion)
            counters[mode] += 1
        return (time.perf_counter() - t0) / steps

    for m in modes:  # warm-up: allocator, kernels, the stage-size cache
        block(m)
    per_step: Dict[str, list] = {m: [] for m in modes}
    for r in range(rounds):
        for m in (modes if r % 2 == 0 else list(reversed(modes))):
            per_step[m].append(block(m))
    out: Dict[str, Any] = {"rounds": rounds, "steps_per_block": steps, "steps_per_epoch": per_epoch,
                           "threads": torch.get_num_threads(), "modes": {}}
    for m in modes:
        med = statistics.median(per_step[m])
        out["modes"][m] = {"seconds_per_step": per_step[m], "median_seconds_per_step": med,
                           "seconds_per_epoch": med * per_epoch}
    return out
