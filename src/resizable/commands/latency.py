"""``resizable latency``: time the exported network of each configuration on this machine."""
from __future__ import annotations

import argparse
import dataclasses

HELP = "measure the latency of each configuration's exported static network (median and spread)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..nas.latency import LatencyOptions
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, LatencyOptions)


def run(args: argparse.Namespace) -> int:
    from ..utils.console import progress_enabled
    from ..nas.latency import LatencyOptions, latency_checkpoint
    from ..utils.options import resolve_options

    opts = resolve_options(LatencyOptions, args)
    table = latency_checkpoint(dataclasses.replace(opts, progress=progress_enabled(opts.progress)))
    if opts.template:
        print(f"wrote {opts.out}: fill in the latency column(s), then: resizable table --merge-latency {opts.out} "
              f"--out TABLE.csv")
        return 0
    cols = [c for c in table.columns if c.startswith("latency_ms")]
    for col in cols:
        values = [table.value(c, col) for c in table.rows]
        print(f"{col}: {min(values):.3f}..{max(values):.3f} ms over {len(values)} configurations")
    print(f"wrote {opts.out} ({table.meta['runtime_version']} on {table.meta['device_name']}, "
          f"{table.meta['threads']} threads)")
    return 0
