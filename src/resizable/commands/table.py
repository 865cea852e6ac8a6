"""``resizable table``: the Resizable-NAS lookup table of a checkpoint (every configuration)."""
from __future__ import annotations

import argparse
import dataclasses
import sys

HELP = "evaluate every configuration of a checkpoint into a lookup table (resumable, shardable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args

    from ..nas.lookup import TableOptions

    add_dataclass_args(parser, TableOptions)
    parser.add_argument("--merge", nargs="+", metavar="CSV",
                        help="instead of evaluating: merge these table files (e.g. shards) into --out")
    parser.add_argument("--merge-latency", nargs="+", metavar="CSV",
                        help="add the latency columns of these latency tables to the table --out "
                             "(after building it, when --checkpoint is given)")


def _summary(table, path) -> str:
    recs = table.records()
    if not recs:
        return f"{path}: no rows"
    top1 = [r["top1_pct"] for r in recs]
    macs = [r["mmacs"] for r in recs]
    done = len(table.all_configs()) - len(table.missing())
    return (f"{path}: {done}/{len(table.all_configs())} configurations; top-1 {min(top1):.2f}..{max(top1):.2f} %, "
            f"{min(macs):.2f}..{max(macs):.2f} MMACs")


def run(args: argparse.Namespace) -> int:
    from ..utils.options import resolve_options
    from ..utils.console import progress_enabled
    from ..nas.lookup import TableOptions, table_checkpoint
    from ..nas.table_file import merge_latency, merge_tables, read_table

    opts = resolve_options(TableOptions, args)
    if args.merge:
        if opts.checkpoint:
            raise ValueError("--merge joins existing tables; do not give --checkpoint with it")
        table = merge_tables(args.merge, opts.out)
        print(_summary(table, opts.out))
    elif opts.checkpoint:
        try:
            table, path = table_checkpoint(dataclasses.replace(opts, progress=progress_enabled(opts.progress)))
        except KeyboardInterrupt:
            print(f"interrupted: {opts.out} keeps every finished work unit; the same command continues it: "
                  f"{getattr(args, 'command_line', 'resizable table ...')}", file=sys.stderr, flush=True)
            raise
        print(_summary(table, path))
        if table.missing() and "shard" in table.meta:
            print(f"shard {table.meta['shard']} is done; the last shard to finish writes {opts.out} "
                  f"(or run: resizable table --merge <shard files> --out {opts.out})")
    elif not args.merge_latency:
        raise ValueError("give --checkpoint (build a table), --merge (join shards) or --merge-latency")
    if args.merge_latency:
        table = merge_latency(read_table(opts.out), args.merge_latency, opts.out)
        print(f"{opts.out}: latency columns now {[c for c in table.columns if c.startswith('latency_ms')]}")
    return 0
