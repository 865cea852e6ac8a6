"""The counted cost of a suite run: the multiply-accumulates of its training passes (docs/training.md, "The cost of
a run": forward MACs of every trained pass, a backward counted as twice its forward, teacher forwards included).

A run trained since the library counts its cost has it in each epoch's record and in its result (``cost``):
*recorded*. An older run's is *computed* from its options and curve with the library's public counting: every
step's configurations (drawn from ``(seed, step)`` by ``ConfigSampler``, as the trainer draws them; Resizable-Aug's
fine-tune epochs at its target) times their forward MACs (``count_macs`` at the training image size) times the
batch's images times 3. A run with a frozen teacher or a warm start is not computed (its passes depend on more than
the sampler), nor is a ``--distill full`` run (its extra full pass); their cost shows as ``-``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

TRAINED_PASS = 3  # forwards per trained pass: the forward and a backward counted as two
Config = Tuple[float, ...]


@functools.lru_cache(maxsize=None)
def _macs(key: str) -> Dict[Config, int]:
    from resizable import count_macs, create_model
    from resizable.data import dataset_info

    spec = json.loads(key)
    info = dataset_info(spec["dataset"])
    model = create_model(spec["model"], factors=tuple(spec["factors"]), num_classes=info.num_classes,
                         in_chans=info.in_chans, **spec["model_args"])
    return {tuple(float(f) for f in c): int(count_macs(model, c, info.input_size).macs) for c in model.configs()}


def macs_table(opts: Dict[str, Any]) -> Dict[Config, int]:
    """Forward MACs of one image through every configuration of the run's network (resizes excluded)."""
    spec = {k: opts[k] for k in ("model", "model_args", "factors", "dataset")}
    return _macs(json.dumps(spec, sort_keys=True, default=list))


def _defaults() -> Dict[str, Any]:
    from resizable.training import TrainOptions

    return {f.name: f.default for f in dataclasses.fields(TrainOptions)}


@functools.lru_cache(maxsize=None)
def _step_costs(mode: str, factors: Tuple[float, ...], stages: int, seed: int, num_configs: Optional[int],
                single: Optional[Config], key: str, steps: int) -> List[int]:
    """Forward MACs per image of steps ``0 .. steps - 1`` (the sum over each step's configurations)."""
    from resizable import ConfigSampler

    table = _macs(key)
    sampler = ConfigSampler(factors, stages, mode, seed, num_configs, single)
    return [sum(table[tuple(float(f) for f in c)] for c in sampler.sample(i)) for i in range(steps)]


def computed_cost(result: Dict[str, Any]) -> Optional[int]:
    """The run's training MACs from its options and curve, or None where it cannot be computed from them."""
    opts, curve = result.get("options"), result.get("curve")
    if result.get("kind", "train") != "train" or not opts or not curve:
        return None
    o = {**_defaults(), **opts}
    if o.get("teacher") or o.get("warm_start") not in (None, "none"):
        return None
    if o.get("distill") not in (None, "none", False, True, "largest"):
        return None
    factors = tuple(float(f) for f in o["factors"])
    key = json.dumps({k: o[k] for k in ("model", "model_args", "factors", "dataset")}, sort_keys=True, default=list)
    stages = len(next(iter(_macs(key))))
    single = tuple(float(f) for f in o["single_config"]) if o.get("single_config") else None
    target = tuple(float(f) for f in o["target"]) if o.get("target") else (max(factors),) * stages
    last = int(curve[-1]["step"])
    train = _step_costs(o["sampling"], factors, stages, int(o["seed"]), o.get("num_configs"), single, key, last)
    tuned = _step_costs("single", factors, stages, int(o["seed"]), None, target, key, last)
    total, prev = 0, 0
    for r in curve:
        costs = tuned if r.get("phase") == "finetune" else train
        total += sum(costs[prev:int(r["step"])])
        prev = int(r["step"])
    return total * TRAINED_PASS * int(o["batch_size"])


def recorded_cost(result: Dict[str, Any]) -> Optional[int]:
    """The MACs the trainer counted (None for a run trained before it counted, or one resumed across that)."""
    cost = result.get("cost") or {}
    if not cost:
        last = (result.get("curve") or [{}])[-1]
        cost = last.get("cost") or ({"total_macs": last["macs"]} if last.get("macs") is not None else {})
    if not cost or cost.get("counted_from_step"):
        return None
    return int(cost["total_macs"])


