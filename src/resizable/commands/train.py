"""``resizable train``: train a ResizableNet (Algorithm 1); works under torchrun."""
from __future__ import annotations

import argparse

HELP = "train a resizable network (fair/random/single sampling; --recipe aug for Resizable-Aug)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..config import add_dataclass_args
    from ..train import TrainConfig

    parser.add_argument("--config", dest="config_file", metavar="YAML",
                        help="YAML file of options (flags given here override it)")
    add_dataclass_args(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    from ..config import resolve_config
    from ..train import TrainConfig, train

    cfg = resolve_config(TrainConfig, args, args.config_file)
    run_dir = train(cfg)
    print(f"run folder: {run_dir}")
    return 0
