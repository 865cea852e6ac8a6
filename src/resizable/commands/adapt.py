"""``resizable adapt label | train | eval | cascade``: Resizable-Adapt, a scaling configuration per image."""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any, Dict, List

HELP = "Resizable-Adapt: label images with their best configuration, train the classifier, route each image"


_SUB = {"label": ("LabelOptions", "label a sample of images with their best configuration"),
        "train": ("ClassifierOptions", "train the scaling-configuration classifier on a label file"),
        "eval": ("RoutingOptions", "route each test image to its predicted configuration under a budget, and "
                                   "compare every method with the NAS front along it"),
        "cascade": ("CascadeOptions", "choose a confidence cascade for a target mean cost and write it")}


def _options_class(step: str):
    from ..adapt import compare, from_checkpoint

    return getattr(compare if step == "cascade" else from_checkpoint, _SUB[step][0])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args, parse_floats

    sub = parser.add_subparsers(dest="adapt_command", metavar="STEP")
    for name, (_, help_text) in _SUB.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_dataclass_args(p, _options_class(name))
        if name == "eval":  # the flag's earlier name
            p.add_argument("--max-mflops", dest="max_mmacs", type=parse_floats, default=argparse.SUPPRESS,
                           help=argparse.SUPPRESS)
    parser.set_defaults(_adapt_parser=parser)


def _label(opts) -> int:
    from ..adapt import label_checkpoint
    from ..utils.console import progress_enabled

    from ..adapt import load_label_sets

    labels, path = label_checkpoint(dataclasses.replace(opts, progress=progress_enabled(opts.progress)))
    sets = load_label_sets(path)
    s = labels.summary()
    print(f"labelled {s['images']} images of {labels.split} over {s['configs']} configurations; "
          f"{s['any_correct_pct']:.2f} % have a correct configuration")
    for one in sets:
        s = one.summary()
        common = ", ".join(f"{c} ({n})" for c, n in s["most_frequent"])
        print(f"  {s['knob']}: {s['allowed_configs']} configurations allowed; mean label cost "
              f"{s['label_mean_mmacs']:.3f} MMACs; most frequent labels: {common}")
    print(f"wrote {path}")
    return 0


def _train(opts) -> int:
    from ..adapt import module_macs, train_classifiers

    for trained, path in train_classifiers(opts):
        clf = trained.classifier
        macs = module_macs(clf, (clf.in_chans, *clf.feature_size))
        print(f"classifier on the '{trained.source}' features {tuple(trained.report['feature_shape'])}: "
              f"{macs / 1e6:.4f} MMACs per image, {sum(p.numel() for p in clf.parameters())} parameters, "
              f"{len(trained.configs)} configurations (labels: {trained.knob.name})")
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


def format_comparison(comparison) -> List[str]:
    """The comparison along the front as text lines: one block per method, one line per target."""
    m = comparison.meta
    lines = [f"along the front: {len(comparison.front)} front configurations (chosen on {m['front_split']}), knobs "
             f"chosen on {m['knob_split']}, measured on {m['report_images']} {m['report_split']} images"
             f"{'; interpolation counted' if m['count_interp'] else ''}"]
    for method in comparison.methods():
        lines.append(f"  {method}")
        for r in (r for r in comparison.rows if r["method"] == method):
            gain = "" if r["gain_vs_line_pct"] is None else f"  vs line {r['gain_vs_line_pct']:+6.2f}"
            lines.append(f"    target {r['target_mmacs']:8.3f}  mean {r['mean_mmacs']:8.3f} MMACs  top-1 "
                         f"{r['top1_pct']:6.2f} %{gain}  {r['knob']}")
    return lines


def _eval(opts) -> int:
    from ..adapt.compare import evaluate_checkpoint
    from ..utils.console import progress_enabled
    from ..training.run_folder import output_path

    if opts.out:
        opts = dataclasses.replace(opts, out=str(output_path(opts.out, "adapt-eval.json")))
    if not opts.classifier and not opts.compare:
        raise ValueError("nothing to evaluate: give --classifier, or leave --compare on")
    results, comparison = evaluate_checkpoint(dataclasses.replace(opts, progress=progress_enabled(opts.progress)))
    if opts.out:
        _write_json(opts.out, results)
    if opts.json:
        print(json.dumps(results if comparison is None else {"routed": results, "comparison": comparison.to_dict()},
                         indent=1))
        return 0
    for r in results:
        print("\n".join(format_result(r)))
    if comparison is not None:
        print("\n".join(format_comparison(comparison)))
    for path in ([opts.out] if opts.out else []) + (comparison.meta["files"] if comparison is not None else []):
        print(f"wrote {path}")
    return 0


def _cascade(opts) -> int:
    from ..adapt.compare import cascade_checkpoint
    from ..configs import format_config
    from ..utils.console import progress_enabled

    for choice, path in cascade_checkpoint(dataclasses.replace(opts, progress=progress_enabled(opts.progress))):
        steps = " > ".join(format_config(c) for c in choice.configs)
        at = f" at threshold {choice.thresholds[0]:.4g}" if choice.thresholds else ""
        print(f"target {choice.target_mmacs:g} MMACs/image: {steps}{at}; on the {choice.knob_images} knob images "
              f"top-1 {choice.knob_top1_pct:.2f} %, mean {choice.knob_mean_mmacs:.3f} MMACs")
        print(f"wrote {path}")
    return 0


def _write_json(path: str, obj: Any) -> None:
    from ..utils.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    from ..utils.options import resolve_options

    step = getattr(args, "adapt_command", None)
    if step is None:
        args._adapt_parser.print_help()
        return 2
    opts = resolve_options(_options_class(step), args)
    return {"label": _label, "train": _train, "eval": _eval, "cascade": _cascade}[step](opts)
