"""Evaluating many configurations at once: the configuration-tree walk, BN recalibration per
configuration, accuracy, and the cost of every configuration.

Configurations that agree on stages ``1..i`` share the activations up to stage ``i``, so per batch
the stem runs once, stage 1 runs ``k`` times, stage 2 ``k^2`` times, and so on, instead of ``k^N``
full forwards. Every configuration still sees exactly the operations of its own full forward, so
the logits equal the naive loop's (:func:`evaluate_naive`). Stages are cut at their resize with
:meth:`ResizableStage.forward_pre` / :meth:`ResizableStage.forward_post`: the part before the resize
depends only on the earlier factors and is shared by all of a node's children.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .calibrate import active_batchnorms
from ..configs import Config, format_config
from ..net import ResizableNet, check_configs

__all__ = [
    "evaluating",
    "batches",
    "autocast",
    "topk_for",
    "ConfigTreeWalker",
    "forward_all",
    "CalibratedBN",
    "calibrate_configs",
    "Calibration",
    "evaluate_configs",
    "evaluate_naive",
    "accuracy",
    "evaluate",
]


@contextlib.contextmanager
def evaluating(model: ResizableNet) -> Iterator[ResizableNet]:
    """Eval mode for a block; every module's mode and the active configuration are restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    config = model.config
    model.eval()
    try:
        yield model
    finally:
        model.set_config(config)
        for m, training in modes.items():
            m.training = training


