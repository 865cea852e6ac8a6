"""The ``resizable`` command line: thin sub-commands, each parsing into a dataclass and calling the library."""
from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import sys
import warnings
from typing import List, NoReturn, Optional

__all__ = ["main", "build_parser"]

# sub-command -> module under resizable.commands defining HELP, add_arguments(parser), run(args) -> int
COMMANDS = {
    "models": "models",
    "train": "train",
    "eval": "evaluate",
    "demo": "demo",
    "export": "export",
    "predict": "predict",
    "table": "table",
    "latency": "latency",
    "search": "search",
    "pareto": "pareto",
    "finetune": "finetune",
    "adapt": "adapt",
    "convert": "convert",
    "calibrate": "calibrate",
}


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (what is wrong, and where to read more), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# a value such as "-0.5,1" or "-1" after an option is a value, not an option
_NUMBERS = re.compile(r"^-(\d|\.\d)[\d.,eE+-]*$")


def _join_negative_values(argv: List[str]) -> List[str]:
    """``--factors -0.5,1`` -> ``--factors=-0.5,1``, so argparse passes the value on (and the option's own
    check then names what is wrong with it) instead of saying "expected one argument"."""
    out: List[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NUMBERS.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="resizable",
        description="Resizable Neural Networks: train once, run at any per-stage scaling configuration.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"resizable.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line_warning(command: str):
    """``warnings.showwarning`` for the command line: ``resizable CMD: warning: message``, no source line."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"resizable {command}: warning: {message}", file=sys.stderr)
    return show


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_join_negative_values(argv))
    args.command_line = "resizable " + shlex.join(argv)  # what a command prints to say how to continue
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return int(args._run(args) or 0)
    except BrokenPipeError:
        # the reader went away (e.g. `resizable models | head`): not an error of ours
        sys.stderr = open(os.devnull, "w")
        return 0
    except RuntimeError as e:
        if type(e).__name__ != "TrainingDiverged":
            raise
        print(f"resizable {args.command}: error: {e}", file=sys.stderr)
        return 3
    except ImportError as e:
        # an optional package imported where no check of the command expected it: still one line, exit 2
        if (e.name or "").split(".")[0] in ("resizable", ""):
            raise  # a broken installation of this library is a bug to report, with its traceback
        from .utils.optional import missing_dependency

        print(f"resizable {args.command}: error: {missing_dependency(e, f'resizable {args.command}')}",
              file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        # User errors (bad options, missing or unreadable files): one clear line, no traceback.
        print(f"resizable {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resizable {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
