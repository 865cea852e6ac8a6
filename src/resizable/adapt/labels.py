"""Resizable-Adapt, step 1: what every configuration does on every image, and each image's best one.

A label is drawn from the recorded outcomes by a rule and its knob (:class:`LabelKnob`): the
rule (:func:`best_config_index`), a threshold ``max_mmacs`` (only configurations whose own MACs are
at most it may be a label: the paper's rule is ``confident`` under a threshold) and, for the
``cost-aware`` rule, the weight ``lambda`` of the cost. One file holds the outcomes once and the
labels of every knob asked for.

Label files record the weights' SHA-256 (:func:`resizable.nas.table_file.weights_sha256`) and refuse to be
used with other weights (:class:`AdaptError`).
"""
from __future__ import annotations

import dataclasses
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
from ..macs import count_macs
from ..evaluation.walker import ConfigTreeWalker, batches, evaluating
from ..net import ResizableNet, SizeLike, check_configs, to_size2d
from ..nas.table_file import arch_sha256, weights_sha256

__all__ = ["LABELS_FORMAT", "RULES", "AdaptError", "check_choice", "ConfigOutcomes", "config_outcomes",
           "best_config_index", "LabelKnob", "label_knobs", "model_identity", "check_identity", "file_sha256",
           "read_payload", "read_recorded", "LabelSet", "label_images", "save_labels", "load_labels", "load_label_sets"]

LABELS_FORMAT = "resizable-adapt-labels"
RULES = ("cheapest", "confident", "cost-aware")
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
    p_max: Optional[torch.Tensor] = None  # (N, C) float32: the top softmax probability (a cascade's confidence)

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
    correct, p_true, p_max, targets = [], [], [], []
    with evaluating(model):
        walker = ConfigTreeWalker(model, configs)
        for images, labels in batches(loader, device):
            hit = torch.zeros(len(labels), len(configs), dtype=torch.bool)
            prob = torch.zeros(len(labels), len(configs), dtype=torch.float32)
            top = torch.zeros(len(labels), len(configs), dtype=torch.float32)

            def leaf(config: Config, logits: torch.Tensor) -> None:
                j = column[config]
                logits = logits.float()
                hit[:, j] = logits.topk(1, dim=1).indices[:, 0].eq(labels).cpu()
                soft = logits.softmax(dim=1)
                prob[:, j] = soft.gather(1, labels[:, None])[:, 0].cpu()
                top[:, j] = soft.max(dim=1).values.cpu()

            walker.run(images, leaf)
            correct.append(hit)
            p_true.append(prob)
            p_max.append(top)
            targets.append(labels.cpu())
            if on_batch:
                on_batch()
    if not targets:
        raise ValueError("the loader yielded no images")
    return ConfigOutcomes(list(configs), torch.cat(correct), torch.cat(p_true), torch.cat(targets), torch.cat(p_max))

