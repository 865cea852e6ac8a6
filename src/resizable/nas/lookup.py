"""Resizable-NAS (paper section 4.2): a lookup table over every configuration, then search it.

One trained ResizableNet is a search space of ``k^N`` sub-networks. :func:`build_table` evaluates
all of them into a lookup table file (accuracy, MACs, parameters, optionally latency; the format
is :mod:`resizable.nas.table_file`), walking the configuration tree of :mod:`resizable.evaluation.walker` so that
shared prefixes run once; :func:`search` answers "the most accurate sub-network under this
budget" from the table alone, and :func:`pareto_front` gives the accuracy-versus-cost front.

Rows are appended per work unit (all configurations below one prefix), so a killed build restarts
where it stopped, and work units can be split over processes (``shard=(i, n)``) whose files
:func:`resizable.nas.table_file.merge_tables` joins.
"""
from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..utils.fileio import read_text
from ..configs import Config, format_config, parse_config
from ..utils.console import progress_enabled
from ..training.run_folder import output_path
from ..trained_run import bn_statistics_option
from ..utils.options import check_options, option
from ..costs import config_costs
from ..data.datasets import make_loader
from ..evaluation.walker import Calibration, evaluate_configs, topk_for
from .latency import MEMORY_FORMATS
from ..net import ResizableNet, SizeLike
from .runtimes import RUNTIMES
from .table_file import (LATENCY_COLUMN_RE, REQUIRED_COLUMNS, TABLE_IDENTITY, TABLE_MAGIC, PathLike, Table, TableError,
                     append_rows, check_shard, format_millions, parse_shard, latency_columns, merge_tables, model_meta, open_table,
                     read_table, shard_path, weights_sha256)

__all__ = [
    "NoFeasibleConfig",
    "plan_units",
    "build_table",
    "search",
    "pareto_front",
    "read_baselines",
    "plot_pareto",
    "TableOptions",
    "table_checkpoint",
    "table_from_checkpoint",
]


class NoFeasibleConfig(ValueError):
    """No configuration of the table meets every constraint of a search."""


# ---------------------------------------------------------------------------- building a table
def plan_units(configs: Sequence[Config], depth: int) -> List[List[Config]]:
    """Group configurations (in order) into work units by their first ``depth`` factors."""
    units: Dict[Config, List[Config]] = {}
    for c in configs:
        units.setdefault(tuple(c[:depth]), []).append(c)
    return list(units.values())


