"""Resizable-NAS (paper section 4.2): a lookup table over every configuration, then search it.

One trained ResizableNet is a search space of ``k^N`` sub-networks. :func:`build_table` evaluates
all of them into a CSV lookup table (accuracy, MACs, parameters, optionally latency);
:func:`search` answers "the most accurate sub-network under this budget" from the table alone,
and :func:`pareto_front` gives the accuracy-versus-cost front.

Evaluation walks the configuration tree: configurations that agree on stages ``1..i`` share the
activations up to stage ``i``, so per batch the stem runs once, stage 1 runs ``k`` times, stage 2
``k^2`` times, and so on, instead of ``k^N`` full forwards. Every configuration still sees exactly
the operations of its own full forward, so the logits are bit-identical to the naive loop.

Table files are CSV with ``#`` metadata lines on top (see ``docs/nas.md``). Rows are appended and
flushed as soon as a work unit (all configurations below one prefix) is done, so a killed build
restarts where it stopped, and work units can be split over processes (``shard=(i, n)``) whose
files :func:`merge_tables` joins.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from .calibrate import active_batchnorms
from .fileio import atomic_write_text
from .flops import count_flops
from .layers import ResizableStage
from .net import Config, ResizableNet, SizeLike, to_size2d

__all__ = [
    "TABLE_MAGIC",
    "LATENCY_MAGIC",
    "TableError",
    "NoFeasibleConfig",
    "Table",
    "format_config",
    "parse_config",
    "weights_sha256",
    "arch_sha256",
    "model_meta",
    "forward_all",
    "calibrate_configs",
    "CalibratedBN",
    "evaluate_configs",
    "evaluate_naive",
    "config_costs",
    "plan_units",
    "shard_path",
    "build_table",
    "read_table",
    "merge_tables",
    "merge_latency",
    "search",
    "pareto_front",
    "read_baselines",
    "plot_pareto",
    "latency_columns",
    "Calibration",
    "table_from_checkpoint",
]

TABLE_MAGIC = "resizable-table v1"
LATENCY_MAGIC = "resizable-latency v1"
PathLike = Union[str, os.PathLike]

# Metadata that makes two tables "the same table": rows from files that differ here are never mixed.
TABLE_IDENTITY = ("model", "factors", "num_stages", "arch_sha256", "weights_sha256", "dataset", "split",
                  "input_size", "num_samples", "calibrate_bn")
# What a latency measurement depends on (not the weights, not the data).
ARCH_IDENTITY = ("factors", "num_stages", "arch_sha256", "input_size")
REQUIRED_COLUMNS = ("config", "top1_pct", "mmacs")
_LATENCY_RE = re.compile(r"^latency_ms_b(\d+)_([A-Za-z0-9][A-Za-z0-9-]*)$")


class TableError(ValueError):
    """A table file that cannot be used as asked (not a table, another model's table, incomplete...)."""


class NoFeasibleConfig(ValueError):
    """No configuration of the table meets every constraint of a search."""


# ---------------------------------------------------------------------------- configurations as text
def _format_factor(f: float) -> str:
    # Shortest round-tripping positional form: 0.45 -> "0.45", 1.0 -> "1"; never an exponent or a '-'.
    return np.format_float_positional(float(f), trim="-")


def format_config(config: Sequence[float]) -> str:
    """``(0.45, 0.65, 1.0)`` -> ``"0.45,0.65,1"``: the table's ``config`` column (quoted in the CSV), and
    what ``resizable export/finetune --config`` take."""
    return ",".join(_format_factor(f) for f in config)


def parse_config(text: str, factors: Optional[Sequence[float]] = None, num_stages: Optional[int] = None) -> Config:
    """Parse ``"0.45,0.65,1"``, ``"0.45-0.65-1"`` or ``"(0.45, 0.65, 1.0)"`` into a configuration.

    Args:
        text: the configuration as text.
        factors: when given, every factor must be one of these (matched exactly, up to 1e-9).
        num_stages: when given, the configuration must have this many factors.
    """
    parts = [p for p in re.split(r"[\s,;/\-]+", str(text).strip().strip("()[]")) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"cannot read configuration {text!r}: expected factors like 0.45,0.65,1") from None
    if not values:
        raise ValueError(f"cannot read configuration {text!r}: no factors")
    if num_stages is not None and len(values) != num_stages:
        raise ValueError(f"configuration {text!r} has {len(values)} factors, expected {num_stages} (one per stage)")
    if factors is None:
        return tuple(values)
    out = []
    for v in values:
        match = [f for f in factors if math.isclose(f, v, rel_tol=0, abs_tol=1e-9)]
        if not match:
            raise ValueError(f"configuration {text!r}: factor {v:g} is not in the factor list {tuple(factors)}")
        out.append(float(match[0]))
    return tuple(out)


def _all_configs(factors: Sequence[float], num_stages: int) -> List[Config]:
    # Same order as ResizableNet.configs(): lexicographic in factor index, min first.
    return [tuple(c) for c in itertools.product(sorted(factors), repeat=num_stages)]


# ---------------------------------------------------------------------------- fingerprints
def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of the model's state (names, dtypes, shapes and values): the same weights, the same hash."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        h.update(_tensor_bytes(value))
    return h.hexdigest()


def arch_sha256(model: ResizableNet) -> str:
    """SHA-256 of the architecture alone (class, factor list, stage layout, parameter names and shapes)."""
    h = hashlib.sha256()
    h.update(f"{type(model).__name__}|{model.factors}|{model.stem_strides}|{model.stage_strides}\n".encode())
    for name, value in sorted(model.state_dict().items()):
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
    return h.hexdigest()


def _format_size(size: Tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def model_meta(model: ResizableNet, input_size: SizeLike, model_name: Optional[str] = None) -> Dict[str, str]:
    """The architecture metadata every table file starts with."""
    return {
        "model": model_name or type(model).__name__,
        "factors": ",".join(_format_factor(f) for f in model.factors),
        "num_stages": str(model.num_stages),
        "arch_sha256": arch_sha256(model),
        "input_size": _format_size(to_size2d(input_size)),
    }


# ---------------------------------------------------------------------------- the configuration tree
class _StagePieces:
    """Stage ``i`` cut at its resize: ``pre`` (blocks before the resize, keyed by stage i-1's factor,
    so shared by all of a node's children) and ``post(x, size)`` (the resize and the rest)."""

    def __init__(self, model: ResizableNet, index: int) -> None:
        stage = model.stage(index)
        self.pre: List[nn.Module] = []
        self.post: List[nn.Module] = []
        self.resize: Optional[nn.Module] = None
        self.whole: Optional[Callable[[torch.Tensor, Tuple[int, int]], torch.Tensor]] = None
        # Cut only a stage whose forward we know; an overridden forward runs as a whole.
        plain = (type(model).forward_stage is ResizableNet.forward_stage
                 and type(stage).forward is ResizableStage.forward and hasattr(stage, "resize"))
        if not plain:
            self.whole = lambda x, size: model.forward_stage(index, x, size)
            return
        resize = stage.resize
        after = False
        for _, child in stage.named_children():
            if child is resize:
                after = True
            elif after:
                self.post.append(child)
            else:
                self.pre.append(child)
        self.resize = resize

    def post_modules(self, model: ResizableNet, index: int) -> List[nn.Module]:
        """The modules :meth:`run_post` runs (the whole stage when it is not cut)."""
        return [model.stage(index)] if self.whole is not None else self.post

    def run_pre(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.pre:
            x = m(x)
        return x

    def run_post(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        if self.whole is not None:
            return self.whole(x, size)
        x = self.resize(x, size)
        for m in self.post:
            x = m(x)
        return x


class _InPlaceInput(Exception):
    """A stage wrote into its input, which sibling configurations still need."""


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


class _Walker:
    """Runs one batch through every configuration of a (pruned) configuration tree.

    With ``stats``, each piece of the walk first loads (or, while calibrating, accumulates) the
    BN statistics of its node (see :class:`_NodeStats`).
    """

    def __init__(self, model: ResizableNet, configs: Sequence[Config], stats: Optional[_NodeStats] = None) -> None:
        self.model = model
        self.tree = _trie(configs)
        self.pieces = [_StagePieces(model, i) for i in range(model.num_stages)]
        self.copy_inputs = False
        self.stats = stats
        self._sizes: Dict[tuple, List[Dict[float, Tuple[int, int]]]] = {}
        self._stem = [getattr(model, n) for n in model.stem_names]
        self._head = [getattr(model, n) for n in model.head_names]

    def sizes(self, hw: Tuple[int, int]) -> List[Dict[float, Tuple[int, int]]]:
        if hw not in self._sizes:
            m = self.model
            per_factor = {f: m.stage_sizes(hw, (f,) * m.num_stages) for f in m.factors}
            self._sizes[hw] = [{f: per_factor[f][i] for f in m.factors} for i in range(m.num_stages)]
        return self._sizes[hw]

    def run(self, x: torch.Tensor, leaf: Callable[[Config, torch.Tensor], None]) -> None:
        """Call ``leaf(config, logits)`` for every configuration; ``x``: (B, C, H, W)."""
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
        model, pieces = self.model, self.pieces[level]
        last = level == model.num_stages - 1
        filler = (model.factors[-1],) * (model.num_stages - level - 1)
        # the active config already agrees with `prefix`, which keys the blocks before the resize
        shared = self._piece(("pre",) + prefix, pieces.pre, pieces.run_pre, h)
        version = shared._version
        post = pieces.post_modules(model, level)
        for f, child in node.items():
            config = prefix + (f,)
            # Stage `level` and everything before it only read BN branches keyed by `config`.
            model.set_config(config + filler)
            out = self._piece(("post",) + config, post, pieces.run_post,
                              shared.clone() if self.copy_inputs else shared, sizes[level][f])
            if shared._version != version:
                raise _InPlaceInput()
            if last:
                leaf(config, self._piece(("head",) + config, self._head, model.forward_head, out))
            else:
                self._node(level + 1, out, config, child, sizes, leaf)


def _check_configs(model: ResizableNet, configs: Optional[Iterable[Sequence[float]]]) -> List[Config]:
    if configs is None:
        return model.configs()
    out = [model.check_config(c) for c in configs]
    if len(set(out)) != len(out):
        raise ValueError("configurations must be distinct")
    return out


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
    configs = _check_configs(model, configs)
    out: Dict[Config, torch.Tensor] = {}

    def keep(config: Config, logits: torch.Tensor) -> None:
        out[config] = logits

    if bn_stats is not None:
        _check_calibrated(bn_stats, configs)
    with _eval_mode(model), _bn_buffers_kept(model, bn_stats is not None):
        _Walker(model, configs, bn_stats.nodes if bn_stats is not None else None).run(x, keep)
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
    configs = _check_configs(model, configs)
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
            walker = _Walker(model, configs, nodes)
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


class _eval_mode:
    """Eval mode and the active configuration for a block, both restored afterwards."""

    def __init__(self, model: ResizableNet) -> None:
        self.model = model

    def __enter__(self) -> ResizableNet:
        self.modes = {m: m.training for m in self.model.modules()}
        self.config = self.model.config
        self.model.eval()
        return self.model

    def __exit__(self, *exc) -> None:
        self.model.set_config(self.config)
        for m, training in self.modes.items():
            m.training = training


# ---------------------------------------------------------------------------- evaluation
@dataclass
class _Counts:
    """Per-configuration correct counts, accumulated on the model's device."""

    topk: Tuple[int, ...]
    samples: int = 0
    correct: Dict[Config, torch.Tensor] = field(default_factory=dict)

    def add(self, config: Config, logits: torch.Tensor, labels: torch.Tensor) -> None:
        maxk = min(max(self.topk), logits.shape[1])
        hits = logits.topk(maxk, dim=1).indices.eq(labels[:, None])  # (B, maxk)
        row = torch.stack([hits[:, :k].any(dim=1).sum() for k in self.topk])
        if config in self.correct:
            self.correct[config] += row
        else:
            self.correct[config] = row

    def result(self) -> Dict[Config, Dict[str, int]]:
        out = {}
        for config, row in self.correct.items():
            values = row.tolist()
            out[config] = {"samples": self.samples, **{f"top{k}": v for k, v in zip(self.topk, values)}}
        return out


def _batches(loader: Iterable, device: torch.device) -> Iterable[Tuple[torch.Tensor, torch.Tensor]]:
    for batch in loader:
        images, labels = batch[0], batch[1]
        yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def _topk(model: ResizableNet) -> Tuple[int, ...]:
    return (1, 5) if model.num_classes > 5 else (1,)


@torch.no_grad()
def evaluate_configs(model: ResizableNet, loader: Iterable, configs: Optional[Iterable[Sequence[float]]] = None,
                     *, on_batch: Optional[Callable[[], None]] = None,
                     calibrate: Optional["Calibration"] = None) -> Dict[Config, Dict[str, int]]:
    """Top-1 (and top-5) correct counts of many configurations over a loader, sharing prefixes.

    Returns ``{config: {"samples": n, "top1": correct, "top5": correct}}`` ("top5" only with more
    than 5 classes), equal to :func:`evaluate_naive` on the same loader.

    Args:
        model: the ResizableNet (mode, configuration and BN statistics restored afterwards).
        loader: yields ``(images, labels)``.
        configs: the configurations (default: all ``k^N``).
        on_batch: called after each batch (progress reporting).
        calibrate: recompute each configuration's BN statistics first (prefixes shared, see
            :func:`calibrate_configs`); the result equals calibrating and testing one at a time.
    """
    configs = _check_configs(model, configs)
    device = next(model.parameters()).device
    counts = _Counts(_topk(model))
    nodes = calibrate_configs(model, calibrate.loader, calibrate.num_batches, configs).nodes if calibrate else None
    with _eval_mode(model), _bn_buffers_kept(model, nodes is not None):
        walker = _Walker(model, configs, nodes)
        for images, labels in _batches(loader, device):
            walker.run(images, lambda config, logits: counts.add(config, logits, labels))
            counts.samples += len(labels)
            if on_batch:
                on_batch()
    result = counts.result()
    return {c: result[c] for c in configs}


@torch.no_grad()
def evaluate_naive(model: ResizableNet, loader: Iterable, configs: Optional[Iterable[Sequence[float]]] = None,
                   *, on_batch: Optional[Callable[[], None]] = None) -> Dict[Config, Dict[str, int]]:
    """The reference for :func:`evaluate_configs`: one full forward per configuration and batch."""
    configs = _check_configs(model, configs)
    device = next(model.parameters()).device
    counts = _Counts(_topk(model))
    with _eval_mode(model):
        for images, labels in _batches(loader, device):
            for config in configs:
                model.set_config(config)
                counts.add(config, model(images), labels)
            counts.samples += len(labels)
            if on_batch:
                on_batch()
    result = counts.result()
    return {c: result[c] for c in configs}


# ---------------------------------------------------------------------------- costs
def config_costs(model: ResizableNet, input_size: SizeLike, configs: Optional[Iterable[Sequence[float]]] = None
                 ) -> Dict[Config, Tuple[int, int, int]]:
    """``{config: (macs, interp_macs, params)}``, exactly as :func:`resizable.count_flops` gives them.

    A stage's cost depends only on its input resolution (set by the previous stage's factor) and its
    own factor, so ``k^2`` counted forwards give every stage's cost for every factor pair, and a
    configuration's cost is the sum of its parts (checked against the direct count on the way).
    """
    configs = _check_configs(model, configs)
    n, factors = model.num_stages, model.factors
    if n < 2 or len(configs) <= len(factors) ** 2:
        return {c: _direct_cost(model, c, input_size) for c in configs}
    parts: Dict[tuple, Tuple[int, int]] = {}
    fixed: Dict[str, set] = {"stem": set(), "head": set()}
    params = set()
    consistent = True
    for a, b in itertools.product(factors, repeat=2):
        probe = tuple(a if i % 2 == 0 else b for i in range(n))  # every (previous, own) pair shows up
        report = count_flops(model, probe, input_size)
        params.add(report.params)
        for part in fixed:
            fixed[part].add(report.stages[part])
        for i in range(n):
            key = (i, probe[i - 1] if i else None, probe[i])
            if parts.setdefault(key, report.stages[f"stage{i + 1}"]) != report.stages[f"stage{i + 1}"]:
                consistent = False
    if not consistent or any(len(v) != 1 for v in fixed.values()) or len(params) != 1:
        return {c: _direct_cost(model, c, input_size) for c in configs}  # not a decomposable model
    stem, head, p = fixed["stem"].pop(), fixed["head"].pop(), params.pop()
    out = {}
    for c in configs:
        pieces = [stem, head] + [parts[(i, c[i - 1] if i else None, c[i])] for i in range(n)]
        out[c] = (sum(m for m, _ in pieces), sum(r for _, r in pieces), p)
    return out


def _direct_cost(model: ResizableNet, config: Config, input_size: SizeLike) -> Tuple[int, int, int]:
    r = count_flops(model, config, input_size)
    return r.macs, r.interp_macs, r.params


def _millions(n: int) -> str:
    # Exact decimal form of n / 1e6 (integers never pass through a float).
    sign = "-" if n < 0 else ""
    n = abs(int(n))
    return f"{sign}{n // 1_000_000}.{n % 1_000_000:06d}"


# ---------------------------------------------------------------------------- table files
@dataclass
class Table:
    """A lookup table file in memory: metadata, columns (with units) and one row per configuration.

    Values are kept as the text the file holds, so rewriting a table never changes a digit.
    """

    meta: Dict[str, str]
    columns: List[str]
    rows: Dict[Config, Dict[str, str]]
    magic: str = TABLE_MAGIC
    path: Optional[Path] = None

    @property
    def factors(self) -> Tuple[float, ...]:
        return tuple(sorted(float(v) for v in self.meta["factors"].split(",")))

    @property
    def num_stages(self) -> int:
        return int(self.meta["num_stages"])

    def all_configs(self) -> List[Config]:
        """Every configuration of the model the table is for, in ``ResizableNet.configs()`` order."""
        return _all_configs(self.factors, self.num_stages)

    def missing(self) -> List[Config]:
        return [c for c in self.all_configs() if c not in self.rows]

    def value(self, config: Config, column: str) -> float:
        text = self.rows[config].get(column, "")
        return float(text) if text != "" else math.nan

    def records(self) -> List[Dict[str, Any]]:
        """Rows in configuration order as dicts: ``config`` (a tuple) and every other column as a float."""
        order = {c: i for i, c in enumerate(self.all_configs())}
        out = []
        for c in sorted(self.rows, key=order.__getitem__):
            rec: Dict[str, Any] = {"config": c}
            rec.update({col: self.value(c, col) for col in self.columns if col != "config"})
            rec["order"] = order[c]
            out.append(rec)
        return out

    def to_text(self) -> str:
        buf = io.StringIO()
        buf.write(_meta_text(self.magic, self.meta))
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        order = {c: i for i, c in enumerate(self.all_configs())}
        for c in sorted(self.rows, key=order.__getitem__):
            writer.writerow([self.rows[c].get(col, "") for col in self.columns])
        return buf.getvalue()

    def write(self, path: PathLike) -> Path:
        """Write the whole table (rows in configuration order) atomically."""
        path = Path(path)
        atomic_write_text(path, self.to_text())
        self.path = path
        return path


def _meta_text(magic: str, meta: Mapping[str, str]) -> str:
    lines = [f"# {magic}"]
    for key, value in meta.items():
        if "\n" in str(value):
            raise ValueError(f"metadata value of {key!r} must be one line")
        lines.append(f"# {key}: {value}")
    return "\n".join(lines) + "\n"


def _parse_table_text(text: str, source: str, magic: Optional[str]) -> Tuple[Table, int]:
    """Parse a table; returns it and the length (in characters) of its complete lines.

    A last line without its newline is a row cut short by a crash: it is dropped, not an error.
    """
    if not text.strip():
        raise TableError(f"{source} is empty: not a resizable table")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    lines = complete.split("\n")[:-1] if complete else []
    if not lines or not lines[0].startswith("#"):
        raise TableError(f"{source} is not a resizable table (it does not start with '# {magic or TABLE_MAGIC}')")
    found = lines[0][1:].strip()
    accepted = (magic,) if magic else (TABLE_MAGIC, LATENCY_MAGIC)
    if found not in accepted:
        raise TableError(f"{source}: expected '# {' or '.join(accepted)}' on the first line, found {lines[0]!r}")
    meta: Dict[str, str] = {}
    i = 1
    while i < len(lines) and lines[i].startswith("#"):
        key, sep, value = lines[i][1:].partition(":")
        if sep:
            meta[key.strip()] = value.strip()
        i += 1
    for key in ("factors", "num_stages"):
        if key not in meta:
            raise TableError(f"{source}: metadata line '# {key}: ...' is missing")
    if i >= len(lines):
        raise TableError(f"{source}: no header row after the metadata")
    columns = next(csv.reader([lines[i]]))
    if not columns or columns[0] != "config" or len(set(columns)) != len(columns):
        raise TableError(f"{source}: the header must start with 'config' and name each column once, got {columns}")
    table = Table(meta, columns, {}, found, Path(source) if source else None)
    try:
        factors, num_stages = table.factors, table.num_stages
    except ValueError:
        raise TableError(f"{source}: unreadable factors {meta['factors']!r} or num_stages {meta['num_stages']!r}") from None
    for lineno, values in enumerate(csv.reader(lines[i + 1:]), start=i + 2):
        if not values:
            continue
        if len(values) != len(columns):
            raise TableError(f"{source}, line {lineno}: {len(values)} fields where the header has {len(columns)}")
        try:
            config = parse_config(values[0], factors, num_stages)
        except ValueError as e:
            raise TableError(f"{source}, line {lineno}: {e}") from None
        row = dict(zip(columns, values))
        if config in table.rows and table.rows[config] != row:
            raise TableError(f"{source}, line {lineno}: configuration {values[0]} appears twice with different values")
        table.rows[config] = row
    return table, len(complete)


def read_table(path: PathLike, *, magic: Optional[str] = TABLE_MAGIC, required: Sequence[str] = ()) -> Table:
    """Read a table file (a NAS table by default; ``magic=LATENCY_MAGIC`` for a latency table,
    ``None`` for either).

    Args:
        path: the CSV file.
        magic: the kind of table expected.
        required: columns that must be present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no table at {path}")
    table, _ = _parse_table_text(path.read_text(), str(path), magic)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; it has {table.columns}")
    return table


def _check_same(a: Mapping[str, str], b: Mapping[str, str], keys: Sequence[str], what_a: str, what_b: str) -> None:
    diffs = [k for k in keys if a.get(k) != b.get(k)]
    if diffs:
        detail = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in diffs)
        raise TableError(f"{what_a} and {what_b} are not for the same model and data ({detail}); refusing to mix them")


def _open_for_append(path: Path, magic: str, meta: Dict[str, str], columns: List[str], identity: Sequence[str]) -> Table:
    """Start a table file, or reopen one for resuming: same identity and columns, cut-short line dropped."""
    if path.exists() and path.stat().st_size > 0:
        text = path.read_text()
        table, keep = _parse_table_text(text, str(path), magic)
        _check_same(table.meta, meta, identity, str(path), "this run")
        if table.meta.get("shard") != meta.get("shard"):
            raise TableError(f"{path} holds shard {table.meta.get('shard')} but this run is shard {meta.get('shard')}")
        if table.columns != columns:
            raise TableError(f"{path} has columns {table.columns}, this run writes {columns}; refusing to mix them")
        if keep < len(text):
            with open(path, "r+b") as f:  # drop the row a crash cut short
                f.truncate(len(text[:keep].encode()))
        return table
    table = Table(dict(meta), list(columns), {}, magic, path)
    buf = io.StringIO()
    buf.write(_meta_text(magic, meta))
    csv.writer(buf, lineterminator="\n").writerow(columns)
    atomic_write_text(path, buf.getvalue())
    return table


def _append_rows(path: Path, columns: List[str], rows: Sequence[Dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    with open(path, "a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------- building a table
def plan_units(configs: Sequence[Config], depth: int) -> List[List[Config]]:
    """Group configurations (in order) into work units by their first ``depth`` factors."""
    units: Dict[Config, List[Config]] = {}
    for c in configs:
        units.setdefault(tuple(c[:depth]), []).append(c)
    return list(units.values())


def shard_path(out: PathLike, index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` writes: ``table.csv`` -> ``table.shard1of4.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard{index}of{count}{out.suffix}")


def _check_shard(shard: Tuple[int, int]) -> Tuple[int, int]:
    index, count = int(shard[0]), int(shard[1])
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    return index, count


@dataclass(frozen=True)
class Calibration:
    """Recompute BN statistics per configuration before evaluating it (DESIGN.md section 4)."""

    loader: Iterable  # training batches, the same ones for every configuration
    num_batches: int
    description: str = ""


def build_table(
    model: ResizableNet,
    loader: Iterable,
    out: PathLike,
    *,
    input_size: SizeLike,
    num_samples: int,
    dataset: str,
    split: str,
    model_name: Optional[str] = None,
    checkpoint: str = "",
    unit_depth: int = 1,
    shard: Tuple[int, int] = (0, 1),
    calibrate: Optional[Calibration] = None,
    latency: Optional[Callable[[Config], Dict[str, float]]] = None,
    latency_columns: Sequence[str] = (),
    extra_meta: Optional[Mapping[str, str]] = None,
    progress: bool = True,
) -> Table:
    """Evaluate every configuration into the table file ``out``; resume it if it exists.

    Rows are appended and flushed per work unit (all configurations sharing their first
    ``unit_depth`` factors; one pass over ``loader`` each). Restarted with the same arguments, a
    build skips the rows already written and ends with the same file. With ``shard=(i, n)`` only
    units ``i, i+n, ...`` are built (merge the shard files with :func:`merge_tables`). When a table
    is complete its rows are rewritten in configuration order.

    Args:
        model: the trained ResizableNet (on the device to evaluate on).
        loader: the evaluation split, yielding ``(images, labels)``; must be deterministic.
        out: the CSV file to write or resume.
        input_size: the input resolution (for MACs; also recorded).
        num_samples: how many samples ``loader`` yields (recorded; checked).
        dataset, split: recorded in the metadata.
        model_name: the registered name (recorded); default the class name.
        checkpoint: where the weights came from (recorded; the weight hash is what is checked).
        unit_depth: prefix length of a work unit (0: one unit, fastest, no intermediate saves).
        shard: ``(i, n)``: build only this process's share of the units.
        calibrate: recompute BN statistics per configuration first (on shared prefixes, see
            :func:`calibrate_configs`; the model's own statistics are left unchanged).
        latency: ``config -> {column: value}`` measuring latency (see :mod:`resizable.latency`).
        latency_columns: the columns ``latency`` returns.
        extra_meta: more metadata lines.
        progress: show a progress bar with the time left.
    """
    shard = _check_shard(shard)
    if unit_depth < 0 or unit_depth > model.num_stages:
        raise ValueError(f"unit_depth must be in [0, {model.num_stages}], got {unit_depth}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    k = len(model.factors)
    while k ** unit_depth < shard[1] and unit_depth < model.num_stages:
        unit_depth += 1  # enough units for every shard to get one
    out = Path(out)
    topk = _topk(model)
    columns = ["config", "top1_pct"] + (["top5_pct"] if 5 in topk else []) + ["mmacs", "interp_mmacs", "params_m"]
    columns += list(latency_columns)
    meta = model_meta(model, input_size, model_name)
    meta.update({
        "weights_sha256": weights_sha256(model),
        "checkpoint": checkpoint or "-",
        "dataset": dataset,
        "split": split,
        "num_samples": str(int(num_samples)),
        "calibrate_bn": (f"{calibrate.num_batches} batches" + (f" ({calibrate.description})" if calibrate.description else ""))
        if calibrate else "none",
        "evaluation": "configuration tree, shared prefixes" + (" (BN recalibrated per configuration)"
                                                                 if calibrate else ""),
    })
    if shard[1] > 1:
        meta["shard"] = f"{shard[0]}/{shard[1]}"
        meta["unit_depth"] = str(unit_depth)
    meta.update(extra_meta or {})

    table = _open_for_append(out, TABLE_MAGIC, meta, columns, TABLE_IDENTITY)
    units = plan_units(model.configs(), unit_depth)[shard[0]::shard[1]]
    mine = [c for unit in units for c in unit]
    todo = [[c for c in unit if c not in table.rows] for unit in units]
    todo = [u for u in todo if u]
    total = sum(len(u) for u in todo)
    costs = config_costs(model, input_size, [c for u in todo for c in u]) if total else {}
    bar = _progress(total, len(mine) - total, progress)
    try:
        for unit in todo:
            counts = _evaluate_unit(model, loader, unit, calibrate, bar)
            rows = []
            for c in unit:
                n = counts[c]["samples"]
                if n != num_samples:
                    raise ValueError(f"the loader yielded {n} samples, expected num_samples={num_samples}")
                macs, interp, params = costs[c]
                row = {"config": format_config(c), "top1_pct": f"{100.0 * counts[c]['top1'] / n:.4f}",
                       "mmacs": _millions(macs), "interp_mmacs": _millions(interp), "params_m": _millions(params)}
                if "top5" in counts[c]:
                    row["top5_pct"] = f"{100.0 * counts[c]['top5'] / n:.4f}"
                if latency is not None:
                    row.update({col: f"{v:.4f}" for col, v in latency(c).items()})
                rows.append(row)
            _append_rows(out, columns, rows)
            table.rows.update({parse_config(r["config"], model.factors): r for r in rows})
            if bar is not None:
                bar.n = sum(1 for c in mine if c in table.rows) - (len(mine) - total)  # no float drift
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    table.meta = meta
    if all(c in table.rows for c in mine):
        table.write(out)  # complete: rows in configuration order
    return table


def _progress(total: int, done: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="cfg", desc=f"table ({done} done before)" if done else "table",
                file=sys.stderr, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.1f}/{total} configs [{elapsed}<{remaining}]")


def _evaluate_unit(model: ResizableNet, loader: Iterable, unit: List[Config], calibrate: Optional[Calibration], bar
                   ) -> Dict[Config, Dict[str, int]]:
    try:
        num_batches = len(loader)  # type: ignore[arg-type]
    except TypeError:
        num_batches = 0

    def tick(share: float) -> Callable[[], None]:
        step = share / num_batches if num_batches else 0.0
        return lambda: bar.update(step) if bar is not None else None

    return evaluate_configs(model, loader, unit, on_batch=tick(len(unit)), calibrate=calibrate)


# ---------------------------------------------------------------------------- merging
def merge_tables(paths: Sequence[PathLike], out: Optional[PathLike] = None, *, allow_partial: bool = False) -> Table:
    """Join shard files (or any tables of the same model and data) into one table.

    Args:
        paths: the table files.
        out: where to write the merged table (rows in configuration order); ``None``: do not write.
        allow_partial: accept a result that lacks configurations (else an error names how many).
    """
    if not paths:
        raise ValueError("merge_tables needs at least one table")
    tables = [read_table(p) for p in paths]
    first = tables[0]
    meta = {k: v for k, v in first.meta.items() if k not in ("shard", "unit_depth")}
    merged = Table(meta, list(first.columns), {}, TABLE_MAGIC)
    for path, t in zip(paths, tables):
        _check_same(first.meta, t.meta, TABLE_IDENTITY, str(paths[0]), str(path))
        if t.columns != first.columns:
            raise TableError(f"{path} has columns {t.columns}, {paths[0]} has {first.columns}; refusing to mix them")
        for c, row in t.rows.items():
            old = merged.rows.get(c)
            if old is not None and any(old[k] != row[k] for k in old if not k.startswith("latency")):
                raise TableError(f"configuration {format_config(c)} differs between the tables ({path})")
            merged.rows.setdefault(c, row)
    missing = merged.missing()
    if missing and not allow_partial:
        raise TableError(f"the merged table lacks {len(missing)} of {len(merged.all_configs())} configurations "
                         f"(first: {format_config(missing[0])}); are all shards finished?")
    if out is not None:
        merged.write(out)
    return merged


def latency_columns(columns: Sequence[str]) -> List[str]:
    """The median-latency columns (``latency_ms_b{batch}_{device}``) among ``columns``."""
    return [c for c in columns if _LATENCY_RE.match(c)]


def merge_latency(table: Union[Table, PathLike], latency_tables: Sequence[PathLike], out: Optional[PathLike] = None
                  ) -> Table:
    """Add the latency columns of latency tables (``resizable latency``, or filled-in templates) to a table.

    Latency tables must be for the same architecture and input size (their metadata is checked when
    present) and cover every configuration the table has. A column the table already has is replaced.

    Args:
        table: the NAS table (or its path).
        latency_tables: latency table files.
        out: where to write the result; default: the table's own file.
    """
    if not isinstance(table, Table):
        table = read_table(table)
    for path in latency_tables:
        lat = read_table(path, magic=None)
        if lat.magic == LATENCY_MAGIC or "arch_sha256" in lat.meta:
            keys = [k for k in ARCH_IDENTITY if k in lat.meta]
            _check_same(table.meta, lat.meta, keys, "the table", str(path))
        else:
            _check_same(table.meta, lat.meta, ("factors", "num_stages"), "the table", str(path))
        cols = [c for c in lat.columns if c.startswith("latency_")]
        if not cols:
            raise TableError(f"{path} has no latency column (latency_ms_b<batch>_<device>); columns: {lat.columns}")
        lacking = [c for c in table.rows if c not in lat.rows or any(lat.rows[c][col] == "" for col in cols)]
        if lacking:
            raise TableError(f"{path} has no latency for {len(lacking)} configuration(s) of the table "
                             f"(first: {format_config(lacking[0])})")
        for col in cols:
            if col not in table.columns:
                table.columns.append(col)
            for c, row in table.rows.items():
                row[col] = lat.rows[c][col]
        for key in ("device", "device_name", "threads", "torch", "warmup", "repeats", "tag"):
            if key in lat.meta:
                table.meta[f"latency_{lat.meta.get('tag', 'hw')}_{key}"] = lat.meta[key]
    target = out if out is not None else table.path
    if target is None:
        raise ValueError("merge_latency needs out= for a table that has no file")
    table.write(target)
    return table


# ---------------------------------------------------------------------------- search
def _pick_latency_column(table: Table, column: Optional[str]) -> str:
    cols = latency_columns(table.columns)
    if column:
        if column not in table.columns:
            raise TableError(f"the table has no column {column!r}; latency columns: {cols or 'none'}")
        return column
    if not cols:
        raise TableError("the table has no latency column; build it with --latency or merge a latency table first")
    if len(cols) > 1:
        raise ValueError(f"the table has several latency columns {cols}; name one (latency_column=...)")
    return cols[0]


def _sort_key(rec: Dict[str, Any], lat: Optional[str]) -> tuple:
    latency = rec[lat] if lat else 0.0
    return (-rec["top1_pct"], rec["mmacs"], latency if not math.isnan(latency) else math.inf, rec["order"])


def search(
    table: Union[Table, PathLike],
    *,
    max_mmacs: Optional[float] = None,
    max_latency_ms: Optional[float] = None,
    latency_column: Optional[str] = None,
    max_params_m: Optional[float] = None,
    count_interp: bool = False,
    top: int = 1,
) -> List[Dict[str, Any]]:
    """The most accurate configurations meeting every constraint, best first.

    Ties are broken deterministically: higher top-1, then fewer MACs, then lower latency (when a
    latency column is in use), then the earlier configuration in ``configs()`` order.

    Args:
        table: a complete NAS table (or its path).
        max_mmacs: MACs budget in millions (the paper's MFLOPs).
        max_latency_ms: latency budget; needs a latency column.
        latency_column: which latency column (default: the only one).
        max_params_m: parameter budget in millions.
        count_interp: add the interpolation MACs to the MACs before comparing with ``max_mmacs``.
        top: how many configurations to return.
    Raises:
        NoFeasibleConfig: when no configuration qualifies (the message gives the cheapest one).
    """
    if not isinstance(table, Table):
        table = read_table(table, required=REQUIRED_COLUMNS)
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing_cols:
        raise TableError(f"{table.path or 'the table'}: missing column(s) {missing_cols}; it has {table.columns}")
    if not table.rows:
        raise TableError(f"{table.path or 'the table'} has no rows")
    missing = table.missing()
    if missing:
        raise TableError(f"{table.path or 'the table'} is incomplete ({len(missing)} configurations missing, first "
                         f"{format_config(missing[0])}); finish or merge it before searching")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    lat = _pick_latency_column(table, latency_column) if max_latency_ms is not None or latency_column else None
    records = table.records()
    for rec in records:
        rec["budget_mmacs"] = rec["mmacs"] + (rec["interp_mmacs"] if count_interp else 0.0)
    checks = []
    if max_mmacs is not None:
        checks.append(("budget_mmacs", max_mmacs, "MMACs" + (" (with interpolation)" if count_interp else "")))
    if max_latency_ms is not None:
        checks.append((lat, max_latency_ms, f"ms ({lat})"))
    if max_params_m is not None:
        checks.append(("params_m", max_params_m, "M parameters"))
    feasible = [r for r in records if all(r[col] <= limit for col, limit, _ in checks)]
    if not feasible:
        parts = []
        for col, limit, unit in checks:
            known = [r for r in records if not math.isnan(r[col])]
            if not known:
                parts.append(f"at most {limit:g} {unit}, but the table has no value in that column")
                continue
            best = min(known, key=lambda r: (r[col], r["order"]))
            parts.append(f"at most {limit:g} {unit}, but the cheapest configuration, "
                         f"{format_config(best['config'])}, needs {best[col]:g}")
        raise NoFeasibleConfig("no configuration meets every constraint: " + "; ".join(parts))
    feasible.sort(key=lambda r: _sort_key(r, lat))
    return feasible[:top]


def pareto_front(table: Union[Table, PathLike], cost: str = "mmacs") -> List[Dict[str, Any]]:
    """Configurations no other one beats on both accuracy and ``cost`` (a column), cheapest first.

    Among equal costs the most accurate stays (then the earlier configuration); a configuration
    joins the front only if it is strictly more accurate than every cheaper one.
    """
    if not isinstance(table, Table):
        table = read_table(table, required=REQUIRED_COLUMNS)
    if cost not in table.columns:
        raise TableError(f"the table has no column {cost!r}; columns: {table.columns}")
    if not table.rows:
        raise TableError(f"{table.path or 'the table'} has no rows")
    records = [r for r in table.records() if not math.isnan(r[cost])]
    records.sort(key=lambda r: (r[cost], -r["top1_pct"], r["order"]))
    front, best = [], -math.inf
    for r in records:
        if r["top1_pct"] > best:
            front.append(r)
            best = r["top1_pct"]
    return front


def read_baselines(path: PathLike, cost: str = "mmacs") -> List[Dict[str, Any]]:
    """Individually trained baselines to overlay: a CSV with ``label``, ``top1_pct`` and the cost column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no baselines file at {path}")
    lines = [l for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]
    if not lines:
        raise TableError(f"{path} is empty; expected a CSV with columns label,{cost},top1_pct")
    rows = list(csv.DictReader(lines))
    need = ["label", cost, "top1_pct"]
    lacking = [c for c in need if c not in (rows[0].keys() if rows else next(csv.reader(lines[:1])))]
    if lacking:
        raise TableError(f"{path}: missing column(s) {lacking}; expected {need}")
    try:
        return [{"label": r["label"], cost: float(r[cost]), "top1_pct": float(r["top1_pct"])} for r in rows]
    except ValueError as e:
        raise TableError(f"{path}: {e}") from None


def plot_pareto(table: Union[Table, PathLike], out: PathLike, *, cost: str = "mmacs",
                baselines: Sequence[Dict[str, Any]] = (), title: Optional[str] = None) -> Path:
    """Scatter every configuration, draw the Pareto front, overlay baselines; save to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(table, Table):
        table = read_table(table, required=REQUIRED_COLUMNS)
    front = pareto_front(table, cost)
    records = table.records()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter([r[cost] for r in records], [r["top1_pct"] for r in records], s=10, color="0.7",
               label=f"all {len(records)} configurations")
    ax.plot([r[cost] for r in front], [r["top1_pct"] for r in front], "-o", ms=4, color="C0", label="Pareto front")
    for b in baselines:
        ax.scatter([b[cost]], [b["top1_pct"]], marker="*", s=90, zorder=3)
        ax.annotate(b["label"], (b[cost], b["top1_pct"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    unit = {"mmacs": "MMACs (MFLOPs)", "params_m": "parameters (M)"}.get(cost, cost)
    if cost.startswith("latency_ms_"):
        m = _LATENCY_RE.match(cost)
        unit = f"latency (ms, batch {m.group(1)}, {m.group(2)})" if m else cost
    ax.set_xlabel(unit)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title or f"{table.meta.get('model', '')} on {table.meta.get('dataset', '')} ({table.meta.get('split', '')})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------- from a checkpoint
def _launch_shard() -> Tuple[int, int]:
    # torchrun sets RANK and WORLD_SIZE; each rank then builds its own shard (no process group needed).
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def table_from_checkpoint(
    checkpoint: PathLike,
    out: PathLike,
    *,
    dataset: Optional[str] = None,
    data_dir: Optional[str] = None,
    split: str = "test",
    batch_size: int = 256,
    device: str = "auto",
    input_size: Optional[int] = None,
    calibrate_bn: int = 0,
    calibrate_batch_size: Optional[int] = None,
    latency_device: Optional[str] = None,
    latency_batch: Sequence[int] = (1,),
    latency_warmup: int = 10,
    latency_repeats: int = 50,
    latency_tag: Optional[str] = None,
    unit_depth: int = 1,
    shard: Optional[Tuple[int, int]] = None,
    progress: bool = True,
) -> Tuple[Table, Path]:
    """Build (or resume) the lookup table of a trained checkpoint; what ``resizable table`` runs.

    Dataset, data folder and input size default to the training run's. With ``shard=(i, n)`` (or
    under torchrun, one shard per rank) this process writes ``shard_path(out, i, n)``; whichever
    shard finishes last merges all of them into ``out``. Returns the table written and its path.

    Args:
        checkpoint: a checkpoint file or run folder.
        out: the table CSV.
        dataset, data_dir, split: the data to evaluate on.
        batch_size: evaluation batch size.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        input_size: input resolution (default: the training run's, else the dataset's).
        calibrate_bn: if > 0, recompute BN statistics per configuration on this many training batches.
        calibrate_batch_size: batch size of those batches (default ``batch_size``).
        latency_device: also time each exported configuration on ``cpu`` or ``cuda``.
        latency_batch, latency_warmup, latency_repeats, latency_tag: see :class:`resizable.latency.LatencyProbe`.
        unit_depth: prefix length of a resumable work unit.
        shard: ``(i, n)``, 0-based; default from torchrun's ``RANK``/``WORLD_SIZE``, else ``(0, 1)``.
        progress: progress bar.
    """
    from .checkpoint import load_model_for_data, resolve_checkpoint
    from .data import load_dataset, make_loader
    from .distributed import resolve_device

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if calibrate_bn < 0:
        raise ValueError(f"calibrate_bn must be >= 0, got {calibrate_bn}")
    shard = _check_shard(shard if shard is not None else _launch_shard())
    model, payload, dataset, data_dir, size, info = load_model_for_data(checkpoint, dataset, data_dir, input_size)
    dev = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    model.to(dev)
    data = load_dataset(dataset, split, data_dir=data_dir, augment=False,
                        input_size=None if size == info.input_size else size)
    loader = make_loader(data, batch_size, shuffle=False)
    calibration = None
    if calibrate_bn:
        cbs = calibrate_batch_size or batch_size
        train_set = load_dataset(dataset, "train", data_dir=data_dir, augment=False,
                                 input_size=None if size == info.input_size else size)
        calibration = Calibration(make_loader(train_set, cbs, shuffle=True, seed=0, drop_last=True), calibrate_bn,
                                  f"train split, batch {cbs}, shuffled with seed 0, no augmentation")
    probe, probe_columns, extra = None, (), {}
    if latency_device:
        from .latency import LatencyProbe

        probe = LatencyProbe(model, size, device=latency_device, batch_sizes=latency_batch, warmup=latency_warmup,
                             repeats=latency_repeats, tag=latency_tag)
        probe_columns = probe.columns
        extra = {f"latency_{probe.tag}_{k}": v for k, v in probe.meta().items() if k != "tag"}
    out = Path(out)
    target = shard_path(out, *shard) if shard[1] > 1 else out
    table = build_table(
        model, loader, target, input_size=size, num_samples=len(data), dataset=info.name, split=split,
        model_name=payload.get("model_name"), checkpoint=str(resolve_checkpoint(checkpoint)),
        unit_depth=unit_depth, shard=shard, calibrate=calibration, latency=probe, latency_columns=probe_columns,
        extra_meta=extra, progress=progress)
    if shard[1] > 1:
        paths = [shard_path(out, i, shard[1]) for i in range(shard[1])]
        if all(p.is_file() for p in paths):
            merged = merge_tables(paths, None, allow_partial=True)
            if not merged.missing():  # else another shard is still running; the last one to finish merges
                merged.write(out)
                return merged, out
    return table, target