def run_cost(result: Optional[Dict[str, Any]]) -> Tuple[Optional[int], str]:
    """``(macs, "recorded" | "computed" | "-")``: the recorded count where the run has one, else the computed one."""
    if not result:
        return None, "-"
    recorded = recorded_cost(result)
    if recorded is not None:
        return recorded, "recorded"
    computed = computed_cost(result)
    return (computed, "computed") if computed is not None else (None, "-")


def tmacs(x: Optional[float]) -> str:
    return "-" if x is None else f"{x / 1e12:.1f}"


def step_cost(opts: Dict[str, Any], steps: int = 64) -> float:
    """Mean training MACs of one step of a planned run (its first ``steps`` draws): for ordering and estimates."""
    o = {**_defaults(), **opts}
    key = json.dumps({k: o[k] for k in ("model", "model_args", "factors", "dataset")}, sort_keys=True, default=list)
    stages = len(next(iter(_macs(key))))
    single = tuple(float(f) for f in o["single_config"]) if o.get("single_config") else None
    costs = _step_costs(o["sampling"], tuple(float(f) for f in o["factors"]), stages, int(o["seed"]),
                        o.get("num_configs"), single, key, steps)
    return sum(costs) / len(costs) * TRAINED_PASS * int(o["batch_size"])


def cost_table(results: Dict[str, Optional[Dict[str, Any]]]) -> List[str]:
    """The report's last table: every finished training's counted cost, grouped by step (the seed dropped)."""
    import re

    groups: Dict[str, List[Tuple[Optional[int], str]]] = {}
    for name, r in sorted(results.items()):
        if r and r.get("kind", "train") == "train" and r.get("curve"):
            groups.setdefault(re.sub(r"-s\d+$", "", name), []).append(run_cost(r))
    if not groups:
        return []
    rows = ["| step (seeds pooled) | runs | counted cost per run, TMACs (mean) | source |", "| --- | ---: | ---: | --- |"]
    for g, costs in groups.items():
        known = [c for c, _ in costs if c is not None]
        sources = sorted({s for _, s in costs})
        rows.append(f"| `{g}` | {len(costs)} | {tmacs(sum(known) / len(known) if known else None)} | "
                    f"{', '.join(sources)} |")
    return ["## The counted cost of every run", "",
            "Training MACs of each run (forward of every trained pass, a backward counted as twice its forward, "
            "teacher forwards included; evaluation and BN calibration not counted; 1 TMAC = 10^12). *recorded*: "
            "counted by the trainer (the run's epoch records); *computed*: a run from before that counter, computed "
            "from its options and curve by `experiments/paper/suite/cost.py` (each step's configurations from "
            "`ConfigSampler` x `count_macs` x images x 3; a quick run checks that both agree); `-`: a run whose "
            "passes depend on more than its sampler (a teacher, a warm start).", "", *rows, ""]


def seconds(results: Dict[str, Optional[Dict[str, Any]]], names: Sequence[str]) -> Optional[float]:
    """Median over runs of each run's median seconds per epoch (None when none has run)."""
    import statistics

    per = [statistics.median(e["seconds"] for e in r["curve"]) for r in (results.get(n) for n in names)
           if r and r.get("curve")]
    return statistics.median(per) if per else None


def cost_line(results: Dict[str, Optional[Dict[str, Any]]], alone: Dict[str, Sequence[str]],
              rs: Dict[str, Sequence[str]]) -> str:
    """One line under a comparison table: the counted cost per run of each side (mean over its seeds), and whether
    it was recorded or computed. ``alone``: configuration -> run names; ``rs``: label -> run names."""
    def mean(names: Sequence[str]) -> Tuple[Optional[float], List[str]]:
        got = [run_cost(results.get(n)) for n in names]
        known = [c for c, _ in got if c is not None]
        return (sum(known) / len(known) if known else None), [s for _, s in got]

    parts, sources, total = [], [], 0.0
    for c, names in alone.items():
        m, src = mean(names)
        parts.append(f"{c} {tmacs(m)}")
        sources += src
        total = total + m if m is not None and total is not None else None
    rs_parts = []
    for label, names in rs.items():
        m, src = mean(names)
        rs_parts.append(f"{tmacs(m)} {label}")
        sources += src
    kinds = sorted(set(sources) - {"-"}) or ["-"]
    return (f"Counted training cost per run (TMACs, mean over seeds; {' and '.join(kinds)}): alone "
            f"{', '.join(parts)} ({tmacs(total)} for the {len(alone)} together); RS {', '.join(rs_parts)}.")