def best_config_index(correct: torch.Tensor, p_true: torch.Tensor, costs: Sequence[float], rule: str = "cheapest",
                      allowed: Optional[Sequence[bool]] = None, *, cost_weight: float = 0.0,
                      full_cost: Optional[float] = None) -> torch.Tensor:
    """Each image's best configuration (a column index), by ``rule``:

    - ``cheapest``: among the correct configurations the cheapest (ties: higher probability of the
      true class, then the earlier column); with none correct, as ``confident``.
    - ``confident`` (the paper's "highest accuracy for the sample"): the highest probability of the
      true class (ties: the cheaper, then the earlier column).
    - ``cost-aware``: the highest ``p_true - cost_weight * cost / full_cost`` (same ties); with
      ``cost_weight`` 0 it is ``confident``.

    Args:
        correct: (N, C) bool, configuration c classifies image n correctly.
        p_true: (N, C), probability configuration c gives image n's true class.
        costs: (C,) cost of each configuration (MACs).
        rule: one of :data:`RULES`.
        allowed: (C,) bool; only these configurations may be chosen (default: all).
        cost_weight: ``lambda`` of ``cost-aware`` (>= 0).
        full_cost: the cost ``lambda`` is relative to (default: the dearest of ``costs``; the full
            configuration's MACs when it is among them).
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
    if rule == "cost-aware":
        if not (cost_weight >= 0 and math.isfinite(cost_weight)):
            raise ValueError(f"the cost weight must be a finite number >= 0, got {cost_weight}")
        full = float(full_cost) if full_cost is not None else float(cost.max())
        if not full > 0:
            raise ValueError(f"the full cost must be > 0, got {full}")
        p = p - cost_weight * cost / full
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
    if rule != "cheapest":
        return confident
    ok = correct.bool() & allow
    return torch.where(ok.any(dim=1), cheapest_then_confident(ok), confident)

@dataclass(frozen=True)
class LabelKnob:
    """How labels are drawn from the outcomes: a rule, an optional threshold, and cost-aware's weight.

    Args:
        rule: one of :data:`RULES`.
        max_mmacs: only configurations whose own MACs (the lookup table's ``mmacs``) are at most
            this many millions may be a label (None: all of them).
        cost_weight: ``lambda`` of the ``cost-aware`` rule (required by it, refused by the others).
    """

    rule: str = "cheapest"
    max_mmacs: Optional[float] = None
    cost_weight: Optional[float] = None

    def __post_init__(self) -> None:
        check_choice(self.rule, RULES, "rule")
        if self.max_mmacs is not None and not (self.max_mmacs > 0 and math.isfinite(self.max_mmacs)):
            raise ValueError(f"the label threshold must be a number of MMACs > 0, got {self.max_mmacs}")
        if (self.rule == "cost-aware") != (self.cost_weight is not None):
            raise ValueError("the cost-aware rule takes a cost weight (--cost-weight LAMBDA), and only it does; "
                             f"got rule {self.rule!r} with cost weight {self.cost_weight}")
        if self.cost_weight is not None and not (self.cost_weight >= 0 and math.isfinite(self.cost_weight)):
            raise ValueError(f"the cost weight must be a finite number >= 0, got {self.cost_weight}")

    @property
    def name(self) -> str:
        """Short text for file names and reports: ``confident``, ``confident-max2.5``, ``cost-aware-w0.1``."""
        out = self.rule + (f"-w{self.cost_weight:g}" if self.cost_weight is not None else "")
        return out + (f"-max{self.max_mmacs:g}" if self.max_mmacs is not None else "")

    def allowed(self, config_macs: Sequence[int]) -> List[bool]:
        """(C,) which configurations may be a label; none is an error naming the cheapest."""
        if self.max_mmacs is None:
            return [True] * len(config_macs)
        limit = self.max_mmacs * 1e6 * (1 + 1e-12)  # a configuration's own MMACs, given back, admit it
        mask = [m <= limit for m in config_macs]
        if not any(mask):
            raise ValueError(f"no configuration costs at most {self.max_mmacs:g} MMACs; the cheapest costs "
                             f"{min(config_macs) / 1e6:g}")
        return mask

    def to_dict(self) -> Dict[str, Any]:
        return {"rule": self.rule, "max_mmacs": self.max_mmacs, "cost_weight": self.cost_weight}


def label_knobs(rule: str, max_mmacs: Sequence[float] = (), cost_weight: Sequence[float] = ()) -> List[LabelKnob]:
    """One :class:`LabelKnob` per threshold and per cost weight (every pair of them when both are given)."""
    thresholds = list(max_mmacs) or [None]
    weights = list(cost_weight) or [None]
    if rule == "cost-aware" and weights == [None]:
        raise ValueError("the cost-aware rule needs --cost-weight LAMBDA (one or more, e.g. 0,0.1,0.3)")
    if rule != "cost-aware" and weights != [None]:
        raise ValueError(f"--cost-weight is the cost-aware rule's knob; add --rule cost-aware (rule now: {rule})")
    return [LabelKnob(rule, t, w) for w in weights for t in thresholds]


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


def read_recorded(path: PathLike, fmt: str, what: str, name: str,
                  model: Optional[ResizableNet] = None) -> Tuple[Dict[str, Any], List[Config]]:
    """Read a file recorded for one network (a label or classifier file): its payload, checked as
    :func:`read_payload` checks it, and its configurations, parsed with the recorded factors.

    Args:
        path: the file.
        fmt: its ``format`` field.
        what: what the file is, in errors (``"Resizable-Adapt label file"``).
        name: how an identity error names it (``"the label file"``; the path follows).
        model: when given, the file is refused unless it was made with these exact weights and BN statistics.
    """
    p = read_payload(path, fmt, what)
    if model is not None:
        check_identity(p["identity"], model, f"{name} {path}")
    factors = tuple(float(f) for f in p["identity"]["factors"].split(","))
    return p, [parse_config(c, factors, int(p["identity"]["num_stages"])) for c in p["configs"]]

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
    max_mmacs: Optional[float] = None  # the knob's threshold (see LabelKnob)
    cost_weight: Optional[float] = None  # the knob's lambda (cost-aware)
    full_macs: Optional[int] = None  # MACs of the full configuration (cost-aware's unit; default: the dearest here)

    @property
    def configs(self) -> List[Config]:
        return self.outcomes.configs

    @property
    def knob(self) -> LabelKnob:
        """The rule and knob these labels were drawn with."""
        return LabelKnob(self.rule, self.max_mmacs, self.cost_weight)

    def relabel(self, rule: Union[str, LabelKnob]) -> "LabelSet":
        """The same outcomes, labelled by another rule (a name: no threshold) or :class:`LabelKnob`."""
        knob = rule if isinstance(rule, LabelKnob) else LabelKnob(rule, None, 0.0 if rule == "cost-aware" else None)
        full = self.full_macs if self.full_macs is not None else max(self.config_macs)
        labels = best_config_index(self.outcomes.correct, self.outcomes.p_true, self.config_macs, knob.rule,
                                   knob.allowed(self.config_macs), cost_weight=knob.cost_weight or 0.0,
                                   full_cost=full)
        return dataclasses.replace(self, rule=knob.rule, labels=labels, max_mmacs=knob.max_mmacs,
                                   cost_weight=knob.cost_weight)

    def restrict(self) -> "LabelSet":
        """Only the configurations the knob's threshold allows (the labels point into them): what a
        classifier for this threshold chooses among."""
        keep = [j for j, ok in enumerate(self.knob.allowed(self.config_macs)) if ok]
        if len(keep) == len(self.configs):
            return self
        o, cols = self.outcomes, torch.tensor(keep)
        remap = torch.full((len(self.configs),), -1, dtype=torch.int64)
        remap[cols] = torch.arange(len(keep))
        outcomes = ConfigOutcomes([o.configs[j] for j in keep], o.correct[:, cols], o.p_true[:, cols], o.targets,
                                  o.p_max[:, cols] if o.p_max is not None else None)
        return dataclasses.replace(self, outcomes=outcomes, config_macs=[self.config_macs[j] for j in keep],
                                   labels=remap[self.labels], full_macs=self.full_macs or max(self.config_macs))

    def summary(self, top: int = 5) -> Dict[str, Any]:
        """Share of images with at least one correct configuration, mean label cost, most frequent labels."""
        n = len(self.labels)
        counts = torch.bincount(self.labels, minlength=len(self.configs))
        order = counts.argsort(descending=True)[:top].tolist()
        macs = torch.tensor(self.config_macs, dtype=torch.float64)
        return {
            "images": n, "configs": len(self.configs), "rule": self.rule, "knob": self.knob.name,
            "allowed_configs": sum(self.knob.allowed(self.config_macs)),
            "any_correct_pct": 100.0 * float(self.outcomes.correct.any(dim=1).double().mean()),
            "label_mean_mmacs": float(macs[self.labels].mean()) / 1e6 if n else 0.0,
            "most_frequent": [(format_config(self.configs[j]), int(counts[j])) for j in order if counts[j] > 0],
        }

def label_images(model: ResizableNet, loader: Iterable, *, input_size: SizeLike, indices: torch.Tensor,
                 dataset: str, split: str, data_dir: Optional[str] = None, configs: Optional[Sequence[Config]] = None,
                 rule: str = "cheapest", model_name: Optional[str] = None, checkpoint: str = "",
                 on_batch: Optional[Callable[[], None]] = None, knob: Optional[LabelKnob] = None) -> LabelSet:
    """Label the images of ``loader`` (in order; ``indices`` says where they sit in the split).

    Args:
        model: the trained ResizableNet.
        loader: the images, unaugmented, in the order of ``indices``.
        input_size: their resolution (for the MACs of each configuration).
        indices: (N,) positions in the split (recorded, so the images can be found again).
        dataset, split, data_dir: recorded.
        configs: the allowed configurations (default: all).
        rule: ``cheapest`` or ``confident`` (see :func:`best_config_index`); ignored when ``knob`` is given.
        model_name: registered name (recorded).
        checkpoint: where the weights came from (recorded; the weight hash is what is checked).
        knob: the rule with its threshold or cost weight (:class:`LabelKnob`); other knobs' labels
            come from :meth:`LabelSet.relabel` without running the network again.
    """
    knob = knob or LabelKnob(rule, None, 0.0 if rule == "cost-aware" else None)
    outcomes = config_outcomes(model, loader, configs, on_batch=on_batch)
    if len(outcomes.targets) != len(indices):
        raise ValueError(f"the loader yielded {len(outcomes.targets)} images for {len(indices)} indices")
    costs = config_costs(model, input_size, outcomes.configs)
    macs = [costs[c][0] for c in outcomes.configs]
    full = count_macs(model, model.max_config, input_size).macs
    unlabelled = LabelSet(model_identity(model, model_name), dataset, data_dir, split, to_size2d(input_size),
                          torch.as_tensor(indices, dtype=torch.int64), outcomes, macs, knob.rule,
                          torch.zeros(len(indices), dtype=torch.int64), checkpoint, full_macs=full)
    return unlabelled.relabel(knob)

def save_labels(labels: Union[LabelSet, Sequence[LabelSet]], path: PathLike) -> Path:
    """Write a label file atomically (a torch file of tensors and plain values; loads with ``weights_only``).

    Several label sets of the same outcomes (one per knob) share one file: the outcomes are stored
    once, the first set's labels as ``labels`` and every set's under ``knobs``.
    """
    sets = [labels] if isinstance(labels, LabelSet) else list(labels)
    if not sets or any(s.outcomes is not sets[0].outcomes for s in sets):
        raise ValueError("save_labels takes one or more label sets of the same outcomes")
    first, o = sets[0], sets[0].outcomes
    payload = {
        "format": LABELS_FORMAT, "version": 2, "identity": dict(first.identity), "checkpoint": first.checkpoint,
        "dataset": first.dataset, "data_dir": first.data_dir or "", "split": first.split,
        "input_size": list(first.input_size), "indices": first.indices, "targets": o.targets,
        "configs": [format_config(c) for c in o.configs], "config_macs": list(first.config_macs),
        "full_macs": first.full_macs if first.full_macs is not None else max(first.config_macs),
        "correct": o.correct, "p_true": o.p_true, "rule": first.rule, "labels": first.labels,
        "knobs": [{**s.knob.to_dict(), "labels": s.labels} for s in sets],
        "summary": json.dumps([s.summary() for s in sets]),
    }
    if o.p_max is not None:
        payload["p_max"] = o.p_max
    path = Path(path)
    atomic_save(payload, path)
    return path

def load_labels(path: PathLike, model: Optional[ResizableNet] = None) -> LabelSet:
    """Read a label file (its first label set); with ``model``, refuse it unless it was made with these exact weights."""
    return load_label_sets(path, model)[0]


def load_label_sets(path: PathLike, model: Optional[ResizableNet] = None) -> List[LabelSet]:
    """Every label set of a label file (one per knob), sharing the recorded outcomes."""
    p, configs = read_recorded(path, LABELS_FORMAT, "Resizable-Adapt label file", "the label file", model)
    outcomes = ConfigOutcomes(configs, p["correct"], p["p_true"], p["targets"], p.get("p_max"))
    macs = [int(m) for m in p["config_macs"]]
    base = LabelSet(p["identity"], p["dataset"], p["data_dir"] or None, p["split"], tuple(p["input_size"]),
                    p["indices"], outcomes, macs, p["rule"], p["labels"], p.get("checkpoint", ""),
                    full_macs=int(p.get("full_macs") or max(macs)))
    knobs = p.get("knobs") or [{"rule": p["rule"], "max_mmacs": None, "cost_weight": None, "labels": p["labels"]}]
    return [dataclasses.replace(base, rule=k["rule"], labels=k["labels"], max_mmacs=k["max_mmacs"],
                                cost_weight=k["cost_weight"]) for k in knobs]
