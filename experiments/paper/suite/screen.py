"""Fair tuning and the recipes' screening: every compared method tuned on val with one budget and one rule.

Each *method* is a set of training options plus a grid (learning rate, and for RS the loss reduction
and the warm-up). Every grid point is one run of the protocol's network for the protocol's epochs,
each cut to ``steps`` steps (the cosine schedule is the whole one, compressed), scored on the
held-out val images with BN recalibrated on training images (val excluded), as T1 reports:

- a network trained alone: the val top-1 of its own configuration;
- an RS network: the mean val top-1 of the uniform configurations (each factor at every stage).
  These are the configurations T1 compares with the networks trained alone, so the selection
  optimises what the claim measures; scoring all 64 would need 64 recalibrations per run.

**The edge rule.** When a method's best point sits on the edge of a numeric axis of its grid, the
grid grows one step along that axis at the best point's other values (lr: x2 or /2; warm-up: +1
epoch, or -1 at a low edge above 0; a warm-up of 0 is a bound, not an edge), and again, until the
best point is inside (at most ``MAX_ROUNDS`` rounds). Every run of every method is kept in ``selection.json`` under
``recipes``; a run is a suite step (``select/runs/<name>.json``), so an interrupted selection
resumes and a method added later trains only its own runs.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .protocol import RESULTS, SELECTION, Protocol
from .steps import Context, Step, load_result, run_steps

SCREEN_RESULTS = RESULTS / "select"
SCREEN_STEPS = 80          # steps per epoch of a screening run (6 x 80 = 480 steps, 1.1 passes over 55k images)
SCREEN_LOG_EVERY = 20      # the loss every 20 steps
MAX_ROUNDS = 3
LRS = (0.05, 0.1, 0.2)
TWIN = "single-1-s0"       # the suite's all-1.0 network trained alone, seed 0 (weights kept in RESULTS/weights)


@dataclasses.dataclass(frozen=True)
class Method:
    """One compared method: fixed training options, a grid, and what its score averages."""

    name: str
    what: str
    train: Dict[str, Any]
    grid: Dict[str, Tuple[Any, ...]]
    score_configs: Tuple[str, ...]
    side: str                      # "alone" or "rs"
    init_from: Optional[str] = None      # starts from this kept network (converted), e.g. the all-1.0 twin
    teacher_from: Optional[str] = None   # taught by this kept network, frozen


def uniform(s: float, n: int = 3) -> str:
    return ",".join([f"{s:g}"] * n)


def methods(p: Protocol) -> List[Method]:
    """The compared methods: each uniform configuration trained alone, the paper's recipe, the anchors' recipes."""
    rs_scores = tuple(uniform(s) for s in p.factors)
    out = [Method(f"alone-{s:g}", f"({s:g},{s:g},{s:g}) trained alone",
                  {"sampling": "single", "single_config": (float(s),) * 3, "eval_configs": uniform(s)},
                  {"lr": LRS, "warmup_epochs": (0.0, 1.0)}, (uniform(s),), "alone") for s in p.factors]
    out += [
        Method("fair", "fair sampling (Algorithm 1), the loss summed or averaged",
               {"sampling": "fair", "eval_configs": "default"},
               {"lr": LRS, "loss_reduction": ("sum", "mean"), "warmup_epochs": (0.0, 1.0)}, rs_scores, "rs"),
        Method("paper", "the paper's recipe exactly: fair sampling, the k losses summed, no warm-up",
               {"sampling": "fair", "eval_configs": "default", "loss_reduction": "sum", "warmup_epochs": 0.0},
               {"lr": LRS}, rs_scores, "rs"),
        Method("sandwich-full", "sandwich sampling; the full configuration on labels teaches the others (T=1)",
               {"sampling": "sandwich", "distill": "full", "loss_reduction": "mean", "eval_configs": "default"},
               {"lr": LRS, "warmup_epochs": (0.0, 1.0)}, rs_scores, "rs"),
        Method("fair-ensemble", "fair sampling, every configuration on labels plus KD from the learned ensemble",
               {"sampling": "fair", "distill": "ensemble", "loss_reduction": "mean", "eval_configs": "default"},
               {"lr": LRS, "warmup_epochs": (0.0, 1.0)}, rs_scores, "rs"),
        Method("twin-teacher", "from a trained network: the all-1.0 twin (the suite's single-1-s0, 6 full epochs) "
                               "converted, fair sampling, the twin as a frozen teacher (CE + KD)",
               {"sampling": "fair", "loss_reduction": "mean", "eval_configs": "default"},
               {"lr": tuple(lr / 5 for lr in LRS)}, rs_scores, "rs-from-twin", init_from=TWIN, teacher_from=TWIN),
        # secondary: antialiased down-resizing, on the averaged-loss recipe; its grid starts around that
        # recipe's best point (lr 0.2, warm-up 3) and grows by the same edge rule
        Method("fair-antialias", "fair sampling, the losses averaged, every down-resize antialiased",
               {"sampling": "fair", "loss_reduction": "mean", "eval_configs": "default",
                "model_args": {**p.model_args, "resize_antialias": True}},
               {"lr": (0.1, 0.2, 0.4), "warmup_epochs": (2.0, 3.0, 4.0)}, rs_scores, "rs"),
    ]
    return out


def _value_tag(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def point_step(p: Protocol, m: Method, point: Dict[str, Any], steps: int) -> Step:
    """The run of one grid point; its name says its options, so methods that share a point share the run."""
    train = {**m.train, **point, "max_steps_per_epoch": steps, "log_every": SCREEN_LOG_EVERY}
    tag = train["sampling"]
    if train["sampling"] == "single":
        tag = f"alone{train['single_config'][0]:g}"
    if train.get("distill"):
        tag += f"-{train['distill']}"
    if train.get("model_args", {}).get("resize_antialias"):
        tag += "-aa"
    if m.teacher_from:
        tag += f"-taught-{m.teacher_from}"
    if m.init_from:
        tag = f"from-{m.init_from}-{tag}"
    if "loss_reduction" in train and train["sampling"] != "single":
        tag += f"-{train['loss_reduction']}"
    if train.get("recipe") == "aug":
        tag += "-aug"
    if train.get("train_size"):  # another regime (T2's training subset)
        tag = f"n{train['train_size']}-e{train['epochs']}-{tag}"
    name = f"sel-{tag}-lr{_value_tag(float(train['lr']))}-w{_value_tag(float(train.get('warmup_epochs', 0.0)))}"
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


def extend(grid: Dict[str, Tuple[Any, ...]], best: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The grid points the edge rule adds around ``best`` (none when the best point is inside on every axis)."""
    new = []
    for axis, values in grid.items():
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or len(values) < 2:
            continue
        lo, hi, v = min(values), max(values), best[axis]
        if axis == "lr":
            step = [v * 2] if v == hi else [v / 2] if v == lo else []
        else:
            step = [v + 1.0] if v == hi else [v - 1.0] if v == lo and v > 0 else []
        new += [{**best, axis: float(s)} for s in step]
    return new


