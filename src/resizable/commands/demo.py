"""``resizable demo``: the main job on the built-in default (Fashion-MNIST, a small RS-ResNet)."""
from __future__ import annotations

import argparse

HELP = "train a small RS-ResNet on Fashion-MNIST and report every configuration (the built-in demo)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import add_dataclass_args
    from ..demo import DemoOptions

    add_dataclass_args(parser, DemoOptions)


def run(args: argparse.Namespace) -> int:
    from ..options import resolve_options
    from ..demo import DemoOptions, run_demo

    run_demo(resolve_options(DemoOptions, args))
    return 0
