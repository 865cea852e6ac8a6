"""Steps of the suite: a training run (then its evaluations) or an analysis, each finished exactly once.

A step is finished when ``RESULTS/runs/<name>.json`` exists: that file (committed) holds everything
the claims read, so a fresh clone re-running the same command skips the step. A step that needs a
later step's weights (the all-1.0 network for ``convert``, an RS network for Adapt or for an
evaluation of its kept weights) keeps a small checkpoint (weights and the run's record, no optimizer)
in ``RESULTS/weights/<name>.pt``. Run folders live in the git-ignored work folder; an unfinished one
is resumed (``--resume``, the default).
Every training that starts or resumes appends a line to ``RESULTS/trainings.jsonl``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .protocol import PINNED, Protocol
from .time_limit import fits, left_out
from .twins import TRAIN_KEY, find_twin, seed_from_twin, twin_of
from .twins import finished as run_finished

# evaluations a training step may ask for: (split, BN recalibrated?, configurations)
EVALS = {
    "test_cal": ("test", True, "all"), "test_raw": ("test", False, "all"), "val_raw": ("val", False, "all"),
    "own_cal": ("test", True, "own"), "own_raw": ("test", False, "own"),
}
# what T1's runs evaluate (the recipes claim, the budget curve and the confirmation make the same runs): a network
# alone its own configuration, an RS network the table of every configuration, both with BN recalibrated
ALONE_EVALS = ("own_cal",)
RS_EVALS = ("test_cal",)


@dataclass(frozen=True)
class Step:
    """One unit of the suite: ``kind`` train (with ``train`` options), evaluate, adapt, select or timing (or a kind
    the context's runners add); ``deps``: steps it needs first."""

    name: str
    kind: str = "train"
    seed: int = 0
    train: Dict[str, Any] = field(default_factory=dict)
    evals: Tuple[str, ...] = ()
    keep_weights: bool = False
    init_from: Optional[str] = None        # convert this step's kept weights and start from them
    deps: Tuple[str, ...] = ()
    params: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Where a step reads and writes (picklable, handed to worker processes)."""

    protocol: Protocol
    work: str
    results: str
    data_dir: Optional[str] = None
    threads: int = 1
    resume: bool = True
    weights: Optional[str] = None   # where kept weights live (default: RESULTS/weights)
    device: str = "cpu"             # where every run trains and evaluates (a result does not depend on it)
    # step kinds of the modules above this one ((kind, runner) pairs) and resolvers of their choices
    # (``resolver(ctx, step)`` returns the step with its choices made, or None when not its step): handed down by
    # whoever plans such steps, so that this module does not import them (module-level functions, picklable)
    runners: Tuple[Tuple[str, Callable[..., Dict[str, Any]]], ...] = ()
    resolvers: Tuple[Callable[..., Optional["Step"]], ...] = ()

    def result_path(self, name: str) -> Path:
        return Path(self.results) / "runs" / f"{name}.json"

    def weights_path(self, name: str) -> Path:
        return Path(self.weights or Path(self.results) / "weights") / f"{name}.pt"


def load_result(ctx: Context, name: str) -> Optional[Dict[str, Any]]:
    path = ctx.result_path(name)
    return json.loads(path.read_text()) if path.is_file() else None


def _options(ctx: Context, step: Step) -> Dict[str, Any]:
    opts = dict(PINNED)
    opts.update(ctx.protocol.train_args(), seed=step.seed, data_dir=ctx.data_dir)
    opts.update(step.train)
    if ctx.device != "cpu":  # recorded only off the CPU, so the CPU steps' keys stay as they were
        opts["device"] = ctx.device
    return opts


def step_key(ctx: Context, step: Step) -> str:
    """What the step's result depends on; a committed result made with another key is refused, not reused."""
    given = set(ctx.protocol.train_args()) | set(step.train)
    opts = {k: v for k, v in _options(ctx, step).items()
            if k not in ("data_dir", "progress", "device") and (k in given or k not in PINNED)}
    what = {"options": opts, "evals": list(step.evals), "init_from": step.init_from, "params": step.params,
            "kind": step.kind}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _log_training(ctx: Context, name: str, from_epoch: int) -> None:
    path = Path(ctx.results) / "trainings.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"run": name, "from_epoch": from_epoch, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def _curve(run: Path) -> List[Dict[str, Any]]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append({"epoch": r["epoch"], "step": r["step"], "phase": r.get("phase"), "train_loss": r["train_loss"],
                    "train_top1": r.get("train_top1"), "seconds": r["train_seconds"], "split": r.get("eval_split"),
                    "top1": {c: v["top1"] for c, v in r["eval"].items()},
                    # the counted training MACs since the run started (runs made before the count have none)
                    "macs": (r.get("cost") or {}).get("total_macs")})
    return out