def build_table(
    model: ResizableNet,
    loader: Iterable,
    out: PathLike,
    *,
    input_size: SizeLike,
    num_samples: int,
    dataset: str,
    split: str,
    model_name: Optional[str] = None,
    checkpoint: str = "",
    unit_depth: int = 1,
    shard: Tuple[int, int] = (0, 1),
    calibrate: Optional[Calibration] = None,
    latency: Optional[Callable[[Config], Dict[str, float]]] = None,
    latency_columns: Sequence[str] = (),
    extra_meta: Optional[Mapping[str, str]] = None,
    progress: bool = True,
) -> Table:
    """Evaluate every configuration into the table file ``out``; resume it if it exists.

    Rows are appended and flushed per work unit (all configurations sharing their first
    ``unit_depth`` factors; one pass over ``loader`` each). Restarted with the same arguments, a
    build skips the rows already written and ends with the same file. With ``shard=(i, n)`` only
    units ``i, i+n, ...`` are built (merge the shard files with :func:`merge_tables`). When a table
    is complete its rows are rewritten in configuration order.

    Args:
        model: the trained ResizableNet (on the device to evaluate on).
        loader: the evaluation split, yielding ``(images, labels)``; must be deterministic.
        out: the CSV file to write or resume.
        input_size: the input resolution (for MACs; also recorded).
        num_samples: how many samples ``loader`` yields (recorded; checked).
        dataset, split: recorded in the metadata.
        model_name: the registered name (recorded); default the class name.
        checkpoint: where the weights came from (recorded; the weight hash is what is checked).
        unit_depth: prefix length of a work unit (0: one unit, fastest, no intermediate saves).
        shard: ``(i, n)``: build only this process's share of the units.
        calibrate: recompute BN statistics per configuration first (on shared prefixes, see
            :func:`calibrate_configs`; the model's own statistics are left unchanged).
        latency: ``config -> {column: value}`` measuring latency (see :mod:`resizable.nas.latency`).
        latency_columns: the columns ``latency`` returns.
        extra_meta: more metadata lines.
        progress: show a progress bar with the time left.
    """
    shard = check_shard(shard)
    if unit_depth < 0 or unit_depth > model.num_stages:
        raise ValueError(f"unit_depth must be in [0, {model.num_stages}], got {unit_depth}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    k = len(model.factors)
    while k ** unit_depth < shard[1] and unit_depth < model.num_stages:
        unit_depth += 1  # enough units for every shard to get one
    out = Path(out)
    topk = topk_for(model)
    columns = ["config", "top1_pct"] + (["top5_pct"] if 5 in topk else []) + ["mmacs", "interp_mmacs", "params_m"]
    columns += list(latency_columns)
    meta = _table_meta(model, input_size, model_name, checkpoint, dataset, split, num_samples, calibrate)
    if shard[1] > 1:
        meta["shard"] = f"{shard[0]}/{shard[1]}"
        meta["unit_depth"] = str(unit_depth)
    meta.update(extra_meta or {})

    table = open_table(out, TABLE_MAGIC, meta, columns, TABLE_IDENTITY)
    units = plan_units(model.configs(), unit_depth)[shard[0]::shard[1]]
    mine = [c for unit in units for c in unit]
    todo = [[c for c in unit if c not in table.rows] for unit in units]
    todo = [u for u in todo if u]
    total = sum(len(u) for u in todo)
    costs = config_costs(model, input_size, [c for u in todo for c in u]) if total else {}
    bar = _progress(total, len(mine) - total, progress)
    try:
        for unit in todo:
            counts = _evaluate_unit(model, loader, unit, calibrate, bar)
            rows = [_row(c, counts[c], costs[c], num_samples, latency) for c in unit]
            append_rows(out, columns, rows)
            table.rows.update({parse_config(r["config"], model.factors): r for r in rows})
            if bar is not None:
                bar.n = sum(1 for c in mine if c in table.rows) - (len(mine) - total)  # no float drift
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    table.meta = meta
    if all(c in table.rows for c in mine):
        table.write(out)  # complete: rows in configuration order
    return table


def _table_meta(model: ResizableNet, input_size: SizeLike, model_name: Optional[str], checkpoint: str, dataset: str,
                split: str, num_samples: int, calibrate: Optional[Calibration]) -> Dict[str, str]:
    """The metadata lines of a table: what was evaluated, on which images, with which BN statistics."""
    meta = model_meta(model, input_size, model_name)
    meta.update({
        "weights_sha256": weights_sha256(model),
        "checkpoint": checkpoint or "-",
        "dataset": dataset,
        "split": split,
        "num_samples": str(int(num_samples)),
        "calibrate_bn": (f"{calibrate.num_batches} batches" + (f" ({calibrate.description})" if calibrate.description
                                                                else "")) if calibrate else "none",
        "evaluation": "configuration tree, shared prefixes" + (" (BN recalibrated per configuration)"
                                                                 if calibrate else ""),
    })
    return meta


def _row(config: Config, counts: Dict[str, int], cost: Tuple[int, int, int], num_samples: int,
         latency: Optional[Callable[[Config], Dict[str, float]]]) -> Dict[str, str]:
    """One table row, as written: top-1 (top-5) %, MMACs, interpolation MMACs, M params (and latency)."""
    n = counts["samples"]
    if n != num_samples:
        raise ValueError(f"the loader yielded {n} samples, expected num_samples={num_samples}")
    macs, interp, params = cost
    row = {"config": format_config(config), "top1_pct": f"{100.0 * counts['top1'] / n:.4f}",
           "mmacs": format_millions(macs), "interp_mmacs": format_millions(interp), "params_m": format_millions(params)}
    if "top5" in counts:
        row["top5_pct"] = f"{100.0 * counts['top5'] / n:.4f}"
    if latency is not None:
        row.update({col: f"{v:.4f}" for col, v in latency(config).items()})
    return row


def _progress(total: int, done: int, enabled: bool):
    if not progress_enabled(enabled) or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="cfg", desc=f"table ({done} done before)" if done else "table",
                file=sys.stderr, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.1f}/{total} configs [{elapsed}<{remaining}]")


