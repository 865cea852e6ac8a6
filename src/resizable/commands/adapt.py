"""``resizable adapt label | train | eval``: Resizable-Adapt, a scaling configuration per image."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

HELP = "Resizable-Adapt: label images with their best configuration, train the classifier, route each image"


def _opt(default: Any, help: str, **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class LabelOptions:
    """Options of ``resizable adapt label``."""

    checkpoint: str = _opt("", "the trained ResizableNet (checkpoint file or run folder)")
    out: Optional[str] = _opt(None, "label file (default: RUN/adapt-labels.pt)")
    dataset: Optional[str] = _opt(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = _opt(None, "dataset folder (default: the training run's)")
    split: Optional[str] = _opt(None, "split to sample the images from (default: val when the run holds images "
                                      "out with --val-size, else train)", choices=("train", "test", "val"))
    num_images: Optional[int] = _opt(None, "images to label (default: all of Fashion-MNIST/CIFAR, 50000 of a folder)")
    seed: int = _opt(0, "seed of the image sample")
    configs: str = _opt("all", "allowed configurations: all, default, or '0.45,0.65,1;1,1,1'")
    rule: str = _opt("cheapest", "best configuration: cheapest correct (else most confident), or most confident",
                     choices=("cheapest", "confident"))
    batch_size: int = _opt(256, "evaluation batch size")
    input_size: Optional[int] = _opt(None, "input resolution (default: the run's)")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = _opt(True, "progress bar (shown only on a terminal)")


@dataclass(frozen=True)
class TrainOptions:
    """Options of ``resizable adapt train``."""

    labels: str = _opt("", "label file (resizable adapt label)")
    checkpoint: str = _opt("", "the checkpoint the labels were made with")
    out: Optional[str] = _opt(None, "classifier file (default: adapt-classifier-<source>.pt beside the labels)")
    source: str = _opt("min", "classifier input: the last stage at the smallest configuration, or the stem output",
                       choices=("min", "stem"))
    width: int = _opt(32, "channels of the classifier's three convolutions")
    epochs: int = _opt(15, "training epochs")
    batch_size: int = _opt(256, "batch size")
    lr: float = _opt(2e-3, "AdamW learning rate (cosine-decayed)")
    weight_decay: float = _opt(1e-4, "AdamW weight decay")
    val_fraction: float = _opt(0.1, "share of labelled images held out for the report")
    rule: Optional[str] = _opt(None, "relabel with this rule first (default: the label file's)",
                               choices=("cheapest", "confident"))
    seed: int = _opt(0, "seed of initialisation, hold-out draw and batch order")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = _opt(True, "one line per epoch")


@dataclass(frozen=True)
class EvalOptions:
    """Options of ``resizable adapt eval``."""

    checkpoint: str = _opt("", "the trained ResizableNet")
    classifier: str = _opt("", "classifier file (resizable adapt train)")
    max_mflops: Tuple[float, ...] = _opt((), "per-image budget(s) in millions of MACs, comma-separated "
                                             "(default: no budget)")
    count_interp: bool = _opt(False, "the budget also counts the resizes' interpolation MACs")
    table: Optional[str] = _opt(None, "lookup table of the same weights and split (default: from the oracle pass)")
    oracle: bool = _opt(True, "also run every configuration on the split (oracle, and the table if none is given)")
    rule: str = _opt("cheapest", "the oracle's rule", choices=("cheapest", "confident"))
    dataset: Optional[str] = _opt(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = _opt(None, "dataset folder (default: the training run's)")
    split: str = _opt("test", "split to evaluate", choices=("train", "test", "val"))
    batch_size: int = _opt(256, "evaluation batch size (images of a batch are grouped by configuration)")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    out: Optional[str] = _opt(None, "also write the results as JSON here")
    json: bool = _opt(False, "print JSON instead of text")
    progress: bool = _opt(True, "progress bar (shown only on a terminal)")


_SUB = {"label": (LabelOptions, "label a sample of training images with their best configuration"),
        "train": (TrainOptions, "train the scaling-configuration classifier on a label file"),
        "eval": (EvalOptions, "route each test image to its predicted configuration under a budget")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import add_dataclass_args

    sub = parser.add_subparsers(dest="adapt_command", metavar="STEP")
    for name, (cls, help_text) in _SUB.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_dataclass_args(p, cls)
    parser.set_defaults(_adapt_parser=parser)


def _label(opts: LabelOptions) -> int:
    from ..adapt import label_checkpoint
    from ..console import progress_enabled

    if not opts.checkpoint:
        raise ValueError("--checkpoint is required")
    labels, path = label_checkpoint(opts.checkpoint, opts.out, dataset=opts.dataset, data_dir=opts.data_dir,
                                    split=opts.split, num_images=opts.num_images, seed=opts.seed,
                                    configs=opts.configs, rule=opts.rule, batch_size=opts.batch_size,
                                    device=opts.device, input_size=opts.input_size,
                                    progress=progress_enabled(opts.progress))
    s = labels.summary()
    common = ", ".join(f"{c} ({n})" for c, n in s["most_frequent"])
    print(f"labelled {s['images']} {labels.split} images over {s['configs']} configurations (rule: {s['rule']}); "
          f"{s['any_correct_pct']:.2f} % have a correct configuration; mean label cost "
          f"{s['label_mean_mmacs']:.3f} MMACs; most frequent labels: {common}")
    print(f"wrote {path}")
    return 0


def _train(opts: TrainOptions) -> int:
    from ..adapt import train_checkpoint

    if not opts.labels or not opts.checkpoint:
        raise ValueError("--labels and --checkpoint are required")
    trained, path = train_checkpoint(opts.labels, opts.checkpoint, opts.out, source=opts.source, width=opts.width,
                                     epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                                     weight_decay=opts.weight_decay, val_fraction=opts.val_fraction, rule=opts.rule,
                                     seed=opts.seed, device=opts.device, progress=opts.progress)
    from ..adapt import module_macs

    clf = trained.classifier
    macs = module_macs(clf, (clf.in_chans, *clf.feature_size))
    print(f"classifier on the '{trained.source}' features {tuple(trained.report['feature_shape'])}: "
          f"{macs / 1e6:.4f} MMACs per image, {sum(p.numel() for p in clf.parameters())} parameters, "
          f"{len(trained.configs)} configurations (rule: {trained.rule})")
    for part in ("train", "val"):
        r = trained.report.get(part)
        if r:
            print(f"  {part}: label accuracy {r['label_accuracy_pct']:.2f} %, routed top-1 "
                  f"{r['routed_top1_pct']:.2f} % (labels: {r['label_top1_pct']:.2f} %), mean configuration "
                  f"{r['routed_mean_config_mmacs']:.3f} MMACs")
    print(f"wrote {path}")
    return 0


def format_result(r: Dict[str, Any]) -> List[str]:
    """One evaluation (one budget) as text lines."""
    a = r["adapt"]
    budget = "no budget" if r["budget_mmacs"] is None else f"budget {r['budget_mmacs']:g} MMACs/image"
    lines = [f"{budget} ({r['allowed_configs']}/{r['configs']} configurations allowed"
             f"{', interpolation counted' if r['count_interp'] else ''}):",
             f"  adapt      top-1 {a['top1_pct']:6.2f} %  mean {a['mean_mmacs']:.3f} MMACs/image "
             f"(max {a['max_image_mmacs']:.3f}; features {a['feature_mmacs']:.3f} + classifier "
             f"{a['classifier_mmacs']:.4f} included)  {a['seconds']:.2f} s"]
    s = r.get("static_at_budget")
    if s:
        timed = f"  {s['seconds']:.2f} s" if "seconds" in s else ""
        lines.append(f"  static     top-1 {s['top1_pct']:6.2f} %  {s['mmacs']:.3f} MMACs  {s['config']} "
                     f"(best single configuration within the budget){timed}")
    s = r.get("static_at_mean_cost")
    if s:
        lines.append(f"  static     top-1 {s['top1_pct']:6.2f} %  {s['mmacs']:.3f} MMACs  {s['config']} "
                     f"(best single configuration within Adapt's mean cost)")
    o = r.get("oracle")
    if o:
        lines.append(f"  oracle     top-1 {o['top1_pct']:6.2f} %  mean {o['mean_mmacs']:.3f} MMACs/image "
                     f"(each image's best allowed configuration, rule {o['rule']}; the ceiling)")
    return lines


def _eval(opts: EvalOptions) -> int:
    from ..adapt import eval_checkpoint
    from ..console import progress_enabled

    if not opts.checkpoint or not opts.classifier:
        raise ValueError("--checkpoint and --classifier are required")
    budgets = list(opts.max_mflops) or [None]
    results = eval_checkpoint(opts.checkpoint, opts.classifier, budgets, dataset=opts.dataset,
                              data_dir=opts.data_dir, split=opts.split, batch_size=opts.batch_size, table=opts.table,
                              oracle=opts.oracle, count_interp=opts.count_interp, rule=opts.rule, device=opts.device,
                              progress=progress_enabled(opts.progress))
    if opts.out:
        _write_json(opts.out, results)
    if opts.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print("\n".join(format_result(r)))
        if opts.out:
            print(f"wrote {opts.out}")
    return 0


def _write_json(path: str, obj: Any) -> None:
    from ..fileio import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    from ..options import resolve_options

    step = getattr(args, "adapt_command", None)
    if step is None:
        args._adapt_parser.print_help()
        return 2
    cls = _SUB[step][0]
    opts = resolve_options(cls, args)
    return {"label": _label, "train": _train, "eval": _eval}[step](opts)