def batches(loader: Iterable, device: torch.device) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """``(images, labels)`` of every batch of ``loader``, moved to ``device``."""
    for batch in loader:
        images, labels = batch[0], batch[1]
        yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on ``device`` when ``enabled`` (float16 on CUDA, bfloat16 on the CPU)."""
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def topk_for(model: ResizableNet) -> Tuple[int, ...]:
    """The top-k accuracies worth reporting: top-1, and top-5 with more than 5 classes."""
    return (1, 5) if model.num_classes > 5 else (1,)


# ---------------------------------------------------------------------------- the configuration tree
def _trie(configs: Sequence[Config]) -> dict:
    root: dict = {}
    for c in configs:
        node = root
        for f in c:
            node = node.setdefault(f, {})
    return root


class _NodeStats:
    """BN statistics recalibrated for every node of a configuration tree.

    A node is one piece of the tree walk: the stem, the part of stage ``i`` before its resize
    (keyed by the factors of stages ``1..i-1``), the rest of stage ``i`` (keyed by ``1..i``) and the
    head (keyed by the whole configuration). What the BNs of a piece see depends only on its key,
    so recalibrating node by node gives every configuration exactly the statistics that
    :func:`resizable.calibrate_bn` would give it alone, at the cost of one tree walk.
    """

    def __init__(self) -> None:
        self.state: Dict[tuple, List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        self.bns: Dict[tuple, List[nn.modules.batchnorm._BatchNorm]] = {}
        self.learning = True
        self._mark: Dict[tuple, Any] = {}

    def begin_batch(self, retry: bool) -> None:
        if retry:
            self.state = dict(self._mark)  # the failed attempt's updates are dropped
        else:
            self._mark = dict(self.state)

    def enter(self, key: tuple, modules: Sequence[nn.Module]) -> None:
        bns = self.bns.get(key)
        if bns is None:
            bns = self.bns[key] = [bn for m in modules for bn in active_batchnorms(m) if bn.track_running_stats]
        state = self.state.get(key)
        if state is None:
            if not self.learning:
                raise KeyError(f"no calibrated BN statistics for {key}; calibrate these configurations first")
            for bn in bns:
                bn.reset_running_stats()
            return
        for bn, (mean, var, count) in zip(bns, state):
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.num_batches_tracked.copy_(count)

    def leave(self, key: tuple) -> None:
        if self.learning:
            self.state[key] = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
                               for bn in self.bns[key]]


class _InPlaceInput(Exception):
    """A stage wrote into its input, which sibling configurations still need."""


class ConfigTreeWalker:
    """Runs one batch through every configuration of a (pruned) configuration tree.

    A stage that writes into its own input (which sibling configurations still need) is detected
    through the tensor's version counter; the batch is then redone with private copies.

    Args:
        model: the ResizableNet (its active configuration changes during a walk).
        configs: the configurations to run, checked (see :func:`check_configs`).
        stats: BN statistics per node of the tree (calibration); each piece of the walk first loads
            (or, while calibrating, accumulates) the statistics of its node.
    """

    def __init__(self, model: ResizableNet, configs: Sequence[Config], stats: Optional["_NodeStats"] = None) -> None:
        self.model = model
        self.tree = _trie(configs)
        self.stages = [model.stage(i) for i in range(model.num_stages)]
        self.copy_inputs = False
        self.stats = stats
        self._sizes: Dict[tuple, List[Dict[float, Tuple[int, int]]]] = {}
        self._stem = model.stem_modules()
        self._head = model.head_modules()

    def sizes(self, hw: Tuple[int, int]) -> List[Dict[float, Tuple[int, int]]]:
        if hw not in self._sizes:
            m = self.model
            per_factor = {f: m.stage_sizes(hw, (f,) * m.num_stages) for f in m.factors}
            self._sizes[hw] = [{f: per_factor[f][i] for f in m.factors} for i in range(m.num_stages)]
        return self._sizes[hw]

    def run(self, x: torch.Tensor, leaf: Callable[[Config, torch.Tensor], None]) -> None:
        """Call ``leaf(config, logits)`` for every configuration; ``x``: (B, C, H, W).

        Works under ``torch.inference_mode()`` too: the walk itself runs outside it, since the
        check for in-place writes needs version counters, which inference tensors lack. It always
        runs without autograd (leaving inference mode would otherwise turn gradients back on, and
        every piece would record a graph).
        """
        with torch.inference_mode(False), torch.no_grad():
            self._run(x, leaf)

    def _run(self, x: torch.Tensor, leaf: Callable[[Config, torch.Tensor], None]) -> None:
        sizes = self.sizes(tuple(x.shape[-2:]))
        retry = False
        while True:
            if self.stats is not None:
                self.stats.begin_batch(retry)
            try:
                h = self._piece(("stem",), self._stem, self.model.forward_stem, x)
                self._node(0, h, (), self.tree, sizes, leaf)
                return
            except _InPlaceInput:
                if self.copy_inputs:
                    raise RuntimeError("a stage modifies its input in place even when given a copy") from None
                self.copy_inputs = True  # this model needs private copies; redo the batch
                retry = True

    def _piece(self, key: tuple, modules: Sequence[nn.Module], fn: Callable, *args: Any) -> torch.Tensor:
        if self.stats is None:
            return fn(*args)
        self.stats.enter(key, modules)
        out = fn(*args)
        self.stats.leave(key)
        return out

    def _node(self, level: int, h: torch.Tensor, prefix: Config, node: dict, sizes, leaf) -> None:
        model, stage = self.model, self.stages[level]
        last = level == model.num_stages - 1
        filler = (model.factors[-1],) * (model.num_stages - level - 1)
        # the active config already agrees with `prefix`, which keys the blocks before the resize
        shared = self._piece(("pre",) + prefix, stage.pre_modules(), stage.forward_pre, h)
        version = shared._version
        post = stage.post_modules()
        for f, child in node.items():
            config = prefix + (f,)
            # Stage `level` and everything before it only read BN branches keyed by `config`.
            model.set_config(config + filler)
            out = self._piece(("post",) + config, post, stage.forward_post,
                              shared.clone() if self.copy_inputs else shared, sizes[level][f])
            if shared._version != version:
                raise _InPlaceInput()
            if last:
                leaf(config, self._piece(("head",) + config, self._head, model.forward_head, out))
            else:
                self._node(level + 1, out, config, child, sizes, leaf)


@torch.no_grad()
def forward_all(model: ResizableNet, x: torch.Tensor, configs: Optional[Iterable[Sequence[float]]] = None,
                *, bn_stats: Optional["CalibratedBN"] = None) -> Dict[Config, torch.Tensor]:
    """Logits of every configuration (default: all ``k^N``) for one batch, sharing prefixes.

    The model is run in eval mode; its mode, configuration and BN statistics are restored afterwards.

    Args:
        model: the ResizableNet.
        x: a batch (B, C, H, W).
        configs: the configurations to run.
        bn_stats: per-configuration BN statistics from :func:`calibrate_configs` (default: the
            model's own running statistics).
    """
    configs = check_configs(model, configs)
    out: Dict[Config, torch.Tensor] = {}

    def keep(config: Config, logits: torch.Tensor) -> None:
        out[config] = logits

    if bn_stats is not None:
        _check_calibrated(bn_stats, configs)
    with evaluating(model), _bn_buffers_kept(model, bn_stats is not None), _recalibrated(model, bn_stats is not None):
        ConfigTreeWalker(model, configs, bn_stats.nodes if bn_stats is not None else None).run(x, keep)
    return {c: out[c] for c in configs}


def _check_calibrated(bn_stats: "CalibratedBN", configs: Sequence[Config]) -> None:
    missing = [c for c in configs if c not in bn_stats.calibrated]
    if missing:
        raise ValueError(f"{len(missing)} configurations (e.g. {format_config(missing[0])}) were not calibrated; "
                         f"pass them to calibrate_configs")


@dataclass
class CalibratedBN:
    """BN statistics of many configurations, recalibrated on shared prefixes (see :func:`calibrate_configs`)."""

    nodes: _NodeStats
    configs: List[Config]
    num_batches: int

    def __post_init__(self) -> None:
        self.calibrated = set(self.configs)


def _recalibrated(model: ResizableNet, enabled: bool):
    """Normalise with the (recalibrated) running averages, not the attached bank, inside the block."""
    return model.using_bn_statistics("as-trained") if enabled else contextlib.nullcontext()


class _bn_buffers_kept:
    """Restores every BN's running statistics (and momentum) on exit."""

    def __init__(self, model: nn.Module, enabled: bool = True) -> None:
        self.bns = [m for m in model.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats] if enabled else []

    def __enter__(self) -> None:
        self.saved = [(bn.momentum, bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
                      for bn in self.bns]

    def __exit__(self, *exc) -> None:
        for bn, (momentum, mean, var, count) in zip(self.bns, self.saved):
            bn.momentum = momentum
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.num_batches_tracked.copy_(count)


@torch.no_grad()
def calibrate_configs(model: ResizableNet, loader: Iterable, num_batches: int,
                      configs: Optional[Iterable[Sequence[float]]] = None) -> CalibratedBN:
    """Recalibrate the BN statistics of many configurations at once, sharing prefixes.

    Gives each configuration exactly what :func:`resizable.calibrate_bn` would (reset, then the
    cumulative average over the first ``num_batches`` batches of ``loader`` in train mode), but
    walks the configuration tree once per batch instead of running ``k^N`` full forwards. The
    model itself is left unchanged; pass the result to :func:`forward_all` or
    :func:`evaluate_configs`.

    Args:
        model: the ResizableNet.
        loader: yields ``(images, labels)`` or ``images`` (training images, as the test will see them).
        num_batches: how many batches to use (>= 1).
        configs: the configurations (default: all ``k^N``).
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    configs = check_configs(model, configs)
    device = next(model.parameters()).device
    nodes = _NodeStats()
    modes = {m: m.training for m in model.modules()}
    config = model.config
    kept = _bn_buffers_kept(model)
    with kept:  # the model's own statistics and momenta come back afterwards
        try:
            for bn in kept.bns:
                bn.momentum = None  # cumulative average, as calibrate_bn
            model.train()
            walker = ConfigTreeWalker(model, configs, nodes)
            seen = 0
            for batch in loader:
                if seen >= num_batches:
                    break
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                walker.run(images.to(device, non_blocking=True), lambda c, logits: None)
                seen += 1
            if seen == 0:
                raise ValueError("calibrate_configs got an empty loader")
        finally:
            model.set_config(config)
            for m, training in modes.items():
                m.training = training
    nodes.learning = False
    return CalibratedBN(nodes, configs, seen)


# ---------------------------------------------------------------------------- accuracy
@dataclass(frozen=True)
class Calibration:
    """Recompute BN statistics per configuration before evaluating it (DESIGN.md section 4)."""

    loader: Iterable  # training batches, the same ones for every configuration
    num_batches: int
    description: str = ""


@dataclass
class _Counts:
    """Per-configuration correct counts, accumulated on the model's device."""

    topk: Tuple[int, ...]
    samples: int = 0
    correct: Dict[Config, torch.Tensor] = field(default_factory=dict)
    loss: Dict[Config, torch.Tensor] = field(default_factory=dict)

    def add(self, config: Config, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.float()
        maxk = min(max(self.topk), logits.shape[1])
        hits = logits.topk(maxk, dim=1).indices.eq(labels[:, None])  # (B, maxk)
        row = torch.stack([hits[:, :k].any(dim=1).sum() for k in self.topk])
        loss = F.cross_entropy(logits, labels, reduction="sum").double()
        if config in self.correct:
            self.correct[config] += row
            self.loss[config] += loss
        else:
            self.correct[config] = row
            self.loss[config] = loss

    def result(self) -> Dict[Config, Dict[str, Any]]:
        out = {}
        for config, row in self.correct.items():
            values = row.tolist()
            out[config] = {"samples": self.samples, **{f"top{k}": v for k, v in zip(self.topk, values)},
                           "loss_sum": float(self.loss[config])}
        return out


@torch.no_grad()
def evaluate_configs(model: ResizableNet, loader: Iterable, configs: Optional[Iterable[Sequence[float]]] = None,
                     *, on_batch: Optional[Callable[[], None]] = None,
                     calibrate: Optional["Calibration"] = None, amp: bool = False) -> Dict[Config, Dict[str, Any]]:
    """Top-1 (and top-5) correct counts of many configurations over a loader, sharing prefixes.

    Returns ``{config: {"samples": n, "top1": correct, "top5": correct, "loss_sum": cross-entropy
    summed over the samples}}`` ("top5" only with more than 5 classes), equal to
    :func:`evaluate_naive` on the same loader. :func:`accuracy` turns it into percentages.

    Args:
        model: the ResizableNet (mode, configuration and BN statistics restored afterwards).
        loader: yields ``(images, labels)``.
        configs: the configurations (default: all ``k^N``).
        on_batch: called after each batch (progress reporting).
        calibrate: recompute each configuration's BN statistics first (prefixes shared, see
            :func:`calibrate_configs`); the result equals calibrating and testing one at a time.
        amp: run under mixed precision (see :func:`autocast`).
    """
    configs = check_configs(model, configs)
    device = next(model.parameters()).device
    counts = _Counts(topk_for(model))
    nodes = calibrate_configs(model, calibrate.loader, calibrate.num_batches, configs).nodes if calibrate else None
    with evaluating(model), _bn_buffers_kept(model, nodes is not None), _recalibrated(model, nodes is not None), \
            autocast(device, amp):
        walker = ConfigTreeWalker(model, configs, nodes)
        for images, labels in batches(loader, device):
            walker.run(images, lambda config, logits: counts.add(config, logits, labels))
            counts.samples += len(labels)
            if on_batch:
                on_batch()
    result = counts.result()
    return {c: result[c] for c in configs}


@torch.no_grad()
def evaluate_naive(model: ResizableNet, loader: Iterable, configs: Optional[Iterable[Sequence[float]]] = None,
                   *, on_batch: Optional[Callable[[], None]] = None) -> Dict[Config, Dict[str, Any]]:
    """The reference for :func:`evaluate_configs`: one full forward per configuration and batch."""
    configs = check_configs(model, configs)
    device = next(model.parameters()).device
    counts = _Counts(topk_for(model))
    with evaluating(model):
        for images, labels in batches(loader, device):
            for config in configs:
                model.set_config(config)
                counts.add(config, model(images), labels)
            counts.samples += len(labels)
            if on_batch:
                on_batch()
    result = counts.result()
    return {c: result[c] for c in configs}


def accuracy(counts: Dict[str, Any]) -> Dict[str, float]:
    """One configuration's counts from :func:`evaluate_configs` as percentages and a mean loss:
    ``{"top1": %, "top5": % (when counted), "loss": mean cross-entropy}``."""
    n = max(1, counts["samples"])
    out = {k: 100.0 * counts[k] / n for k in ("top1", "top5") if k in counts}
    out["loss"] = counts["loss_sum"] / n
    return out


def evaluate(
    model: ResizableNet,
    loader: Iterable,
    configs: Sequence[Sequence[float]],
    *,
    amp: bool = False,
    progress: bool = False,
    calibrate: Optional[Calibration] = None,
) -> Dict[Config, Dict[str, float]]:
    """Top-1, top-5 (percent) and mean loss of each configuration on ``loader``: the counts of
    :func:`evaluate_configs` as percentages (see :func:`accuracy`).

    Args:
        model: the ResizableNet, on the device to evaluate on (mode, configuration, weights restored).
        loader: yields ``(images, labels)``.
        configs: the configurations to evaluate.
        amp: autocast while evaluating.
        progress: show a progress bar.
        calibrate: recompute each configuration's BN statistics first (on shared prefixes).
    """
    from tqdm import tqdm

    from ..utils.console import progress_enabled

    configs = [model.check_config(c) for c in configs]
    try:
        total: Optional[int] = len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    with tqdm(total=total, desc="eval", leave=False, disable=not progress_enabled(progress)) as bar:
        counts = evaluate_configs(model, loader, configs, calibrate=calibrate, amp=amp, on_batch=lambda: bar.update(1))
    return {c: accuracy(counts[c]) for c in configs}