def _evaluate_unit(model: ResizableNet, loader: Iterable, unit: List[Config], calibrate: Optional[Calibration], bar
                   ) -> Dict[Config, Dict[str, int]]:
    try:
        num_batches = len(loader)  # type: ignore[arg-type]
    except TypeError:
        num_batches = 0

    def tick(share: float) -> Callable[[], None]:
        step = share / num_batches if num_batches else 0.0
        return lambda: bar.update(step) if bar is not None else None

    return evaluate_configs(model, loader, unit, on_batch=tick(len(unit)), calibrate=calibrate)


# ---------------------------------------------------------------------------- search
def _pick_latency_column(table: Table, column: Optional[str]) -> str:
    cols = latency_columns(table.columns)
    if column:
        if column not in table.columns:
            raise TableError(f"the table has no column {column!r}; latency columns: {cols or 'none'}")
        return column
    if not cols:
        raise TableError("the table has no latency column; build it with --latency or merge a latency table first")
    if len(cols) > 1:
        raise ValueError(f"the table has several latency columns {cols}; name one (latency_column=...)")
    return cols[0]


def _sort_key(rec: Dict[str, Any], lat: Optional[str]) -> tuple:
    latency = rec[lat] if lat else 0.0
    return (-rec["top1_pct"], rec["mmacs"], latency if not math.isnan(latency) else math.inf, rec["order"])


def search(
    table: Union[Table, PathLike],
    *,
    max_mmacs: Optional[float] = None,
    max_latency_ms: Optional[float] = None,
    latency_column: Optional[str] = None,
    max_params_m: Optional[float] = None,
    count_interp: bool = False,
    top: int = 1,
) -> List[Dict[str, Any]]:
    """The most accurate configurations meeting every constraint, best first.

    Ties are broken deterministically: higher top-1, then fewer MACs, then lower latency (when a
    latency column is in use), then the earlier configuration in ``configs()`` order.

    Searching is selecting: build the table on the ``val`` split (``train --val-size N``, then
    ``resizable table``, which defaults to ``val`` for such a run) and report the chosen
    configuration's accuracy on ``test``. A table built on ``test`` makes the test number optimistic.

    Args:
        table: a complete NAS table (or its path).
        max_mmacs: MACs budget in millions (the paper's MFLOPs).
        max_latency_ms: latency budget; needs a latency column.
        latency_column: which latency column (default: the only one).
        max_params_m: parameter budget in millions.
        count_interp: add the interpolation MACs to the MACs before comparing with ``max_mmacs``.
        top: how many configurations to return.
    Raises:
        NoFeasibleConfig: when no configuration qualifies (the message gives the cheapest one).
    """
    if not isinstance(table, Table):
        table = read_table(table, required=REQUIRED_COLUMNS)
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing_cols:
        raise TableError(f"{table.path or 'the table'}: missing column(s) {missing_cols}; it has {table.columns}")
    if not table.rows:
        raise TableError(f"{table.path or 'the table'} has no rows")
    missing = table.missing()
    if missing:
        raise TableError(f"{table.path or 'the table'} is incomplete ({len(missing)} configurations missing, first "
                         f"{format_config(missing[0])}); finish or merge it before searching")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    lat = _pick_latency_column(table, latency_column) if max_latency_ms is not None or latency_column else None
    records = table.records()
    for rec in records:
        rec["budget_mmacs"] = rec["mmacs"] + (rec["interp_mmacs"] if count_interp else 0.0)
    checks = []
    if max_mmacs is not None:
        checks.append(("budget_mmacs", max_mmacs, "MMACs" + (" (with interpolation)" if count_interp else "")))
    if max_latency_ms is not None:
        checks.append((lat, max_latency_ms, f"ms ({lat})"))
    if max_params_m is not None:
        checks.append(("params_m", max_params_m, "M parameters"))
    feasible = [r for r in records if all(r[col] <= limit for col, limit, _ in checks)]
    if not feasible:
        parts = []
        for col, limit, unit in checks:
            known = [r for r in records if not math.isnan(r[col])]
            if not known:
                parts.append(f"at most {limit:g} {unit}, but the table has no value in that column")
                continue
            best = min(known, key=lambda r: (r[col], r["order"]))
            parts.append(f"at most {limit:g} {unit}, but the cheapest configuration, "
                         f"{format_config(best['config'])}, needs {best[col]:g}")
        raise NoFeasibleConfig("no configuration meets every constraint: " + "; ".join(parts))
    feasible.sort(key=lambda r: _sort_key(r, lat))
    return feasible[:top]


