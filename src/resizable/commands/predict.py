"""``resizable predict``: classify image files with a run or an exported network (top-k classes per image)."""
from __future__ import annotations

import argparse
import sys

HELP = "classify image files or folders with a run or an exported network: top-k classes per image"

EXIT_UNREADABLE = 1  # some images could not be read (the rest were classified)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..inference.predict import PredictOptions
    from ..utils.options import add_dataclass_args

    parser.usage = "resizable predict [options] RUN PATH [PATH ...]"
    parser.epilog = ("Exit status: 0 when every image was classified, 1 when some could not be read (one line "
                     "each on stderr; the rest are classified), 2 for bad arguments.")
    add_dataclass_args(parser, PredictOptions, exclude=("paths",))
    parser.add_argument("inputs", nargs="*", metavar="RUN PATH",
                        help="the run folder, checkpoint or exported network (unless --checkpoint gives it), then "
                             "image files, folders (searched recursively) or - (paths read from stdin, one a line)")
    parser.add_argument("--output", dest="out", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # alias of --out


def run(args: argparse.Namespace) -> int:
    from ..inference.predict import PredictOptions, predict_checkpoint
    from ..utils.options import resolve_options

    inputs = list(args.inputs)
    given = {}
    if getattr(args, "checkpoint", None) is None:
        if not inputs:
            raise ValueError("give the run (or exported network) and then image files, folders or -")
        given["checkpoint"] = inputs.pop(0)
    opts = resolve_options(PredictOptions, args, paths=tuple(inputs), **given)
    summary = predict_checkpoint(opts)
    if summary.out is not None:
        unreadable = f", {summary.unreadable} unreadable" if summary.unreadable else ""
        print(f"wrote {summary.out} ({summary.classified} images classified{unreadable})")
    if summary.unreadable:
        total = summary.classified + summary.unreadable
        print(f"resizable predict: {summary.unreadable} of {total} images could not be read", file=sys.stderr)
        return EXIT_UNREADABLE
    return 0
