"""Resizable-Adapt from a checkpoint: what ``resizable adapt label|train|eval`` run."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ..console import progress_enabled
from ..bnbank import bn_statistics_option
from ..options import check_options, option, required
from ..configs import parse_configs
from ..nas.table_file import REQUIRED_COLUMNS, read_table
from ..trained_run import TrainedRun
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
    bn_statistics: str = bn_statistics_option()
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
    bn_statistics: str = bn_statistics_option()
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
    bn_statistics: str = bn_statistics_option()
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    out: Optional[str] = option(None, "also write the results as JSON here")
    json: bool = option(False, "print JSON instead of text")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def _subset(data, indices: torch.Tensor):
    from ..data.datasets import TensorImageDataset

    if isinstance(data, TensorImageDataset):
        return TensorImageDataset(data.images.index_select(0, indices), data.labels.index_select(0, indices),
                                  data.mean, data.std, augment=False, pad=data.pad)
    return torch.utils.data.Subset(data, indices.tolist())

def _open(checkpoint: PathLike, device: str, bn_statistics: str, dataset: Optional[str] = None,
          data_dir: Optional[str] = None, input_size: Optional[int] = None) -> TrainedRun:
    """The run on ``device``, normalising with ``bn_statistics`` (labels, classifier and routing must agree)."""
    from ..distributed import resolve_device

    run = TrainedRun.open(checkpoint, dataset=dataset, data_dir=data_dir, input_size=input_size)
    run.model.to(resolve_device(device))
    run.use_bn_statistics(bn_statistics)
    return run


def _bar(total: int, desc: str, enabled: bool):
    if not progress_enabled(enabled):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False)


def _with_bar(total: int, desc: str, enabled: bool, work: Callable[[Optional[Callable[[], None]]], Any]) -> Any:
    """``work(on_batch)`` with a progress bar that ``on_batch`` advances (none when progress is off)."""
    bar = _bar(total, desc, enabled)
    try:
        return work((lambda: bar.update(1)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


def _sample(total: int, num_images: Optional[int], seed: int, large: bool, split: str) -> torch.Tensor:
    """Sorted positions of the images to label: all of them, or ``num_images`` drawn from ``seed``."""
    if num_images is None:
        num_images = min(total, LARGE_SAMPLE) if large else total
    if not 1 <= num_images <= total:
        raise ValueError(f"num_images must be in [1, {total}] (the {split} split's size), got {num_images}")
    if num_images == total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:num_images].sort().values


def label_checkpoint(opts: "LabelOptions") -> Tuple[LabelSet, Path]:
    """Label a sample of a checkpoint's images with their best configuration; what ``resizable adapt
    label`` runs. The label file defaults to ``adapt-labels.pt`` beside the checkpoint."""
    from ..data.datasets import make_loader
    from ..training.run_folder import output_path

    check_choice(opts.rule, RULES, "rule")
    run = _open(opts.checkpoint, opts.device, opts.bn_statistics, opts.dataset, opts.data_dir, opts.input_size)
    out = output_path(opts.out, "adapt-labels.pt") if opts.out else run.run_dir / "adapt-labels.pt"
    split = opts.split or _default_label_split(run)
    data = run.split(split)
    indices = _sample(len(data), opts.num_images, opts.seed, run.info.name == "imagefolder", split)
    loader = make_loader(_subset(data, indices), opts.batch_size, shuffle=False)
    chosen = parse_configs(opts.configs, run.model.factors, run.model.num_stages)
    labels = _with_bar(len(loader), f"label ({len(chosen)} configs)", opts.progress, lambda on_batch: label_images(
        run.model, loader, input_size=run.input_size, indices=indices, dataset=run.info.name, split=split,
        data_dir=run.data_dir, configs=chosen, rule=opts.rule, model_name=run.model_name,
        checkpoint=str(run.checkpoint), on_batch=on_batch))
    return labels, save_labels(labels, out)


def _default_label_split(run: TrainedRun) -> str:
    """Adapt learns from images the network may have seen: val when the run holds some out, else train."""
    return "val" if run.val_split is not None else "train"


def train_checkpoint(opts: "ClassifierOptions") -> Tuple[TrainedClassifier, Path]:
    """Train the configuration classifier from a label file; what ``resizable adapt train`` runs.

    The checkpoint must be the one the labels were made with (the weight hash is checked); the
    classifier file defaults to ``adapt-classifier-<source>.pt`` beside the labels.
    """
    from ..data.datasets import make_loader
    from ..training.run_folder import output_path

    name = f"adapt-classifier-{opts.source}.pt"
    out = output_path(opts.out, name) if opts.out else Path(opts.labels).parent / name
    run = _open(opts.checkpoint, opts.device, opts.bn_statistics)
    labelset = load_labels(opts.labels, run.model)
    if opts.rule is not None and opts.rule != labelset.rule:
        labelset = labelset.relabel(opts.rule)
    run = run.with_data(labelset.dataset, labelset.data_dir, labelset.input_size[0])
    subset = _subset(run.split(labelset.split), labelset.indices)
    loader = make_loader(subset, opts.batch_size, shuffle=False)
    targets = torch.cat([y for _, y in make_loader(subset, 4096, shuffle=False)]) if hasattr(subset, "images") else None
    if targets is not None and not torch.equal(targets, labelset.outcomes.targets):
        raise AdaptError(f"the images of {opts.labels} are not the ones that were labelled (class labels differ); "
                         f"is the dataset at {labelset.data_dir or 'the default location'} the same?")
    trained = train_classifier(run.model, loader, labelset, source=opts.source, width=opts.width, epochs=opts.epochs,
                               batch_size=opts.batch_size, lr=opts.lr, weight_decay=opts.weight_decay,
                               val_fraction=opts.val_fraction, seed=opts.seed, progress=opts.progress)
    return trained, save_classifier(trained, out, labels_path=opts.labels)


def _check_table(table: PathLike, trained: TrainedClassifier, split: str, num_images: int, basis: str) -> Any:
    """A lookup table given to ``adapt eval``: the same weights, split and BN statistics as the routed images."""
    lookup = read_table(table, required=REQUIRED_COLUMNS)
    meta = lookup.meta
    if meta.get("weights_sha256") != trained.identity["weights_sha256"]:
        raise AdaptError(f"the table {table} was built with other weights than this checkpoint")
    if meta.get("split") != split or meta.get("num_samples") != str(num_images):
        raise AdaptError(f"the table {table} is for split {meta.get('split')} ({meta.get('num_samples')} images), "
                         f"this evaluation uses {split} ({num_images} images)")
    # routed images, the oracle and the static rows must all use the same BN statistics
    theirs = ("recalibrated" if meta.get("calibrate_bn", "none") != "none"
              else meta.get("bn_statistics", "as trained (a table written before statistics banks)"))
    if _basis_kind(theirs) != _basis_kind(basis) or (_basis_kind(basis) == "bank" and theirs != basis):
        raise AdaptError(f"the table {table} has BN statistics {theirs!r}, and Adapt routes here with {basis!r}; "
                         f"build the table with the same --bn-statistics (and no --calibrate-bn), or leave --table out")
    return lookup


def _basis_kind(basis: str) -> str:
    return "bank" if basis.startswith("statistics bank") else basis.split(" ")[0]


def eval_checkpoint(opts: "RoutingOptions") -> List[Dict[str, Any]]:
    """Routed inference of a checkpoint at each budget (``max_mmacs``); what ``resizable adapt eval`` runs.

    The static comparison comes from ``table`` (a ``resizable table`` file of the same weights and
    split) or, without one, from the oracle's pass over every configuration (the same numbers).
    """
    from ..data.datasets import make_loader

    budgets: List[Optional[float]] = list(opts.max_mmacs) or [None]
    run = _open(opts.checkpoint, opts.device, opts.bn_statistics, opts.dataset, opts.data_dir)
    model = run.model
    trained = load_classifier(opts.classifier, model)
    run = run.with_data(run.dataset, run.data_dir, trained.input_size[0])  # the size the classifier learnt at
    adapter = Adapter.from_trained(model, trained)
    for budget in budgets:  # refuse an impossible budget before the long passes
        adapter.allowed(budget, opts.count_interp)
    data = run.split(opts.split)
    loader = make_loader(data, opts.batch_size, shuffle=False)
    basis = run.use_bn_statistics(opts.bn_statistics)
    lookup = _check_table(opts.table, trained, opts.split, len(data), basis) if opts.table is not None else None
    outcomes = None
    if opts.oracle:
        outcomes = _with_bar(len(loader), f"oracle ({len(adapter.configs)} configs)", opts.progress,
                             lambda on_batch: config_outcomes(model, loader, model.configs(), on_batch=on_batch))
    if lookup is None:  # the table that `resizable table` would write for these images
        everything = outcomes if outcomes is not None else config_outcomes(model, loader, model.configs())
        lookup = outcomes_table(model, everything, run.input_size, dataset=run.info.name, split=opts.split,
                                model_name=run.model_name, bn_statistics=basis)
    results = []
    for budget in budgets:
        r = evaluate_adapt(adapter, loader, budget, count_interp=opts.count_interp, table=lookup, outcomes=outcomes,
                           rule=opts.rule)
        r.update({"split": opts.split, "dataset": run.info.name, "batch_size": opts.batch_size,
                  "classifier": str(opts.classifier),
                  "bn_statistics": f"{basis}, for the routed images, the oracle and the static configurations "
                                   f"alike",
                  "checkpoint": str(run.checkpoint),
                  "table": str(opts.table) if opts.table else "derived from a pass of every configuration"})
        results.append(r)
    return results
