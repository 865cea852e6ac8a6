"""Resizable-Adapt, step 3: routing each image to its configuration under a per-image budget, and
the evaluation that compares it with static configurations and the oracle."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..configs import Config, format_config, parse_config, shared_prefix
from ..costs import config_costs, part_costs
from ..evaluation.walker import batches, evaluating
from ..nas.lookup import NoFeasibleConfig, search
from ..net import ResizableNet, SizeLike, to_size2d
from ..nas.table_file import Table, format_millions, model_meta, weights_sha256
from .classifier import SOURCES, ConfigClassifier, FeaturePass, TrainedClassifier, feature_pass, feature_shape, module_macs
from .labels import ConfigOutcomes, best_config_index, check_choice

__all__ = ["RoutingCosts", "routing_costs", "Adapter", "outcomes_table", "evaluate_adapt"]


@dataclass(frozen=True)
class RoutingCosts:
    """Per-image MACs of routing to each configuration (what a budget is compared with).

    ``routed_macs[j]`` = feature pass + classifier + the part of configuration ``j`` that the
    feature pass has not already computed. ``start[j]`` is the stage the routed pass starts from
    (0: right after the stem; ``N``: nothing left, the feature pass's logits are the answer).
    """

    configs: Tuple[Config, ...]
    source: str
    config_macs: Tuple[int, ...]  # the sub-network alone, as in the lookup table's mmacs column
    config_interp: Tuple[int, ...]
    feature_macs: int  # the feature pass (stem, or the whole smallest configuration)
    feature_interp: int
    classifier_macs: int
    start: Tuple[int, ...]
    routed_macs: Tuple[int, ...]
    routed_interp: Tuple[int, ...]

    def budget_costs(self, count_interp: bool = False) -> List[int]:
        """The per-image cost a budget bounds, for each configuration."""
        return [m + (r if count_interp else 0) for m, r in zip(self.routed_macs, self.routed_interp)]

    def allowed(self, max_mmacs: Optional[float], count_interp: bool = False) -> torch.Tensor:
        """(C,) bool: configurations whose routed per-image cost is at most ``max_mmacs`` millions."""
        costs = self.budget_costs(count_interp)
        if max_mmacs is None:
            return torch.ones(len(costs), dtype=torch.bool)
        mask = torch.tensor([c <= max_mmacs * 1e6 for c in costs], dtype=torch.bool)
        if not bool(mask.any()):
            j = min(range(len(costs)), key=costs.__getitem__)
            raise NoFeasibleConfig(
                f"no configuration fits {max_mmacs:g} MMACs per image: the cheapest routed image, "
                f"{format_config(self.configs[j])} via the '{self.source}' features, costs {costs[j] / 1e6:g} MMACs "
                f"(feature pass {self.feature_macs / 1e6:g} + classifier {self.classifier_macs / 1e6:g} + "
                f"the rest of the configuration)")
        return mask

def routing_costs(model: ResizableNet, input_size: SizeLike, configs: Sequence[Config], source: str,
                  classifier_macs: int) -> RoutingCosts:
    """The :class:`RoutingCosts` of routing among ``configs`` with features from ``source``."""
    check_choice(source, SOURCES, "feature source")
    configs = [model.check_config(c) for c in configs]
    probe = model.min_config
    parts = part_costs(model, input_size, list(dict.fromkeys(list(configs) + [probe])))
    n = model.num_stages
    if source == "stem":
        feature = parts[probe][0]
    else:
        feature = (sum(m for m, _ in parts[probe]), sum(r for _, r in parts[probe]))
    start, routed, routed_interp = [], [], []
    for c in configs:
        j = 0 if source == "stem" else shared_prefix(c, probe)
        rest = [] if j == n else parts[c][1 + j:]  # stages j+1..N and the head
        start.append(j)
        routed.append(feature[0] + classifier_macs + sum(m for m, _ in rest))
        routed_interp.append(feature[1] + sum(r for _, r in rest))
    return RoutingCosts(
        configs=tuple(configs), source=source,
        config_macs=tuple(sum(m for m, _ in parts[c]) for c in configs),
        config_interp=tuple(sum(r for _, r in parts[c]) for c in configs),
        feature_macs=feature[0], feature_interp=feature[1], classifier_macs=int(classifier_macs),
        start=tuple(start), routed_macs=tuple(routed), routed_interp=tuple(routed_interp))

class Adapter:
    """A trained ResizableNet with its configuration classifier: each image runs at its own configuration.

    Args:
        model: the ResizableNet.
        classifier: its :class:`ConfigClassifier`.
        configs: the configurations the classifier chooses among (its outputs, in order).
        source: where the classifier reads its features (``min`` or ``stem``).
        input_size: the input resolution (for the costs).
    """

    def __init__(self, model: ResizableNet, classifier: ConfigClassifier, configs: Sequence[Config], source: str,
                 input_size: SizeLike) -> None:
        check_choice(source, SOURCES, "feature source")
        if classifier.num_configs != len(configs):
            raise ValueError(f"the classifier has {classifier.num_configs} outputs for {len(configs)} configurations")
        self.model, self.classifier, self.source = model, classifier, source
        self.configs = [model.check_config(c) for c in configs]
        self.input_size = to_size2d(input_size)
        shape = feature_shape(model, self.input_size, source)
        if (classifier.in_chans, *classifier.feature_size) != tuple(shape):
            raise ValueError(f"the classifier reads {(classifier.in_chans, *classifier.feature_size)} features, "
                             f"the '{source}' features of this model are {tuple(shape)}")
        self.costs = routing_costs(model, self.input_size, self.configs, source, module_macs(classifier, shape))

    @classmethod
    def from_trained(cls, model: ResizableNet, trained: TrainedClassifier) -> "Adapter":
        return cls(model, trained.classifier, trained.configs, trained.source, trained.input_size)

    def allowed(self, max_mmacs: Optional[float] = None, count_interp: bool = False) -> torch.Tensor:
        """(C,) bool: the configurations an image may be routed to under the per-image budget."""
        return self.costs.allowed(max_mmacs, count_interp)

    @torch.no_grad()
    def choose(self, x: torch.Tensor, allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The configuration index the classifier picks for each image of ``x`` (only the feature pass and
        the classifier run; :meth:`infer` runs the chosen configurations too)."""
        allowed = self.allowed() if allowed is None else allowed
        with evaluating(self.model), _eval(self.classifier):
            return self._choose(x, allowed)[0]

    def _choose(self, x: torch.Tensor, allowed: torch.Tensor) -> Tuple[torch.Tensor, FeaturePass]:
        fp = feature_pass(self.model, x, self.source)
        scores = self.classifier(fp.features).float()
        scores = scores.masked_fill(~allowed.to(scores.device), -math.inf)
        return scores.argmax(dim=1), fp

    @torch.no_grad()
    def infer(self, x: torch.Tensor, allowed: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, classes) and the configuration index chosen for each image of ``x`` (B, C, H, W).

        Images that go to the same configuration run as one batch, starting from the feature
        pass's activations where the configuration shares them.
        """
        allowed = self.allowed() if allowed is None else allowed
        with evaluating(self.model), _eval(self.classifier):
            choice, fp = self._choose(x, allowed)
            logits = torch.empty(x.shape[0], self.model.num_classes, device=x.device)
            for j in choice.unique().tolist():
                idx = (choice == j).nonzero()[:, 0]
                logits[idx] = self._finish(j, fp, idx, x.shape[-2:]).float()
        return logits, choice

    def _finish(self, j: int, fp: FeaturePass, idx: torch.Tensor, hw) -> torch.Tensor:
        model, start = self.model, self.costs.start[j]
        if start == model.num_stages:
            return fp.logits.index_select(0, idx)
        config = self.configs[j]
        model.set_config(config)
        sizes = model.stage_sizes(tuple(hw), config)
        h = fp.acts[start].index_select(0, idx)
        for i in range(start, model.num_stages):
            h = model.forward_stage(i, h, sizes[i])
        return model.forward_head(h)

    @torch.no_grad()
    def infer_one_by_one(self, x: torch.Tensor, allowed: Optional[torch.Tensor] = None
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The reference for :meth:`infer`: each image alone, its configuration run as a full forward."""
        allowed = self.allowed() if allowed is None else allowed
        out, choices = [], []
        with evaluating(self.model), _eval(self.classifier):
            for i in range(x.shape[0]):
                xi = x[i:i + 1]
                j = int(self._choose(xi, allowed)[0][0])
                self.model.set_config(self.configs[j])
                out.append(self.model(xi).float())
                choices.append(j)
        return torch.cat(out), torch.tensor(choices, device=x.device)

class _eval:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> nn.Module:
        self.was = self.module.training
        self.module.eval()
        return self.module

    def __exit__(self, *exc) -> None:
        self.module.train(self.was)

def outcomes_table(model: ResizableNet, outcomes: ConfigOutcomes, input_size: SizeLike, *, dataset: str = "",
                   split: str = "test", model_name: Optional[str] = None, bn_statistics: str = "") -> Table:
    """The lookup table (top-1, MACs, parameters of every configuration) that ``outcomes`` imply.

    Its top-1 column equals what ``resizable table`` writes for the same images (same walk, same rule).
    """
    costs = config_costs(model, input_size, outcomes.configs)
    meta = model_meta(model, input_size, model_name)
    meta.update({"weights_sha256": weights_sha256(model), "dataset": dataset, "split": split,
                 "num_samples": str(len(outcomes.targets)), "calibrate_bn": "none",
                 "bn_statistics": bn_statistics or model.bn_statistics,
                 "evaluation": "configuration tree, shared prefixes (resizable adapt eval)"})
    rows = {}
    for c, top1 in zip(outcomes.configs, outcomes.top1_pct()):
        macs, interp, params = costs[c]
        rows[c] = {"config": format_config(c), "top1_pct": f"{top1:.4f}", "mmacs": format_millions(macs),
                   "interp_mmacs": format_millions(interp), "params_m": format_millions(params)}
    return Table(meta, ["config", "top1_pct", "mmacs", "interp_mmacs", "params_m"], rows)

def _time_static(model: ResizableNet, config: Config, loader: Iterable, device: torch.device) -> float:
    with evaluating(model), torch.no_grad():
        model.set_config(config)
        for images, _ in batches(loader, device):
            model(images[:2])  # warm-up: first-call allocations
            break
        _sync(device)
        t0 = time.perf_counter()
        for images, _ in batches(loader, device):
            model(images)
        _sync(device)
        return time.perf_counter() - t0

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

def _static_record(table: Table, budget: float, count_interp: bool) -> Optional[Dict[str, Any]]:
    try:
        best = search(table, max_mmacs=budget, count_interp=count_interp, top=1)[0]
    except NoFeasibleConfig:
        return None
    return {"config": format_config(best["config"]), "top1_pct": best["top1_pct"], "mmacs": best["mmacs"],
            "interp_mmacs": best["interp_mmacs"]}

@torch.no_grad()
def evaluate_adapt(adapter: Adapter, loader: Iterable, max_mmacs: Optional[float], *, count_interp: bool = False,
                   table: Optional[Table] = None, outcomes: Optional[ConfigOutcomes] = None,
                   rule: str = "cheapest", time_static: bool = True) -> Dict[str, Any]:
    """Route every image of ``loader`` under a per-image budget; compare with static and oracle choices.

    Returns a dict with
    ``adapt`` (top-1, mean MACs per image including the feature pass and the classifier, the
    largest per-image cost, wall-clock seconds, how many images each configuration got),
    ``static_at_budget`` (the table's most accurate single configuration within ``max_mmacs``),
    ``static_at_mean_cost`` (the same within Adapt's mean cost) and, given the per-image
    ``outcomes`` of every configuration on the same images, ``oracle`` (each image at its best
    configuration among those whose own MACs fit the budget, by ``rule``, at no classifier cost).

    Args:
        adapter: the routed network.
        loader: evaluation images (fixed order; the same images as ``outcomes`` and ``table``).
        max_mmacs: per-image budget in millions of MACs (``None``: no budget).
        count_interp: the budget also counts the stage resizes' interpolation MACs.
        table: a lookup table of the same weights and images (default: derived from ``outcomes``).
        outcomes: :func:`config_outcomes` on the same images, for (at least) the adapter's
            configurations; for all of them, the table is derived from it when none is given.
        rule: the oracle's rule.
        time_static: also time the static configuration on the same loader.
    """
    model = adapter.model
    device = next(model.parameters()).device
    allowed = adapter.allowed(max_mmacs, count_interp)
    correct, choice, seconds = _routed_pass(adapter, loader, allowed, device)
    n = len(choice)
    budget_costs = torch.tensor(adapter.costs.budget_costs(count_interp), dtype=torch.float64)
    routed = torch.tensor(adapter.costs.routed_macs, dtype=torch.float64)
    routed_interp = torch.tensor(adapter.costs.routed_interp, dtype=torch.float64)
    usage = torch.bincount(choice, minlength=len(adapter.configs))
    result: Dict[str, Any] = {
        "budget_mmacs": max_mmacs, "count_interp": count_interp, "images": n,
        "allowed_configs": int(allowed.sum()), "configs": len(adapter.configs),
        "adapt": {
            "top1_pct": 100.0 * correct / n,
            "mean_mmacs": float(routed[choice].mean()) / 1e6,
            "mean_interp_mmacs": float(routed_interp[choice].mean()) / 1e6,
            "max_image_mmacs": float(budget_costs[choice].max()) / 1e6,
            "feature_mmacs": adapter.costs.feature_macs / 1e6,
            "classifier_mmacs": adapter.costs.classifier_macs / 1e6,
            "source": adapter.source,
            "seconds": seconds,
            "usage": {format_config(adapter.configs[j]): int(usage[j]) for j in usage.nonzero()[:, 0].tolist()},
        },
    }
    if max_mmacs is not None and result["adapt"]["max_image_mmacs"] > max_mmacs:
        raise AssertionError("a routed image exceeded the budget")  # impossible by construction; kept as a guard
    if outcomes is not None:
        _add_oracle(result, adapter, outcomes, choice, max_mmacs, count_interp, rule)
        if table is None and len(outcomes.configs) == len(model.configs()):
            table = outcomes_table(model, outcomes, adapter.input_size)
    if table is not None:
        _add_static(result, table, model, loader, device, max_mmacs, count_interp, time_static)
    return result


def _routed_pass(adapter: Adapter, loader: Iterable, allowed: torch.Tensor, device: torch.device
                 ) -> Tuple[int, torch.Tensor, float]:
    """Every image at its predicted configuration: ``(correct, choice per image, seconds)`` (warmed up first)."""
    for images, _ in batches(loader, device):  # first-call allocations, outside the timed pass
        adapter.infer(images[:2], allowed)
        break
    _sync(device)
    correct, choices = 0, []
    t0 = time.perf_counter()
    for images, labels in batches(loader, device):
        logits, choice = adapter.infer(images, allowed)
        correct += int(logits.topk(1, dim=1).indices[:, 0].eq(labels).sum())
        choices.append(choice.cpu())
    _sync(device)
    seconds = time.perf_counter() - t0
    if not choices:
        raise ValueError("the loader yielded no images")
    return correct, torch.cat(choices), seconds


def _add_oracle(result: Dict[str, Any], adapter: Adapter, outcomes: ConfigOutcomes, choice: torch.Tensor,
                max_mmacs: Optional[float], count_interp: bool, rule: str) -> None:
    """The routed top-1 recounted from ``outcomes``, and the oracle: each image at its best allowed configuration."""
    n = len(choice)
    column = {c: j for j, c in enumerate(outcomes.configs)}
    if any(c not in column for c in adapter.configs) or len(outcomes.targets) != n:
        raise ValueError("outcomes must cover the adapter's configurations on the same images")
    cols = torch.tensor([column[c] for c in adapter.configs])
    correct_here, p_here = outcomes.correct[:, cols], outcomes.p_true[:, cols]
    rows = torch.arange(n)
    result["adapt"]["top1_pct_from_outcomes"] = 100.0 * float(correct_here[rows, choice].double().mean())
    own = adapter.costs.config_macs
    own_budget = [m + (r if count_interp else 0) for m, r in zip(own, adapter.costs.config_interp)]
    oracle_allowed = [max_mmacs is None or c <= max_mmacs * 1e6 for c in own_budget]
    if any(oracle_allowed):
        best = best_config_index(correct_here, p_here, own, rule, oracle_allowed)
        result["oracle"] = {"rule": rule, "top1_pct": 100.0 * float(correct_here[rows, best].double().mean()),
                            "mean_mmacs": float(torch.tensor(own, dtype=torch.float64)[best].mean()) / 1e6}


def _add_static(result: Dict[str, Any], table: Table, model: Any, loader: Iterable, device: torch.device,
                max_mmacs: Optional[float], count_interp: bool, time_static: bool) -> None:
    """The table's most accurate single configuration at the budget and at Adapt's mean cost (timed, if asked)."""
    budget = max_mmacs if max_mmacs is not None else math.inf
    result["static_at_budget"] = _static_record(table, budget, count_interp)
    result["static_at_mean_cost"] = _static_record(
        table, result["adapt"]["mean_mmacs"] + (result["adapt"]["mean_interp_mmacs"] if count_interp else 0.0),
        count_interp)
    static = result["static_at_budget"]
    if static is not None and time_static:
        config = parse_config(static["config"], model.factors, model.num_stages)
        static["seconds"] = _time_static(model, config, loader, device)
