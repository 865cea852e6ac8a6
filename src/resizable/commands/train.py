"""``resizable train``: train a ResizableNet (Algorithm 1); works under torchrun."""
from __future__ import annotations

import argparse
import sys

HELP = ("train a resizable network (fair, sandwich, random or single sampling; in-place, ensemble or teacher "
        "distillation; --recipe aug for Resizable-Aug)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..utils.options import add_dataclass_args
    from ..training.trainer import TrainOptions

    parser.add_argument("--options-file", dest="config_file", metavar="YAML",
                        help="YAML file of options (flags given here override it)")
    # "config" means a scaling configuration everywhere else; the YAML file's old flag still reads, with a warning
    parser.add_argument("--config", dest="old_config_file", metavar="YAML", help=argparse.SUPPRESS)
    add_dataclass_args(parser, TrainOptions)


def run(args: argparse.Namespace) -> int:
    from ..utils.options import resolve_options
    from ..utils.distributed import is_main_process
    from ..training.run_folder import resume_folder, saved_options
    from ..training.trainer import TrainOptions, train

    if args.old_config_file:
        print("resizable train: warning: --config YAML is now --options-file YAML (--config is a scaling "
              "configuration in every other command)", file=sys.stderr)
        if args.config_file:
            raise ValueError("give the options file once: --options-file YAML")
        args.config_file = args.old_config_file
    cfg = resolve_options(TrainOptions, args, args.config_file)
    if cfg.resume:
        # a resumed run keeps its own options; only what is given here may differ (and is checked)
        saved = saved_options(resume_folder(cfg.resume), TrainOptions)
        saved.pop("resume", None)
        cfg = resolve_options(TrainOptions, args, args.config_file, base=saved)
    run_dir = train(cfg)
    if is_main_process():
        print(f"run folder: {run_dir}")
    return 0
