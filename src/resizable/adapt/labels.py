"""Resizable-Adapt, step 1: what every configuration does on every image, and each image's best one.

Label files record the weights' SHA-256 (:func:`resizable.nas.table_file.weights_sha256`) and refuse to be
used with other weights (:class:`AdaptError`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from ..checkpoint import atomic_save
from ..configs import Config, format_config, format_factor, parse_config
from ..costs import config_costs
from ..evaluation.walker import ConfigTreeWalker, batches, check_configs, evaluating
from ..net import ResizableNet, SizeLike, to_size2d
from ..nas.table_file import arch_sha256, weights_sha256

__all__ = ["LABELS_FORMAT", "RULES", "AdaptError", "check_choice", "ConfigOutcomes", "config_outcomes",
           "best_config_index", "model_identity", "check_identity", "file_sha256", "read_payload", "LabelSet",
           "label_images", "save_labels", "load_labels"]

LABELS_FORMAT = "resizable-adapt-labels"
RULES = ("cheapest", "confident")
PathLike = Union[str, os.PathLike]


class AdaptError(ValueError):
    """A label or classifier file that does not fit the checkpoint, or is not such a file."""

def check_choice(value: str, accepted: Sequence[str], what: str) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
    return value

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
    """Run every configuration on every image of ``loader``, sharing prefixes (see :mod:`resizable.evaluation.walker`).

    The per-configuration correct counts equal :func:`resizable.evaluation.walker.evaluate_configs` on the same
    loader (the same walk, the same top-1 rule).

    Args:
        model: the trained ResizableNet (mode and configuration restored afterwards).
        loader: yields ``(images, labels)`` in a fixed order.
        configs: the configurations to run (default: all ``k^N``).
        on_batch: called after each batch.
    """
    configs = check_configs(model, configs)
    column = {c: j for j, c in enumerate(configs)}
    device = next(model.parameters()).device
    correct, p_true, targets = [], [], []
    with evaluating(model):
        walker = ConfigTreeWalker(model, configs)
        for images, labels in batches(loader, device):
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
    check_choice(rule, RULES, "rule")
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

def model_identity(model: ResizableNet, model_name: Optional[str] = None) -> Dict[str, str]:
    """What ties a label or classifier file to one trained network."""
    return {"model": model_name or type(model).__name__,
            "factors": ",".join(format_factor(f) for f in model.factors),
            "num_stages": str(model.num_stages),
            "arch_sha256": arch_sha256(model),
            "weights_sha256": weights_sha256(model),
            "bn_statistics": model.bn_statistics}

def check_identity(recorded: Dict[str, str], model: ResizableNet, what: str, weights: Optional[str] = None) -> None:
    weights = weights or weights_sha256(model)
    if recorded.get("arch_sha256") != arch_sha256(model):
        raise AdaptError(f"{what} was made for another architecture ({recorded.get('model')}, factors "
                         f"{recorded.get('factors')}, {recorded.get('num_stages')} stages); refusing to use it here")
    if recorded.get("weights_sha256") != weights:
        theirs = recorded.get("weights_sha256", "?")[:12]
        raise AdaptError(f"{what} was made with other weights (weights_sha256 {theirs}..., "
                         f"this checkpoint has {weights[:12]}...); label and train again for this checkpoint")
    made_with = recorded.get("bn_statistics", "as-trained")  # files written before statistics banks: as trained
    if made_with != model.bn_statistics:
        raise AdaptError(f"{what} was made with the BN statistics {made_with!r}, and the network now normalises "
                         f"with {model.bn_statistics!r}; pass --bn-statistics {made_with}, or label and train again")

def file_sha256(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def read_payload(path: PathLike, fmt: str, what: str) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    from ..checkpoint import read_torch_file

    try:
        payload = read_torch_file(path)  # tensors and plain values only: a crafted file is refused, not run
    except ValueError as e:
        why = str(e).removeprefix(f"{path}: ").replace("torch checkpoint", "torch file")
        raise AdaptError(f"{path} is not a {what} ({why})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise AdaptError(f"{path} is not a {what} (no format={fmt!r} field)")
    return payload

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
    check_choice(rule, RULES, "rule")
    outcomes = config_outcomes(model, loader, configs, on_batch=on_batch)
    if len(outcomes.targets) != len(indices):
        raise ValueError(f"the loader yielded {len(outcomes.targets)} images for {len(indices)} indices")
    costs = config_costs(model, input_size, outcomes.configs)
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
    p = read_payload(path, LABELS_FORMAT, "Resizable-Adapt label file")
    if model is not None:
        check_identity(p["identity"], model, f"the label file {path}")
    factors = tuple(float(f) for f in p["identity"]["factors"].split(","))
    configs = [parse_config(c, factors, int(p["identity"]["num_stages"])) for c in p["configs"]]
    outcomes = ConfigOutcomes(configs, p["correct"], p["p_true"], p["targets"])
    return LabelSet(p["identity"], p["dataset"], p["data_dir"] or None, p["split"], tuple(p["input_size"]),
                    p["indices"], outcomes, [int(m) for m in p["config_macs"]], p["rule"], p["labels"],
                    p.get("checkpoint", ""))
