"""The ``resizable`` command line: thin sub-commands, each parsing into a dataclass and calling the library."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

# sub-command -> module under resizable.commands defining HELP, add_arguments(parser), run(args) -> int
COMMANDS = {
    "models": "models",
    "train": "train",
    "eval": "evaluate",
    "demo": "demo",
    "export": "export",
    "table": "table",
    "latency": "latency",
    "search": "search",
    "pareto": "pareto",
    "finetune": "finetune",
    "adapt": "adapt",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        # User errors: one clear line, no traceback.
        print(f"resizable {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (e.g. `resizable models | head`): not an error of ours
        sys.stderr = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"resizable {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
