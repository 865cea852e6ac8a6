"""Fair tuning and the recipes' screening: every compared method tuned on val with one budget and one rule.

Each *method* is a set of training options plus a grid. Every grid point is one run of the protocol's
network for the protocol's epochs, each cut to ``steps`` steps (the cosine schedule is the whole one,
compressed), scored on the held-out val images with BN recalibrated on training images (val
excluded), as T1 reports:

- a network trained alone: the val top-1 of its own configuration;
- an RS network: the mean val top-1 of the uniform configurations (each factor at every stage).
  These are the configurations T1 compares with the networks trained alone, so the selection
  optimises what the claim measures; scoring all 64 would need 64 recalibrations per run.

**One design for every family** (networks alone and RS alike), in stages, each a grid searched with
the edge rule below, each centred on the best point of the stage before:

1. learning rate x warm-up (``lr`` 0.05, 0.1, 0.2 x warm-up 0, 1 epoch: 6 runs; a method whose recipe
   fixes the warm-up, such as the paper's, tunes the lr alone), at the protocol's weight decay. The RS
   families added after the first screening start their grid of the same shape where every RS family
   screened before ended, lr 0.1, 0.2, 0.4 x warm-up 2, 3 (the best was lr 0.2, warm-up 3 for fair
   sampling, sandwich and ensemble distillation alike), which saves the rounds that walked there;
2. weight decay x learning rate: ``WEIGHT_DECAYS`` (1e-4, 5e-4, 2e-3) x (lr/2, lr, 2 lr) at stage 1's best
   warm-up: 9 points, 3 of them stage 1's (SGD couples weight decay to the lr: the decay per step is
   lr x wd, so the lr is re-tuned with it). 5e-4 is the protocol's value: a run at 5e-4 is the run
   made before weight decay was an axis (same name, same key), so it is reused, not re-run;
3. for an RS family with a knob of its own, that knob's two values x (lr/2, lr, 2 lr) at stage 2's best
   point: 6 points, 3 of them stage 2's. The knobs: the distillation temperature (1, 4) of the in-place
   and ensemble distillations, the warm start's share of the counted cost (0.25, 0.5). They keep their
   two values (no edge growth), so every family with a knob gets the same runs;
4. for the distillation families (``fair-ensemble-td``, ``sandwich-full-v2``), the distillation weight (1, 0.5)
   x (lr/2, lr, 2 lr) at stage 3's best point, the same way: 3 new runs. 1 is the library's value (in-place:
   the taught configurations learn from the teacher alone; ensemble: CE plus the full KD term); a point at 1
   is the run made before the weight was an axis (same name, same key: ``LIBRARY_VALUES``).

So before any edge growth every family costs 12 runs (6 + 6 new), 15 with a knob of its own (3 more), 9
for a method that fixes its warm-up (``--quick`` runs stages 2 and 3 at the best lr alone, and one edge round
per stage: its scores are noise). The loss reduction is no longer an axis: with weight decay tuned,
the mean of k losses at lr x is exactly the sum at lr x/k with k times the weight decay, so it would
only re-parametrise (lr, weight decay); ``fair`` averages, ``paper`` (Algorithm 1) sums.

**The edge rule.** When a stage's best point sits on the edge of a numeric axis of its grid, the grid
grows one step along that axis at the best point's other values (lr: x2 or /2; weight decay: x4 or /4;
warm-up: +1 epoch, or -1 at a low edge above 0; a warm-up of 0 is a bound, not an edge), and again,
until the best point is inside (at most ``MAX_ROUNDS`` rounds per stage). A method's best point is its
last stage's. Every run of every method is kept in ``selection.json`` under ``recipes``, with its
counted training cost (MACs, backward as twice the forward, as the library counts them) and seconds;
a run is a suite step (``select/runs/<name>.json``), so an interrupted selection resumes and a
method added later trains only its own runs. Methods are screened one after the other in
:func:`methods`' order (the networks alone first, the cheapest runs; then each RS family), and
``selection.json`` is written after each, so a screening stopped mid-way keeps every finished method.

``sandwich-full`` and ``fair-ensemble`` were screened before the library's sandwich sampling drew its
middle configurations over the whole factor list and before ensemble distillation detached its members
(and gained its top-down term); their records stay in ``selection.json`` as they were (``RETIRED``) and
are not chosen; ``sandwich-full-v2`` and ``fair-ensemble-td`` are the same families as the library
trains them now, under run names of their own. The warm starts' runs are tagged ``eq``: their budget is the
counted cost of the same command without the warm start, so the teaching after the switch is paid out of it
and a warm-started run costs what the networks alone cost (runs made while the budget included that teaching
cost about 40 % more and were not kept).
"""
from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .protocol import RESULTS, SELECTION, Protocol
from .steps import Context, Step, load_result, run_steps