def pareto_front(table: Union[Table, PathLike], cost: str = "mmacs") -> List[Dict[str, Any]]:
    """Configurations no other one beats on both accuracy and ``cost`` (a column), cheapest first.

    Among equal costs the most accurate stays (then the earlier configuration); a configuration
    joins the front only if it is strictly more accurate than every cheaper one. Picking front members
    is selecting: use a table built on ``val`` and report the picked configurations on ``test``.
    """
    if not isinstance(table, Table):
        table = read_table(table, required=REQUIRED_COLUMNS)
    if cost not in table.columns:
        raise TableError(f"the table has no column {cost!r}; columns: {table.columns}")
    if not table.rows:
        raise TableError(f"{table.path or 'the table'} has no rows")
    records = [r for r in table.records() if not math.isnan(r[cost])]
    records.sort(key=lambda r: (r[cost], -r["top1_pct"], r["order"]))
    front, best = [], -math.inf
    for r in records:
        if r["top1_pct"] > best:
            front.append(r)
            best = r["top1_pct"]
    return front


def read_baselines(path: PathLike, cost: str = "mmacs") -> List[Dict[str, Any]]:
    """Individually trained baselines to overlay: a CSV with ``label``, ``top1_pct`` and the cost column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no baselines file at {path}")
    lines = [l for l in read_text(path, "CSV file").splitlines() if l.strip() and not l.startswith("#")]
    if not lines:
        raise TableError(f"{path} is empty; expected a CSV with columns label,{cost},top1_pct")
    rows = list(csv.DictReader(lines))
    need = ["label", cost, "top1_pct"]
    lacking = [c for c in need if c not in (rows[0].keys() if rows else next(csv.reader(lines[:1])))]
    if lacking:
        raise TableError(f"{path}: missing column(s) {lacking}; expected {need}")
    try:
        return [{"label": r["label"], cost: float(r[cost]), "top1_pct": float(r["top1_pct"])} for r in rows]
    except ValueError as e:
        raise TableError(f"{path}: {e}") from None


def plot_pareto(table: Union[Table, PathLike], out: PathLike, *, cost: str = "mmacs",
                baselines: Sequence[Dict[str, Any]] = (), title: Optional[str] = None) -> Path:
    """Scatter every configuration, draw the Pareto front, overlay baselines; save to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(table, Table):
        table = read_table(table, required=REQUIRED_COLUMNS)
    front = pareto_front(table, cost)
    records = table.records()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter([r[cost] for r in records], [r["top1_pct"] for r in records], s=10, color="0.7",
               label=f"all {len(records)} configurations")
    ax.plot([r[cost] for r in front], [r["top1_pct"] for r in front], "-o", ms=4, color="C0", label="Pareto front")
    for b in baselines:
        ax.scatter([b[cost]], [b["top1_pct"]], marker="*", s=90, zorder=3)
        ax.annotate(b["label"], (b[cost], b["top1_pct"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    unit = {"mmacs": "MMACs (MFLOPs)", "params_m": "parameters (M)"}.get(cost, cost)
    if cost.startswith("latency_ms_"):
        m = LATENCY_COLUMN_RE.match(cost)
        unit = f"latency (ms, batch {m.group(1)}, {m.group(2)})" if m else cost
    ax.set_xlabel(unit)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title or f"{table.meta.get('model', '')} on {table.meta.get('dataset', '')} ({table.meta.get('split', '')})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------- from a checkpoint
@dataclass(frozen=True)
class TableOptions:
    """What ``resizable table`` builds from a checkpoint; each field is also its ``--flag``."""

    checkpoint: Optional[str] = option(None, "checkpoint file or run folder")
    out: str = option("table.csv", "the table CSV (resumed if it exists)")
    dataset: Optional[str] = option(None, "dataset (default: the training run's)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training run's)")
    split: Optional[str] = option(None, "split to evaluate (default: val when the run holds images out with "
                                        "--val-size, else test); build tables that select on val",
                                  choices=("train", "test", "val"))
    batch_size: int = option(256, "evaluation batch size", min=1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    input_size: Optional[int] = option(None, "input resolution (default: the run's)", min=1, max=4096)
    bn_statistics: str = bn_statistics_option()
    calibrate_bn: int = option(0, "recompute BN statistics per configuration on this many training batches "
                                  "(0: --bn-statistics)", min=0)
    calibrate_batch_size: Optional[int] = option(None, "batch size for --calibrate-bn (default: --batch-size)", min=1)
    latency: Optional[str] = option(None, "also time each exported configuration here", choices=("cpu", "cuda"))
    latency_batch: Tuple[int, ...] = option((1,), "batch sizes to time, e.g. 1,32", min=1)
    latency_warmup: int = option(10, "untimed runs before timing", min=0)
    latency_repeats: int = option(50, "timed runs (the median is kept)", min=1)
    latency_tag: Optional[str] = option(None, "latency column suffix (default: the device, plus the runtime when "
                                              "it is not torch)")
    latency_runtime: str = option("torch", "with --latency: run each exported network in torch (eager), "
                                  "torchscript or onnxruntime (pip install 'resizable[onnx]')",
                                  choices=RUNTIMES)
    latency_memory_format: str = option("auto", "with --latency: auto (channels-last on CUDA, contiguous on the "
                                        "CPU), contiguous or channels-last", choices=MEMORY_FORMATS)
    unit_depth: int = option(1, "configurations sharing this many leading factors form one resumable work unit", min=1)
    shard: Optional[str] = option(None, "i/n: build shard i (0-based) of n; default from torchrun's RANK/WORLD_SIZE")
    progress: bool = option(True, "progress bar with time left (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def table_checkpoint(opts: TableOptions) -> Tuple[Table, Path]:
    """Build (or resume) the lookup table of a trained checkpoint; what ``resizable table`` runs.

    Dataset, data folder and input size default to the training run's. With ``shard`` ``i/n`` (or
    under torchrun, one shard per rank) this process writes ``shard_path(out, i, n)``; whichever
    shard finishes last merges all of them into ``out``. Returns the table written and its path.
    """
    from ..utils.distributed import launch_info, resolve_device
    from ..trained_run import TrainedRun

    if not opts.checkpoint:
        raise ValueError("table_checkpoint needs a checkpoint (--checkpoint)")
    shard = check_shard(parse_shard(opts.shard) if opts.shard is not None else launch_info()[:2])
    run = TrainedRun.open(opts.checkpoint, dataset=opts.dataset, data_dir=opts.data_dir, input_size=opts.input_size)
    model, payload, size, info = run.model, run.payload, run.input_size, run.info
    split = opts.split or run.default_split()
    model.to(resolve_device(opts.device, launch_info()[2]))
    data = run.split(split)
    loader = make_loader(data, opts.batch_size, shuffle=False)
    calibration = None
    if opts.calibrate_bn:  # on the images the run trained on, never its held-out ones
        cbs = opts.calibrate_batch_size or opts.batch_size
        calibration = Calibration(run.calibration_loader(cbs), opts.calibrate_bn, run.calibration_note(cbs))
    basis = (f"recalibrated on {opts.calibrate_bn} training batches" if calibration
             else run.use_bn_statistics(opts.bn_statistics))
    probe, probe_columns, extra = None, (), {"bn_statistics": basis}
    if opts.latency:
        from .latency import LatencyProbe

        probe = LatencyProbe(model, size, device=opts.latency, batch_sizes=opts.latency_batch,
                             warmup=opts.latency_warmup, repeats=opts.latency_repeats, tag=opts.latency_tag,
                             runtime=opts.latency_runtime, memory_format=opts.latency_memory_format)
        probe_columns = probe.columns
        extra.update({f"latency_{probe.tag}_{k}": v for k, v in probe.meta().items() if k != "tag"})
    out = output_path(opts.out, "table.csv")
    target = shard_path(out, *shard) if shard[1] > 1 else out
    table = build_table(
        model, loader, target, input_size=size, num_samples=len(data), dataset=info.name, split=split,
        model_name=payload.get("model_name"), checkpoint=str(run.checkpoint),
        unit_depth=opts.unit_depth, shard=shard, calibrate=calibration, latency=probe, latency_columns=probe_columns,
        extra_meta=extra, progress=opts.progress)
    if shard[1] > 1:
        paths = [shard_path(out, i, shard[1]) for i in range(shard[1])]
        if all(p.is_file() for p in paths):
            merged = merge_tables(paths, None, allow_partial=True)
            if not merged.missing():  # else another shard is still running; the last one to finish merges
                merged.write(out)
                return merged, out
    return table, target


def table_from_checkpoint(opts: TableOptions) -> Tuple[Table, Path]:
    """Deprecated: the earlier name of :func:`table_checkpoint`."""
    import warnings

    warnings.warn("table_from_checkpoint is now table_checkpoint", DeprecationWarning, stacklevel=2)
    return table_checkpoint(opts)