def _table(ctx: Context, run: Path, step: Step, kind: str, folder: Optional[Path] = None) -> Dict[str, Any]:
    from resizable import format_config
    from resizable.commands import EvalOptions, evaluate_checkpoint
    from resizable.nas import TableOptions, table_checkpoint

    split, calibrated, which = EVALS[kind]
    p = ctx.protocol
    batches = p.eval_calibrate_bn if calibrated else 0
    # "raw" evaluations measure the running averages as trained (T9's rows), never the statistics bank
    basis = "bank" if kind.endswith("_bank") else "as-trained"
    if which == "own":
        own = step.train.get("single_config") or step.train.get("target") or (1.0,) * 3
        rows = evaluate_checkpoint(EvalOptions(checkpoint=str(run), configs=format_config(tuple(own)), split=split,
                                               batch_size=p.eval_batch_size, device=ctx.device, progress=False,
                                               calibrate_bn=batches, bn_statistics=basis))
        return {r["config"]: {"top1": r["top1_pct"], "mmacs": r["mmacs"]} for r in rows}
    out = (folder or run) / f"table-{kind}.csv"  # beside the run, or in ``folder`` for kept weights (a file)
    table, _ = table_checkpoint(TableOptions(checkpoint=str(run), out=str(out), split=split,
                                                  batch_size=p.eval_batch_size, device=ctx.device, calibrate_bn=batches,
                                                  calibrate_batch_size=p.eval_batch_size, progress=False,
                                                  bn_statistics=basis))
    return {format_config(r["config"]): {"top1": r["top1_pct"], "mmacs": r["mmacs"]} for r in table.records()}


def _keep_weights(ctx: Context, run: Path, name: str) -> str:
    from resizable import load_checkpoint, load_model, save_checkpoint

    model, payload = load_model(run)
    keep = {k: payload[k] for k in ("train_options", "input_size", "data", "val_split", "history") if k in payload}
    out = ctx.weights_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, payload["model_name"], payload["model_kwargs"], **keep)
    load_checkpoint(out)
    return f"{out.parent.name}/{out.name}"  # relative to the results folder, so the record travels with it


def _check_run_folder(run: Path, name: str, key: str, opts: Dict[str, Any], recorded: Dict[str, Any]) -> None:
    """Refuse to resume a run folder trained with other options than the step's (it would pass as finished).

    The folder's ``.suite-key`` decides; a folder from before that file is judged by its checkpoint's options
    (an option added since counts at its default).
    """
    from resizable.training import TrainOptions

    key_file, differ = run / ".suite-key", []
    if key_file.is_file():
        stale = key_file.read_text().strip() != key
    else:
        defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
        differ = sorted(k for k, v in opts.items() if k not in ("data_dir", "progress", "init_checkpoint")
                        and json.dumps(recorded.get(k, defaults.get(k)), default=str) != json.dumps(v, default=str))
        stale = bool(differ)
    if stale:
        raise ValueError(f"{run} was trained with other options than {name} has now"
                         f"{' (' + ', '.join(differ) + ')' if differ else ''}; delete that folder (or run with "
                         "--no-resume) to train it again")


