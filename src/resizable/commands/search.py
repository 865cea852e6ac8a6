"""``resizable search``: the most accurate configurations of a lookup table under a budget."""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..utils.options import check_options, option, required

HELP = "the most accurate configurations of a table that meet every constraint (MACs, latency, params)"


@dataclass(frozen=True)
class SearchOptions:
    """Options of ``resizable search``."""

    table: Optional[str] = required("the table CSV (resizable table; build it on the val split)")
    max_mmacs: Optional[float] = option(None, "budget in millions of multiply-accumulates "
                                              "(--max-mflops is an alias)", above=0.0)
    max_latency_ms: Optional[float] = option(None, "latency budget (needs a latency column)", above=0.0)
    latency_column: Optional[str] = option(None, "which latency column, when several")
    max_params_m: Optional[float] = option(None, "parameter budget in millions", above=0.0)
    count_interp: bool = option(False, "count the interpolation MACs in --max-mmacs")
    top: int = option(5, "how many configurations to list", min=1)
    json: bool = option(False, "print JSON instead of a table")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, SearchOptions)
    parser.add_argument("--max-mflops", dest="max_mmacs", type=float, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)  # the flag's earlier name


def format_rows(records: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    """Records as an aligned text table (``config`` first)."""
    from ..configs import format_config

    names = ["config"] + [c for c in columns if c != "config"]
    cells = [[format_config(r["config"])] + [f"{r[c]:.4g}" if isinstance(r[c], float) and not math.isnan(r[c])
                                             else "-" for c in names[1:]] for r in records]
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) if i == 0 else n.rjust(w) for i, (n, w) in enumerate(zip(names, widths)))]
    lines += ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
              for row in cells]
    return "\n".join(lines)


def shown_columns(table_columns: Sequence[str]) -> List[str]:
    """The columns worth printing: all but the configuration and the latency spreads."""
    return [c for c in table_columns if c != "config" and not c.startswith("latency_iqr")]


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import warn_if_moved_on
    from ..utils.options import resolve_options
    from ..configs import format_config
    from ..nas.lookup import search
    from ..nas.table_file import REQUIRED_COLUMNS, read_table

    opts = resolve_options(SearchOptions, args)
    table = read_table(opts.table, required=REQUIRED_COLUMNS)
    # a table of weights the run has moved on from still reads, and says so (one warning line)
    warn_if_moved_on(table.meta.get("checkpoint"), table.meta.get("weights_sha256"), opts.table)
    if table.meta.get("split") == "test":
        print(f"note: {opts.table} was built on the test split; selecting on it makes test accuracy optimistic "
              f"(train with --val-size N and build the table on val; report on test)", file=sys.stderr)
    best = search(table, max_mmacs=opts.max_mmacs, max_latency_ms=opts.max_latency_ms,
                  latency_column=opts.latency_column, max_params_m=opts.max_params_m,
                  count_interp=opts.count_interp, top=opts.top)
    columns = shown_columns(table.columns)
    if opts.json:
        print(json.dumps([{"config": format_config(r["config"]), **{c: r[c] for c in columns}} for r in best],
                         indent=1))
    else:
        print(format_rows(best, columns))
    return 0
