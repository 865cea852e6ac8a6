"""Resizable-Adapt, step 2: the configuration classifier, its features and its training."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import atomic_save
from ..configs import Config, format_config
from ..evaluation.walker import batches, evaluating
from ..net import ResizableNet, SizeLike, to_size2d
from .labels import LabelKnob, LabelSet, PathLike, check_choice, check_identity, file_sha256, read_recorded

__all__ = ["CLASSIFIER_FORMAT", "SOURCES", "ConfigClassifier", "module_macs", "FeaturePass", "feature_pass",
           "feature_shape", "TrainedClassifier", "train_classifier", "save_classifier", "load_classifier"]

CLASSIFIER_FORMAT = "resizable-adapt-classifier"
SOURCES = ("min", "stem")


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
    """MACs of one sample through ``module``, counted like :func:`resizable.count_macs` (convolutions
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
    check_choice(source, SOURCES, "feature source")
    h = model.forward_stem(x)
    acts = [h]
    if source == "stem":
        return FeaturePass(h, acts, None)
    model.set_config(model.min_config)
    for i, size in enumerate(model.stage_sizes(x.shape[-2:])):
        h = model.forward_stage(i, h, size)
        acts.append(h)
    return FeaturePass(h, acts, model.forward_head(h))

def feature_shape(model: ResizableNet, input_size: SizeLike, source: str) -> Tuple[int, int, int]:
    with evaluating(model), torch.no_grad():
        p = next(model.parameters())
        h, w = to_size2d(input_size)
        f = feature_pass(model, torch.zeros(1, model.in_chans, h, w, device=p.device, dtype=p.dtype), source).features
    return tuple(f.shape[1:])  # type: ignore[return-value]

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
    max_mmacs: Optional[float] = None  # the label threshold it was trained for (its configurations fit under it)
    cost_weight: Optional[float] = None  # the cost-aware rule's lambda it was trained with

    @property
    def knob(self) -> LabelKnob:
        """The label rule and knob it learnt."""
        return LabelKnob(self.rule, self.max_mmacs, self.cost_weight)

def _batched_features(model: ResizableNet, loader: Iterable, source: str, device: torch.device) -> torch.Tensor:
    out = []
    with evaluating(model), torch.no_grad():
        for images, _ in batches(loader, device):
            out.append(feature_pass(model, images, source).features.cpu())
    return torch.cat(out)

def train_classifier(model: ResizableNet, loader: Iterable, labels: LabelSet, *, source: str = "min", width: int = 32,
                     epochs: int = 15, batch_size: int = 256, lr: float = 2e-3, weight_decay: float = 1e-4,
                     val_fraction: float = 0.1, seed: int = 0, max_cached_mb: float = 2048.0,
                     progress: bool = False) -> TrainedClassifier:
    """Train a :class:`ConfigClassifier` to predict ``labels.labels`` from the ``source`` features.

    Under a label threshold (``labels.max_mmacs``) the classifier chooses among the configurations
    under it only (:meth:`LabelSet.restrict`). The network stays frozen (eval mode). AdamW with a cosine-decayed rate and cross-entropy over
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
    check_choice(source, SOURCES, "feature source")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    check_identity(labels.identity, model, "the label set")
    labels = labels.restrict()
    device = next(model.parameters()).device
    n = len(labels.labels)
    shape = feature_shape(model, labels.input_size, source)
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
    history = _fit(clf, features_for, labels.labels.to(device), train_idx, g, epochs=epochs, batch_size=batch_size,
                   lr=lr, weight_decay=weight_decay, progress=progress)
    report: Dict[str, Any] = {"train_images": int(len(train_idx)), "val_images": int(n_val), "epochs": epochs,
                              "loss": history, "feature_shape": list(shape), "cached_features": cached}
    for name, idx in (("train", train_idx), ("val", val_idx)):
        if len(idx):
            report[name] = _routing_report(clf, features_for, labels, idx)
    return TrainedClassifier(clf, source, list(labels.configs), dict(labels.identity), tuple(labels.input_size),
                             labels.rule, report, labels.max_mmacs, labels.cost_weight)

def _fit(clf: nn.Module, features_for: Callable[[torch.Tensor], torch.Tensor], y_all: torch.Tensor,
         train_idx: torch.Tensor, g: torch.Generator, *, epochs: int, batch_size: int, lr: float,
         weight_decay: float, progress: bool) -> List[float]:
    """AdamW with a cosine-decayed rate on the rows ``train_idx`` (shuffled by ``g``); the mean loss per epoch."""
    device = y_all.device
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / (epochs * steps_per_epoch)))))
    history = []
    for epoch in range(epochs):
        clf.train()
        order = train_idx[torch.randperm(len(train_idx), generator=g)]
        total, seen = 0.0, 0
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            loss = F.cross_entropy(clf(features_for(idx)), y_all[idx.to(device)])
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
    return history


def _routing_report(clf: nn.Module, features_for: Callable[[torch.Tensor], torch.Tensor], labels: LabelSet,
                    idx: torch.Tensor) -> Dict[str, float]:
    """On the rows ``idx``: label accuracy, and the top-1 and MACs of routing them by the classifier."""
    with torch.no_grad():
        pred = torch.cat([clf(features_for(idx[i:i + 1024])).argmax(1).cpu() for i in range(0, len(idx), 1024)])
    o = labels.outcomes
    rows = torch.arange(len(idx))
    macs = torch.tensor(labels.config_macs, dtype=torch.float64)
    return {
        "label_accuracy_pct": 100.0 * float((pred == labels.labels[idx]).double().mean()),
        "routed_top1_pct": 100.0 * float(o.correct[idx][rows, pred].double().mean()),
        "routed_mean_config_mmacs": float(macs[pred].mean()) / 1e6,
        "label_top1_pct": 100.0 * float(o.correct[idx][rows, labels.labels[idx]].double().mean()),
    }


class _FeatureStream:
    """Features of arbitrary label-set rows, recomputed from the images (when they are too big to keep)."""

    def __init__(self, model: ResizableNet, loader: Iterable, source: str, device: torch.device) -> None:
        self.model, self.source, self.device = model, source, device
        self.images = torch.cat([images for images, _ in loader])

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        with evaluating(self.model), torch.no_grad():
            return feature_pass(self.model, self.images.index_select(0, idx).to(self.device), self.source).features

def save_classifier(trained: TrainedClassifier, path: PathLike, *, labels_path: Optional[PathLike] = None) -> Path:
    """Write a classifier file atomically (loads with ``weights_only``)."""
    clf = trained.classifier
    payload = {
        "format": CLASSIFIER_FORMAT, "version": 1, "identity": dict(trained.identity), "source": trained.source,
        "configs": [format_config(c) for c in trained.configs], "input_size": list(trained.input_size),
        "rule": trained.rule, "max_mmacs": trained.max_mmacs, "cost_weight": trained.cost_weight,
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
    p, configs = read_recorded(path, CLASSIFIER_FORMAT, "Resizable-Adapt classifier file", "the classifier", model)
    arch = p["arch"]
    clf = ConfigClassifier(arch["in_chans"], arch["num_configs"], tuple(arch["feature_size"]), arch["width"])
    clf.load_state_dict(p["state_dict"])
    clf.eval()
    return TrainedClassifier(clf, p["source"], configs, p["identity"], tuple(p["input_size"]), p["rule"],
                             json.loads(p.get("report") or "{}"), p.get("max_mmacs"), p.get("cost_weight"))