def run_training(ctx: Context, step: Step) -> Dict[str, Any]:
    """Train (or resume) the step's run, evaluate it, keep its weights if asked; returns the result record."""
    from resizable.training import TrainOptions, train

    run = Path(ctx.work) / step.name
    opts = _options(ctx, step)
    if step.init_from:
        from resizable.deploy import ConvertOptions, convert_checkpoint

        source = ctx.weights_path(step.init_from)
        if not source.is_file():
            raise ValueError(f"{step.name} starts from {step.init_from}'s weights, and {source} is missing")
        converted = Path(ctx.work) / f"{step.name}-init.pt"
        converted.parent.mkdir(parents=True, exist_ok=True)
        convert_checkpoint(ConvertOptions(source=str(source), out=str(converted)))
        opts["init_checkpoint"] = str(converted)
    if step.params.get("teacher_from"):  # a frozen teacher: another step's kept weights
        teacher = ctx.weights_path(step.params["teacher_from"])
        if not teacher.is_file():
            raise ValueError(f"{step.name} is taught by {step.params['teacher_from']}'s weights, and {teacher} is missing")
        opts["teacher"] = str(teacher)
    finished = False
    key, key_file = step_key(ctx, step), run / ".suite-key"
    trained_as = step_key(ctx, dataclasses.replace(step, evals=()))  # the training alone (twins.py)
    if not (run / "checkpoint.pt").is_file() and ctx.resume:
        twin = find_twin(Path(ctx.work), trained_as, opts["epochs"], step.name, Path(ctx.results))
        if twin is not None:
            print(f"[paper] {step.name}: trained already as {twin.name} (the same options and seed); evaluated from "
                  "its run", flush=True)
            seed_from_twin(twin, run, key, trained_as)
    if (run / "checkpoint.pt").is_file():
        if ctx.resume:
            from resizable import load_checkpoint

            payload = load_checkpoint(run)
            _check_run_folder(run, step.name, key, opts, payload.get("train_options") or {})
            done = int(payload["epoch"]) + 1
            finished = run_finished(payload, opts["epochs"])  # a warm start plans more epochs than --epochs
            cfg = TrainOptions(**opts, out_dir=ctx.work, name=step.name, resume=str(run))
        else:
            shutil.rmtree(run)
            done, cfg = 0, TrainOptions(**opts, out_dir=ctx.work, name=step.name)
    else:
        done, cfg = 0, TrainOptions(**opts, out_dir=ctx.work, name=step.name)
    if not finished:
        _log_training(ctx, step.name, done)
        run.mkdir(parents=True, exist_ok=True)
        key_file.write_text(key + "\n")
        (run / TRAIN_KEY).write_text(trained_as + "\n")
        train(cfg)
    from resizable.training import STEPS_FILE, loss_climbs, read_steps

    result: Dict[str, Any] = {"curve": _curve(run), "evals": {}}
    if twin_of(run):  # copied from a twin (now, or before this step was cut short and resumed)
        result["trained_as"] = twin_of(run)
    result["train_seconds"] = sum(r["seconds"] for r in result["curve"])
    records = (run / "metrics.jsonl").read_text().splitlines()
    if records and json.loads(records[-1]).get("cost"):  # the run's counted training MACs (suite/cost.py)
        result["cost"] = json.loads(records[-1])["cost"]
    logged = read_steps(run / STEPS_FILE)
    if logged:  # the loss inside the epochs, and whether it climbed (runs made before the log have none)
        result["steps"] = [{k: r[k] for k in ("step", "loss", "mean", "max", "lr")} for r in logged]
        result["stability"] = loss_climbs(logged)
    for kind in step.evals:
        result["evals"][kind] = _table(ctx, run, step, kind)
    if step.keep_weights:
        result["weights"] = _keep_weights(ctx, run, step.name)
    return result


