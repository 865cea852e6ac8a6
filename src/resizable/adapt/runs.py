"""Resizable-Adapt from a checkpoint: what ``resizable adapt label|train|eval`` run."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..console import progress_enabled
from ..options import check_options, option, required
from ..checkpoint import load_model, load_model_for_data, resolve_checkpoint
from ..configs import parse_configs
from ..tables import REQUIRED_COLUMNS, read_table
from .classifier import SOURCES, TrainedClassifier, load_classifier, save_classifier, train_classifier
from .labels import RULES, AdaptError, LabelSet, PathLike, check_choice, config_outcomes, label_images, load_labels, save_labels
from .routing import Adapter, evaluate_adapt, outcomes_table

__all__ = ["LARGE_SAMPLE", "LabelOptions", "ClassifierOptions", "RoutingOptions", "label_checkpoint",
           "train_checkpoint", "eval_checkpoint"]

LARGE_SAMPLE = 50_000  # paper: 50k training images; the default sample on datasets larger than memory


@dataclass(frozen=True)
class LabelOptions:
    """What ``resizable adapt label`` labels; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("the trained ResizableNet (checkpoint file or run folder)")
    out: Optional[str] = option(None, "label file (default: RUN/adapt-labels.pt)")
    dataset: Optional[str] = option(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training run's)")
    split: Optional[str] = option(None, "split to sample the images from (default: val when the run holds images "
                                        "out with --val-size, else train)", choices=("train", "test", "val"))
    num_images: Optional[int] = option(None, "images to label (default: all of Fashion-MNIST/CIFAR, 50000 of a folder)", min=1)
    seed: int = option(0, "seed of the image sample", min=0, max=2**63 - 1)
    configs: str = option("all", "allowed configurations: all, default, or '0.45,0.65,1;1,1,1'")
    rule: str = option("cheapest", "best configuration: cheapest correct (else most confident), or most confident",
                       choices=RULES)
    batch_size: int = option(256, "evaluation batch size", min=1)
    input_size: Optional[int] = option(None, "input resolution (default: the run's)", min=1, max=4096)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


@dataclass(frozen=True)
class ClassifierOptions:
    """How ``resizable adapt train`` trains the configuration classifier; each field is also its ``--flag``."""

    labels: Optional[str] = required("label file (resizable adapt label)")
    checkpoint: Optional[str] = required("the checkpoint the labels were made with")
    out: Optional[str] = option(None, "classifier file (default: adapt-classifier-<source>.pt beside the labels)")
    source: str = option("min", "classifier input: the last stage at the smallest configuration, or the stem output",
                         choices=SOURCES)
    width: int = option(32, "channels of the classifier's three convolutions", min=1)
    epochs: int = option(15, "training epochs", min=1)
    batch_size: int = option(256, "batch size", min=1)
    lr: float = option(2e-3, "AdamW learning rate (cosine-decayed)", above=0.0, max=1e3)
    weight_decay: float = option(1e-4, "AdamW weight decay", min=0.0, max=1.0)
    val_fraction: float = option(0.1, "share of labelled images held out for the report", min=0.0, below=1.0)
    rule: Optional[str] = option(None, "relabel with this rule first (default: the label file's)", choices=RULES)
    seed: int = option(0, "seed of initialisation, hold-out draw and batch order", min=0, max=2**63 - 1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = option(True, "one line per epoch")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


@dataclass(frozen=True)
class RoutingOptions:
    """What ``resizable adapt eval`` routes and compares; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("the trained ResizableNet")
    classifier: Optional[str] = required("classifier file (resizable adapt train)")
    max_mmacs: Tuple[float, ...] = option((), "per-image budget(s) in millions of MACs, comma-separated "
                                              "(default: no budget; --max-mflops is an alias)", above=0.0)
    count_interp: bool = option(False, "the budget also counts the resizes' interpolation MACs")
    table: Optional[str] = option(None, "lookup table of the same weights and split (default: from the oracle pass)")
    oracle: bool = option(True, "also run every configuration on the split (oracle, and the table if none is given)")
    rule: str = option("cheapest", "the oracle's rule", choices=RULES)
    dataset: Optional[str] = option(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training run's)")
    split: str = option("test", "split to evaluate", choices=("train", "test", "val"))
    batch_size: int = option(256, "evaluation batch size (images of a batch are grouped by configuration)", min=1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    out: Optional[str] = option(None, "also write the results as JSON here")
    json: bool = option(False, "print JSON instead of text")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def _subset(data, indices: torch.Tensor):
    from ..data import TensorImageDataset

    if isinstance(data, TensorImageDataset):
        return TensorImageDataset(data.images.index_select(0, indices), data.labels.index_select(0, indices),
                                  data.mean, data.std, augment=False, pad=data.pad)
    return torch.utils.data.Subset(data, indices.tolist())

def _open_run(checkpoint: PathLike, device: str, dataset: Optional[str], data_dir: Optional[str],
              input_size: Optional[int]):
    from ..distributed import resolve_device

    model, payload, dataset, data_dir, size, info = load_model_for_data(checkpoint, dataset, data_dir, input_size)
    model.to(resolve_device(device))
    return model, payload, info, dataset, data_dir, size

def _load_split(info, dataset: str, split: str, data_dir: Optional[str], size: int, payload: Dict[str, Any]):
    from ..splits import load_split, val_split_of

    return load_split(dataset, split, val_split=val_split_of(payload), data_dir=data_dir, augment=False,
                      input_size=None if size == info.input_size else size)

def _bar(total: int, desc: str, enabled: bool):
    if not progress_enabled(enabled):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False)


def label_checkpoint(opts: "LabelOptions") -> Tuple[LabelSet, Path]:
    """Label a sample of a checkpoint's images with their best configuration; what ``resizable adapt
    label`` runs. The label file defaults to ``adapt-labels.pt`` beside the checkpoint."""
    (checkpoint, out, dataset, data_dir, split, num_images, seed, configs, rule, batch_size, device,
     input_size, progress) = (
        opts.checkpoint, opts.out, opts.dataset, opts.data_dir, opts.split, opts.num_images, opts.seed,
        opts.configs, opts.rule, opts.batch_size, opts.device, opts.input_size, opts.progress)
    from ..data import make_loader
    from ..runs import output_path

    out = output_path(out, "adapt-labels.pt") if out else None  # refused before the work, not after

    check_choice(rule, RULES, "rule")
    from ..splits import default_split

    model, payload, info, dataset, data_dir, size = _open_run(checkpoint, device, dataset, data_dir, input_size)
    split = split or default_split(payload, "train")
    data = _load_split(info, dataset, split, data_dir, size, payload)
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
    chosen = parse_configs(configs, model.factors, model.num_stages)
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

def train_checkpoint(opts: "ClassifierOptions") -> Tuple[TrainedClassifier, Path]:
    """Train the configuration classifier from a label file; what ``resizable adapt train`` runs.

    The checkpoint must be the one the labels were made with (the weight hash is checked); the
    classifier file defaults to ``adapt-classifier-<source>.pt`` beside the labels.
    """
    (labels, checkpoint, out, source, width, epochs, batch_size, lr, weight_decay, val_fraction,
     rule, seed, device, progress) = (
        opts.labels, opts.checkpoint, opts.out, opts.source, opts.width, opts.epochs, opts.batch_size, opts.lr,
        opts.weight_decay, opts.val_fraction, opts.rule, opts.seed, opts.device, opts.progress)
    from ..data import dataset_info, make_loader
    from ..distributed import resolve_device
    from ..runs import output_path

    out = output_path(out, f"adapt-classifier-{source}.pt") if out else None

    model, payload = load_model(checkpoint)
    model.to(resolve_device(device))
    labelset = load_labels(labels, model)
    if rule is not None and rule != labelset.rule:
        labelset = labelset.relabel(rule)
    info = dataset_info(labelset.dataset, labelset.data_dir)
    data = _load_split(info, labelset.dataset, labelset.split, labelset.data_dir, labelset.input_size[0], payload)
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

def eval_checkpoint(opts: "RoutingOptions") -> List[Dict[str, Any]]:
    """Routed inference of a checkpoint at each budget (``max_mmacs``); what ``resizable adapt eval`` runs.

    The static comparison comes from ``table`` (a ``resizable table`` file of the same weights and
    split) or, without one, from the oracle's pass over every configuration (the same numbers).
    """
    (checkpoint, classifier, dataset, data_dir, split, batch_size, table, oracle, count_interp, rule,
     device, progress) = (
        opts.checkpoint, opts.classifier, opts.dataset, opts.data_dir, opts.split, opts.batch_size, opts.table,
        opts.oracle, opts.count_interp, opts.rule, opts.device, opts.progress)
    from ..data import make_loader

    budgets: List[Optional[float]] = list(opts.max_mmacs) or [None]
    model, payload, info, dataset, data_dir, _ = _open_run(checkpoint, device, dataset, data_dir, None)
    trained = load_classifier(classifier, model)
    size = trained.input_size[0]
    adapter = Adapter.from_trained(model, trained)
    for budget in budgets:  # refuse an impossible budget before the long passes
        adapter.allowed(budget, count_interp)
    data = _load_split(info, dataset, split, data_dir, size, payload)
    loader = make_loader(data, batch_size, shuffle=False)
    lookup = None
    if table is not None:
        lookup = read_table(table, required=REQUIRED_COLUMNS)
        meta = lookup.meta
        if meta.get("weights_sha256") != trained.identity["weights_sha256"]:
            raise AdaptError(f"the table {table} was built with other weights than this checkpoint")
        if meta.get("split") != split or meta.get("num_samples") != str(len(data)):
            raise AdaptError(f"the table {table} is for split {meta.get('split')} ({meta.get('num_samples')} images), "
                             f"this evaluation uses {split} ({len(data)} images)")
        if meta.get("calibrate_bn", "none") != "none":
            # routed images, the oracle and the static rows must all use the same BN statistics
            raise AdaptError(f"the table {table} has BN statistics recalibrated per configuration "
                             f"({meta['calibrate_bn']}), but Adapt routes with the statistics as trained; "
                             f"give a table built without --calibrate-bn, or leave --table out")
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
                  "bn_statistics": "as trained (running averages), for the routed images, the oracle and the "
                                   "static configurations alike",
                  "checkpoint": str(resolve_checkpoint(checkpoint)),
                  "table": str(table) if table else "derived from a pass of every configuration"})
        results.append(r)
    return results
