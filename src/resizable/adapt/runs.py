"""Resizable-Adapt from a checkpoint: what ``resizable adapt label|train|eval`` run."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..checkpoint import load_model, load_model_for_data, resolve_checkpoint
from ..configs import parse_configs
from ..tables import REQUIRED_COLUMNS, read_table
from .classifier import TrainedClassifier, load_classifier, save_classifier, train_classifier
from .labels import RULES, AdaptError, LabelSet, PathLike, check_choice, config_outcomes, label_images, load_labels, save_labels
from .routing import Adapter, evaluate_adapt, outcomes_table

__all__ = ["LARGE_SAMPLE", "label_checkpoint", "train_checkpoint", "eval_checkpoint"]

LARGE_SAMPLE = 50_000  # paper: 50k training images; the default sample on datasets larger than memory


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
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False)

def label_checkpoint(checkpoint: PathLike, out: Optional[PathLike] = None, *, dataset: Optional[str] = None,
                     data_dir: Optional[str] = None, split: Optional[str] = None, num_images: Optional[int] = None,
                     seed: int = 0, configs: str = "all", rule: str = "cheapest", batch_size: int = 256,
                     device: str = "auto", input_size: Optional[int] = None, progress: bool = True
                     ) -> Tuple[LabelSet, Path]:
    """Label a sample of a checkpoint's training images; what ``resizable adapt label`` runs.

    Args:
        checkpoint: checkpoint file or run folder.
        out: the label file (default: ``adapt-labels.pt`` beside the checkpoint).
        dataset, data_dir, input_size: default to the training run's.
        split: which split to sample; default ``val`` when the run holds images out (``train --val-size``:
            images the network never trained on, so its mistakes there are the test set's), else ``train``
            (the paper's choice).
        num_images: how many images (drawn with ``seed``); default all of an in-memory dataset
            (Fashion-MNIST, CIFAR), 50 000 of an image folder.
        configs: ``all``, ``default`` or ``"0.45,0.65,1;1,1,1"``: the allowed configurations.
        rule: ``cheapest`` or ``confident``.
        batch_size: evaluation batch size.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: progress bar.
    """
    from ..data import make_loader

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
    from ..data import dataset_info, make_loader
    from ..distributed import resolve_device

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
    from ..data import make_loader

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
