"""``resizable demo``: the main job on the built-in default (Fashion-MNIST, a small RS-ResNet)."""
from __future__ import annotations

import argparse

HELP = "train a small RS-ResNet on Fashion-MNIST and report every configuration (the built-in demo)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..config import add_dataclass_args
    from ..demo import DemoConfig

    add_dataclass_args(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    from ..config import resolve_config
    from ..demo import DemoConfig, run_demo

    run_demo(resolve_config(DemoConfig, args))
    return 0
