"""Command options: a frozen dataclass resolved from defaults, then a YAML file, then flags."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict, Optional, Type, TypeVar

import yaml

from .fileio import atomic_write_text

__all__ = ["add_dataclass_args", "resolve_options", "option", "required", "options_to_dict", "write_options",
           "parse_floats", "yaml_problem", "check_options", "check_value"]

T = TypeVar("T")


def parse_floats(text: str) -> tuple:
    """``"0.45,0.65,1"`` -> ``(0.45, 0.65, 1.0)``."""
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _parse_ints(text: str) -> tuple:
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def yaml_problem(error: Exception) -> str:
    """A YAML error in one line: what is wrong and where (PyYAML's own message spans several lines)."""
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def _parse_mapping(text: str) -> dict:
    """``"{widths: [8, 16, 32]}"`` or ``"widths: [8, 16, 32]"`` -> a dict (YAML)."""
    try:
        value = yaml.safe_load(text) if str(text).strip() else {}
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"expected a YAML mapping, got {text!r} ({yaml_problem(e)})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping like '{{key: value}}', got {text!r}")
    return value


def _base_type(tp: Any) -> Any:
    """Strip Optional[...]"""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _base_type(args[0])
    return tp


def _converter(tp: Any):
    tp = _base_type(tp)
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        inner = args[0] if args else str
        if inner is float:
            return parse_floats
        if inner is int:
            return _parse_ints
        return lambda s: tuple(v for v in s.split(",") if v)
    if tp in (int, float, str):
        return tp
    if tp is dict or origin is dict:
        return _parse_mapping
    return str


