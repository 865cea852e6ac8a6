"""``resizable convert``: a torchvision/timm model with local weights, or a run, into a resizable checkpoint."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional, Tuple

from ..utils.options import check_options, option, required

HELP = ("turn trained weights (a torchvision/timm name plus a state_dict file, or a run of this project) into a "
        "checkpoint that train --init-checkpoint continues from")


@dataclass(frozen=True)
class ConvertOptions:
    """Options of ``resizable convert``."""

    source: Optional[str] = required("a torchvision (or timm) model name, e.g. resnet18, or a checkpoint file or "
                                     "run folder of this project")
    weights: Optional[str] = option(None, "with a model name: its state_dict file "
                                          "(torch.save(model.state_dict(), path))")
    out: Optional[str] = required("the resizable checkpoint to write (a folder: converted.pt inside it)")
    factors: Optional[Tuple[float, ...]] = option(None, "scaling factor list L of the result (default: "
                                                        "0.45,0.65,0.85,1)", min=0.05, max=1.0)
    config: Optional[str] = option(None, "from a run: the configuration whose BN branches start every branch "
                                         "(default: the run's single configuration, else the largest)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args

    add_dataclass_args(parser, ConvertOptions)


def run(args: argparse.Namespace) -> int:
    from ..deploy.convert import convert_checkpoint
    from ..utils.options import resolve_options
    from ..training.run_folder import output_path

    opts = resolve_options(ConvertOptions, args)
    out = output_path(opts.out, "converted.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    path = convert_checkpoint(opts.source, str(out), weights=opts.weights, factors=opts.factors, config=opts.config)
    print(f"wrote {path}; continue it with: resizable train --init-checkpoint {path} --sampling fair ...")
    return 0