def method_state(ctx: Context, p: Protocol, m: Method, grid: Dict[str, Tuple[Any, ...]], steps: int
                 ) -> Dict[str, Any]:
    """Every point of ``grid`` with its run and score, and the best one (None while a run is missing)."""
    runs = []
    for point in grid_points(grid):
        step = point_step(p, m, point, steps)
        result = load_result(ctx, step.name)
        runs.append({"point": point, "run": step.name, "val_score": score(result, m.score_configs),
                     "stability": (result or {}).get("stability"), "seconds": (result or {}).get("train_seconds")})
    done = [r for r in runs if r["val_score"] is not None]
    best = max(done, key=lambda r: (r["val_score"], -r["point"]["lr"])) if len(done) == len(runs) else None
    return {"runs": runs, "best": best}


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


def select(ctx: Context, p: Protocol, steps: int, jobs: int, only: Optional[Sequence[str]] = None,
           candidates: Optional[Sequence[Method]] = None) -> Dict[str, Any]:
    """Run every method's grid with the edge rule; returns the record written into ``selection.json``.

    ``candidates``: the methods (default :func:`methods`; the second stage passes the ones that depend on
    the first stage's choice).
    """
    candidates = list(candidates) if candidates is not None else methods(p)
    known = [m.name for m in candidates]
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; accepted: {', '.join(known)}")
    chosen = [m for m in candidates if only is None or m.name in only]
    _make_kept_networks(ctx, p, chosen, jobs)
    grids = {m.name: {k: tuple(v) for k, v in m.grid.items()} for m in chosen}
    for round_ in range(MAX_ROUNDS + 1):
        todo: Dict[str, Step] = {}
        for m in chosen:
            for point in grid_points(grids[m.name]):
                s = point_step(p, m, point, steps)
                todo.setdefault(s.name, s)
        run_steps(ctx, list(todo.values()), jobs)
        grown = False
        for m in chosen:
            state = method_state(ctx, p, m, grids[m.name], steps)
            for point in extend(grids[m.name], state["best"]["point"]) if round_ < MAX_ROUNDS else []:
                for axis, v in point.items():
                    if v not in grids[m.name][axis]:
                        grids[m.name][axis] = tuple(sorted(grids[m.name][axis] + (v,)))
                        grown = True
        if not grown:
            break
    out = {}
    for m in chosen:
        state = method_state(ctx, p, m, grids[m.name], steps)
        out[m.name] = {"what": m.what, "side": m.side, "fixed": {k: v for k, v in m.train.items()},
                       "grid": {k: list(v) for k, v in grids[m.name].items()},
                       "score": f"mean val top-1 of {', '.join(m.score_configs)} after the last epoch",
                       "runs": state["runs"], "best": state["best"],
                       "on_edge": bool(extend(grids[m.name], state["best"]["point"]))}
    return out


