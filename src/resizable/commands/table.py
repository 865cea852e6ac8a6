"""``resizable table``: the Resizable-NAS lookup table of a checkpoint (every configuration)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Optional, Tuple

HELP = "evaluate every configuration of a checkpoint into a lookup table (resumable, shardable)"


@dataclass(frozen=True)
class TableOptions:
    """Options of ``resizable table``."""

    checkpoint: Optional[str] = field(default=None, metadata={"help": "checkpoint file or run folder"})
    out: str = field(default="table.csv", metadata={"help": "the table CSV (resumed if it exists)"})
    dataset: Optional[str] = field(default=None, metadata={"help": "dataset (default: the training run's)"})
    data_dir: Optional[str] = field(default=None, metadata={"help": "dataset folder"})
    split: Optional[str] = field(default=None, metadata={"help": "split to evaluate (default: val when the run holds "
                                                                "images out with --val-size, else test)",
                                                        "choices": ("train", "test", "val")})
    batch_size: int = field(default=256, metadata={"help": "evaluation batch size"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    input_size: Optional[int] = field(default=None, metadata={"help": "input resolution (default: the run's)"})
    calibrate_bn: int = field(default=0, metadata={"help": "recompute BN statistics per configuration on this "
                                                           "many training batches (0: keep the trained ones)"})
    calibrate_batch_size: Optional[int] = field(default=None, metadata={"help": "batch size for --calibrate-bn"})
    latency: Optional[str] = field(default=None, metadata={"help": "also time each exported configuration here",
                                                           "choices": ("cpu", "cuda")})
    latency_batch: Tuple[int, ...] = field(default=(1,), metadata={"help": "batch sizes to time, e.g. 1,32"})
    latency_warmup: int = field(default=10, metadata={"help": "untimed runs before timing"})
    latency_repeats: int = field(default=50, metadata={"help": "timed runs (the median is kept)"})
    latency_tag: Optional[str] = field(default=None, metadata={"help": "latency column suffix (default: device)"})
    unit_depth: int = field(default=1, metadata={"help": "configurations sharing this many leading factors "
                                                         "form one resumable work unit"})
    shard: Optional[str] = field(default=None, metadata={"help": "i/n: build shard i (0-based) of n; "
                                                                "default from torchrun's RANK/WORLD_SIZE"})
    progress: bool = field(default=True, metadata={"help": "progress bar with time left (shown only on a terminal)"})


def _parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n (e.g. 0/4), got {text!r}") from None
    return i, n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import add_dataclass_args

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
    from ..options import resolve_options
    from ..console import progress_enabled
    from ..nas import table_from_checkpoint
    from ..tables import merge_latency, merge_tables, read_table

    opts = resolve_options(TableOptions, args)
    if args.merge:
        if opts.checkpoint:
            raise ValueError("--merge joins existing tables; do not give --checkpoint with it")
        table = merge_tables(args.merge, opts.out)
        print(_summary(table, opts.out))
    elif opts.checkpoint:
        table, path = table_from_checkpoint(
            opts.checkpoint, opts.out, dataset=opts.dataset, data_dir=opts.data_dir, split=opts.split,
            batch_size=opts.batch_size, device=opts.device, input_size=opts.input_size,
            calibrate_bn=opts.calibrate_bn, calibrate_batch_size=opts.calibrate_batch_size,
            latency_device=opts.latency, latency_batch=opts.latency_batch, latency_warmup=opts.latency_warmup,
            latency_repeats=opts.latency_repeats, latency_tag=opts.latency_tag, unit_depth=opts.unit_depth,
            shard=_parse_shard(opts.shard), progress=progress_enabled(opts.progress))
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
