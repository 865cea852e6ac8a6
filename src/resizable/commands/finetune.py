"""``resizable finetune``: train only the chosen sub-network S of a trained ResizableNet."""
from __future__ import annotations

import argparse

HELP = "fine-tune one configuration (its BN branches and the shared weights); evaluates it before and after"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args
    from ..nas.finetune import FinetuneOptions

    add_dataclass_args(parser, FinetuneOptions)


def run(args: argparse.Namespace) -> int:
    from ..utils.options import resolve_options
    from ..nas.finetune import FinetuneOptions, finetune_checkpoint

    run_dir = finetune_checkpoint(resolve_options(FinetuneOptions, args))
    import json

    summary = json.loads((run_dir / "finetune.json").read_text())
    print(f"{summary['config']} after {summary['epochs']} epoch(s); BN statistics {summary['bn_statistics']}")
    for split in summary["splits"]:
        b, a = summary["before"][split], summary["after"][split]
        top5 = f", top-5 {b['top5']:.2f} -> {a['top5']:.2f} %" if "top5" in b else ""
        print(f"  {split}: top-1 {b['top1']:.2f} -> {a['top1']:.2f} %{top5}")
    print(f"run folder: {run_dir}  (export it with: resizable export --checkpoint {run_dir} "
          f"--config {summary['config']})")
    return 0
