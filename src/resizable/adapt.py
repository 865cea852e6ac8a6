"""Resizable-Adapt (paper section 4.3): a per-image scaling configuration, chosen by a light classifier.

Three steps, each a library function and a ``resizable adapt`` sub-command:

1. **Label** (:func:`label_checkpoint`). Every allowed configuration of a trained ResizableNet runs
   on a sample of training images (walking the configuration tree of :mod:`resizable.nas`, so
   shared prefixes run once). For every image and configuration the file keeps whether the
   prediction is right and the probability given to the true class, and each image's *best
   configuration* (:func:`best_config_index`):

   - rule ``cheapest`` (default): among the configurations that classify the image correctly, the
     one with the fewest MACs (ties: higher probability on the true class, then the earlier
     configuration in ``configs()`` order); when none does, the one with the highest probability on
     the true class (ties: fewer MACs, then the earlier configuration).
   - rule ``confident``: the configuration with the highest probability on the true class (same
     tie-breaks), whatever it costs.

2. **Train** (:func:`train_classifier`). A :class:`ConfigClassifier` (three 3x3 convolutions with
   BN and ReLU, global average pooling, a linear layer; softmax over the configurations) learns
   the label from cheap features of the same network (``source``):

   - ``min``: the last stage's output of the smallest configuration (the paper's "attached at the
     last stage"). That pass is paid for every image; its logits are reused for images routed to
     the smallest configuration, and its activations for the stages a routed configuration shares
     with it (same leading factors).
   - ``stem``: the stem's output, which every configuration computes anyway and reuses.

3. **Route** (:class:`Adapter`, :func:`evaluate_adapt`). Each image runs at the allowed
   configuration its classifier scores highest; images of a batch that go to the same configuration
   run together as one batch. Under a budget ``B`` (millions of MACs) only configurations whose
   *per-image routed cost* is at most ``B`` are allowed, where the routed cost is everything that
   image runs: the feature pass, the classifier, and the rest of the chosen configuration
   (:class:`RoutingCosts`). No routed image ever exceeds ``B``.

Label and classifier files record the weights' SHA-256 (:func:`resizable.nas.weights_sha256`) and
refuse to be used with other weights (:class:`AdaptError`).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import nas
from .checkpoint import atomic_save, load_model, load_model_for_data, resolve_checkpoint
from .flops import count_flops
from .nas import Table, format_config, parse_config
from .net import Config, ResizableNet, SizeLike, to_size2d

__all__ = [
    "LABELS_FORMAT",
    "CLASSIFIER_FORMAT",
    "RULES",
    "SOURCES",
    "AdaptError",
    "ConfigOutcomes",
    "config_outcomes",
    "best_config_index",
    "part_costs",
    "RoutingCosts",
    "routing_costs",
    "ConfigClassifier",
    "module_macs",
    "FeaturePass",
    "feature_pass",
    "model_identity",
    "LabelSet",
    "label_images",
    "save_labels",
    "load_labels",
    "TrainedClassifier",
    "train_classifier",
    "save_classifier",
    "load_classifier",
    "Adapter",
    "outcomes_table",
    "evaluate_adapt",
    "label_checkpoint",
    "train_checkpoint",
    "eval_checkpoint",
]

LABELS_FORMAT = "resizable-adapt-labels"
CLASSIFIER_FORMAT = "resizable-adapt-classifier"
RULES = ("cheapest", "confident")
SOURCES = ("min", "stem")
LARGE_SAMPLE = 50_000  # paper: 50k training images; the default sample on datasets larger than memory
PathLike = Union[str, os.PathLike]


class AdaptError(ValueError):
    """A label or classifier file that does not fit the checkpoint, or is not such a file."""


def _check_choice(value: str, accepted: Sequence[str], what: str) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
    return value


# ---------------------------------------------------------------------------- per-image outcomes
@dataclass
class ConfigOutcomes:
    """What every configuration does on every image: right or wrong, and the true class's probability."""

    configs: List[Config]
    correct: torch.Tensor  # (N, C) bool: top-1 prediction of configuration c is the true class
    p_true: torch.Tensor  # (N, C) float32: softmax probability of the true class
    targets: torch.Tensor  # (N,) int64

    def top1_pct(self) -> List[float]:
        """Top-1 of each configuration, in percent (what the lookup table says on the same images)."""
        n = max(1, self.correct.shape[0])
        return (100.0 * self.correct.sum(0).double() / n).tolist()


@torch.no_grad()
def config_outcomes(model: ResizableNet, loader: Iterable, configs: Optional[Iterable[Sequence[float]]] = None,
                    *, on_batch: Optional[Callable[[], None]] = None) -> ConfigOutcomes:
    """Run every configuration on every image of ``loader``, sharing prefixes (see :mod:`resizable.nas`).

    The per-configuration correct counts equal :func:`resizable.nas.evaluate_configs` on the same
    loader (the same walk, the same top-1 rule).

    Args:
        model: the trained ResizableNet (mode and configuration restored afterwards).
        loader: yields ``(images, labels)`` in a fixed order.
        configs: the configurations to run (default: all ``k^N``).
        on_batch: called after each batch.
    """
    configs = nas._check_configs(model, configs)
    column = {c: j for j, c in enumerate(configs)}
    device = next(model.parameters()).device
    correct, p_true, targets = [], [], []
    with nas._eval_mode(model):
        walker = nas._Walker(model, configs)
        for images, labels in nas._batches(loader, device):
            hit = torch.zeros(len(labels), len(configs), dtype=torch.bool)
            prob = torch.zeros(len(labels), len(configs), dtype=torch.float32)

            def leaf(config: Config, logits: torch.Tensor) -> None:
                j = column[config]
                logits = logits.float()
                hit[:, j] = logits.topk(1, dim=1).indices[:, 0].eq(labels).cpu()
                prob[:, j] = logits.softmax(dim=1).gather(1, labels[:, None])[:, 0].cpu()

            walker.run(images, leaf)
            correct.append(hit)
            p_true.append(prob)
            targets.append(labels.cpu())
            if on_batch:
                on_batch()
    if not targets:
        raise ValueError("the loader yielded no images")
    return ConfigOutcomes(list(configs), torch.cat(correct), torch.cat(p_true), torch.cat(targets))