SCREEN_RESULTS = RESULTS / "select"
SCREEN_STEPS = 80          # steps per epoch of a screening run (6 x 80 = 480 steps, 1.1 passes over 55k images)
SCREEN_LOG_EVERY = 20      # the loss every 20 steps
MAX_ROUNDS = 3             # edge-rule rounds per stage
LRS = (0.05, 0.1, 0.2)
WARMUPS = (0.0, 1.0)
WEIGHT_DECAYS = (1e-4, 5e-4, 2e-3)   # 5e-4: the protocol's value
TEMPERATURES = (1.0, 4.0)
SHARES = (0.25, 0.5)
DISTILL_WEIGHTS = (1.0, 0.5)
# knob axes added after runs were made without them: a point at the library's value is the run made without the
# axis (the value is left out of its options, so its name and key are that run's)
LIBRARY_VALUES = {"distill_weight": 1.0}
# methods screened with the library's earlier recipes: their records are kept and shown apart, never chosen
RETIRED = {"sandwich-full": "sandwich sampling drew its middle configurations from the middle factors only",
           "fair-ensemble": "ensemble distillation trained the members through the ensemble's own loss, "
                            "without the top-down term"}
TWIN = "single-1-s0"       # the suite's all-1.0 network trained alone, seed 0 (weights kept in RESULTS/weights)


@dataclasses.dataclass(frozen=True)
class Method:
    """One compared method: fixed training options, its stage-1 grid, its own knob, and what its score averages."""

    name: str
    what: str
    train: Dict[str, Any]
    grid: Dict[str, Tuple[Any, ...]]     # stage 1 (lr x warm-up, or lr alone)
    score_configs: Tuple[str, ...]
    side: str                      # "alone", "rs", "rs-from-twin" or "aug"
    init_from: Optional[str] = None      # starts from this kept network (converted), e.g. the all-1.0 twin
    teacher_from: Optional[str] = None   # taught by this kept network, frozen
    knob: Dict[str, Tuple[Any, ...]] = dataclasses.field(default_factory=dict)  # stages 3 on: one axis a stage, two values
    decay: bool = True             # stage 2: weight decay x lr
    tag: str = ""                  # in run names: the library's behaviour the method's runs were made with


def uniform(s: float, n: int = 3) -> str:
    return ",".join([f"{s:g}"] * n)