def add_dataclass_args(parser: argparse.ArgumentParser, cls: Type, exclude: tuple = ()) -> None:
    """Add one ``--flag`` per field of ``cls`` (underscores become dashes). Defaults stay unset,
    so :func:`resolve_options` can tell what the command line gave. A field whose metadata says
    ``required`` must be given (on the command line or in the YAML file)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "") + (" (required)" if f.metadata.get("required") else "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if default is not None and "default:" not in help_text:
            # a None default is explained by the help text itself ("default: the run's"), never printed as None
            shown = ",".join(format(v, "g") if isinstance(v, float) else str(v) for v in default) \
                if isinstance(default, tuple) else default
            help_text = f"{help_text} (default: {shown})" if help_text else f"(default: {shown})"
        tp = _base_type(hints[f.name])
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            choices = f.metadata.get("choices")
            parser.add_argument(flag, dest=f.name, type=_converter(hints[f.name]), choices=choices,
                                default=argparse.SUPPRESS, help=help_text, metavar=f.metadata.get("metavar"))


def _coerce(cls: Type, name: str, value: Any) -> Any:
    tp = typing.get_type_hints(cls)[name]
    if value is None:
        return None
    base = _base_type(tp)
    if typing.get_origin(base) in (tuple, list) and isinstance(value, (list, tuple)):
        return tuple(value)
    if typing.get_origin(base) in (tuple, list) and isinstance(value, (str, int, float)):
        return _converter(base)(str(value))
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (base is dict or typing.get_origin(base) is dict) and isinstance(value, str):
        return _parse_mapping(value)
    return value


def resolve_options(cls: Type[T], args: Optional[argparse.Namespace] = None, yaml_path: Optional[str] = None,
                   base: Optional[Dict[str, Any]] = None, **overrides: Any) -> T:
    """Defaults of ``cls``, then ``base`` (e.g. a run's saved options), then the YAML mapping at
    ``yaml_path``, then command-line ``args``, then ``overrides``. Unknown keys raise ``ValueError``
    naming the accepted ones."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values: Dict[str, Any] = {}
    if base:
        unknown = sorted(set(base) - set(names))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; accepted: {names}")
        values.update(base)
    if yaml_path:
        if not Path(yaml_path).is_file():
            raise FileNotFoundError(f"no config file at {yaml_path} (--options-file takes a YAML file of option: value)")
        try:
            data = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as e:
            raise ValueError(f"{yaml_path}: not UTF-8 text (byte {e.start}), so not a YAML config file") from None
        except yaml.YAMLError as e:
            raise ValueError(f"{yaml_path}: not readable YAML ({yaml_problem(e)})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{yaml_path}: a config file must be a mapping of option: value")
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{yaml_path}: unknown option(s) {unknown}; accepted: {names}")
        values.update(data)
    if args is not None:
        values.update({k: v for k, v in vars(args).items() if k in names})
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; accepted: {names}")
    values.update(overrides)
    missing = [f.name for f in dataclasses.fields(cls) if f.metadata.get("required") and values.get(f.name) is None]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise ValueError(f"{flags} {'is' if len(missing) == 1 else 'are'} required")
    coerced = {}
    for k, v in values.items():
        try:
            coerced[k] = _coerce(cls, k, v)
        except (argparse.ArgumentTypeError, ValueError) as e:
            raise ValueError(f"--{k.replace('_', '-')} {v!r}: {e}") from None
    return cls(**coerced)


BOUNDS = ("min", "max", "above", "below")


def required(help: str, **meta: Any) -> Any:
    """A dataclass field that the user must give (``None`` until resolved; see :func:`resolve_options`)."""
    return dataclasses.field(default=None, metadata={"help": help, "required": True, **meta})


def option(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with a default, its ``--help`` text and what it accepts (mutable defaults are copied).

    ``meta`` may say ``choices`` (one of), ``min`` / ``max`` (inclusive), ``above`` / ``below`` (exclusive),
    ``finite=False`` (a float that may be infinite), ``component=True`` (a string that is one folder name),
    ``metavar``. The type comes from the annotation;
    :func:`check_options` checks both, whatever the value came from (flags, YAML, Python).
    """
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **meta})
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def _accepted(kind: str, meta: Dict[str, Any]) -> str:
    """What a field accepts, in words: ``an integer >= 1``, ``one of: a, b``."""
    if meta.get("choices"):
        return "one of: " + ", ".join(map(str, meta["choices"]))
    parts = []
    for key, sign in (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<")):
        if meta.get(key) is not None:
            parts.append(f"{sign} {meta[key]:g}" if isinstance(meta[key], float) else f"{sign} {meta[key]}")
    return kind + (" " + " and ".join(parts) if parts else "")


def _problem(value: Any, tp: Any, meta: Dict[str, Any]) -> Optional[str]:
    """What is wrong with ``value`` for a field of type ``tp`` (None when nothing is)."""
    import math

    base = _base_type(tp)
    if value is None:
        return None if base is not tp else "a value is needed"
    origin = typing.get_origin(base)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return "expected a comma-separated list"
        inner = (typing.get_args(base) or (str,))[0]
        for item in value:
            why = _problem(item, inner, meta)
            if why:
                return f"item {item!r}: {why}"
        return None
    if base is dict or origin is dict:
        return None if isinstance(value, dict) else "expected a mapping like '{key: value}'"
    if base is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected {_accepted('an integer', meta)}"
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected {_accepted('a number', meta)}"
        if meta.get("finite", True) and not math.isfinite(value):
            return f"expected {_accepted('a finite number', meta)}"
    elif base is str:
        if not isinstance(value, str):
            return f"expected {_accepted('a string', meta)}"
        if meta.get("component") and (value in ("", ".", "..") or "/" in value or "\\" in value):
            return "expected one folder name (no '/' or '\\', not '.' or '..'): it names a folder inside --out-dir"
    if meta.get("choices") and value not in meta["choices"]:
        return "expected " + _accepted("", meta)
    kind = "an integer" if base is int else "a number"
    for key, bad in (("min", lambda v, b: v < b), ("max", lambda v, b: v > b), ("above", lambda v, b: v <= b),
                     ("below", lambda v, b: v >= b)):
        if meta.get(key) is not None and bad(value, meta[key]):
            return f"expected {_accepted(kind, meta)}"
    return None


def check_value(cls: Type, name: str, value: Any) -> None:
    """Raise ``ValueError`` naming the option, the value and what it accepts, unless ``value`` fits field ``name``."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    _raise_misfit(name, value, typing.get_type_hints(cls)[name], f.metadata)


def _raise_misfit(name: str, value: Any, tp: Any, meta: Any) -> None:
    why = _problem(value, tp, dict(meta))
    if why:
        shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
        raise ValueError(f"--{name.replace('_', '-')} {shown!r}: {why}")


def check_options(obj: Any) -> None:
    """Check every field of an options dataclass against its annotation and declared bounds (call it first in
    ``__post_init__``); the first misfit raises ``ValueError`` as :func:`check_value` words it."""
    hints = typing.get_type_hints(type(obj))  # once per check: resolving the annotations is the costly part
    for f in dataclasses.fields(obj):
        if f.init:
            _raise_misfit(f.name, getattr(obj, f.name), hints[f.name], f.metadata)


def options_to_dict(cfg: Any) -> Dict[str, Any]:
    """The options as plain YAML-friendly values (tuples as lists)."""
    out = {}
    for k, v in dataclasses.asdict(cfg).items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def write_options(cfg: Any, path: Path) -> None:
    """Write the resolved options as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(options_to_dict(cfg), sort_keys=False))