def best_config_index(correct: torch.Tensor, p_true: torch.Tensor, costs: Sequence[float], rule: str = "cheapest",
                      allowed: Optional[Sequence[bool]] = None) -> torch.Tensor:
    """Each image's best configuration (a column index), by ``rule``; see the module docstring.

    Args:
        correct: (N, C) bool, configuration c classifies image n correctly.
        p_true: (N, C), probability configuration c gives image n's true class.
        costs: (C,) cost of each configuration (MACs).
        rule: ``cheapest`` or ``confident``.
        allowed: (C,) bool; only these configurations may be chosen (default: all).
    """
    _check_choice(rule, RULES, "rule")
    n, c = correct.shape
    if p_true.shape != (n, c) or len(costs) != c:
        raise ValueError(f"correct {tuple(correct.shape)}, p_true {tuple(p_true.shape)} and {len(costs)} costs "
                         "disagree")
    cost = torch.as_tensor(list(costs), dtype=torch.float64).expand(n, c)
    allow = torch.ones(c, dtype=torch.bool) if allowed is None else torch.as_tensor(list(allowed), dtype=torch.bool)
    if not bool(allow.any()):
        raise ValueError("no configuration is allowed")
    allow = allow.expand(n, c)
    p = p_true.double()
    inf = torch.tensor(math.inf, dtype=torch.float64)

    def cheapest_then_confident(mask: torch.Tensor) -> torch.Tensor:
        low = torch.where(mask, cost, inf).min(dim=1, keepdim=True).values
        tie = mask & (cost == low)
        return torch.where(tie, p, -inf).argmax(dim=1)  # argmax: first index among equals

    def confident_then_cheapest(mask: torch.Tensor) -> torch.Tensor:
        high = torch.where(mask, p, -inf).max(dim=1, keepdim=True).values
        tie = mask & (p == high)
        return torch.where(tie, cost, inf).argmin(dim=1)

    confident = confident_then_cheapest(allow)
    if rule == "confident":
        return confident
    ok = correct.bool() & allow
    return torch.where(ok.any(dim=1), cheapest_then_confident(ok), confident)


# ---------------------------------------------------------------------------- costs
def part_costs(model: ResizableNet, input_size: SizeLike, configs: Optional[Iterable[Sequence[float]]] = None
               ) -> Dict[Config, List[Tuple[int, int]]]:
    """``{config: [(macs, interp_macs) of the stem, stage 1, ..., stage N, the head]}``.

    As in :func:`resizable.nas.config_costs`: a stage's cost depends on its own factor and the
    previous one, so ``k^2`` counted forwards give every part of every configuration; a model whose
    parts do not decompose that way is counted configuration by configuration.
    """
    configs = nas._check_configs(model, configs)
    n = model.num_stages
    names = ["stem"] + [f"stage{i + 1}" for i in range(n)] + ["head"]
    parts: Dict[tuple, Tuple[int, int]] = {}
    ends = set()
    for a, b in itertools.product(model.factors, repeat=2):
        probe = tuple(a if i % 2 == 0 else b for i in range(n))
        stages = count_flops(model, probe, input_size).stages
        ends.add((stages["stem"], stages["head"]))
        for i in range(n):
            key = (i, probe[i - 1] if i else None, probe[i])
            if parts.setdefault(key, stages[names[i + 1]]) != stages[names[i + 1]]:
                ends.add(None)  # not decomposable
    out: Dict[Config, List[Tuple[int, int]]] = {}
    if len(ends) == 1 and None not in ends:
        stem, head = ends.pop()
        for c in configs:
            out[c] = [stem] + [parts[(i, c[i - 1] if i else None, c[i])] for i in range(n)] + [head]
        check = configs[-1]
        report = count_flops(model, check, input_size)
        if (sum(m for m, _ in out[check]), sum(r for _, r in out[check])) == (report.macs, report.interp_macs):
            return out
    for c in configs:
        stages = count_flops(model, c, input_size).stages
        out[c] = [stages[name] for name in names]
    return out


@dataclass(frozen=True)
class RoutingCosts:
    """Per-image MACs of routing to each configuration (what a budget is compared with).

    ``routed_macs[j]`` = feature pass + classifier + the part of configuration ``j`` that the
    feature pass has not already computed. ``start[j]`` is the stage the routed pass starts from
    (0: right after the stem; ``N``: nothing left, the feature pass's logits are the answer).
    """

    configs: Tuple[Config, ...]
    source: str
    config_macs: Tuple[int, ...]  # the sub-network alone, as in the lookup table's mmacs column
    config_interp: Tuple[int, ...]
    feature_macs: int  # the feature pass (stem, or the whole smallest configuration)
    feature_interp: int
    classifier_macs: int
    start: Tuple[int, ...]
    routed_macs: Tuple[int, ...]
    routed_interp: Tuple[int, ...]

    def budget_costs(self, count_interp: bool = False) -> List[int]:
        """The per-image cost a budget bounds, for each configuration."""
        return [m + (r if count_interp else 0) for m, r in zip(self.routed_macs, self.routed_interp)]

    def allowed(self, max_mmacs: Optional[float], count_interp: bool = False) -> torch.Tensor:
        """(C,) bool: configurations whose routed per-image cost is at most ``max_mmacs`` millions."""
        costs = self.budget_costs(count_interp)
        if max_mmacs is None:
            return torch.ones(len(costs), dtype=torch.bool)
        mask = torch.tensor([c <= max_mmacs * 1e6 for c in costs], dtype=torch.bool)
        if not bool(mask.any()):
            j = min(range(len(costs)), key=costs.__getitem__)
            raise nas.NoFeasibleConfig(
                f"no configuration fits {max_mmacs:g} MMACs per image: the cheapest routed image, "
                f"{format_config(self.configs[j])} via the '{self.source}' features, costs {costs[j] / 1e6:g} MMACs "
                f"(feature pass {self.feature_macs / 1e6:g} + classifier {self.classifier_macs / 1e6:g} + "
                f"the rest of the configuration)")
        return mask


def _shared_prefix(a: Config, b: Config) -> int:
    n = 0
    while n < len(a) and a[n] == b[n]:
        n += 1
    return n