def methods(p: Protocol) -> List[Method]:
    """The compared methods, in the order they are screened: the networks alone, then each RS family."""
    rs = tuple(uniform(s) for s in p.factors)
    base = {"lr": LRS, "warmup_epochs": WARMUPS}
    # the RS families new to the screening start where every RS family screened so far ended (lr 0.2, warm-up 3
    # of 6 epochs: fair, sandwich-full, fair-ensemble), in a grid of the same shape; the edge rule goes on from there
    near = {"lr": (0.1, 0.2, 0.4), "warmup_epochs": (2.0, 3.0)}
    fair = {"sampling": "fair", "loss_reduction": "mean", "eval_configs": "default"}
    temperature, share = {"distill_temperature": TEMPERATURES}, {"warm_start_share": SHARES}
    distill = {**temperature, "distill_weight": DISTILL_WEIGHTS}
    out = [Method(f"alone-{s:g}", f"({s:g},{s:g},{s:g}) trained alone",
                  {"sampling": "single", "single_config": (float(s),) * 3, "eval_configs": uniform(s)},
                  base, (uniform(s),), "alone") for s in p.factors]
    out += [
        Method("fair", "fair sampling (Algorithm 1), the k losses averaged", fair, base, rs, "rs"),
        Method("paper", "the paper's recipe exactly: fair sampling, the k losses summed, no warm-up",
               {**fair, "loss_reduction": "sum", "warmup_epochs": 0.0}, {"lr": LRS}, rs, "rs"),
        Method("warm-full", "the full configuration alone for a share of the counted cost, then fair sampling "
                            "with the running full configuration teaching in place",
               {**fair, "warm_start": "full", "warm_start_teacher": "inplace"}, near, rs, "rs", knob=share, tag="eq"),
        Method("warm-snapshot", "the full configuration alone for a share of the counted cost, then fair sampling "
                                "taught by the network frozen at the switch",
               {**fair, "warm_start": "full", "warm_start_teacher": "snapshot"}, near, rs, "rs", knob=share, tag="eq"),
        Method("warm-progressive", "the full configuration alone for a share of the counted cost, then the smaller "
                                   "factors joining one at a time (fair sampling), the full configuration teaching",
               {**fair, "warm_start": "progressive", "warm_start_teacher": "inplace"}, near, rs, "rs", knob=share, tag="eq"),
        Method("fair-ensemble-td", "fair sampling, every configuration on labels plus KD from the learned ensemble "
                                   "(members detached for its loss) and from every dearer configuration (top-down)",
               {**fair, "distill": "ensemble", "distill_top_down": True}, near, rs, "rs", knob=distill),
        Method("sandwich-full-v2", "sandwich sampling (middle configurations over the whole factor list); the full "
                                   "configuration on labels teaches the others in place",
               {**fair, "sampling": "sandwich", "distill": "full"}, near, rs, "rs", knob=distill, tag="v2"),
        # secondary: antialiased down-resizing, on the averaged-loss recipe; its grid starts around that
        # recipe's best point (lr 0.2, warm-up 3) and grows by the same edge rule
        Method("fair-antialias", "fair sampling, the losses averaged, every down-resize antialiased",
               {**fair, "model_args": {**p.model_args, "resize_antialias": True}},
               {"lr": (0.1, 0.2, 0.4), "warmup_epochs": (2.0, 3.0, 4.0)}, rs, "rs"),
        Method("twin-teacher", "from a trained network: the all-1.0 twin (the suite's single-1-s0, 6 full epochs) "
                               "converted, fair sampling, the twin as a frozen teacher (CE + KD)",
               {"sampling": "fair", "loss_reduction": "mean", "eval_configs": "default"},
               {"lr": tuple(lr / 5 for lr in LRS)}, rs, "rs-from-twin", init_from=TWIN, teacher_from=TWIN),
    ]
    return out


