"""``resizable convert``: a torchvision/timm model with local weights, or a run, into a resizable checkpoint."""
from __future__ import annotations

import argparse

HELP = ("turn trained weights (a torchvision/timm name plus a state_dict file, or a run of this project) into a "
        "checkpoint that train --init-checkpoint continues from")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..deploy.convert import ConvertOptions
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, ConvertOptions)


def run(args: argparse.Namespace) -> int:
    from ..deploy.convert import ConvertOptions, convert_checkpoint
    from ..utils.options import resolve_options

    path = convert_checkpoint(resolve_options(ConvertOptions, args))
    print(f"wrote {path}; continue it with: resizable train --init-checkpoint {path} --sampling fair ...")
    return 0
