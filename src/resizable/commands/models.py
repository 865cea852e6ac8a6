"""``resizable models``: list the registered models with their stages and default factor list."""
from __future__ import annotations

import argparse

HELP = "list registered models (name, stages, factor list, configurations, params)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="", help="only names containing this text")


def run(args: argparse.Namespace) -> int:
    from .. import count_params; from .. import create_model; from .. import list_models

    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no model name contains {args.pattern!r}; known models: {', '.join(list_models())}")
    print(f"{'model':<24}{'stages':>7}  {'factors':<26}{'configs':>8}{'params (M)':>12}")
    for name in names:
        m = create_model(name)
        print(f"{name:<24}{m.num_stages:>7}  {str(m.factors):<26}{len(m.factors) ** m.num_stages:>8}"
              f"{count_params(m) / 1e6:>12.2f}")
    return 0