def run_adapt(ctx: Context, step: Step) -> Dict[str, Any]:
    """Fig 3d: Resizable-Adapt on a kept RS network: labels on val, classifier seeds, routed test images.

    ``params["bn_statistics"]``: ``as-trained`` (the default: the running averages, as the first Fig 3d ran) or
    ``bank``: a copy of the weights gets its statistics bank first, Adapt routes with it, and the step also
    writes that network's val and test tables on the same basis (the NAS side of the comparison)."""
    import shutil

    from resizable.adapt import (Adapter, ClassifierOptions, LabelOptions, evaluate_adapt, label_checkpoint,
                                 load_classifier, train_checkpoint)
    from resizable import write_bank
    from resizable import format_config
    from resizable.data import load_split, make_loader
    from resizable.nas import TableOptions, table_checkpoint
    from resizable import TrainedRun

    p = ctx.protocol
    basis = step.params.get("bn_statistics", "as-trained")
    folder = Path(ctx.work) / step.name
    folder.mkdir(parents=True, exist_ok=True)
    source = ctx.weights_path(step.params["network"])
    out: Dict[str, Any] = {"classifiers": {}}
    if basis == "bank":  # the kept weights stay as committed; the bank goes into a working copy
        banked = folder / "banked.pt"
        if not banked.is_file():
            shutil.copyfile(source, folder / "banked.tmp")
            run = TrainedRun.open(folder / "banked.tmp", data_dir=ctx.data_dir)
            write_bank(folder / "banked.tmp", run.build_bank(device=ctx.device))
            (folder / "banked.tmp").replace(banked)
        source = banked
        out["tables"] = {}
        for split in ("val", "test"):
            table, _ = table_checkpoint(TableOptions(
                checkpoint=str(source), out=str(folder / f"table-{split}.csv"), split=split,
                batch_size=p.eval_batch_size, device=ctx.device, progress=False, bn_statistics="bank"))
            out["tables"][split] = {format_config(r["config"]): {"top1": r["top1_pct"], "mmacs": r["mmacs"]}
                                    for r in table.records()}
    run = TrainedRun.open(source, data_dir=ctx.data_dir)
    model = run.model
    out["bn_statistics"] = run.use_bn_statistics(basis)
    test = load_split(p.dataset, "test", data_dir=ctx.data_dir, augment=False)
    loader = make_loader(test, p.eval_batch_size, shuffle=False)
    labels_path = folder / "labels.pt"
    if not labels_path.is_file():
        label_checkpoint(LabelOptions(checkpoint=str(source), out=str(labels_path), split="val", configs="all",
                                      batch_size=p.eval_batch_size, device=ctx.device, progress=False,
                                      bn_statistics=basis))
    for seed in step.params["classifier_seeds"]:
        clf = folder / f"classifier-s{seed}.pt"
        if not clf.is_file():
            train_checkpoint(ClassifierOptions(labels=str(labels_path), checkpoint=str(source), out=str(clf),
                                               epochs=p.adapt_epochs, seed=seed, device=ctx.device, progress=False,
                                               bn_statistics=basis))
        adapter = Adapter.from_trained(model, load_classifier(str(clf), model))
        cost = dict(zip((format_config(c) for c in adapter.costs.configs), adapter.costs.budget_costs()))
        rows = []
        free = evaluate_adapt(adapter, loader, None, time_static=False)  # the static side comes from val tables
        rows.append(_adapt_row(free, None, None))
        if step.params.get("budget_below_dearest"):
            used = sorted({cost[c] for c in free["adapt"]["usage"]}, reverse=True)
            if len(used) > 1:  # bar the dearest configuration routed to freely; the next one down still fits
                budget = (used[1] + 0.5) / 1e6  # half a MAC of slack against the float round trip
                rows.append(_adapt_row(evaluate_adapt(adapter, loader, budget, time_static=False), budget,
                                       "below-dearest"))
        out["classifiers"][str(seed)] = rows
    return out


