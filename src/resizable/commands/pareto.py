"""``resizable pareto``: the accuracy-versus-cost Pareto front of a lookup table, as a table and a plot."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

from ..utils.options import check_options, option, required

HELP = "the accuracy-vs-MACs (or latency) Pareto front of a table: printed, and plotted with --out"


@dataclass(frozen=True)
class ParetoOptions:
    """Options of ``resizable pareto``."""

    table: Optional[str] = required("the table CSV (resizable table)")
    cost: str = option("mmacs", "cost column: mmacs, params_m or a latency column")
    out: Optional[str] = option(None, "save the plot here (.png, .pdf, .svg)")
    csv: Optional[str] = option(None, "also write the front as CSV")
    baselines: Optional[str] = option(None, "CSV of individually trained networks to "
                                            "overlay: label,<cost>,top1_pct")
    title: Optional[str] = option(None, "plot title")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, ParetoOptions)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import warn_if_moved_on
    from ..utils.options import resolve_options
    from ..nas.lookup import pareto_front, plot_pareto, read_baselines
    from ..nas.table_file import REQUIRED_COLUMNS, Table, read_table
    from .search import format_rows, shown_columns

    from ..training.run_folder import output_path

    opts = resolve_options(ParetoOptions, args)
    for out, name in ((opts.out, "pareto.png"), (opts.csv, "pareto.csv")):
        if out:
            output_path(out, name)  # a run's own files, or a folder without a name, refused before reading
    table = read_table(opts.table, required=REQUIRED_COLUMNS)
    # a table of weights the run has moved on from still reads, and says so (one warning line)
    warn_if_moved_on(table.meta.get("checkpoint"), table.meta.get("weights_sha256"), opts.table)
    front = pareto_front(table, opts.cost)
    baselines = read_baselines(opts.baselines, opts.cost) if opts.baselines else []
    print(f"Pareto front: {len(front)} of {len(table.rows)} configurations (cost: {opts.cost})")
    print(format_rows(front, shown_columns(table.columns)))
    if opts.csv:
        subset = Table(dict(table.meta, pareto_cost=opts.cost), list(table.columns),
                       {r["config"]: table.rows[r["config"]] for r in front})
        subset.write(opts.csv)
        print(f"wrote {opts.csv}")
    if opts.out:
        plot_pareto(table, opts.out, cost=opts.cost, baselines=baselines, title=opts.title)
        print(f"wrote {opts.out}")
    return 0
