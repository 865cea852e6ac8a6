"""Resizable-Adapt from a checkpoint: what ``resizable adapt label|train`` run, the routed network at
per-image budgets of ``resizable adapt eval`` (its comparison along the front: :mod:`resizable.adapt.compare`),
and ``resizable export --adapt`` (a classifier's router or a cascade as deployable files)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..trained_run import bn_statistics_option
from ..configs import parse_configs
from ..data.splits import parse_split_part
from ..nas.table_file import REQUIRED_COLUMNS, read_table
from ..utils.options import check_options, option, required
from ..trained_run import TrainedRun
from ..deploy.export import ONNX_EXPORTERS
from .cascade import CASCADE_FORMAT, Cascade, load_cascade
from .classifier import SOURCES, TrainedClassifier, load_classifier, save_classifier, train_classifier
from .export import PIPELINE_FORMATS, PipelineExport, export_pipeline
from .labels import (RULES, AdaptError, ConfigOutcomes, LabelSet, PathLike, config_outcomes, label_images,
                     label_knobs, load_label_sets, model_identity, save_labels)
from .front import pareto_indices
from .routing import Adapter, evaluate_adapt, outcomes_table
from .runs import default_part, open_run, split_images, subset, with_bar

__all__ = ["LARGE_SAMPLE", "LabelOptions", "ClassifierOptions", "RoutingOptions", "label_checkpoint",
           "front_thresholds", "train_classifiers", "train_checkpoint", "classifier_paths", "load_classifiers", "check_routing", "routed_results",
           "eval_checkpoint", "PipelineExportOptions", "load_pipeline", "export_pipeline_checkpoint"]

LARGE_SAMPLE = 50_000  # paper: 50k training images; the default sample on datasets larger than memory
SPLIT_HELP = "SPLIT or SPLIT:START-STOP, a part of a split (e.g. val:0.5-0.75)"


def _check_part(value: Optional[str], flag: str) -> None:
    if value is not None:
        try:
            parse_split_part(value)
        except ValueError as e:
            raise ValueError(f"{flag}: {e}") from None


@dataclass(frozen=True)
class LabelOptions:
    """What ``resizable adapt label`` labels; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("the trained ResizableNet (checkpoint file or run folder)")
    out: Optional[str] = option(None, "label file (default: RUN/adapt-labels.pt)")
    dataset: Optional[str] = option(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training run's)")
    split: Optional[str] = option(None, f"images to label, {SPLIT_HELP} (default: val:0-0.5 when the run holds "
                                        "images out with --val-size, else train:0-0.5)", metavar="SPLIT")
    num_images: Optional[int] = option(None, "images to label (default: all of Fashion-MNIST/CIFAR, 50000 of a folder)", min=1)
    seed: int = option(0, "seed of the image sample", min=0, max=2**63 - 1)
    configs: str = option("all", "allowed configurations: all, default, or '0.45,0.65,1;1,1,1'")
    rule: str = option("cheapest", "best configuration: cheapest correct (else most confident), most confident "
                       "(the paper's rule), or cost-aware (p_true - lambda x MACs / full MACs)", choices=RULES)
    max_mmacs: Tuple[float, ...] = option((), "label thresholds: one label set per threshold, each choosing among "
                                              "the configurations of at most that many MMACs (comma-separated)",
                                          above=0.0)
    cost_weight: Tuple[float, ...] = option((), "the cost-aware rule's lambda(s), comma-separated: one label set "
                                                "each", min=0.0)
    front_thresholds: bool = option(False, "also one label threshold per configuration of the labelled images' "
                                           "Pareto front (its MACs: that configuration and every cheaper one)")
    batch_size: int = option(256, "evaluation batch size", min=1)
    input_size: Optional[int] = option(None, "input resolution (default: the run's)", min=1, max=4096)
    bn_statistics: str = bn_statistics_option()
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds
        _check_part(self.split, "--split")
        label_knobs(self.rule, self.max_mmacs, self.cost_weight)


@dataclass(frozen=True)
class ClassifierOptions:
    """How ``resizable adapt train`` trains the configuration classifier; each field is also its ``--flag``."""

    labels: Optional[str] = required("label file (resizable adapt label)")
    checkpoint: Optional[str] = required("the checkpoint the labels were made with")
    out: Optional[str] = option(None, "classifier file (default: adapt-classifier-<source>.pt beside the labels; "
                                      "with several knobs, each file's name ends in its knob)")
    source: str = option("min", "classifier input: the last stage at the smallest configuration, or the stem output",
                         choices=SOURCES)
    width: int = option(32, "channels of the classifier's three convolutions", min=1)
    epochs: int = option(15, "training epochs", min=1)
    batch_size: int = option(256, "batch size", min=1)
    lr: float = option(2e-3, "AdamW learning rate (cosine-decayed)", above=0.0, max=1e3)
    weight_decay: float = option(1e-4, "AdamW weight decay", min=0.0, max=1.0)
    val_fraction: float = option(0.1, "share of labelled images held out for the report", min=0.0, below=1.0)
    rule: Optional[str] = option(None, "relabel with this rule first (default: the label file's)", choices=RULES)
    max_mmacs: Tuple[float, ...] = option((), "relabel under these thresholds: one classifier each, choosing among "
                                              "the configurations under it (default: the label file's knobs)",
                                          above=0.0)
    cost_weight: Tuple[float, ...] = option((), "relabel with these cost-aware lambdas: one classifier each",
                                            min=0.0)
    front_thresholds: bool = option(False, "relabel under one threshold per configuration of the labelled images' "
                                           "Pareto front")
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
    classifier: Optional[str] = option(None, "classifier file(s) (resizable adapt train), comma-separated; the "
                                             "comparison groups them by label rule")
    max_mmacs: Tuple[float, ...] = option((), "per-image budget(s) of the routed network in millions of MACs, "
                                              "comma-separated (default: no budget; --max-mflops is an alias)",
                                          above=0.0)
    count_interp: bool = option(False, "budgets and costs also count the resizes' interpolation MACs")
    table: Optional[str] = option(None, "lookup table of the same weights and split (default: from the oracle pass)")
    oracle: bool = option(True, "also run every configuration on the split (oracle, and the table if none is given)")
    rule: str = option("cheapest", "the routed network's oracle's rule", choices=RULES[:2])
    routed: bool = option(True, "run each classifier's routed network on the split at every --max-mmacs budget")
    compare: bool = option(True, "compare every method with the NAS front along it, at knobs chosen on "
                                 "--knob-split (see --curves)")
    mean_mmacs: Tuple[float, ...] = option((), "target mean MMACs per image of the comparison (default: the "
                                               "front's costs and the midpoints between them)", above=0.0)
    cascade: bool = option(True, "include the confidence cascade in the comparison")
    cascade_steps: int = option(3, "longest cascade, in configurations", min=1, max=6)
    knob_split: Optional[str] = option(None, f"images that choose the knobs, {SPLIT_HELP} (default: val:0.5-0.75, "
                                             "else train:0.5-0.75)", metavar="SPLIT")
    front_split: Optional[str] = option(None, f"images whose table gives the Pareto front, {SPLIT_HELP} (default: "
                                              "val:0.75-1, else train:0.75-1)", metavar="SPLIT")
    curves: Optional[str] = option(None, "write the comparison as PATH.csv and PATH.json", metavar="PATH")
    plot: Optional[str] = option(None, "plot the comparison (PNG, PDF or SVG by the suffix)", metavar="PATH")
    dataset: Optional[str] = option(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training run's)")
    split: str = option("test", "split to evaluate (to report on)", choices=("train", "test", "val"))
    batch_size: int = option(256, "evaluation batch size (images of a batch are grouped by configuration)", min=1)
    bn_statistics: str = bn_statistics_option()
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    out: Optional[str] = option(None, "also write the routed network's results as JSON here")
    json: bool = option(False, "print JSON instead of text")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds
        _check_part(self.knob_split, "--knob-split")
        _check_part(self.front_split, "--front-split")
        classifier_paths(self.classifier)


def _sample(total: int, num_images: Optional[int], seed: int, large: bool, split: str) -> torch.Tensor:
    """Sorted positions of the images to label: all of them, or ``num_images`` drawn from ``seed``."""
    if num_images is None:
        num_images = min(total, LARGE_SAMPLE) if large else total
    if not 1 <= num_images <= total:
        raise ValueError(f"num_images must be in [1, {total}] (the {split} images), got {num_images}")
    if num_images == total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:num_images].sort().values


def label_checkpoint(opts: LabelOptions) -> Tuple[LabelSet, Path]:
    """Label a sample of a checkpoint's images with their best configuration; what ``resizable adapt
    label`` runs. Every configuration runs once on every image; each knob's labels come from those
    outcomes (:func:`resizable.adapt.load_label_sets` reads them all; this returns the first). The label
    file defaults to ``adapt-labels.pt`` beside the checkpoint."""
    from ..data.datasets import make_loader
    from ..training.run_folder import output_path

    knobs = label_knobs(opts.rule, opts.max_mmacs, opts.cost_weight)
    run = open_run(opts.checkpoint, opts.device, opts.bn_statistics, opts.dataset, opts.data_dir, opts.input_size)
    out = output_path(opts.out, "adapt-labels.pt") if opts.out else run.run_dir / "adapt-labels.pt"
    data, part = split_images(run, opts.split or default_part(run, "labels"))
    indices = _sample(len(data), opts.num_images, opts.seed, run.info.name == "imagefolder", str(part))
    loader = make_loader(subset(data, indices), opts.batch_size, shuffle=False)
    chosen = parse_configs(opts.configs, run.model.factors, run.model.num_stages)
    first = with_bar(len(loader), f"label ({len(chosen)} configs)", opts.progress, lambda on_batch: label_images(
        run.model, loader, input_size=run.input_size, indices=indices, dataset=run.info.name, split=str(part),
        data_dir=run.data_dir, configs=chosen, model_name=run.model_name, checkpoint=str(run.checkpoint),
        on_batch=on_batch, knob=knobs[0]))
    if opts.front_thresholds:  # without --max-mmacs, the front's thresholds replace the uncapped knob
        knobs = _with_front(knobs if opts.max_mmacs else [], first, opts.rule, opts.cost_weight)
    sets = [first if k == first.knob else first.relabel(k) for k in knobs]
    return sets[0], save_labels(sets, out)


def front_thresholds(labels: LabelSet) -> List[float]:
    """The MMACs of each configuration of the Pareto front of the labelled images (cheapest first)."""
    top1 = labels.outcomes.top1_pct()
    return [labels.config_macs[j] / 1e6 for j in pareto_indices(top1, labels.config_macs)]


def _with_front(knobs: List[Any], labels: LabelSet, rule: str, cost_weight: Sequence[float]) -> List[Any]:
    """``knobs`` and one more per front threshold (the ones already there are not repeated)."""
    extra = label_knobs(rule, front_thresholds(labels), cost_weight)
    return knobs + [k for k in extra if k not in knobs]


def _knob_sets(opts: ClassifierOptions, model: Any) -> List[LabelSet]:
    """The label sets to train on: the file's, or its outcomes relabelled by the options' knobs."""
    sets = load_label_sets(opts.labels, model)
    if opts.rule is None and not opts.max_mmacs and not opts.cost_weight and not opts.front_thresholds:
        return sets
    rule = opts.rule or ("cost-aware" if opts.cost_weight else sets[0].rule)
    knobs = label_knobs(rule, opts.max_mmacs, opts.cost_weight) if opts.max_mmacs or not opts.front_thresholds else []
    if opts.front_thresholds:
        knobs = _with_front(knobs, sets[0], rule, opts.cost_weight)
    return [sets[0].relabel(k) for k in knobs]


def _classifier_out(opts: ClassifierOptions, knob_name: str, several: bool) -> Path:
    from ..training.run_folder import output_path

    name = f"adapt-classifier-{opts.source}{'-' + knob_name if several else ''}.pt"
    if not opts.out:
        return Path(opts.labels).parent / name
    path = output_path(opts.out, name)
    return path.with_name(f"{path.stem}-{knob_name}{path.suffix}") if several and path.name != name else path


def train_classifiers(opts: ClassifierOptions) -> List[Tuple[TrainedClassifier, Path]]:
    """Train one configuration classifier per label knob; what ``resizable adapt train`` runs.

    The checkpoint must be the one the labels were made with (the weight hash is checked); the
    classifier file defaults to ``adapt-classifier-<source>.pt`` beside the labels (one knob) or
    ``adapt-classifier-<source>-<knob>.pt`` (several).
    """
    from ..data.datasets import make_loader

    run = open_run(opts.checkpoint, opts.device, opts.bn_statistics)
    sets = _knob_sets(opts, run.model)
    outs = [_classifier_out(opts, s.knob.name, len(sets) > 1) for s in sets]
    first = sets[0]
    run = run.with_data(first.dataset, first.data_dir, first.input_size[0])
    images = subset(split_images(run, first.split)[0], first.indices)
    loader = make_loader(images, opts.batch_size, shuffle=False)
    targets = torch.cat([y for _, y in make_loader(images, 4096, shuffle=False)]) if hasattr(images, "images") else None
    if targets is not None and not torch.equal(targets, first.outcomes.targets):
        raise AdaptError(f"the images of {opts.labels} are not the ones that were labelled (class labels differ); "
                         f"is the dataset at {first.data_dir or 'the default location'} the same?")
    done = []
    for labelset, out in zip(sets, outs):
        trained = train_classifier(run.model, loader, labelset, source=opts.source, width=opts.width,
                                   epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                                   weight_decay=opts.weight_decay, val_fraction=opts.val_fraction, seed=opts.seed,
                                   progress=opts.progress)
        done.append((trained, save_classifier(trained, out, labels_path=opts.labels)))
    return done


def train_checkpoint(opts: ClassifierOptions) -> Tuple[TrainedClassifier, Path]:
    """:func:`train_classifiers` for a single knob (several knobs: use that function)."""
    done = train_classifiers(opts)
    if len(done) != 1:
        raise ValueError(f"{len(done)} label knobs gave {len(done)} classifiers; use train_classifiers")
    return done[0]


def classifier_paths(text: Optional[str]) -> List[str]:
    """``--classifier a.pt,b.pt`` -> ``["a.pt", "b.pt"]`` (none: ``[]``); a file named twice is an error."""
    paths = [p.strip() for p in (text or "").split(",") if p.strip()]
    if len(set(paths)) != len(paths):
        raise ValueError(f"--classifier names a file more than once: {text}")
    return paths


def load_classifiers(paths: Sequence[str], model: Any) -> List[TrainedClassifier]:
    """The classifier files for ``model``; they must share one input size (the images are fed once)."""
    trained = [load_classifier(p, model) for p in paths]
    sizes = {tuple(t.input_size) for t in trained}
    if len(sizes) > 1:
        raise AdaptError(f"the classifiers were trained at different input sizes {sorted(sizes)}; evaluate them apart")
    return trained


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


def check_routing(opts: RoutingOptions, model: Any, basis: str, classifiers: Sequence[TrainedClassifier],
                  num_images: int) -> Any:
    """Refuse an impossible budget or a table of other weights, split or BN statistics before the long passes;
    the checked ``--table`` (or None)."""
    for t in classifiers:
        adapter = Adapter.from_trained(model, t)
        for budget in list(opts.max_mmacs) or [None]:
            adapter.allowed(budget, opts.count_interp)
    if opts.table is None or not classifiers:
        return None
    return _check_table(opts.table, classifiers[0], opts.split, num_images, basis)


def routed_results(opts: RoutingOptions, run: TrainedRun, basis: str, classifiers: Sequence[TrainedClassifier],
                   loader: Any, lookup: Any, outcomes: Optional[ConfigOutcomes]) -> List[Dict[str, Any]]:
    """Each classifier's routed network on ``loader`` at every ``opts.max_mmacs`` budget (:func:`evaluate_adapt`),
    with the static configurations of ``lookup`` (a table checked by :func:`check_routing`; None: derived from
    ``outcomes``) and, given ``outcomes`` of every configuration on those images, the oracle."""
    model, budgets = run.model, list(opts.max_mmacs) or [None]
    adapters = [Adapter.from_trained(model, t) for t in classifiers]
    for adapter in adapters:  # the classifier runs where the network does
        adapter.classifier.to(next(model.parameters()).device)
    if lookup is None:  # the table that `resizable table` would write for these images
        everything = outcomes if outcomes is not None else config_outcomes(model, loader, model.configs())
        lookup = outcomes_table(model, everything, run.input_size, dataset=run.info.name, split=opts.split,
                                model_name=run.model_name, bn_statistics=basis)
    results = []
    for path, adapter in zip(classifier_paths(opts.classifier), adapters):
        for budget in budgets:
            r = evaluate_adapt(adapter, loader, budget, count_interp=opts.count_interp, table=lookup,
                               outcomes=outcomes, rule=opts.rule)
            r.update({"split": opts.split, "dataset": run.info.name, "batch_size": opts.batch_size,
                      "classifier": path,
                      "bn_statistics": f"{basis}, for the routed images, the oracle and the static configurations "
                                       f"alike",
                      "checkpoint": str(run.checkpoint),
                      "table": str(opts.table) if opts.table else "derived from a pass of every configuration"})
            results.append(r)
    return results


def eval_checkpoint(opts: RoutingOptions) -> List[Dict[str, Any]]:
    """Routed inference of a checkpoint at each budget (``max_mmacs``), one classifier after the other.

    The static comparison comes from ``table`` (a ``resizable table`` file of the same weights and
    split) or, without one, from the oracle's pass over every configuration (the same numbers). The
    comparison along the front is :func:`resizable.adapt.compare.evaluate_checkpoint`.
    """
    from ..data.datasets import make_loader

    if not classifier_paths(opts.classifier):
        raise ValueError("--classifier is required to route images")
    run = open_run(opts.checkpoint, opts.device, opts.bn_statistics, opts.dataset, opts.data_dir)
    classifiers = load_classifiers(classifier_paths(opts.classifier), run.model)
    run = run.with_data(run.dataset, run.data_dir, classifiers[0].input_size[0])  # the size they learnt at
    data = run.split(opts.split)
    loader = make_loader(data, opts.batch_size, shuffle=False)
    basis = run.use_bn_statistics(opts.bn_statistics)
    lookup = check_routing(opts, run.model, basis, classifiers, len(data))
    outcomes = None
    if opts.oracle:
        outcomes = with_bar(len(loader), f"oracle ({len(run.model.configs())} configs)", opts.progress,
                            lambda on_batch: config_outcomes(run.model, loader, run.model.configs(),
                                                             on_batch=on_batch))
    return routed_results(opts, run, basis, classifiers, loader, lookup, outcomes)


@dataclass(frozen=True)
class PipelineExportOptions:
    """What ``resizable export --adapt`` writes; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("run folder or checkpoint file", metavar="RUN")
    adapt: Optional[str] = option(None, "a classifier file (resizable adapt train) or a cascade file (resizable "
                                        "adapt cascade): export that pipeline", metavar="FILE")
    format: str = option("torchscript", "one TorchScript module, or ONNX networks with a JSON file that chains them",
                         choices=PIPELINE_FORMATS)
    out: Optional[str] = option(None, "file to write, or a folder for the default name (default: RUN/export/)",
                                metavar="PATH")
    fold_bn: bool = option(False, "fold batch norm into the preceding convolutions")
    max_mmacs: Optional[float] = option(None, "a classifier's per-image budget: only configurations whose routed "
                                              "cost fits it (default: all of them)", above=0.0)
    count_interp: bool = option(False, "the budget also counts the resizes' interpolation MACs")
    bn_statistics: str = bn_statistics_option()
    onnx_exporter: str = option("dynamo", "torch.export-based ONNX exporter, or the older, faster TorchScript-based "
                                "one", choices=ONNX_EXPORTERS)

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds
        if not self.adapt:
            raise ValueError("--adapt is required: a classifier file or a cascade file")


def load_pipeline(path: PathLike, model: Any) -> Union[Adapter, Cascade]:
    """A cascade file (JSON) or a classifier file, for ``model`` (refused unless made for these weights)."""
    try:
        with open(path, "rb") as f:
            is_cascade = CASCADE_FORMAT.encode() in f.read(4096)
    except OSError:
        raise FileNotFoundError(f"no classifier or cascade file at {path}") from None
    if is_cascade:
        return load_cascade(path, model)[0]
    return Adapter.from_trained(model, load_classifier(path, model))


def export_pipeline_checkpoint(opts: PipelineExportOptions) -> PipelineExport:
    """Export a checkpoint's Adapt pipeline (what ``resizable export --adapt`` runs), at the input size it was
    made for. ``out`` defaults to ``export/`` in the run folder."""
    from ..training.run_folder import output_path

    run = open_run(opts.checkpoint, "cpu", opts.bn_statistics)
    basis = run.use_bn_statistics(opts.bn_statistics)
    pipeline = load_pipeline(opts.adapt, run.model)
    kind = "cascade" if isinstance(pipeline, Cascade) else "router"
    if kind == "cascade" and opts.max_mmacs is not None:
        raise ValueError("--max-mmacs bounds a classifier's routes; a cascade's cost is set by its thresholds")
    allowed = pipeline.allowed(opts.max_mmacs, opts.count_interp) if isinstance(pipeline, Adapter) else None
    h, w = pipeline.input_size
    name = (f"{run.model_name}_adapt-{kind}_{h if h == w else f'{h}x{w}'}{'_folded' if opts.fold_bn else ''}"
            f"{'.torchscript.pt' if opts.format == 'torchscript' else '.onnx.json'}")
    path = run.run_dir / "export" / name if opts.out is None else output_path(opts.out, name)
    data = run.preprocessing()
    extra = {"model_name": run.model_name, "identity": model_identity(run.model, run.model_name),
             "checkpoint": str(run.checkpoint), "pipeline_file": str(opts.adapt), "bn_statistics": basis,
             "preprocessing": data or None, "classes": data.get("classes") or None,
             "budget_mmacs": opts.max_mmacs, "count_interp": opts.count_interp}
    return export_pipeline(pipeline, path, format=opts.format, fold_bn=opts.fold_bn, allowed=allowed,
                           onnx_exporter=opts.onnx_exporter, extra_meta=extra)
