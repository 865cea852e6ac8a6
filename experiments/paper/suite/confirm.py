"""The confirmation: the screening's best RS candidates and the networks alone tuned again on val, at the budget the
claims train (the full regime's E epochs, every step of every epoch), on two seeds.

The screening's runs are 480 steps on one seed: they misrank recipes that pay off later (a recipe's shortfall can
shrink epoch after epoch) and a point's score carries about 0.4 points of binomial noise. So the
``CANDIDATES`` RS methods from scratch (``FROM_SCRATCH``) with the highest screening scores, and every network
alone, train again at the full regime's budget:

- the learning rate at (lr/2, lr, 2 lr) around the method's screened best point, its other values kept (warm-up,
  weight decay, the family's own knob), on ``SEEDS``;
- each run scored on val as the screening scores it (:func:`screen.score`: the uniform configurations' mean for
  RS, its own configuration for a network alone), a point's score the mean over the seeds;
- the edge rule: a best lr on the grid's edge adds lr x2 or /2 (at most ``MAX_ROUNDS`` rounds).

Each method's confirmed point replaces its screened one in the recipe the claims train
(:func:`recipes.recipe_options`), and the candidate with the highest confirmed score is the default recipe
(:func:`recipes.chosen_recipes`). Cut to fit the machine: the weight decay is not re-tuned here (the budget
curve checks it again at its longest budget), three candidates, two seeds.

Runs are ``conf-<the screening run's name, less its sel- prefix>-s<seed>`` in ``results/confirm/runs``. A point
whose options equal a claim run's already made (the recipes claim's ``full-<method>-s<seed>``) is that run: its
record is copied under the confirmation's name (``reused_from`` says which), not trained again. The other way round,
a confirmation run makes the recipes claim's evaluations too (test top-1, recorded for the claims, never read here),
so that a claim run planned later with the confirmed point's options is that run (:func:`adopt`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .protocol import RESULTS, SELECTION, Protocol
from .screen import Method, extend, grid_value, methods, point_step, score
from .steps import ALONE_EVALS, RS_EVALS, Context, Step, load_result, run_steps, step_key

# the RS methods the default recipe is picked from (the warm starts cost what their epochs cost without them);
# the screening's retired methods (screen.RETIRED) are not among them
FROM_SCRATCH = ("fair", "paper", "warm-full", "warm-snapshot", "warm-progressive", "fair-ensemble-td",
                "sandwich-full-v2")
CANDIDATES = 3
SEEDS = (0, 1)
MAX_ROUNDS = 2
CONFIRM_RESULTS = RESULTS / "confirm"


def candidates(p: Protocol, selection: Dict[str, Any]) -> List[Method]:
    """Every network alone, then the ``CANDIDATES`` RS methods from scratch with the best screening scores
    (best first); a method still being screened is refused, since the ranking needs every score."""
    screened = (selection.get("recipes") or {}).get("methods", {})
    unfinished = [n for n in FROM_SCRATCH if not (screened.get(n) or {}).get("best")]
    by = {m.name: m for m in methods(p)}
    alone = [m for m in by.values() if m.side == "alone"]
    unfinished += [m.name for m in alone if not (screened.get(m.name) or {}).get("best")]
    if unfinished:
        raise ValueError(f"the confirmation ranks the screened methods, and {unfinished} have not finished their "
                         f"screening: run experiments/paper/run.py --select first")
    ranked = sorted(FROM_SCRATCH, key=lambda n: -screened[n]["best"]["val_score"])
    return alone + [by[n] for n in ranked[:CANDIDATES]]


def confirm_step(p: Protocol, m: Method, point: Dict[str, Any], seed: int) -> Step:
    """One point on one seed at the full regime's budget (every step of ``p.epochs`` epochs, the default logging,
    the claim's evaluations, never read here), so that its options are a claim run's when the point is that run's
    and the claim adopts it (:func:`adopt`)."""
    name = point_step(p, m, point, 1).name
    assert name.startswith("sel-")
    return Step(f"conf-{name[len('sel-'):]}-s{seed}", seed=seed, train={**m.train, **point, "epochs": p.epochs},
                evals=ALONE_EVALS if m.side == "alone" else RS_EVALS, init_from=m.init_from,
                params={"teacher_from": m.teacher_from} if m.teacher_from else {})


def write_copy(ctx: Context, name: str, done: Dict[str, Any], source: str) -> None:
    """``done`` (a finished run's record) as step ``name``'s result, ``reused_from`` naming ``source``."""
    from resizable import atomic_write_text

    ctx.result_path(name).parent.mkdir(parents=True, exist_ok=True)
    copy = {**done, "name": name, "reused_from": source}
    atomic_write_text(ctx.result_path(name), json.dumps(copy, indent=1, default=str) + "\n")


def confirm_results(results_dir: Path, quick: bool) -> Path:
    """Where the confirmation's runs are: beside the quick suite's results, else ``CONFIRM_RESULTS``."""
    return results_dir / "confirm" if quick else CONFIRM_RESULTS


def reuse(ctx: Context, step: Step, sources: Sequence[Path]) -> Optional[str]:
    """Copy a finished run with the step's options (any evaluations) under the step's name; returns its name."""
    if load_result(ctx, step.name) is not None:
        return None
    for path in sources:
        if not path.is_file():
            continue
        done = json.loads(path.read_text())
        same = dataclasses.replace(step, evals=tuple((done.get("evals") or {}).keys()))
        if done.get("key") == step_key(ctx, same) and (done.get("curve") or [{}])[-1].get("split") == "val":
            write_copy(ctx, step.name, {**done, "key": step_key(ctx, step)}, path.stem)
            return path.stem
    return None


def adopt(ctx: Context, steps: Sequence[Step], pool: Path = CONFIRM_RESULTS) -> List[str]:
    """The other way round from :func:`reuse`: each unfinished step whose key (options and evaluations) equals a
    finished confirmation run's in ``pool`` gets that run's record under its own name (``reused_from`` names it).
    A step that keeps its weights is left to :mod:`twins` (which copies the run folder while it is on this machine
    and keeps the weights from it). Returns the adopted steps' names."""
    todo = [s for s in steps if s.kind == "train" and not s.keep_weights and load_result(ctx, s.name) is None]
    if not todo or not (pool / "runs").is_dir():
        return []
    by_key = {}
    for path in sorted((pool / "runs").glob("conf-*.json")):
        done = json.loads(path.read_text())
        if not done.get("reused_from"):  # a copy of a claim run is that run, already under its claim name
            by_key.setdefault(done.get("key"), (path.stem, done))
    adopted = []
    for step in todo:
        found = by_key.get(step_key(ctx, step))
        if found is None:
            continue
        name, done = found
        write_copy(ctx, step.name, done, name)
        adopted.append(step.name)
    return adopted


def _state(ctx: Context, p: Protocol, m: Method, lrs: Sequence[float], start: Dict[str, Any], seeds: Sequence[int]
           ) -> Dict[str, Any]:
    runs = []
    for lr in lrs:
        point = {**start, "lr": float(lr)}
        per_seed = {}
        for seed in seeds:
            step = confirm_step(p, m, point, seed)
            result = load_result(ctx, step.name)
            per_seed[seed] = {"run": step.name, "val_score": score(result, m.score_configs),
                              "macs": ((result or {}).get("cost") or {}).get("total_macs"),
                              "seconds": (result or {}).get("train_seconds"),
                              "reused_from": (result or {}).get("reused_from")}
        scores = [r["val_score"] for r in per_seed.values()]
        runs.append({"point": point, "per_seed": per_seed,
                     "val_score": statistics.fmean(scores) if all(s is not None for s in scores) else None})
    done = [r for r in runs if r["val_score"] is not None]
    best = max(done, key=lambda r: (r["val_score"], -r["point"]["lr"])) if len(done) == len(runs) else None
    return {"runs": runs, "best": best}


def confirm_method(ctx: Context, p: Protocol, m: Method, start: Dict[str, Any], jobs: int,
                   sources: Dict[int, Path], seeds: Sequence[int] = SEEDS) -> Dict[str, Any]:
    """One method's lr grid around ``start`` (its screened best point), grown by the edge rule; its record."""
    lr = float(start["lr"])
    lrs: Tuple[float, ...] = (lr,) if p.quick else (lr / 2, lr, lr * 2)
    rounds = 0
    for round_ in range(MAX_ROUNDS + 1):
        steps = [confirm_step(p, m, {**start, "lr": float(x)}, seed) for x in lrs for seed in seeds]
        reused = [r for s in steps for r in [reuse(ctx, s, [sources[s.seed]] if s.seed in sources else [])] if r]
        if reused:
            print(f"[confirm] {m.name}: reused {', '.join(reused)} (the same options)", flush=True)
        run_steps(ctx, steps, jobs)
        state = _state(ctx, p, m, lrs, start, seeds)
        if state["best"] is None:
            raise ValueError(f"{m.name}: a confirmation run did not finish")
        grown = extend({"lr": lrs}, {"lr": state["best"]["point"]["lr"]}) if round_ < MAX_ROUNDS else []
        if not grown:
            break
        lrs = tuple(sorted(set(lrs) | {float(g["lr"]) for g in grown}))
        rounds += 1
    runs = [r for pt in state["runs"] for r in pt["per_seed"].values()]
    return {"what": m.what, "side": m.side, "start": start, "lrs": list(lrs), "seeds": list(seeds),
            "points": state["runs"], "best": state["best"], "edge_rounds": rounds,
            "on_edge": bool(extend({"lr": lrs}, {"lr": state["best"]["point"]["lr"]})),
            "macs": sum(r["macs"] or 0.0 for r in runs if not r["reused_from"]),
            "seconds": sum(r["seconds"] or 0.0 for r in runs if not r["reused_from"]),
            "runs_trained": sum(not r["reused_from"] for r in runs), "runs_reused": sum(bool(r["reused_from"])
                                                                                        for r in runs)}


def winner(confirmation: Dict[str, Any]) -> Optional[str]:
    """The RS candidate with the highest confirmed val score (None while any candidate is unconfirmed)."""
    ms = confirmation.get("methods", {})
    rs = [n for n in confirmation.get("candidates", []) if n in FROM_SCRATCH]
    if not rs or any(not (ms.get(n) or {}).get("best") for n in rs):
        return None
    return max(rs, key=lambda n: ms[n]["best"]["val_score"])


def confirmed(p: Protocol, selection: Dict[str, Any]) -> bool:
    """Whether every candidate of the confirmation has its confirmed point."""
    done = ((selection.get("confirmation") or {}).get("methods") or {})
    return all((done.get(m.name) or {}).get("best") for m in candidates(p, selection))


def confirmed_point(selection: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    """The method's confirmed best point, or None when the confirmation has not finished it."""
    best = (((selection.get("confirmation") or {}).get("methods") or {}).get(name) or {}).get("best")
    return dict(best["point"]) if best else None


def run_confirm(p: Protocol, selection: Dict[str, Any], *, work: Path, results: Path = CONFIRM_RESULTS,
                out: Path = SELECTION, sources: Optional[Path] = None, data_dir: Optional[str] = None,
                jobs: int = 1, threads: int = 1, device: str = "cpu", only: Optional[Sequence[str]] = None
                ) -> Dict[str, Any]:
    """Confirm every candidate (or those in ``only``), writing ``out``'s ``confirmation`` after each method (the
    rest of the file kept); ``sources``: the claim runs' folder whose runs a point may be."""
    from resizable import atomic_write_text
    from resizable.nas import device_description

    chosen = candidates(p, selection)
    names = [m.name for m in chosen]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"{unknown} are not confirmation candidates; candidates: {', '.join(names)}")
    ctx = Context(p, str(work), str(results), data_dir, threads, True, None, device)
    screened = selection["recipes"]["methods"]
    seeds = SEEDS[:1] if p.quick else SEEDS
    t0 = time.time()
    for m in chosen:
        if only is not None and m.name not in only:
            continue
        runs = Path(sources or RESULTS) / "runs"
        src = {seed: runs / f"full-{m.name}-s{seed}.json" for seed in seeds}
        record = confirm_method(ctx, p, m, dict(screened[m.name]["best"]["point"]), jobs, src, seeds)
        full = json.loads(out.read_text()) if out.is_file() else {}
        conf = full.setdefault("confirmation", {})
        conf.update({
            "what": "the screening's best RS candidates and every network alone tuned again on val at the full "
                    "regime's budget (experiments/paper/suite/confirm.py)",
            "budget": {"epochs": p.epochs, "steps_per_epoch": "every", "seeds": list(seeds),
                       "batch_size": p.batch_size, "val_size": p.val_size},
            "design": "lr x (1/2, 1, 2) around the screened best point, its other values kept; a point's score the "
                      f"mean over the seeds; the edge rule steps the lr (x2, /2), at most {MAX_ROUNDS} rounds",
            "cut": f"{CANDIDATES} RS candidates, {len(SEEDS)} seeds, the weight decay not re-tuned here",
            "candidates": names, "device": f"{device}: {device_description(device)}, {os.cpu_count()} cores, "
                                           f"{threads} thread(s) per run, {jobs} run(s) at a time",
            "date": time.strftime("%Y-%m-%d %H:%M"), "wall_seconds_last_call": time.time() - t0})
        conf.setdefault("methods", {})[m.name] = record
        conf["winner"] = winner(conf)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(full, indent=1, default=str) + "\n")
        selection = full
    return selection


