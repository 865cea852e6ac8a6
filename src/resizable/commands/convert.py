"""``resizable convert``: a torchvision/timm model with local weights, or a run, into a resizable checkpoint."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Optional, Tuple

HELP = ("turn trained weights (a torchvision/timm name plus a state_dict file, or a run of this project) into a "
        "checkpoint that train --init-checkpoint continues from")


@dataclass(frozen=True)
class ConvertOptions:
    """Options of ``resizable convert``."""

    source: str = field(default="", metadata={"help": "a torchvision (or timm) model name, e.g. resnet18, or a "
                                                     "checkpoint file or run folder of this project"})
    weights: Optional[str] = field(default=None, metadata={"help": "with a model name: its state_dict file "
                                                                  "(torch.save(model.state_dict(), path))"})
    out: str = field(default="", metadata={"help": "the resizable checkpoint to write"})
    factors: Optional[Tuple[float, ...]] = field(default=None, metadata={"help": "scaling factor list L of the "
                                                                                "result (default: 0.45,0.65,0.85,1)"})
    config: Optional[str] = field(default=None, metadata={"help": "from a run: the configuration whose BN branches "
                                                                 "start every branch (default: the run's single "
                                                                 "configuration, else the largest)"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import add_dataclass_args

    add_dataclass_args(parser, ConvertOptions)


def run(args: argparse.Namespace) -> int:
    from ..options import resolve_options
    from ..convert_checkpoint import convert_checkpoint

    opts = resolve_options(ConvertOptions, args)
    if not opts.source or not opts.out:
        raise ValueError("--source (a model name or a run) and --out (the checkpoint to write) are required")
    path = convert_checkpoint(opts.source, opts.out, weights=opts.weights, factors=opts.factors, config=opts.config)
    print(f"wrote {path}; continue it with: resizable train --init-checkpoint {path} --sampling fair ...")
    return 0