def run_screen(p: Protocol, *, steps: int, work: Path, results: Path = SCREEN_RESULTS, out: Path = SELECTION,
               data_dir: Optional[str] = None, jobs: int = 1, threads: int = 1,
               only: Optional[Sequence[str]] = None, device: str = "cpu",
               candidates: Optional[Sequence[Method]] = None) -> Dict[str, Any]:
    """Tune every method, then merge the record into ``out`` under ``recipes`` (the rest of the file is kept)."""
    import os

    from resizable import atomic_write_text
    from resizable.nas import device_description

    t0 = time.time()
    weights = RESULTS / "weights" if results == SCREEN_RESULTS else Path(results) / "weights"
    ctx = Context(p, str(work), str(results), data_dir, threads, True, str(weights), device)
    picked = select(ctx, p, steps, jobs, only, candidates)
    record = json.loads(out.read_text()) if out.is_file() else {}
    recipes = record.get("recipes", {})
    recipes.update({
        "what": "every compared method tuned on val with the same budget and rule (experiments/paper/suite/screen.py)",
        "budget": {"epochs": p.epochs, "steps_per_epoch": steps, "batch_size": p.batch_size, "seed": 0,
                   "augment": p.augment, "weight_decay": p.weight_decay, "schedule": p.schedule,
                   "val_size": p.val_size, "bn": f"recalibrated on {p.eval_calibrate_bn} training batches of "
                                                   f"{p.eval_batch_size} (val excluded)"},
        "edge_rule": f"a best point on a numeric axis' edge adds one step there (lr x2 or /2, warm-up +1), "
                     f"at most {MAX_ROUNDS} rounds",
        "device": f"{device}: {device_description(device)}, {os.cpu_count()} cores, {threads} thread(s) per run, "
                  f"{jobs} run(s) at a time",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    })
    recipes.setdefault("methods", {}).update(picked)
    recipes["wall_seconds_last_call"] = time.time() - t0
    record["recipes"] = recipes
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=1, default=str) + "\n")
    return record


def screening_table(selection: Dict[str, Any]) -> List[str]:
    """Every screened method: its grid, best point, val score, and the runs the stability rule flagged."""
    rec = selection.get("recipes") or {}
    if not rec:
        return []
    b, rule = rec.get("budget", {}), rec.get("edge_rule", "")
    md = ["#### The screening (val, seed 0)", "",
          f"Each grid point trained {b.get('epochs')} epochs of {b.get('steps_per_epoch')} steps (batch "
          f"{b.get('batch_size')}; the cosine schedule compressed), scored on val with BN {b.get('bn')}. "
          f"{rule[:1].upper()}{rule[1:]}. Every run is in `select/runs/`. One seed on {b.get('val_size')} val images: "
          f"a score's binomial standard error is about 0.4 points near 90 %, so points closer than that are a "
          f"coin toss; the grid still picks the highest.", "",
          "| method | side | grid | best point | val score | on edge | flagged runs |",
          "| --- | --- | --- | --- | ---: | --- | --- |"]
    for name, m in rec.get("methods", {}).items():
        best = m.get("best") or {}
        grid = "; ".join(f"{k}: {', '.join(map(grid_value, v))}" for k, v in m["grid"].items())
        flagged = [r["run"] for r in m["runs"] if r.get("stability")]
        score = f"{best['val_score']:.2f}" if best else "unfinished"
        md.append(f"| `{name}` | {m['side']} | {grid} | {best.get('point', '-')} | {score} | "
                  f"{'yes' if m.get('on_edge') else 'no'} | "
                  f"{', '.join(flagged) or '-'} |")
    md.append("")
    aa, plain = (rec.get("methods", {}).get(n, {}).get("best") for n in ("fair-antialias", "fair"))
    if aa and plain:
        md += [f"Antialiased down-resizing (secondary): val {aa['val_score']:.2f} at {aa['point']} against "
               f"{plain['val_score']:.2f} for the same recipe without it at {plain['point']}: "
               + ("it helps on val, so it is kept (`resize_antialias=True`)" if aa["val_score"] > plain["val_score"]
                  else "it does not help on val, so the network keeps plain bilinear resizes "
                       "(`resize_antialias` stays an option, off by default)") + ".", ""]
    return md


def grid_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
