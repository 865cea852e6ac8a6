"""Write ``docs/cli.md``, the command reference, from the ``resizable`` command line's own parsers.

Every sub-command (and every step of a command with steps, such as ``adapt``) gets its help line,
its usage and a table of its options, read from the same ``argparse`` parsers that ``resizable``
runs, so the page says what ``--help`` says and cannot drift from it (a test regenerates it and
compares). The output does not depend on the terminal: the width is fixed and colour is off.

    .venv/bin/python scripts/gen_cli_docs.py            # rewrite docs/cli.md
    .venv/bin/python scripts/gen_cli_docs.py --check    # exit 1 when docs/cli.md is out of date
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "cli.md"
WIDTH = "100"  # columns argparse wraps the usage lines at


@contextlib.contextmanager
def fixed_terminal() -> Iterator[None]:
    """argparse reads the terminal's width (and, from Python 3.14, its colour support) from the
    environment: pin both while rendering, and put them back after."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "PYTHON_COLORS")}
    os.environ.update(COLUMNS=WIDTH, NO_COLOR="1")
    for key in ("FORCE_COLOR", "PYTHON_COLORS"):
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def subcommands(parser: argparse.ArgumentParser) -> List[Tuple[str, str, argparse.ArgumentParser]]:
    """(name, help line, parser) of each sub-command of ``parser``, in the order ``--help`` lists them."""
    out = []
    for action in parser._actions:  # argparse keeps no public list of sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def invocation(action: argparse.Action) -> str:
    """How an option is written, as ``--help`` writes it: ``--split {train,test,val}``, ``--progress, --no-progress``."""
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    if action.metavar is not None:
        value = action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    elif action.choices is not None:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        value = action.dest.upper() if action.option_strings else action.dest
    if not action.option_strings:  # a positional argument: its name alone, as --help shows it
        return value
    value = {"?": f"[{value}]", "*": f"[{value} ...]", "+": f"{value} [{value} ...]"}.get(action.nargs, value)
    return ", ".join(f"{flag} {value}" for flag in action.option_strings)


def cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def options_table(parser: argparse.ArgumentParser) -> List[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        text = (action.help or "") % {**vars(action), "prog": parser.prog} if action.help else ""
        rows.append(f"| `{invocation(action)}` | {cell(text)} |")
    return ["| option | what it does |", "| --- | --- |", *rows] if rows else []


def section(title: str, help_line: str, parser: argparse.ArgumentParser) -> List[str]:
    lines = [f"## {title}", "", parser.description or help_line, "", "```", parser.format_usage().strip(), "```", ""]
    table = options_table(parser)
    lines += table + [""] if table else []
    return lines + ([" ".join(parser.epilog.split()), ""] if parser.epilog else [])


def anchor(title: str) -> str:
    """The heading's anchor as GitHub makes it (lower case, spaces to hyphens, punctuation dropped)."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def render() -> str:
    """The whole page, from ``resizable.cli.build_parser()``."""
    from resizable.cli import build_parser

    with fixed_terminal():
        parser = build_parser()
        pages = []  # (title, help line, parser), commands with steps followed by their steps
        for name, help_line, sub in subcommands(parser):
            pages.append((f"resizable {name}", help_line, sub))
            pages += [(f"resizable {name} {step}", step_help, step_parser)
                      for step, step_help, step_parser in subcommands(sub)]
        head = ["# Command reference", "",
                "Generated from the command line's own parsers by `scripts/gen_cli_docs.py`; do not edit by hand. "
                "`resizable COMMAND --help` prints the same. Options shared by several commands mean the same "
                "in each; `train` also reads its options from `--options-file YAML` (flags win).", "",
                "| command | what it does |", "| --- | --- |"]
        head += [f"| [`{title}`](#{anchor(title)}) | {cell(help_line)} |" for title, help_line, _ in pages]
        body: List[str] = []
        for title, help_line, sub in pages:
            body += section(title, help_line, sub)
    return "\n".join(head + [""] + body).rstrip() + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare with docs/cli.md; exit 1 when it differs")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    from resizable import atomic_write_text

    atomic_write_text(OUT, text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
