"""The applications on the default recipe's RS network: the network step they share, the budgets, and their steps.

Fig 3(a)-(c) (Resizable-NAS, :mod:`fig3abc`) and Fig 3d (Resizable-Adapt along the front, :mod:`fig3d_front`)
both run on the default recipe's RS network at the confirmation budget: the budget curve's and the recipes
claim's step ``full-<method>-s<seed>`` (:func:`curve.default_network`), planned here with its weights kept.

| step | kind | what |
| --- | --- | --- |
| ``nas-tables-s<seed>`` | tables | the network's val and test tables (BN recalibrated); the first seed's also chooses the budgets |
| ``nas-ft<pct>-b<i>-s<seed>`` | finetune | ``resizable finetune`` of the val pick under budget ``i`` for ``pct`` % of the RS epochs |
| ``nas-alone-b<i>-s<seed>`` | train | the val pick trained alone at the networks-alone tuned point |
| ``nas-narrow-b<i>-s<seed>`` | train | the same family with its channels scaled to budget ``i``, trained alone |
| ``adapt-front-s<seed>`` | adapt_front | labels, classifiers (paper rule per threshold, cost-aware) and ``adapt eval`` |

A step that depends on a choice made on val (the pick, the budgets) names the step it reads it from
(``params``); :func:`steps.resolve` fills its options in before its key is computed.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .steps import Context, Step, kept_weights, load_result, replace_train

# where the budgets sit: these fractions of the way from the val front's cheapest to its dearest point, in log
# MACs, each taken down to the front point at or below it (the search's own rule); Fig 3d adds the midpoint after
BUDGET_POSITIONS = (0.2, 0.4, 0.6, 0.8)
FINETUNE_FRACTIONS = (0.01, 0.15)   # of the RS training's epochs: the paper's 1 and 15 of 100+
COST_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)  # the cost-aware rule's lambdas


def tables_name(seed: int) -> str:
    return f"nas-tables-s{seed}"


def val_front(table: Dict[str, Dict[str, float]]) -> List[str]:
    """Configurations of the val table's Pareto front, cheapest first (each more accurate than every cheaper one)."""
    front: List[str] = []
    for c in sorted(table, key=lambda c: (table[c]["mmacs"], -table[c]["top1"])):
        if not front or table[c]["top1"] > table[front[-1]]["top1"]:
            front.append(c)
    return front


def choose_budgets(val: Dict[str, Dict[str, float]]) -> List[float]:
    """Per-configuration MMACs budgets spanning the val front (its points at ``BUDGET_POSITIONS``, distinct)."""
    costs = [val[c]["mmacs"] for c in val_front(val)]
    every = sorted({v["mmacs"] for v in val.values()})
    lo, hi = math.log(costs[0]), math.log(costs[-1])
    out: List[float] = []
    for x in BUDGET_POSITIONS:
        target = math.exp(lo + x * (hi - lo))
        below = [c for c in costs if c <= target * (1 + 1e-9) and c not in out]
        # a front too short for distinct points (a tiny network): the configuration cost nearest the target
        out.append(max(below) if below else min((c for c in every if c not in out),
                                                 key=lambda c: abs(math.log(c / target))))
    return sorted(out)


def midpoints(val: Dict[str, Dict[str, float]], budgets: Sequence[float]) -> List[float]:
    """The budget halfway between each budget's front point and the next front point (where a router can win)."""
    costs = [val[c]["mmacs"] for c in val_front(val)]
    return [(b + min(c for c in costs if c > b)) / 2 for b in budgets if any(c > b for c in costs)]


def search(val: Dict[str, Dict[str, float]], budget: float) -> Optional[str]:
    """What a search of the val table returns within ``budget`` MMACs: best val top-1, then fewer MACs."""
    feasible = [c for c in val if val[c]["mmacs"] <= budget * (1 + 1e-9)]
    return max(feasible, key=lambda c: (val[c]["top1"], -val[c]["mmacs"])) if feasible else None


def budgets_of(ctx: Context, source: str) -> Dict[str, Any]:
    """The first seed's tables step's budgets (``nas`` and ``adapt``); refused until it has finished."""
    r = load_result(ctx, source)
    if r is None:
        raise ValueError(f"the budgets come from {source}, which has not finished")
    return r["budgets"]


def pick_of(ctx: Context, tables: str, budgets_from: str, index: int) -> str:
    """The configuration the val search of ``tables`` returns under the ``index``-th budget."""
    r = load_result(ctx, tables)
    if r is None:
        raise ValueError(f"the searched configuration comes from {tables}, which has not finished")
    budget = budgets_of(ctx, budgets_from)["nas"][index]
    return search(r["val"], budget)


