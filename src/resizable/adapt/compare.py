"""Resizable-Adapt from a checkpoint, along the whole front: what ``resizable adapt eval`` compares, and the
cascade that ``resizable adapt cascade`` chooses for a target mean cost.

Every configuration runs once on each of three sets of images (the front images, the knob images
and the report images; :mod:`resizable.adapt.front`), sharing prefixes; a classifier's choice needs
only its feature pass and itself; a cascade is read off the recorded top probabilities (what
:meth:`Cascade.infer` does, image for image).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..trained_run import bn_statistics_option
from ..configs import Config, format_config
from ..costs import part_costs
from ..data.splits import SplitPart, parse_split_part
from ..utils.options import check_options, option, required
from ..trained_run import TrainedRun
from .cascade import Cascade, CascadeChoice, choose_cascades, save_cascade
from .classifier import TrainedClassifier
from .front import (Comparison, FrontPoint, Setting, curve_rows, front_points, line_top1, nas_pick, oracle_setting,
                    pick_setting)
from .from_checkpoint import (SPLIT_HELP, RoutingOptions, check_routing, classifier_paths, load_classifiers,
                              routed_results)
from .labels import ConfigOutcomes, config_outcomes
from .routing import Adapter
from .runs import default_part, open_run, split_images, with_bar

__all__ = ["Images", "measure_images", "method_name", "classifier_setting", "cascade_settings", "default_targets",
           "compare", "evaluate_checkpoint", "CascadeOptions", "cascade_checkpoint"]


@dataclass
class Images:
    """A set of images with what every configuration did on them."""

    part: SplitPart
    loader: Any
    outcomes: ConfigOutcomes


def measure_images(run: TrainedRun, part: SplitPart, batch_size: int, progress: bool, what: str) -> Images:
    """Every configuration on the images of ``part`` (prefixes shared)."""
    from ..data.datasets import make_loader

    data, part = split_images(run, part)
    loader = make_loader(data, batch_size, shuffle=False)
    outcomes = with_bar(len(loader), f"{what} images ({len(run.model.configs())} configs)", progress,
                        lambda on_batch: config_outcomes(run.model, loader, run.model.configs(), on_batch=on_batch))
    return Images(part, loader, outcomes)


def method_name(trained: TrainedClassifier) -> str:
    """The curve a classifier belongs to: its label rule (the paper's rule is ``confident`` under a threshold)."""
    knob = trained.knob
    if knob.rule == "confident" and knob.max_mmacs is not None:
        return "classifier (paper rule, per threshold)"
    return f"classifier ({knob.rule}{', per threshold' if knob.max_mmacs is not None else ''})"


def _routed(adapter: Adapter, images: Images, count_interp: bool) -> Tuple[float, float, float]:
    """(mean cost, mean interpolation MMACs, top-1 %) of routing ``images`` by the classifier."""
    with torch.no_grad():
        device = next(adapter.model.parameters()).device
        choice = torch.cat([adapter.choose(x.to(device)).cpu() for x, _ in images.loader])
    column = {c: j for j, c in enumerate(images.outcomes.configs)}
    cols = torch.tensor([column[c] for c in adapter.configs])[choice]
    top1 = 100.0 * float(images.outcomes.correct[torch.arange(len(choice)), cols].double().mean())
    costs = torch.tensor(adapter.costs.budget_costs(count_interp), dtype=torch.float64)[choice]
    interp = torch.tensor(adapter.costs.routed_interp, dtype=torch.float64)[choice]
    return float(costs.mean()) / 1e6, float(interp.mean()) / 1e6, top1


def classifier_setting(trained: TrainedClassifier, model: Any, knob: Images, report: Images,
                       count_interp: bool) -> Setting:
    """A classifier routing the knob images and the report images (no per-image budget: its knob is its rule's)."""
    adapter = Adapter.from_trained(model, trained)
    adapter.classifier.to(next(model.parameters()).device)
    k_cost, _, k_top1 = _routed(adapter, knob, count_interp)
    cost, interp, top1 = _routed(adapter, report, count_interp)
    return Setting(method_name(trained), trained.knob.name, k_cost, k_top1, cost, interp, top1,
                   {"classifier_mmacs": adapter.costs.classifier_macs / 1e6, "source": trained.source})


def cascade_settings(model: Any, input_size: Any, front: Sequence[Config], knob: Images, report: Images,
                     targets: Sequence[float], max_steps: int, count_interp: bool, parts: Optional[Dict] = None
                     ) -> Tuple[List[Optional[Setting]], List[Optional[CascadeChoice]]]:
    """The cascade chosen on the knob images for each target, measured on the report images (``parts``:
    :func:`resizable.costs.part_costs` of the front, when at hand)."""
    parts = parts if parts is not None else part_costs(model, input_size, list(front))
    choices = choose_cascades(model, input_size, knob.outcomes, front, targets, max_steps=max_steps,
                              count_interp=count_interp, parts=parts)
    column = {c: j for j, c in enumerate(report.outcomes.configs)}
    settings: List[Optional[Setting]] = []
    for choice in choices:
        if choice is None:
            settings.append(None)
            continue
        cascade = Cascade(model, choice.configs, choice.thresholds, input_size, parts)
        cols = torch.tensor([column[c] for c in cascade.configs])
        exits = cascade.exits(report.outcomes.p_max[:, cols])
        top1 = 100.0 * float(report.outcomes.correct[torch.arange(len(exits)), cols[exits]].double().mean())
        cost = torch.tensor(cascade.plan.exit_costs(count_interp), dtype=torch.float64)[exits]
        interp = torch.tensor(cascade.plan.exit_interp, dtype=torch.float64)[exits]
        knob_name = " > ".join(format_config(c) for c in cascade.configs)
        if cascade.thresholds:
            knob_name += f" @ {cascade.thresholds[0]:.4g}"
        settings.append(Setting("cascade", knob_name, choice.knob_mean_mmacs, choice.knob_top1_pct,
                                float(cost.mean()) / 1e6, float(interp.mean()) / 1e6, top1,
                                {"exits_pct": [100.0 * float((exits == j).double().mean())
                                               for j in range(len(cascade.configs))]}))
    return settings, choices


def _totals(parts: Dict[Config, List[Tuple[int, int]]], configs: Sequence[Config]) -> Tuple[List[int], List[int]]:
    """(MACs, interpolation MACs) of each configuration, summed from its parts."""
    return [sum(m for m, _ in parts[c]) for c in configs], [sum(r for _, r in parts[c]) for c in configs]


def default_targets(front: Sequence[FrontPoint]) -> List[float]:
    """The front's costs and the midpoints between neighbouring ones (where a router can beat a single network)."""
    costs = sorted(p.mmacs for p in front)
    mids = [(a + b) / 2 for a, b in zip(costs, costs[1:])]
    return sorted(set(costs + mids))


def _reference_rows(front: Sequence[FrontPoint], report: Images, macs: Sequence[int], interp: Sequence[int],
                    targets: Sequence[float], count_interp: bool) -> List[Dict[str, Any]]:
    """The NAS pick, the line between front points and the oracle at every target."""
    nas, oracle, line = [], [], []
    for t in targets:
        p = nas_pick(front, t)
        nas.append(None if p is None else Setting("nas", format_config(p.config), p.mmacs, p.front_top1_pct,
                                                  p.mmacs, p.interp_mmacs, p.top1_pct))
        oracle.append(oracle_setting(report.outcomes, macs, interp, t, count_interp))
        top1 = line_top1(front, t)
        line.append(None if top1 is None else Setting("front-line", "two front neighbours at random", None, None,
                                                      t, 0.0, top1))
    return curve_rows(nas, targets, front) + curve_rows(line, targets, front) + curve_rows(oracle, targets, front)


def compare(opts: RoutingOptions, run: TrainedRun, classifiers: Sequence[TrainedClassifier], report: Images,
            basis: str) -> Comparison:
    """Every method against the NAS front at the targets ``opts.mean_mmacs`` (default: :func:`default_targets`)."""
    model = run.model
    knob_part = parse_split_part(opts.knob_split) if opts.knob_split else default_part(run, "knobs")
    front_part = parse_split_part(opts.front_split) if opts.front_split else default_part(run, "front")
    for name, part in (("--knob-split", knob_part), ("--front-split", front_part)):
        if part.overlaps(report.part):
            raise ValueError(f"{name} {part} overlaps the report images ({report.part}); choose on other images")
    front_images = measure_images(run, front_part, opts.batch_size, opts.progress, "front")
    knob = measure_images(run, knob_part, opts.batch_size, opts.progress, "knob")
    parts = part_costs(model, run.input_size, report.outcomes.configs)
    macs, interp = _totals(parts, report.outcomes.configs)
    front = front_points(front_images.outcomes, report.outcomes, macs, interp, opts.count_interp)
    targets = sorted(opts.mean_mmacs) if opts.mean_mmacs else default_targets(front)
    rows = _reference_rows(front, report, macs, interp, targets, opts.count_interp)
    settings = [classifier_setting(t, model, knob, report, opts.count_interp) for t in classifiers]
    for method in dict.fromkeys(s.method for s in settings):
        mine = [s for s in settings if s.method == method]
        rows += curve_rows([pick_setting(mine, t) for t in targets], targets, front)
    cascades: List[Optional[CascadeChoice]] = []
    if opts.cascade:
        chosen, cascades = cascade_settings(model, run.input_size, [p.config for p in front], knob, report, targets,
                                            opts.cascade_steps, opts.count_interp, parts)
        rows += curve_rows(chosen, targets, front)
    meta = {"checkpoint": str(run.checkpoint), "dataset": run.info.name, "report_split": str(report.part),
            "knob_split": str(knob_part), "front_split": str(front_part), "report_images": len(report.outcomes.targets),
            "knob_images": len(knob.outcomes.targets), "front_images": len(front_images.outcomes.targets),
            "count_interp": opts.count_interp, "bn_statistics": basis, "input_size": run.input_size,
            "targets_mmacs": targets, "classifiers": classifier_paths(opts.classifier),
            "cascades": [c.to_dict() if c else None for c in cascades],
            "settings": [{**s.__dict__} for s in settings]}
    return Comparison(meta, front, rows)


def evaluate_checkpoint(opts: RoutingOptions) -> Tuple[List[Dict[str, Any]], Optional[Comparison]]:
    """What ``resizable adapt eval`` runs: the routed networks at per-image budgets (``opts.routed``, with
    classifiers) and the comparison along the front (``opts.compare``), sharing the pass of every configuration
    over the report images; the comparison is written to ``opts.curves`` / ``opts.plot`` when given."""
    from ..data.datasets import make_loader

    run = open_run(opts.checkpoint, opts.device, opts.bn_statistics, opts.dataset, opts.data_dir)
    classifiers = load_classifiers(classifier_paths(opts.classifier), run.model)
    if classifiers:
        run = run.with_data(run.dataset, run.data_dir, classifiers[0].input_size[0])  # the size they learnt at
    basis = run.use_bn_statistics(opts.bn_statistics)
    data = run.split(opts.split)
    routed = opts.routed and bool(classifiers)
    lookup = check_routing(opts, run.model, basis, classifiers, len(data)) if routed else None
    loader = make_loader(data, opts.batch_size, shuffle=False)
    report = None
    if opts.compare or (routed and opts.oracle):
        outcomes = with_bar(len(loader), f"{opts.split} images ({len(run.model.configs())} configs)", opts.progress,
                            lambda on_batch: config_outcomes(run.model, loader, run.model.configs(),
                                                             on_batch=on_batch))
        report = Images(SplitPart(opts.split), loader, outcomes)
    results = routed_results(opts, run, basis, classifiers, loader, lookup,
                             report.outcomes if report is not None and opts.oracle else None) if routed else []
    comparison = compare(opts, run, classifiers, report, basis) if opts.compare else None
    if comparison is not None:
        written = comparison.write(opts.curves) if opts.curves else []
        written += [comparison.plot(opts.plot)] if opts.plot else []
        comparison.meta["files"] = [str(p) for p in written]
    return results, comparison


@dataclass(frozen=True)
class CascadeOptions:
    """What ``resizable adapt cascade`` chooses and writes; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("the trained ResizableNet")
    mean_mmacs: Tuple[float, ...] = required("target mean MMACs per image, comma-separated: one cascade each")
    out: Optional[str] = option(None, "cascade file, or a folder (default: RUN/adapt-cascade-<target>.json; with "
                                      "several targets, each file's name ends in its target)")
    cascade_steps: int = option(3, "longest cascade, in configurations", min=1, max=6)
    count_interp: bool = option(False, "costs also count the resizes' interpolation MACs")
    knob_split: Optional[str] = option(None, f"images that choose the thresholds, {SPLIT_HELP} (default: "
                                             "val:0.5-0.75, else train:0.5-0.75)", metavar="SPLIT")
    front_split: Optional[str] = option(None, f"images whose table gives the Pareto front (the candidate "
                                              f"configurations), {SPLIT_HELP} (default: val:0.75-1, else "
                                              "train:0.75-1)", metavar="SPLIT")
    dataset: Optional[str] = option(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training run's)")
    batch_size: int = option(256, "evaluation batch size", min=1)
    bn_statistics: str = bn_statistics_option()
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds
        for flag, value in (("--knob-split", self.knob_split), ("--front-split", self.front_split)):
            if value is not None:
                parse_split_part(value)
        if not self.mean_mmacs or min(self.mean_mmacs) <= 0:
            raise ValueError(f"--mean-mmacs takes one or more targets > 0, got {self.mean_mmacs}")


def _cascade_out(opts: CascadeOptions, run: TrainedRun, target: float) -> Path:
    from ..training.run_folder import output_path

    name = f"adapt-cascade-{target:g}.json"
    if not opts.out:
        return run.run_dir / name
    path = output_path(opts.out, name)
    several = len(opts.mean_mmacs) > 1 and path.name != name
    return path.with_name(f"{path.stem}-{target:g}{path.suffix}") if several else path


def cascade_checkpoint(opts: CascadeOptions) -> List[Tuple[CascadeChoice, Path]]:
    """Choose a cascade for each target mean cost on the knob images (its candidates: the front of the front
    images) and write it; what ``resizable adapt cascade`` runs. A target below the cheapest front
    configuration is an error."""
    run = open_run(opts.checkpoint, opts.device, opts.bn_statistics, opts.dataset, opts.data_dir)
    basis = run.use_bn_statistics(opts.bn_statistics)
    knob_part = parse_split_part(opts.knob_split) if opts.knob_split else default_part(run, "knobs")
    front_part = parse_split_part(opts.front_split) if opts.front_split else default_part(run, "front")
    front_images = measure_images(run, front_part, opts.batch_size, opts.progress, "front")
    knob = measure_images(run, knob_part, opts.batch_size, opts.progress, "knob")
    parts = part_costs(run.model, run.input_size, knob.outcomes.configs)
    macs, interp = _totals(parts, knob.outcomes.configs)
    front = front_points(front_images.outcomes, knob.outcomes, macs, interp, opts.count_interp)
    targets = list(opts.mean_mmacs)
    choices = choose_cascades(run.model, run.input_size, knob.outcomes, [p.config for p in front], targets,
                              max_steps=opts.cascade_steps, count_interp=opts.count_interp, parts=parts)
    missing = [t for t, c in zip(targets, choices) if c is None]
    if missing:
        raise ValueError(f"no cascade has a mean cost within {missing[0]:g} MMACs per image: the cheapest front "
                         f"configuration costs {front[0].mmacs:g}")
    done = []
    for target, choice in zip(targets, choices):
        extra = {"checkpoint": str(run.checkpoint), "knob_split": str(knob_part), "front_split": str(front_part),
                 "bn_statistics": basis, "front": [format_config(p.config) for p in front]}
        path = save_cascade(choice, run.model, _cascade_out(opts, run, target), input_size=run.input_size,
                            model_name=run.model_name, extra=extra)
        done.append((choice, path))
    return done