def confirmation_table(selection: Dict[str, Any]) -> List[str]:
    """The confirmation's methods: the screened point and score, the lr grid, the confirmed point and score (per
    seed), runs trained and reused, and the winner."""
    conf = selection.get("confirmation") or {}
    if not conf.get("methods"):
        return []
    screened = (selection.get("recipes") or {}).get("methods", {})
    md = ["#### The confirmation (val, the full regime's budget)", "",
          f"{conf.get('what', '')[:1].upper()}{conf.get('what', '')[1:]}: {conf.get('design')}. Cut to fit the "
          f"machine: {conf.get('cut')}. Candidates: {', '.join(f'`{n}`' for n in conf.get('candidates', []))}.", "",
          "| method | screened: lr, val | lr grid | confirmed lr | val (mean) | per seed | runs trained (reused) | "
          "training hours | on edge |", "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for name, m in conf["methods"].items():
        best = m.get("best") or {}
        sb = (screened.get(name) or {}).get("best") or {}
        per = ", ".join(f"{r['val_score']:.2f}" for r in (best.get("per_seed") or {}).values()
                        if r["val_score"] is not None)
        md.append(f"| `{name}` | {grid_value(sb.get('point', {}).get('lr', '-'))}, {sb.get('val_score', 0):.2f} | "
                  f"{', '.join(map(grid_value, m['lrs']))} | {grid_value(best.get('point', {}).get('lr', '-'))} | "
                  f"{best.get('val_score', 0):.2f} | {per} | {m['runs_trained']} ({m['runs_reused']}) | "
                  f"{m['seconds'] / 3600:.1f} | {'yes' if m.get('on_edge') else 'no'} |")
    win = winner(conf)
    md += ["", (f"The default recipe is the confirmed winner, `{win}`." if win else
                "The confirmation has not finished every candidate: the default recipe is the screening's best "
                "until it has."), ""]
    return md