def routing_costs(model: ResizableNet, input_size: SizeLike, configs: Sequence[Config], source: str,
                  classifier_macs: int) -> RoutingCosts:
    """The :class:`RoutingCosts` of routing among ``configs`` with features from ``source``."""
    _check_choice(source, SOURCES, "feature source")
    configs = [model.check_config(c) for c in configs]
    probe = model.min_config
    parts = part_costs(model, input_size, list(dict.fromkeys(list(configs) + [probe])))
    n = model.num_stages
    if source == "stem":
        feature = parts[probe][0]
    else:
        feature = (sum(m for m, _ in parts[probe]), sum(r for _, r in parts[probe]))
    start, routed, routed_interp = [], [], []
    for c in configs:
        j = 0 if source == "stem" else _shared_prefix(c, probe)
        rest = [] if j == n else parts[c][1 + j:]  # stages j+1..N and the head
        start.append(j)
        routed.append(feature[0] + classifier_macs + sum(m for m, _ in rest))
        routed_interp.append(feature[1] + sum(r for _, r in rest))
    return RoutingCosts(
        configs=tuple(configs), source=source,
        config_macs=tuple(sum(m for m, _ in parts[c]) for c in configs),
        config_interp=tuple(sum(r for _, r in parts[c]) for c in configs),
        feature_macs=feature[0], feature_interp=feature[1], classifier_macs=int(classifier_macs),
        start=tuple(start), routed_macs=tuple(routed), routed_interp=tuple(routed_interp))


# ---------------------------------------------------------------------------- the classifier
class ConfigClassifier(nn.Module):
    """Scaling-configuration classifier: three 3x3 conv-BN-ReLU, global average pooling, linear.

    A convolution has stride 2 while its input is larger than 4x4, so the cost stays small on
    early (large) feature maps. Outputs one logit per configuration; softmax gives the paper's
    configuration probabilities.

    Args:
        in_chans: channels of the features it reads.
        num_configs: number of configurations it chooses among.
        feature_size: (H, W) of those features.
        width: channels of its three convolutions.
    """

    def __init__(self, in_chans: int, num_configs: int, feature_size: SizeLike, width: int = 32) -> None:
        super().__init__()
        if in_chans < 1 or num_configs < 1 or width < 1:
            raise ValueError(f"in_chans, num_configs and width must be >= 1, got {in_chans}, {num_configs}, {width}")
        h, w = to_size2d(feature_size)
        layers: List[nn.Module] = []
        chans = in_chans
        for _ in range(3):
            stride = 2 if min(h, w) > 4 else 1
            layers += [nn.Conv2d(chans, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
            chans = width
        self.in_chans, self.num_configs, self.width = in_chans, num_configs, width
        self.feature_size = to_size2d(feature_size)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_configs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_chans, H, W) -> (B, num_configs)
        return self.fc(self.pool(self.features(x)).flatten(1))

    def extra_repr(self) -> str:
        return f"in_chans={self.in_chans}, feature_size={self.feature_size}, num_configs={self.num_configs}"


@torch.no_grad()
def module_macs(module: nn.Module, example_shape: Sequence[int]) -> int:
    """MACs of one sample through ``module``, counted like :func:`resizable.count_flops` (convolutions
    and linear layers; BN, activations and pooling free).

    Args:
        module: the module (its mode is restored afterwards).
        example_shape: input shape without the batch dimension, e.g. ``(32, 7, 7)``.
    """
    total = [0]

    def conv(m: nn.Conv2d, args, out: torch.Tensor) -> None:
        total[0] += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m: nn.Linear, args, out: torch.Tensor) -> None:
        total[0] += out[0].numel() * m.in_features

    handles = [m.register_forward_hook(conv) for m in module.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear) for m in module.modules() if isinstance(m, nn.Linear)]
    was_training = module.training
    try:
        module.eval()
        p = next(module.parameters())
        module(torch.zeros(1, *example_shape, device=p.device, dtype=p.dtype))
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total[0]


# ---------------------------------------------------------------------------- the feature pass
@dataclass
class FeaturePass:
    """What the classifier's feature pass computed for one batch (reused by the routed pass)."""

    features: torch.Tensor  # what the classifier reads
    acts: List[torch.Tensor]  # acts[0]: stem output; acts[i]: stage i's output at the smallest configuration
    logits: Optional[torch.Tensor]  # the smallest configuration's logits (source "min")


def feature_pass(model: ResizableNet, x: torch.Tensor, source: str) -> FeaturePass:
    """Stem (source ``stem``), or the whole smallest configuration (source ``min``), on ``x`` (B, C, H, W).

    Runs under the model's current mode; leaves the smallest configuration active for ``min``.
    """
    _check_choice(source, SOURCES, "feature source")
    h = model.forward_stem(x)
    acts = [h]
    if source == "stem":
        return FeaturePass(h, acts, None)
    model.set_config(model.min_config)
    for i, size in enumerate(model.stage_sizes(x.shape[-2:])):
        h = model.forward_stage(i, h, size)
        acts.append(h)
    return FeaturePass(h, acts, model.forward_head(h))


def _feature_shape(model: ResizableNet, input_size: SizeLike, source: str) -> Tuple[int, int, int]:
    with nas._eval_mode(model), torch.no_grad():
        p = next(model.parameters())
        h, w = to_size2d(input_size)
        f = feature_pass(model, torch.zeros(1, model.in_chans, h, w, device=p.device, dtype=p.dtype), source).features
    return tuple(f.shape[1:])  # type: ignore[return-value]


# ---------------------------------------------------------------------------- identities and files
def model_identity(model: ResizableNet, model_name: Optional[str] = None) -> Dict[str, str]:
    """What ties a label or classifier file to one trained network."""
    return {"model": model_name or type(model).__name__,
            "factors": ",".join(format(f, "g") for f in model.factors),
            "num_stages": str(model.num_stages),
            "arch_sha256": nas.arch_sha256(model),
            "weights_sha256": nas.weights_sha256(model)}


def _check_identity(recorded: Dict[str, str], model: ResizableNet, what: str, weights: Optional[str] = None) -> None:
    weights = weights or nas.weights_sha256(model)
    if recorded.get("arch_sha256") != nas.arch_sha256(model):
        raise AdaptError(f"{what} was made for another architecture ({recorded.get('model')}, factors "
                         f"{recorded.get('factors')}, {recorded.get('num_stages')} stages); refusing to use it here")
    if recorded.get("weights_sha256") != weights:
        theirs = recorded.get("weights_sha256", "?")[:12]
        raise AdaptError(f"{what} was made with other weights (weights_sha256 {theirs}..., "
                         f"this checkpoint has {weights[:12]}...); label and train again for this checkpoint")