def _value_tag(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _recipe_tag(m: Method, train: Dict[str, Any]) -> str:
    """The part of a run's name that says its recipe (sampling, teaching, warm start)."""
    tag = train["sampling"]
    if train["sampling"] == "single":
        tag = f"alone{train['single_config'][0]:g}"
    if train.get("distill"):
        tag += f"-{train['distill']}"
        if train["distill"] == "ensemble" and train.get("distill_top_down"):
            tag += "-td"
    if m.tag:
        tag += f"-{m.tag}"
    if train.get("warm_start", "none") != "none":
        tag += f"-warm{train['warm_start']}-{train.get('warm_start_teacher', 'inplace')}"
    if train.get("model_args", {}).get("resize_antialias"):
        tag += "-aa"
    if m.teacher_from:
        tag += f"-taught-{m.teacher_from}"
    if m.init_from:
        tag = f"from-{m.init_from}-{tag}"
    return tag


def point_step(p: Protocol, m: Method, point: Dict[str, Any], steps: int) -> Step:
    """The run of one grid point; its name says its options, so methods that share a point share the run.

    The weight decay, the temperature and the share enter the name only away from the protocol's and the
    library's values, so a run made before they were axes keeps its name (and its key: the options are equal).
    """
    given = {k: v for k, v in point.items() if not (k in LIBRARY_VALUES and float(v) == LIBRARY_VALUES[k])}
    train = {**m.train, **given, "max_steps_per_epoch": steps, "log_every": SCREEN_LOG_EVERY}
    tag = _recipe_tag(m, train)
    if "loss_reduction" in train and train["sampling"] != "single":
        tag += f"-{train['loss_reduction']}"
    if train.get("recipe") == "aug":
        tag += "-aug"
    if train.get("train_size"):  # another regime (T2's training subset)
        tag = f"n{train['train_size']}-e{train['epochs']}-{tag}"
    name = f"sel-{tag}-lr{_value_tag(float(train['lr']))}-w{_value_tag(float(train.get('warmup_epochs', 0.0)))}"
    if float(train.get("weight_decay", p.weight_decay)) != p.weight_decay:
        name += f"-wd{_value_tag(float(train['weight_decay']))}"
    if float(train.get("distill_temperature", 1.0)) != 1.0:
        name += f"-T{_value_tag(float(train['distill_temperature']))}"
    if float(train.get("distill_weight", 1.0)) != 1.0:
        name += f"-dw{_value_tag(float(train['distill_weight']))}"
    if train.get("warm_start", "none") != "none":
        name += f"-sh{_value_tag(float(train['warm_start_share']))}"
    return Step(name, seed=0, train=train, init_from=m.init_from,
                params={"teacher_from": m.teacher_from} if m.teacher_from else {})


def grid_points(grid: Dict[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    points: List[Dict[str, Any]] = [{}]
    for axis, values in grid.items():
        points = [{**pt, axis: v} for pt in points for v in values]
    return points


def score(result: Optional[Dict[str, Any]], configs: Sequence[str]) -> Optional[float]:
    """Mean val top-1 of ``configs`` after the last epoch (None when the run has not finished)."""
    if result is None:
        return None
    last = result["curve"][-1]
    if last.get("split") != "val":
        raise ValueError(f"{result['name']} evaluated {last.get('split')}, and selection scores on val")
    vals = [last["top1"].get(c) for c in configs]
    if any(v is None for v in vals):
        raise ValueError(f"{result['name']} did not evaluate every configuration of its score: {list(configs)}")
    return statistics.fmean(vals)


# how the edge rule steps each numeric axis (an axis not named here keeps its values: the stage-3 knobs)
EDGE_STEPS = {"lr": (lambda v: v * 2, lambda v: v / 2), "weight_decay": (lambda v: v * 4, lambda v: v / 4),
              "warmup_epochs": (lambda v: v + 1.0, lambda v: v - 1.0 if v > 0 else None)}


def extend(grid: Dict[str, Tuple[Any, ...]], best: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The grid points the edge rule adds around ``best`` (none when the best point is inside on every axis)."""
    new = []
    for axis, values in grid.items():
        if axis not in EDGE_STEPS or len(values) < 2:
            continue
        up, down = EDGE_STEPS[axis]
        v = best[axis]
        step = up(v) if v == max(values) else down(v) if v == min(values) else None
        if step is not None:
            new.append({**best, axis: float(step)})
    return new


def _macs(result: Optional[Dict[str, Any]]) -> Optional[float]:
    """The run's counted training MACs (None for runs made before the library counted them)."""
    if (result or {}).get("cost"):
        return result["cost"].get("total_macs")
    last = ((result or {}).get("curve") or [{}])[-1]
    return last.get("macs")


def method_state(ctx: Context, p: Protocol, m: Method, grid: Dict[str, Tuple[Any, ...]], steps: int
                 ) -> Dict[str, Any]:
    """Every point of ``grid`` with its run and score, and the best one (None while a run is missing)."""
    runs = []
    for point in grid_points(grid):
        step = point_step(p, m, point, steps)
        result = load_result(ctx, step.name)
        runs.append({"point": point, "run": step.name, "val_score": score(result, m.score_configs),
                     "stability": (result or {}).get("stability"), "seconds": (result or {}).get("train_seconds"),
                     "macs": _macs(result)})
    done = [r for r in runs if r["val_score"] is not None]
    best = max(done, key=_preference) if len(done) == len(runs) else None
    return {"runs": runs, "best": best}


def _preference(run: Dict[str, Any]) -> Tuple[float, ...]:
    """Highest score first; at equal scores the smaller lr and the weight decay nearer the protocol's (so a tie
    does not grow the grid), then the knob's first value (the grid's order)."""
    point = run["point"]
    wd = point.get("weight_decay")
    return (run["val_score"], -point["lr"], -abs(math.log(wd / WEIGHT_DECAYS[1])) if wd else 0.0)


def _around(p: Protocol, lr: float) -> Tuple[float, ...]:
    """The lr values of stages 2 and 3 (--quick: the best lr alone, to exercise the paths in fewer runs)."""
    return (lr,) if p.quick else (lr / 2, lr, lr * 2)


def stages(m: Method) -> List[str]:
    """The names of the method's stages (see the module's docstring)."""
    return (["lr x warm-up" if "warmup_epochs" in m.grid else "lr"] + (["weight decay x lr"] if m.decay else [])
            + [f"{axis} x lr" for axis in m.knob])


def stage_grid(p: Protocol, m: Method, stage: int, best: Optional[Dict[str, Any]]) -> Dict[str, Tuple[Any, ...]]:
    """Stage ``stage``'s grid (0-based), centred on ``best``, the previous stage's best point."""
    if stage == 0:
        return {**{k: tuple(v) for k, v in m.grid.items()}, "weight_decay": (float(p.weight_decay),),
                **{k: (v[0],) for k, v in m.knob.items()}}
    assert best is not None
    kept = {k: (v,) for k, v in best.items() if k != "lr"}
    if stages(m)[stage] == "weight decay x lr":
        return {"lr": _around(p, best["lr"]), **kept, "weight_decay": WEIGHT_DECAYS}
    axis = stages(m)[stage][: -len(" x lr")]  # one knob a stage, the others at their best so far
    return {"lr": _around(p, best["lr"]), **kept, axis: tuple(m.knob[axis])}


def _search(ctx: Context, p: Protocol, m: Method, grid: Dict[str, Tuple[Any, ...]], steps: int, jobs: int
            ) -> Tuple[Dict[str, Tuple[Any, ...]], int, Dict[str, Any]]:
    """Train ``grid`` and grow it by the edge rule; returns the final grid, the rounds it grew and its state."""
    grid, rounds = dict(grid), 0
    last = 1 if p.quick else MAX_ROUNDS  # --quick: the scores are noise; one round exercises the growth
    for round_ in range(last + 1):
        run_steps(ctx, [point_step(p, m, point, steps) for point in grid_points(grid)], jobs)
        state = method_state(ctx, p, m, grid, steps)
        if state["best"] is None:
            raise ValueError(f"{m.name}: a screening run did not finish: "
                             f"{[r['run'] for r in state['runs'] if r['val_score'] is None]}")
        grown = False
        for point in extend(grid, state["best"]["point"]) if round_ < last else []:
            for axis, v in point.items():
                if v not in grid[axis]:
                    grid[axis] = tuple(sorted(grid[axis] + (v,)))
                    grown = True
        if not grown:
            return grid, rounds, state
        rounds += 1
    raise AssertionError("unreachable: the last round grows nothing")


def screen_method(ctx: Context, p: Protocol, m: Method, steps: int, jobs: int, max_stages: Optional[int] = None
                  ) -> Dict[str, Any]:
    """One method's stages (the first ``max_stages`` of them); its record for ``selection.json``.

    ``best`` is None until every stage has run (``best_so_far`` says where a cut screening stands)."""
    names = stages(m)
    todo = len(names) if max_stages is None else min(max_stages, len(names))
    record: List[Dict[str, Any]] = []
    runs: Dict[str, Dict[str, Any]] = {}
    best, grid = None, {}
    for i in range(todo):
        grid, rounds, state = _search(ctx, p, m, stage_grid(p, m, i, best and best["point"]), steps, jobs)
        best = state["best"]
        record.append({"stage": names[i], "grid": {k: list(v) for k, v in grid.items() if len(v) > 1},
                       "edge_rounds": rounds, "best": best, "on_edge": bool(extend(grid, best["point"]))})
        runs.update({r["run"]: r for r in state["runs"]})
    axes: Dict[str, List[Any]] = {}
    for r in runs.values():
        for k, v in r["point"].items():
            axes.setdefault(k, [])
            if v not in axes[k]:
                axes[k].append(v)
    complete = todo == len(names)
    return {"what": m.what, "side": m.side, "fixed": dict(m.train), "stages": record,
            "stages_done": f"{todo} of {len(names)}",
            "grid": {k: sorted(v) if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) else v
                     for k, v in axes.items()},
            "score": f"mean val top-1 of {', '.join(m.score_configs)} after the last epoch",
            "runs": list(runs.values()), "best": best if complete else None, "best_so_far": best,
            "on_edge": bool(record and record[-1]["on_edge"]),
            "edge_rounds": sum(s["edge_rounds"] for s in record),
            "macs": _total([r["macs"] for r in runs.values()]), "seconds": _total([r["seconds"] for r in runs.values()]),
            "runs_without_macs": sum(r["macs"] is None for r in runs.values())}


def _total(values: Sequence[Optional[float]]) -> float:
    return float(sum(v for v in values if v is not None))


def _make_kept_networks(ctx: Context, p: Protocol, chosen: Sequence[Method], jobs: int) -> None:
    """The networks some methods start from: the suite's own (refused when missing), or trained here in --quick."""
    from .plan import single_step

    needed = sorted({n for m in chosen for n in (m.init_from, m.teacher_from) if n})
    missing = [n for n in needed if not ctx.weights_path(n).is_file()]
    if missing and not p.quick:
        raise ValueError(f"the screening starts from the suite's kept networks {missing}, and "
                         f"{[str(ctx.weights_path(n)) for n in missing]} are missing: run experiments/paper/run.py "
                         f"--claims t1 --seeds 0 first")
    if missing:
        run_steps(ctx, [single_step(p, max(p.factors), 0)], jobs)


def pick(candidates: Sequence[Method], only: Optional[Sequence[str]]) -> List[Method]:
    """The methods named in ``only`` (all by default), in screening order; an unknown or retired name is refused."""
    known = [m.name for m in candidates]
    retired = sorted(set(only or ()) & set(RETIRED))
    if retired:
        raise ValueError(f"{retired} were screened with the library's earlier recipes and are kept as they were; "
                         f"their successors: sandwich-full-v2, fair-ensemble-td")
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; accepted: {', '.join(known)}")
    return [m for m in candidates if only is None or m.name in only]


def select(ctx: Context, p: Protocol, steps: int, jobs: int, only: Optional[Sequence[str]] = None,
           candidates: Optional[Sequence[Method]] = None, max_stages: Optional[int] = None,
           done: Optional[Callable[[str, Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Screen each method in turn (all its stages, or the first ``max_stages``); returns their records.

    ``candidates``: the methods (default :func:`methods`; the second stage passes the ones that depend on
    the first stage's choice). ``done(name, record)`` is called after each method (the caller writes it).
    """
    chosen = pick(list(candidates) if candidates is not None else methods(p), only)
    _make_kept_networks(ctx, p, chosen, jobs)
    out = {}
    for m in chosen:
        out[m.name] = screen_method(ctx, p, m, steps, jobs, max_stages)
        if done:
            done(m.name, out[m.name])
    return out


def run_screen(p: Protocol, *, steps: int, work: Path, results: Path = SCREEN_RESULTS, out: Path = SELECTION,
               data_dir: Optional[str] = None, jobs: int = 1, threads: int = 1,
               only: Optional[Sequence[str]] = None, device: str = "cpu",
               candidates: Optional[Sequence[Method]] = None, max_stages: Optional[int] = None) -> Dict[str, Any]:
    """Tune every method, merging each one's record into ``out`` under ``recipes`` as it finishes (the rest of
    the file is kept)."""
    import os

    from resizable import atomic_write_text
    from resizable.nas import device_description

    t0 = time.time()
    weights = RESULTS / "weights" if results == SCREEN_RESULTS else Path(results) / "weights"
    ctx = Context(p, str(work), str(results), data_dir, threads, True, str(weights), device)
    record: Dict[str, Any] = {}

    def write(name: str, method: Dict[str, Any]) -> None:
        record.clear()
        record.update(json.loads(out.read_text()) if out.is_file() else {})
        recipes = record.setdefault("recipes", {})
        recipes.update({
            "what": "every compared method tuned on val with the same budget, design and rule "
                    "(experiments/paper/suite/screen.py)",
            "budget": {"epochs": p.epochs, "steps_per_epoch": steps, "batch_size": p.batch_size, "seed": 0,
                       "augment": p.augment, "weight_decay": p.weight_decay, "schedule": p.schedule,
                       "val_size": p.val_size, "bn": f"recalibrated on {p.eval_calibrate_bn} training batches of "
                                                       f"{p.eval_batch_size} (val excluded)"},
            "design": "stage 1 lr x warm-up at the protocol's weight decay; stage 2 weight decay "
                      f"({', '.join(map(grid_value, WEIGHT_DECAYS))}) x (lr/2, lr, 2 lr); stage 3, for a family with a "
                      "knob of its own (distillation temperature 1, 4; warm-start share 0.25, 0.5), the knob x "
                      "(lr/2, lr, 2 lr); stage 4, for the distillation families, the distillation weight (1, 0.5) x "
                      "(lr/2, lr, 2 lr); each stage centred on the previous one's best point",
            "edge_rule": f"a best point on a numeric axis' edge adds one step there (lr x2 or /2, weight decay x4 or "
                         f"/4, warm-up +1, or -1 above 0), at most {MAX_ROUNDS} rounds per stage",
            "device": f"{device}: {device_description(device)}, {os.cpu_count()} cores, {threads} thread(s) per "
                      f"run, {jobs} run(s) at a time",
            "date": time.strftime("%Y-%m-%d %H:%M"),
        })
        recipes.setdefault("methods", {})[name] = method
        for old, why in RETIRED.items():
            if old in recipes["methods"]:
                recipes["methods"][old]["retired"] = why
        recipes["wall_seconds_last_call"] = time.time() - t0
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(record, indent=1, default=str) + "\n")

    select(ctx, p, steps, jobs, only, candidates, max_stages, done=write)
    return record if record else (json.loads(out.read_text()) if out.is_file() else {})


def _macs_text(v: float) -> str:
    """Counted MACs in the largest unit that keeps a digit before the point."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if v >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.0f}"


def _point_text(point: Dict[str, Any]) -> str:
    names = {"lr": "lr", "warmup_epochs": "warm-up", "weight_decay": "wd", "distill_temperature": "T",
             "warm_start_share": "share", "loss_reduction": "loss"}
    return ", ".join(f"{names.get(k, k)} {grid_value(v)}" for k, v in point.items())


def _method_row(name: str, m: Dict[str, Any]) -> str:
    best = m.get("best") or m.get("best_so_far") or {}
    runs = m.get("runs", [])
    cost = m.get("macs", _total([r.get("macs") for r in runs]))
    missing = m.get("runs_without_macs", sum(r.get("macs") is None for r in runs))
    cost_text = (_macs_text(cost) if cost else "-") + (f" ({missing} run(s) made before the count)" if missing else "")
    seconds = m.get("seconds", _total([r.get("seconds") for r in runs]))
    score = f"{best['val_score']:.2f}" if best else "unfinished"
    if best and not m.get("best"):
        score += f" (stages {m.get('stages_done')})"
    grid = "; ".join(f"{k}: {', '.join(map(grid_value, v))}" for k, v in m["grid"].items() if len(v) > 1)
    flagged = [r["run"] for r in runs if r.get("stability")]
    return (f"| `{name}` | {m['side']} | {grid} | {len(runs)} | {cost_text} | {seconds / 3600:.1f} | "
            f"{_point_text(best['point']) if best else '-'} | {score} | {m.get('edge_rounds', '-')} | "
            f"{'yes' if m.get('on_edge') else 'no'} | {', '.join(flagged) or '-'} |")


def screening_table(selection: Dict[str, Any]) -> List[str]:
    """Every screened method: its grid, runs, counted cost, best point and val score, and the flagged runs;
    the methods screened with the library's earlier recipes apart."""
    rec = selection.get("recipes") or {}
    if not rec:
        return []
    b, rule = rec.get("budget", {}), rec.get("edge_rule", "")
    design = rec.get("design")
    head = ["| method | side | grid (every value tried) | runs | counted cost (MACs) | training hours | best point | "
            "val score | edge rounds | on edge | flagged runs |",
            "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |"]
    md = ["#### The screening (val, seed 0)", "",
          f"Each grid point trained {b.get('epochs')} epochs of {b.get('steps_per_epoch')} steps (batch "
          f"{b.get('batch_size')}; the cosine schedule compressed), scored on val with BN {b.get('bn')}. "
          + (f"Every family tuned in the same stages: {design}. " if design else "")
          + f"{rule[:1].upper()}{rule[1:]}. Every run is in `select/runs/`; its counted cost is the library's "
          f"(training passes only, backward as twice the forward). One seed on {b.get('val_size')} val images: "
          f"a score's binomial standard error is about 0.4 points near 90 %, so points closer than that are a "
          f"coin toss; the grid still picks the highest.", "", *head]
    methods_ = rec.get("methods", {})
    md += [_method_row(n, m) for n, m in methods_.items() if n not in RETIRED] + [""]
    old = [(n, m) for n, m in methods_.items() if n in RETIRED]
    if old:
        md += ["Screened with the library's earlier recipes, kept as they were and not chosen: "
               + "; ".join(f"`{n}`: {RETIRED[n]}" for n, _ in old) + ".", "", *head]
        md += [_method_row(n, m) for n, m in old] + [""]
    aa, plain = (methods_.get(n, {}).get("best") for n in ("fair-antialias", "fair"))
    if aa and plain:
        md += [f"Antialiased down-resizing (secondary): val {aa['val_score']:.2f} at {aa['point']} against "
               f"{plain['val_score']:.2f} for the same recipe without it at {plain['point']}: "
               + ("it helps on val, so it is kept (`resize_antialias=True`)" if aa["val_score"] > plain["val_score"]
                  else "it does not help on val, so the network keeps plain bilinear resizes "
                       "(`resize_antialias` stays an option, off by default)") + ".", ""]
    return md


def grid_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