def _adapt_row(r: Dict[str, Any], budget: Optional[float], rule: Optional[str]) -> Dict[str, Any]:
    return {"budget_mmacs": budget, "budget_rule": rule, "top1": r["adapt"]["top1_pct"],
            "mean_mmacs": r["adapt"]["mean_mmacs"], "classifier_mmacs": r["adapt"]["classifier_mmacs"],
            "max_image_mmacs": r["adapt"]["max_image_mmacs"], "usage": r["adapt"]["usage"]}


def run_select_lr(ctx: Context, step: Step) -> Dict[str, Any]:
    """Choose a learning rate on val: train the step once per candidate, keep the best val score.

    ``params``: ``lrs`` (the candidates) or ``lr_scales`` (as multiples of the protocol's lr), and ``score_configs``
    (the score is the mean val top-1 of these configurations after the last epoch, BN as the per-epoch evaluation
    leaves it).
    Each candidate is an ordinary run folder (``<name>-<lr>``), resumed like any training.
    """
    import statistics

    candidates = {}
    lrs = step.params.get("lrs") or [ctx.protocol.lr * float(scale) for scale in step.params["lr_scales"]]
    for lr in map(float, lrs):
        one = dataclasses.replace(step, name=f"{step.name}-{lr:g}", kind="train", train={**step.train, "lr": lr},
                                  evals=(), params={})
        curve = run_training(ctx, one)["curve"]
        if curve[-1].get("split") != "val":
            raise ValueError(f"{step.name} scores on val, and {one.name} evaluated on {curve[-1].get('split')}")
        score = statistics.fmean(curve[-1]["top1"][c] for c in step.params["score_configs"])
        candidates[f"{lr:g}"] = {"lr": lr, "val_top1": score, "curve": curve}
    best = max(candidates.values(), key=lambda c: (c["val_top1"], c["lr"]))
    return {"candidates": candidates, "chosen": {"lr": best["lr"], "val_top1": best["val_top1"]},
            "score": f"mean val top-1 of {', '.join(step.params['score_configs'])} after the last epoch"}


def resolve(ctx: Context, step: Step) -> Step:
    """The step with its choices made: ``params["lr_from"]`` names a finished selection step whose lr it takes."""
    for resolver in ctx.resolvers:
        made = resolver(ctx, step)
        if made is not None:
            return made
    source = step.params.get("lr_from")
    if not source:
        return step
    chosen = load_result(ctx, source)
    if chosen is None:
        raise ValueError(f"{step.name} takes its learning rate from {source}, which has not finished")
    return replace_train(step, lr=float(chosen["chosen"]["lr"]))


def run_timing(ctx: Context, step: Step) -> Dict[str, Any]:
    """T8: fair against random sampling, timed back to back in one process (:mod:`timing`)."""
    from .timing import sampling_seconds

    return sampling_seconds(ctx.protocol, step.seed, ctx.data_dir, **step.params)


def run_evaluation(ctx: Context, step: Step) -> Dict[str, Any]:
    """Evaluate another step's kept weights (``params["network"]``) for ``step.evals``; nothing is trained.

    ``params["network_train"]`` (that step's options) is there for the key only: when the network is trained
    again with other options, this evaluation is made again too."""
    folder = Path(ctx.work) / step.name
    folder.mkdir(parents=True, exist_ok=True)
    source = kept_weights(ctx, step.params["network"])
    return {"network": step.params["network"], "evals": {kind: _table(ctx, source, step, kind, folder)
                                                          for kind in step.evals}}


RUNNERS = {"train": run_training, "adapt": run_adapt, "select": run_select_lr, "timing": run_timing,
           "evaluate": run_evaluation}