def file_sha256(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read(path: PathLike, fmt: str, what: str) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle of anything else, a truncated file...
        raise AdaptError(f"{path} is not a {what} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise AdaptError(f"{path} is not a {what} (no format={fmt!r} field)")
    return payload


# ---------------------------------------------------------------------------- labels
@dataclass
class LabelSet:
    """Per-image outcomes of every configuration on a sample of images, and each image's label."""

    identity: Dict[str, str]
    dataset: str
    data_dir: Optional[str]
    split: str
    input_size: Tuple[int, int]
    indices: torch.Tensor  # (N,) positions of the images in the split
    outcomes: ConfigOutcomes
    config_macs: List[int]
    rule: str
    labels: torch.Tensor  # (N,) column index of each image's best configuration
    checkpoint: str = ""

    @property
    def configs(self) -> List[Config]:
        return self.outcomes.configs

    def relabel(self, rule: str) -> "LabelSet":
        """The same outcomes, labelled by another rule."""
        labels = best_config_index(self.outcomes.correct, self.outcomes.p_true, self.config_macs, rule)
        return LabelSet(self.identity, self.dataset, self.data_dir, self.split, self.input_size, self.indices,
                        self.outcomes, self.config_macs, rule, labels, self.checkpoint)

    def summary(self, top: int = 5) -> Dict[str, Any]:
        """Share of images with at least one correct configuration, mean label cost, most frequent labels."""
        n = len(self.labels)
        counts = torch.bincount(self.labels, minlength=len(self.configs))
        order = counts.argsort(descending=True)[:top].tolist()
        macs = torch.tensor(self.config_macs, dtype=torch.float64)
        return {
            "images": n, "configs": len(self.configs), "rule": self.rule,
            "any_correct_pct": 100.0 * float(self.outcomes.correct.any(dim=1).double().mean()),
            "label_mean_mmacs": float(macs[self.labels].mean()) / 1e6 if n else 0.0,
            "most_frequent": [(format_config(self.configs[j]), int(counts[j])) for j in order if counts[j] > 0],
        }


def label_images(model: ResizableNet, loader: Iterable, *, input_size: SizeLike, indices: torch.Tensor,
                 dataset: str, split: str, data_dir: Optional[str] = None, configs: Optional[Sequence[Config]] = None,
                 rule: str = "cheapest", model_name: Optional[str] = None, checkpoint: str = "",
                 on_batch: Optional[Callable[[], None]] = None) -> LabelSet:
    """Label the images of ``loader`` (in order; ``indices`` says where they sit in the split).

    Args:
        model: the trained ResizableNet.
        loader: the images, unaugmented, in the order of ``indices``.
        input_size: their resolution (for the MACs of each configuration).
        indices: (N,) positions in the split (recorded, so the images can be found again).
        dataset, split, data_dir: recorded.
        configs: the allowed configurations (default: all).
        rule: ``cheapest`` or ``confident`` (see :func:`best_config_index`).
        model_name: registered name (recorded).
        checkpoint: where the weights came from (recorded; the weight hash is what is checked).
    """
    _check_choice(rule, RULES, "rule")
    outcomes = config_outcomes(model, loader, configs, on_batch=on_batch)
    if len(outcomes.targets) != len(indices):
        raise ValueError(f"the loader yielded {len(outcomes.targets)} images for {len(indices)} indices")
    costs = nas.config_costs(model, input_size, outcomes.configs)
    macs = [costs[c][0] for c in outcomes.configs]
    labels = best_config_index(outcomes.correct, outcomes.p_true, macs, rule)
    return LabelSet(model_identity(model, model_name), dataset, data_dir, split, to_size2d(input_size),
                    torch.as_tensor(indices, dtype=torch.int64), outcomes, macs, rule, labels, checkpoint)


def save_labels(labels: LabelSet, path: PathLike) -> Path:
    """Write a label file atomically (a torch file of tensors and plain values; loads with ``weights_only``)."""
    o = labels.outcomes
    payload = {
        "format": LABELS_FORMAT, "version": 1, "identity": dict(labels.identity), "checkpoint": labels.checkpoint,
        "dataset": labels.dataset, "data_dir": labels.data_dir or "", "split": labels.split,
        "input_size": list(labels.input_size), "indices": labels.indices, "targets": o.targets,
        "configs": [format_config(c) for c in o.configs], "config_macs": list(labels.config_macs),
        "correct": o.correct, "p_true": o.p_true, "rule": labels.rule, "labels": labels.labels,
        "summary": json.dumps(labels.summary()),
    }
    path = Path(path)
    atomic_save(payload, path)
    return path


def load_labels(path: PathLike, model: Optional[ResizableNet] = None) -> LabelSet:
    """Read a label file; with ``model``, refuse it unless it was made with these exact weights."""
    p = _read(path, LABELS_FORMAT, "Resizable-Adapt label file")
    if model is not None:
        _check_identity(p["identity"], model, f"the label file {path}")
    factors = tuple(float(f) for f in p["identity"]["factors"].split(","))
    configs = [parse_config(c, factors, int(p["identity"]["num_stages"])) for c in p["configs"]]
    outcomes = ConfigOutcomes(configs, p["correct"], p["p_true"], p["targets"])
    return LabelSet(p["identity"], p["dataset"], p["data_dir"] or None, p["split"], tuple(p["input_size"]),
                    p["indices"], outcomes, [int(m) for m in p["config_macs"]], p["rule"], p["labels"],
                    p.get("checkpoint", ""))


# ---------------------------------------------------------------------------- training the classifier
@dataclass
class TrainedClassifier:
    """A trained :class:`ConfigClassifier` with what it needs to route (and what it was trained on)."""

    classifier: ConfigClassifier
    source: str
    configs: List[Config]
    identity: Dict[str, str]
    input_size: Tuple[int, int]
    rule: str
    report: Dict[str, Any] = field(default_factory=dict)


def _batched_features(model: ResizableNet, loader: Iterable, source: str, device: torch.device) -> torch.Tensor:
    out = []
    with nas._eval_mode(model), torch.no_grad():
        for images, _ in nas._batches(loader, device):
            out.append(feature_pass(model, images, source).features.cpu())
    return torch.cat(out)


def train_classifier(model: ResizableNet, loader: Iterable, labels: LabelSet, *, source: str = "min", width: int = 32,
                     epochs: int = 15, batch_size: int = 256, lr: float = 2e-3, weight_decay: float = 1e-4,
                     val_fraction: float = 0.1, seed: int = 0, max_cached_mb: float = 2048.0,
                     progress: bool = False) -> TrainedClassifier:
    """Train a :class:`ConfigClassifier` to predict ``labels.labels`` from the ``source`` features.

    The network stays frozen (eval mode). AdamW with a cosine-decayed rate and cross-entropy over
    the label set's configurations; ``val_fraction`` of the images (drawn with ``seed``) are held out
    to report label accuracy and the top-1 and MACs the routed network would get on them (read
    from the recorded outcomes). Features are computed once and kept in memory when they fit in
    ``max_cached_mb``, otherwise recomputed every epoch.

    Args:
        model: the trained ResizableNet the labels were made with.
        loader: the labelled images, unaugmented, in the label file's order.
        labels: the label set.
        source: ``min`` or ``stem``.
        width: channels of the classifier's convolutions.
        epochs, batch_size, lr, weight_decay: optimisation.
        val_fraction: share of images held out, in [0, 1).
        seed: seed of the initialisation, the held-out draw and the batch order.
        progress: print one line per epoch.
    """
    _check_choice(source, SOURCES, "feature source")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    _check_identity(labels.identity, model, "the label set")
    device = next(model.parameters()).device
    n = len(labels.labels)
    shape = _feature_shape(model, labels.input_size, source)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_val = int(round(n * val_fraction))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    if len(train_idx) == 0:
        raise ValueError("no image left to train on; lower val_fraction")

    cached = math.prod(shape) * n * 4 / 2 ** 20 <= max_cached_mb
    feats = _batched_features(model, loader, source, device) if cached else None
    stream = None if cached else _FeatureStream(model, loader, source, device)

    def features_for(idx: torch.Tensor) -> torch.Tensor:
        return feats.index_select(0, idx).to(device) if feats is not None else stream.get(idx)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = ConfigClassifier(shape[0], len(labels.configs), shape[1:], width).to(device)
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / (epochs * steps_per_epoch)))))
    y_all = labels.labels.to(device)
    history = []
    for epoch in range(epochs):
        clf.train()
        order = train_idx[torch.randperm(len(train_idx), generator=g)]
        total, seen = 0.0, 0
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = features_for(idx)
            loss = F.cross_entropy(clf(x), y_all[idx.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        history.append(total / seen)
        if progress:
            print(f"classifier epoch {epoch + 1}/{epochs}  loss {history[-1]:.4f}", file=sys.stderr, flush=True)
    clf.eval()

    report: Dict[str, Any] = {"train_images": int(len(train_idx)), "val_images": int(n_val), "epochs": epochs,
                              "loss": history, "feature_shape": list(shape), "cached_features": cached}
    for name, idx in (("train", train_idx), ("val", val_idx)):
        if len(idx) == 0:
            continue
        with torch.no_grad():
            pred = torch.cat([clf(features_for(idx[i:i + 1024])).argmax(1).cpu()
                              for i in range(0, len(idx), 1024)])
        o = labels.outcomes
        rows = torch.arange(len(idx))
        macs = torch.tensor(labels.config_macs, dtype=torch.float64)
        report[name] = {
            "label_accuracy_pct": 100.0 * float((pred == labels.labels[idx]).double().mean()),
            "routed_top1_pct": 100.0 * float(o.correct[idx][rows, pred].double().mean()),
            "routed_mean_config_mmacs": float(macs[pred].mean()) / 1e6,
            "label_top1_pct": 100.0 * float(o.correct[idx][rows, labels.labels[idx]].double().mean()),
        }
    return TrainedClassifier(clf, source, list(labels.configs), dict(labels.identity), tuple(labels.input_size),
                             labels.rule, report)


class _FeatureStream:
    """Features of arbitrary label-set rows, recomputed from the images (when they are too big to keep)."""

    def __init__(self, model: ResizableNet, loader: Iterable, source: str, device: torch.device) -> None:
        self.model, self.source, self.device = model, source, device
        self.images = torch.cat([images for images, _ in loader])

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        with nas._eval_mode(self.model), torch.no_grad():
            return feature_pass(self.model, self.images.index_select(0, idx).to(self.device), self.source).features


def save_classifier(trained: TrainedClassifier, path: PathLike, *, labels_path: Optional[PathLike] = None) -> Path:
    """Write a classifier file atomically (loads with ``weights_only``)."""
    clf = trained.classifier
    payload = {
        "format": CLASSIFIER_FORMAT, "version": 1, "identity": dict(trained.identity), "source": trained.source,
        "configs": [format_config(c) for c in trained.configs], "input_size": list(trained.input_size),
        "rule": trained.rule,
        "arch": {"in_chans": clf.in_chans, "num_configs": clf.num_configs, "feature_size": list(clf.feature_size),
                 "width": clf.width},
        "state_dict": {k: v.detach().cpu() for k, v in clf.state_dict().items()},
        "macs": module_macs(clf, (clf.in_chans, *clf.feature_size)),
        "labels": str(labels_path) if labels_path else "",
        "labels_sha256": file_sha256(labels_path) if labels_path else "",
        "report": json.dumps(trained.report),
    }
    path = Path(path)
    atomic_save(payload, path)
    return path


def load_classifier(path: PathLike, model: Optional[ResizableNet] = None) -> TrainedClassifier:
    """Read a classifier file; with ``model``, refuse it unless it was trained for these exact weights."""
    p = _read(path, CLASSIFIER_FORMAT, "Resizable-Adapt classifier file")
    if model is not None:
        _check_identity(p["identity"], model, f"the classifier {path}")
    arch = p["arch"]
    clf = ConfigClassifier(arch["in_chans"], arch["num_configs"], tuple(arch["feature_size"]), arch["width"])
    clf.load_state_dict(p["state_dict"])
    clf.eval()
    factors = tuple(float(f) for f in p["identity"]["factors"].split(","))
    configs = [parse_config(c, factors, int(p["identity"]["num_stages"])) for c in p["configs"]]
    return TrainedClassifier(clf, p["source"], configs, p["identity"], tuple(p["input_size"]), p["rule"],
                             json.loads(p.get("report") or "{}"))


# ---------------------------------------------------------------------------- routing
class Adapter:
    """A trained ResizableNet with its configuration classifier: each image runs at its own configuration.

    Args:
        model: the ResizableNet.
        classifier: its :class:`ConfigClassifier`.
        configs: the configurations the classifier chooses among (its outputs, in order).
        source: where the classifier reads its features (``min`` or ``stem``).
        input_size: the input resolution (for the costs).
    """

    def __init__(self, model: ResizableNet, classifier: ConfigClassifier, configs: Sequence[Config], source: str,
                 input_size: SizeLike) -> None:
        _check_choice(source, SOURCES, "feature source")
        if classifier.num_configs != len(configs):
            raise ValueError(f"the classifier has {classifier.num_configs} outputs for {len(configs)} configurations")
        self.model, self.classifier, self.source = model, classifier, source
        self.configs = [model.check_config(c) for c in configs]
        self.input_size = to_size2d(input_size)
        shape = _feature_shape(model, self.input_size, source)
        if (classifier.in_chans, *classifier.feature_size) != tuple(shape):
            raise ValueError(f"the classifier reads {(classifier.in_chans, *classifier.feature_size)} features, "
                             f"the '{source}' features of this model are {tuple(shape)}")
        self.costs = routing_costs(model, self.input_size, self.configs, source, module_macs(classifier, shape))

    @classmethod
    def from_trained(cls, model: ResizableNet, trained: TrainedClassifier) -> "Adapter":
        return cls(model, trained.classifier, trained.configs, trained.source, trained.input_size)

    def allowed(self, max_mmacs: Optional[float] = None, count_interp: bool = False) -> torch.Tensor:
        """(C,) bool: the configurations an image may be routed to under the per-image budget."""
        return self.costs.allowed(max_mmacs, count_interp)

    def _choose(self, x: torch.Tensor, allowed: torch.Tensor) -> Tuple[torch.Tensor, FeaturePass]:
        fp = feature_pass(self.model, x, self.source)
        scores = self.classifier(fp.features).float()
        scores = scores.masked_fill(~allowed.to(scores.device), -math.inf)
        return scores.argmax(dim=1), fp

    @torch.no_grad()
    def infer(self, x: torch.Tensor, allowed: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, classes) and the configuration index chosen for each image of ``x`` (B, C, H, W).

        Images that go to the same configuration run as one batch, starting from the feature
        pass's activations where the configuration shares them.
        """
        allowed = self.allowed() if allowed is None else allowed
        with nas._eval_mode(self.model), _eval(self.classifier):
            choice, fp = self._choose(x, allowed)
            logits = torch.empty(x.shape[0], self.model.num_classes, device=x.device)
            for j in choice.unique().tolist():
                idx = (choice == j).nonzero()[:, 0]
                logits[idx] = self._finish(j, fp, idx, x.shape[-2:]).float()
        return logits, choice

    def _finish(self, j: int, fp: FeaturePass, idx: torch.Tensor, hw) -> torch.Tensor:
        model, start = self.model, self.costs.start[j]
        if start == model.num_stages:
            return fp.logits.index_select(0, idx)
        config = self.configs[j]
        model.set_config(config)
        sizes = model.stage_sizes(tuple(hw), config)
        h = fp.acts[start].index_select(0, idx)
        for i in range(start, model.num_stages):
            h = model.forward_stage(i, h, sizes[i])
        return model.forward_head(h)

    @torch.no_grad()
    def infer_one_by_one(self, x: torch.Tensor, allowed: Optional[torch.Tensor] = None
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The reference for :meth:`infer`: each image alone, its configuration run as a full forward."""
        allowed = self.allowed() if allowed is None else allowed
        out, choices = [], []
        with nas._eval_mode(self.model), _eval(self.classifier):
            for i in range(x.shape[0]):
                xi = x[i:i + 1]
                j = int(self._choose(xi, allowed)[0][0])
                self.model.set_config(self.configs[j])
                out.append(self.model(xi).float())
                choices.append(j)
        return torch.cat(out), torch.tensor(choices, device=x.device)


class _eval:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> nn.Module:
        self.was = self.module.training
        self.module.eval()
        return self.module

    def __exit__(self, *exc) -> None:
        self.module.train(self.was)


# ---------------------------------------------------------------------------- evaluation
def outcomes_table(model: ResizableNet, outcomes: ConfigOutcomes, input_size: SizeLike, *, dataset: str = "",
                   split: str = "test", model_name: Optional[str] = None) -> Table:
    """The lookup table (top-1, MACs, parameters of every configuration) that ``outcomes`` imply.

    Its top-1 column equals what ``resizable table`` writes for the same images (same walk, same rule).
    """
    costs = nas.config_costs(model, input_size, outcomes.configs)
    meta = nas.model_meta(model, input_size, model_name)
    meta.update({"weights_sha256": nas.weights_sha256(model), "dataset": dataset, "split": split,
                 "num_samples": str(len(outcomes.targets)), "calibrate_bn": "none",
                 "evaluation": "configuration tree, shared prefixes (resizable adapt eval)"})
    rows = {}
    for c, top1 in zip(outcomes.configs, outcomes.top1_pct()):
        macs, interp, params = costs[c]
        rows[c] = {"config": format_config(c), "top1_pct": f"{top1:.4f}", "mmacs": nas._millions(macs),
                   "interp_mmacs": nas._millions(interp), "params_m": nas._millions(params)}
    return Table(meta, ["config", "top1_pct", "mmacs", "interp_mmacs", "params_m"], rows)


def _time_static(model: ResizableNet, config: Config, loader: Iterable, device: torch.device) -> float:
    with nas._eval_mode(model), torch.no_grad():
        model.set_config(config)
        for images, _ in nas._batches(loader, device):
            model(images[:2])  # warm-up: first-call allocations
            break
        _sync(device)
        t0 = time.perf_counter()
        for images, _ in nas._batches(loader, device):
            model(images)
        _sync(device)
        return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _static_record(table: Table, budget: float, count_interp: bool) -> Optional[Dict[str, Any]]:
    try:
        best = nas.search(table, max_mmacs=budget, count_interp=count_interp, top=1)[0]
    except nas.NoFeasibleConfig:
        return None
    return {"config": format_config(best["config"]), "top1_pct": best["top1_pct"], "mmacs": best["mmacs"],
            "interp_mmacs": best["interp_mmacs"]}


@torch.no_grad()
def evaluate_adapt(adapter: Adapter, loader: Iterable, max_mmacs: Optional[float], *, count_interp: bool = False,
                   table: Optional[Table] = None, outcomes: Optional[ConfigOutcomes] = None,
                   rule: str = "cheapest", time_static: bool = True) -> Dict[str, Any]:
    """Route every image of ``loader`` under a per-image budget; compare with static and oracle choices.

    Returns a dict with
    ``adapt`` (top-1, mean MACs per image including the feature pass and the classifier, the
    largest per-image cost, wall-clock seconds, how many images each configuration got),
    ``static_at_budget`` (the table's most accurate single configuration within ``max_mmacs``),
    ``static_at_mean_cost`` (the same within Adapt's mean cost) and, given the per-image
    ``outcomes`` of every configuration on the same images, ``oracle`` (each image at its best
    configuration among those whose own MACs fit the budget, by ``rule``, at no classifier cost).

    Args:
        adapter: the routed network.
        loader: evaluation images (fixed order; the same images as ``outcomes`` and ``table``).
        max_mmacs: per-image budget in millions of MACs (``None``: no budget).
        count_interp: the budget also counts the stage resizes' interpolation MACs.
        table: a lookup table of the same weights and images (default: derived from ``outcomes``).
        outcomes: :func:`config_outcomes` on the same images, for (at least) the adapter's
            configurations; for all of them, the table is derived from it when none is given.
        rule: the oracle's rule.
        time_static: also time the static configuration on the same loader.
    """
    model = adapter.model
    device = next(model.parameters()).device
    allowed = adapter.allowed(max_mmacs, count_interp)
    budget_costs = torch.tensor(adapter.costs.budget_costs(count_interp), dtype=torch.float64)
    routed = torch.tensor(adapter.costs.routed_macs, dtype=torch.float64)
    routed_interp = torch.tensor(adapter.costs.routed_interp, dtype=torch.float64)
    # warm-up on one small batch (first-call allocations), then the timed pass
    for images, _ in nas._batches(loader, device):
        adapter.infer(images[:2], allowed)
        break
    _sync(device)
    correct, choices, n = 0, [], 0
    t0 = time.perf_counter()
    for images, labels in nas._batches(loader, device):
        logits, choice = adapter.infer(images, allowed)
        correct += int(logits.topk(1, dim=1).indices[:, 0].eq(labels).sum())
        choices.append(choice.cpu())
        n += len(labels)
    _sync(device)
    seconds = time.perf_counter() - t0
    if n == 0:
        raise ValueError("the loader yielded no images")
    choice = torch.cat(choices)
    usage = torch.bincount(choice, minlength=len(adapter.configs))
    result: Dict[str, Any] = {
        "budget_mmacs": max_mmacs, "count_interp": count_interp, "images": n,
        "allowed_configs": int(allowed.sum()), "configs": len(adapter.configs),
        "adapt": {
            "top1_pct": 100.0 * correct / n,
            "mean_mmacs": float(routed[choice].mean()) / 1e6,
            "mean_interp_mmacs": float(routed_interp[choice].mean()) / 1e6,
            "max_image_mmacs": float(budget_costs[choice].max()) / 1e6,
            "feature_mmacs": adapter.costs.feature_macs / 1e6,
            "classifier_mmacs": adapter.costs.classifier_macs / 1e6,
            "source": adapter.source,
            "seconds": seconds,
            "usage": {format_config(adapter.configs[j]): int(usage[j]) for j in usage.nonzero()[:, 0].tolist()},
        },
    }
    if max_mmacs is not None and result["adapt"]["max_image_mmacs"] > max_mmacs:
        raise AssertionError("a routed image exceeded the budget")  # impossible by construction; kept as a guard
    if outcomes is not None:
        column = {c: j for j, c in enumerate(outcomes.configs)}
        if any(c not in column for c in adapter.configs) or len(outcomes.targets) != n:
            raise ValueError("outcomes must cover the adapter's configurations on the same images")
        cols = torch.tensor([column[c] for c in adapter.configs])
        correct_here, p_here = outcomes.correct[:, cols], outcomes.p_true[:, cols]
        rows = torch.arange(n)
        result["adapt"]["top1_pct_from_outcomes"] = 100.0 * float(correct_here[rows, choice].double().mean())
        own = adapter.costs.config_macs
        own_budget = [m + (r if count_interp else 0) for m, r in zip(own, adapter.costs.config_interp)]
        oracle_allowed = [max_mmacs is None or c <= max_mmacs * 1e6 for c in own_budget]
        if any(oracle_allowed):
            best = best_config_index(correct_here, p_here, own, rule, oracle_allowed)
            result["oracle"] = {"rule": rule,
                                "top1_pct": 100.0 * float(correct_here[rows, best].double().mean()),
                                "mean_mmacs": float(torch.tensor(own, dtype=torch.float64)[best].mean()) / 1e6}
        if table is None and len(outcomes.configs) == len(model.configs()):
            table = outcomes_table(model, outcomes, adapter.input_size)
    if table is not None:
        budget = max_mmacs if max_mmacs is not None else math.inf
        result["static_at_budget"] = _static_record(table, budget, count_interp)
        result["static_at_mean_cost"] = _static_record(
            table, result["adapt"]["mean_mmacs"] + (result["adapt"]["mean_interp_mmacs"] if count_interp else 0.0),
            count_interp)
        static = result["static_at_budget"]
        if static is not None and time_static:
            config = parse_config(static["config"], model.factors, model.num_stages)
            static["seconds"] = _time_static(model, config, loader, device)
    return result


# ---------------------------------------------------------------------------- from a checkpoint
def _subset(data, indices: torch.Tensor):
    from .data import TensorImageDataset

    if isinstance(data, TensorImageDataset):
        return TensorImageDataset(data.images.index_select(0, indices), data.labels.index_select(0, indices),
                                  data.mean, data.std, augment=False, pad=data.pad)
    return torch.utils.data.Subset(data, indices.tolist())


def _open_run(checkpoint: PathLike, device: str, dataset: Optional[str], data_dir: Optional[str],
              input_size: Optional[int]):
    from .distributed import resolve_device

    model, payload, dataset, data_dir, size, info = load_model_for_data(checkpoint, dataset, data_dir, input_size)
    model.to(resolve_device(device))
    return model, payload, info, dataset, data_dir, size


def _load_split(info, dataset: str, split: str, data_dir: Optional[str], size: int):
    from .data import load_dataset

    return load_dataset(dataset, split, data_dir=data_dir, augment=False,
                        input_size=None if size == info.input_size else size)


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False)


def label_checkpoint(checkpoint: PathLike, out: Optional[PathLike] = None, *, dataset: Optional[str] = None,
                     data_dir: Optional[str] = None, split: str = "train", num_images: Optional[int] = None,
                     seed: int = 0, configs: str = "all", rule: str = "cheapest", batch_size: int = 256,
                     device: str = "auto", input_size: Optional[int] = None, progress: bool = True
                     ) -> Tuple[LabelSet, Path]:
    """Label a sample of a checkpoint's training images; what ``resizable adapt label`` runs.

    Args:
        checkpoint: checkpoint file or run folder.
        out: the label file (default: ``adapt-labels.pt`` beside the checkpoint).
        dataset, data_dir, input_size: default to the training run's.
        split: which split to sample (paper: training images).
        num_images: how many images (drawn with ``seed``); default all of an in-memory dataset
            (Fashion-MNIST, CIFAR), 50 000 of an image folder.
        configs: ``all``, ``default`` or ``"0.45,0.65,1;1,1,1"``: the allowed configurations.
        rule: ``cheapest`` or ``confident``.
        batch_size: evaluation batch size.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: progress bar.
    """
    from .data import make_loader
    from .train import parse_configs

    _check_choice(rule, RULES, "rule")
    model, payload, info, dataset, data_dir, size = _open_run(checkpoint, device, dataset, data_dir, input_size)
    data = _load_split(info, dataset, split, data_dir, size)
    total = len(data)
    if num_images is None:
        num_images = total if info.name != "imagefolder" else min(total, LARGE_SAMPLE)
    if not 1 <= num_images <= total:
        raise ValueError(f"num_images must be in [1, {total}] (the {split} split's size), got {num_images}")
    if num_images == total:
        indices = torch.arange(total)
    else:
        indices = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:num_images].sort().values
    loader = make_loader(_subset(data, indices), batch_size, shuffle=False)
    chosen = parse_configs(configs, model)
    bar = _bar(len(loader), f"label ({len(chosen)} configs)", progress)
    try:
        labels = label_images(model, loader, input_size=size, indices=indices, dataset=info.name, split=split,
                              data_dir=data_dir, configs=chosen, rule=rule, model_name=payload.get("model_name"),
                              checkpoint=str(resolve_checkpoint(checkpoint)),
                              on_batch=(lambda: bar.update(1)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    out = Path(out) if out else resolve_checkpoint(checkpoint).parent / "adapt-labels.pt"
    return labels, save_labels(labels, out)


def train_checkpoint(labels: PathLike, checkpoint: PathLike, out: Optional[PathLike] = None, *,
                     source: str = "min", width: int = 32, epochs: int = 15, batch_size: int = 256, lr: float = 2e-3,
                     weight_decay: float = 1e-4, val_fraction: float = 0.1, rule: Optional[str] = None,
                     seed: int = 0, device: str = "auto", progress: bool = True) -> Tuple[TrainedClassifier, Path]:
    """Train the configuration classifier from a label file; what ``resizable adapt train`` runs.

    Args:
        labels: the label file (``resizable adapt label``).
        checkpoint: the checkpoint it was made with (the weight hash must match).
        out: the classifier file (default: ``adapt-classifier-<source>.pt`` beside the labels).
        rule: relabel with this rule first (default: the label file's).
        Others: see :func:`train_classifier`.
    """
    from .data import dataset_info, make_loader
    from .distributed import resolve_device

    model, payload = load_model(checkpoint)
    model.to(resolve_device(device))
    labelset = load_labels(labels, model)
    if rule is not None and rule != labelset.rule:
        labelset = labelset.relabel(rule)
    info = dataset_info(labelset.dataset, labelset.data_dir)
    data = _load_split(info, labelset.dataset, labelset.split, labelset.data_dir, labelset.input_size[0])
    subset = _subset(data, labelset.indices)
    loader = make_loader(subset, batch_size, shuffle=False)
    targets = torch.cat([y for _, y in make_loader(subset, 4096, shuffle=False)]) if hasattr(subset, "images") else None
    if targets is not None and not torch.equal(targets, labelset.outcomes.targets):
        raise AdaptError(f"the images of {labels} are not the ones that were labelled (class labels differ); "
                         f"is the dataset at {labelset.data_dir or 'the default location'} the same?")
    trained = train_classifier(model, loader, labelset, source=source, width=width, epochs=epochs,
                               batch_size=batch_size, lr=lr, weight_decay=weight_decay, val_fraction=val_fraction,
                               seed=seed, progress=progress)
    out = Path(out) if out else Path(labels).parent / f"adapt-classifier-{source}.pt"
    return trained, save_classifier(trained, out, labels_path=labels)


def eval_checkpoint(checkpoint: PathLike, classifier: PathLike, budgets: Sequence[Optional[float]], *,
                    dataset: Optional[str] = None, data_dir: Optional[str] = None, split: str = "test",
                    batch_size: int = 256, table: Optional[PathLike] = None, oracle: bool = True,
                    count_interp: bool = False, rule: str = "cheapest", device: str = "auto",
                    progress: bool = True) -> List[Dict[str, Any]]:
    """Routed inference of a checkpoint at each budget; what ``resizable adapt eval`` runs.

    The static comparison comes from ``table`` (a ``resizable table`` file of the same weights and
    split) or, without one, from the oracle's pass over every configuration (the same numbers).

    Args:
        checkpoint: checkpoint file or run folder.
        classifier: the classifier file (``resizable adapt train``).
        budgets: per-image budgets in millions of MACs (``None``: no budget).
        table: lookup table to compare with.
        oracle: run every configuration on the split too (for the oracle, and the table when none is given).
        Others: as in :func:`evaluate_adapt` and :func:`label_checkpoint`.
    """
    from .data import make_loader

    model, payload, info, dataset, data_dir, _ = _open_run(checkpoint, device, dataset, data_dir, None)
    trained = load_classifier(classifier, model)
    size = trained.input_size[0]
    adapter = Adapter.from_trained(model, trained)
    for budget in budgets:  # refuse an impossible budget before the long passes
        adapter.allowed(budget, count_interp)
    data = _load_split(info, dataset, split, data_dir, size)
    loader = make_loader(data, batch_size, shuffle=False)
    lookup = None
    if table is not None:
        lookup = nas.read_table(table, required=nas.REQUIRED_COLUMNS)
        meta = lookup.meta
        if meta.get("weights_sha256") != trained.identity["weights_sha256"]:
            raise AdaptError(f"the table {table} was built with other weights than this checkpoint")
        if meta.get("split") != split or meta.get("num_samples") != str(len(data)):
            raise AdaptError(f"the table {table} is for split {meta.get('split')} ({meta.get('num_samples')} images), "
                             f"this evaluation uses {split} ({len(data)} images)")
    outcomes = None
    if oracle:
        bar = _bar(len(loader), f"oracle ({len(adapter.configs)} configs)", progress)
        try:
            outcomes = config_outcomes(model, loader, model.configs(),
                                       on_batch=(lambda: bar.update(1)) if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    if lookup is None:  # the table that `resizable table` would write for these images
        everything = outcomes if outcomes is not None else config_outcomes(model, loader, model.configs())
        lookup = outcomes_table(model, everything, size, dataset=info.name, split=split,
                                model_name=payload.get("model_name"))
    results = []
    for budget in budgets:
        r = evaluate_adapt(adapter, loader, budget, count_interp=count_interp, table=lookup, outcomes=outcomes,
                           rule=rule)
        r.update({"split": split, "dataset": info.name, "batch_size": batch_size, "classifier": str(classifier),
                  "checkpoint": str(resolve_checkpoint(checkpoint)),
                  "table": str(table) if table else "derived from a pass of every configuration"})
        results.append(r)
    return results
