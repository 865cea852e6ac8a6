"""``resizable table``: the Resizable-NAS lookup table of a checkpoint (every configuration)."""
from __future__ import annotations

import argparse
import dataclasses

HELP = "evaluate every configuration of a checkpoint into a lookup table (resumable, shardable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import add_dataclass_args

    from ..nas import TableOptions

    add_dataclass_args(parser, TableOptions)
    parser.add_argument("--latency-runtime", default="torch", choices=("torch", "torchscript", "onnxruntime"),
                        help="with --latency: run each exported network in torch (eager), torchscript or "
                             "onnxruntime (pip install 'resizable[onnx]') (default: torch)")
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


def _runtime_latency(opts, runtime: str, table, path):
    """Time every configuration of the finished table in ``runtime`` into ``<table>.latency-<tag>.csv``
    (resumable), then merge its columns and runtime into the table."""
    from pathlib import Path

    from ..checkpoint import load_model
    from ..console import progress_enabled
    from ..latency import build_latency_table
    from ..tables import merge_latency

    model, payload = load_model(opts.checkpoint)
    h, w = (int(v) for v in table.meta["input_size"].split("x"))
    tag = opts.latency_tag or f"{opts.latency.split(':')[0]}-{runtime}"
    lat_path = Path(path).with_name(f"{Path(path).stem}.latency-{tag}.csv")
    lat = build_latency_table(model, lat_path, input_size=(h, w), configs=list(table.rows), device=opts.latency,
                              batch_sizes=opts.latency_batch, warmup=opts.latency_warmup,
                              repeats=opts.latency_repeats, tag=tag, model_name=payload.get("model_name"),
                              progress=progress_enabled(opts.progress), runtime=runtime)
    print(f"latency in {runtime}: {lat_path}")
    table = merge_latency(table, [lat_path], path)
    for key in ("runtime", "runtime_version", "memory_format"):  # merge_latency copies the device keys only
        table.meta[f"latency_{tag}_{key}"] = lat.meta[key]
    table.write(path)
    return table


def run(args: argparse.Namespace) -> int:
    from ..options import resolve_options
    from ..console import progress_enabled
    from ..distributed import launch_info
    from ..nas import TableOptions, table_from_checkpoint
    from ..tables import merge_latency, merge_tables, read_table

    opts = resolve_options(TableOptions, args)
    if args.merge:
        if opts.checkpoint:
            raise ValueError("--merge joins existing tables; do not give --checkpoint with it")
        table = merge_tables(args.merge, opts.out)
        print(_summary(table, opts.out))
    elif opts.checkpoint:
        # eager torch latency is measured row by row with the accuracy; another runtime's goes into its
        # own latency table, merged into the finished table
        runtime = args.latency_runtime
        separate = bool(opts.latency) and runtime != "torch"
        if separate and (opts.shard or launch_info()[1] > 1):
            raise ValueError(f"--latency-runtime {runtime} does not run in shards; merge the shards, then time the "
                             f"configurations with: resizable latency --checkpoint {opts.checkpoint} --runtime "
                             f"{runtime}, and --merge-latency its table")
        table, path = table_from_checkpoint(dataclasses.replace(
            opts, progress=progress_enabled(opts.progress), latency=None if separate else opts.latency))
        if separate:
            table = _runtime_latency(opts, runtime, table, path)
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