def kept_weights(ctx: Context, name: str) -> Path:
    """The kept weights of a finished step; kept now from its run folder when it finished before it kept them."""
    path = ctx.weights_path(name)
    if path.is_file():
        return path
    run, done = Path(ctx.work) / name, load_result(ctx, name)
    if done is None:
        raise ValueError(f"{name} has not finished: its weights are not there yet")
    if not (run / "checkpoint.pt").is_file():
        raise ValueError(f"{name} finished without keeping its weights, and its run folder {run} is not on this "
                         f"machine: delete {ctx.result_path(name)} to train it again (it keeps them this time)")
    from resizable import atomic_write_text

    done["weights"] = _keep_weights(ctx, run, name)
    atomic_write_text(ctx.result_path(name), json.dumps(done, indent=1, default=str) + "\n")
    return path


def execute(ctx: Context, step: Step) -> str:
    """Run one step unless finished; write its result file last (atomically). Returns the step's name."""
    import torch

    from resizable import atomic_write_text

    torch.set_num_threads(ctx.threads)
    step = resolve(ctx, step)
    key = step_key(ctx, step)
    done = load_result(ctx, step.name)
    if done is not None:
        if done.get("key") != key:
            raise ValueError(f"{ctx.result_path(step.name)} was made with other options (key {done.get('key')}, "
                             f"now {key}); delete it (and its weights) to re-run that step")
        return step.name
    t0 = time.time()
    runners = {**RUNNERS, **dict(ctx.runners)}
    if step.kind not in runners:
        raise ValueError(f"step {step.name} is of kind {step.kind!r}, which this run was not given a runner for; "
                         f"known: {', '.join(sorted(runners))}")
    result = runners[step.kind](ctx, step)
    result.update({"name": step.name, "kind": step.kind, "seed": step.seed, "key": key,
                   "options": {k: v for k, v in _options(ctx, step).items() if k != "data_dir"},
                   "step_seconds": time.time() - t0, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    path = ctx.result_path(step.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1, default=str) + "\n")
    return step.name


def run_steps(ctx: Context, steps: Sequence[Step], jobs: int) -> None:
    """Every unfinished step once, dependencies first; ``jobs`` > 1 runs independent steps in parallel processes.
    Under a time limit (:func:`time_limit.set_time_limit`) a step that would not end in time is not started (nor
    are the steps that wait on it), a later one that fits is, and :class:`time_limit.TimeUp` is raised once the
    steps that fit have finished."""
    todo = [s for s in steps if load_result(ctx, s.name) is None]
    for s in steps:  # a finished step made with other options is refused before anything trains
        if s not in todo:
            execute(ctx, s)
    skipped: List[Step] = []
    if jobs == 1:
        for s in todo:
            if not fits(s) or set(s.deps) & {x.name for x in skipped}:
                skipped.append(s)
                continue
            print(f"[paper] {s.name} ...", flush=True)
            execute(ctx, s)
        if skipped:
            raise left_out(skipped, [])
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    done = {s.name for s in steps if s not in todo}
    running: Dict[Any, str] = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=end_with_parent) as pool:
        while todo or running:
            ready = [s for s in todo if all(d in done for d in s.deps)]
            for s in ready:
                if len(running) >= jobs:
                    break
                todo.remove(s)
                if not fits(s):
                    skipped.append(s)
                    continue
                print(f"[paper] {s.name} ...", flush=True)
                running[pool.submit(execute, ctx, s)] = s.name
            if not running:
                if skipped:
                    raise left_out(skipped, todo)
                missing = sorted({d for s in todo for d in s.deps} - done)
                raise ValueError(f"steps wait on steps that are not planned: {missing}")
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in finished:
                done.add(f.result())
                running.pop(f)
    if skipped:
        raise left_out(skipped, todo)


def end_with_parent() -> None:
    """In a worker: end (SIGTERM) when the suite's process ends, so that stopping the suite stops its trainings
    (Linux; elsewhere a no-op). A killed worker's run resumes from its last finished epoch."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def replace_train(step: Step, **train: Any) -> Step:
    return dataclasses.replace(step, train={**step.train, **train})