def narrow_widths(train: Dict[str, Any], target_mmacs: float) -> Tuple[List[int], float]:
    """The family's widths scaled by one factor (rounded to whole channels) whose all-1.0 MACs are nearest
    ``target_mmacs``; returns the widths and their MMACs."""
    from resizable import count_macs, create_model
    from resizable.data import dataset_info

    base = [int(w) for w in train["model_args"]["widths"]]
    info = dataset_info(train["dataset"])
    seen: Dict[Tuple[int, ...], float] = {}

    def at(scale: float) -> Tuple[List[int], float]:
        widths = [max(1, round(w * scale)) for w in base]
        if tuple(widths) not in seen:  # only the all-1.0 configuration: the narrower network runs at full size
            model = create_model(train["model"], factors=tuple(train["factors"]), num_classes=info.num_classes,
                                 in_chans=info.in_chans, **{**train["model_args"], "widths": widths})
            seen[tuple(widths)] = count_macs(model, (1.0,) * len(base), info.input_size).macs / 1e6
        return widths, seen[tuple(widths)]

    lo, hi = 1e-3, 1.0
    if at(hi)[1] <= target_mmacs:
        return at(hi)
    for _ in range(40):  # the largest scale within the target, then whichever neighbour is nearer
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at(mid)[1] <= target_mmacs else (lo, mid)
    return min((at(lo), at(hi)), key=lambda x: abs(x[1] - target_mmacs))


# ---------------------------------------------------------------------------- runners
def _table(ctx: Context, weights: Path, folder: Path, split: str) -> Dict[str, Dict[str, float]]:
    from resizable import format_config
    from resizable.nas import TableOptions, table_checkpoint

    p = ctx.protocol
    table, _ = table_checkpoint(TableOptions(
        checkpoint=str(weights), out=str(folder / f"table-{split}.csv"), split=split, batch_size=p.eval_batch_size,
        device=ctx.device, calibrate_bn=p.eval_calibrate_bn, calibrate_batch_size=p.eval_batch_size,
        progress=False, data_dir=ctx.data_dir))
    return {format_config(r["config"]): {"top1": r["top1_pct"], "mmacs": r["mmacs"]} for r in table.records()}


def run_tables(ctx: Context, step: Step) -> Dict[str, Any]:
    """The network's val and test tables (recalibrated, as the suite's); the first seed's also picks the budgets."""
    folder = Path(ctx.work) / step.name
    folder.mkdir(parents=True, exist_ok=True)
    weights = kept_weights(ctx, step.params["network"])
    out: Dict[str, Any] = {"network": step.params["network"],
                           **{split: _table(ctx, weights, folder, split) for split in ("val", "test")}}
    if step.params.get("choose_budgets"):
        nas = choose_budgets(out["val"])
        out["budgets"] = {"nas": nas, "adapt": sorted(set(nas) | set(midpoints(out["val"], nas))),
                          "rule": f"val front points at {', '.join(f'{x:g}' for x in BUDGET_POSITIONS)} of its "
                                  "log-MACs range (down to the point at or below); Fig 3d adds the midpoint to the "
                                  "next front point"}
    return out


def finetune_steps(ctx: Context, network: str, fraction: float) -> Tuple[int, int]:
    """(steps of the fine-tuning, steps per epoch of the RS training): ``fraction`` of its epochs, at least one."""
    r = load_result(ctx, network)
    per_epoch = int(r["curve"][0]["step"])
    return max(1, round(fraction * len(r["curve"]) * per_epoch)), per_epoch


def run_finetune(ctx: Context, step: Step) -> Dict[str, Any]:
    """``resizable finetune`` of the val pick for a fraction of the RS training's epochs (one short epoch)."""
    from resizable.cli import main

    p, params = ctx.protocol, step.params
    config = pick_of(ctx, params["tables"], params["budgets_from"], params["budget_index"])
    steps, per_epoch = finetune_steps(ctx, params["network"], params["fraction"])
    folder = Path(ctx.work) / step.name
    if folder.exists():  # a fine-tuning cut short starts again (it is one short epoch)
        shutil.rmtree(folder)
    args = ["finetune", "--checkpoint", str(kept_weights(ctx, params["network"])), "--config", config,
            "--epochs", "1", "--max-steps-per-epoch", str(steps), "--out-dir", ctx.work, "--name", step.name,
            "--device", ctx.device, "--seed", str(step.seed), "--eval-batch-size", str(p.eval_batch_size),
            "--calibrate-bn", str(p.eval_calibrate_bn), "--calibrate-batch-size", str(p.eval_batch_size),
            "--no-progress"] + (["--data-dir", ctx.data_dir] if ctx.data_dir else [])
    code = main(args)
    if code != 0:
        raise ValueError(f"{step.name}: resizable finetune exited with {code}")
    summary = json.loads((folder / "finetune.json").read_text())
    return {"config": config, "steps": steps, "steps_per_epoch": per_epoch, "fraction": params["fraction"],
            "lr": summary["lr"], "before": summary["before"], "after": summary["after"],
            "bn_statistics": summary["bn_statistics"]}


def resolve_app(ctx: Context, step: Step) -> Optional[Step]:
    """A run trained alone at a choice made on val: the pick under a budget (``pick_from``), or the family's widths
    scaled to a budget (``narrow_from``); None for any other step."""
    params = step.params
    if not (params.get("pick_from") or params.get("narrow_from")):
        return None
    i = params["budget_index"]
    if params.get("pick_from"):
        config = pick_of(ctx, params["pick_from"], params["budgets_from"], i)
        return replace_train(step, single_config=tuple(float(f) for f in config.split(",")), eval_configs=config)
    budget = budgets_of(ctx, params["narrow_from"])["nas"][i]
    widths, _ = narrow_widths({**ctx.protocol.train_args(), **step.train}, budget)
    return replace_train(step, model_args={**ctx.protocol.model_args, **step.train.get("model_args", {}),
                                           "widths": widths})
