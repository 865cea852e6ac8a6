"""Lookup-table files: the format, reading, appending and resuming, shards, merging.

A table is a CSV file with ``#`` metadata lines on top (see ``docs/nas.md``): the kind of table
(``# resizable-table v1`` or ``# resizable-latency v1``), what it is for (model, factor list,
architecture and weight hashes, data, input size, calibration), then a header row with units in
the column names and one row per configuration. Values are kept as the text the file holds, so
rewriting a table never changes a digit. Rows are appended and flushed as they are made, so a
killed build resumes where it stopped; a last line cut short by a crash is dropped on reading.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..configs import Config, all_configs, format_config, format_factor, parse_config
from ..utils.fileio import atomic_write_text, read_text
from ..fingerprint import weights_sha256  # the one weights identity (tables record it)
from ..net import ResizableNet, SizeLike, to_size2d

__all__ = [
    "TABLE_MAGIC",
    "LATENCY_MAGIC",
    "TABLE_IDENTITY",
    "ARCH_IDENTITY",
    "REQUIRED_COLUMNS",
    "PathLike",
    "LATENCY_COLUMN_RE",
    "TableError",
    "Table",
    "weights_sha256",
    "arch_sha256",
    "model_meta",
    "format_millions",
    "read_table",
    "check_row",
    "check_same",
    "open_table",
    "append_rows",
    "shard_path",
    "check_shard",
    "parse_shard",
    "merge_tables",
    "latency_columns",
    "merge_latency",
]

TABLE_MAGIC = "resizable-table v1"
LATENCY_MAGIC = "resizable-latency v1"
PathLike = Union[str, os.PathLike]

# Metadata that makes two tables "the same table": rows from files that differ here are never mixed.
TABLE_IDENTITY = ("model", "factors", "num_stages", "arch_sha256", "weights_sha256", "dataset", "split",
                  "input_size", "num_samples", "calibrate_bn", "bn_statistics")
# What a latency measurement depends on (not the weights, not the data).
ARCH_IDENTITY = ("factors", "num_stages", "arch_sha256", "input_size")
REQUIRED_COLUMNS = ("config", "top1_pct", "mmacs")
LATENCY_COLUMN_RE = re.compile(r"^latency_ms_b(\d+)_([A-Za-z0-9][A-Za-z0-9-]*)$")


class TableError(ValueError):
    """A table file that cannot be used as asked (not a table, another model's table, incomplete...)."""


# ---------------------------------------------------------------------------- fingerprints
def arch_sha256(model: ResizableNet) -> str:
    """SHA-256 of the architecture alone (class, factor list, stage layout, parameter names and shapes)."""
    h = hashlib.sha256()
    h.update(f"{type(model).__name__}|{model.factors}|{model.stem_strides}|{model.stage_strides}\n".encode())
    for name, value in sorted(model.state_dict().items()):
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
    return h.hexdigest()


def _format_size(size: Tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def model_meta(model: ResizableNet, input_size: SizeLike, model_name: Optional[str] = None) -> Dict[str, str]:
    """The architecture metadata every table file starts with."""
    return {
        "model": model_name or type(model).__name__,
        "factors": ",".join(format_factor(f) for f in model.factors),
        "num_stages": str(model.num_stages),
        "arch_sha256": arch_sha256(model),
        "input_size": _format_size(to_size2d(input_size)),
    }


def format_millions(n: int) -> str:
    """``n / 1e6`` as exact decimal text (integers never pass through a float): 1234567 -> "1.234567"."""
    sign = "-" if n < 0 else ""
    n = abs(int(n))
    return f"{sign}{n // 1_000_000}.{n % 1_000_000:06d}"


# ---------------------------------------------------------------------------- table files
@dataclass
class Table:
    """A lookup table file in memory: metadata, columns (with units) and one row per configuration.

    Values are kept as the text the file holds, so rewriting a table never changes a digit.
    """

    meta: Dict[str, str]
    columns: List[str]
    rows: Dict[Config, Dict[str, str]]
    magic: str = TABLE_MAGIC
    path: Optional[Path] = None

    @property
    def factors(self) -> Tuple[float, ...]:
        return tuple(sorted(float(v) for v in self.meta["factors"].split(",")))

    @property
    def num_stages(self) -> int:
        return int(self.meta["num_stages"])

    def all_configs(self) -> List[Config]:
        """Every configuration of the model the table is for, in ``ResizableNet.configs()`` order."""
        return all_configs(self.factors, self.num_stages)

    def missing(self) -> List[Config]:
        return [c for c in self.all_configs() if c not in self.rows]

    def value(self, config: Config, column: str) -> float:
        text = self.rows[config].get(column, "")
        return float(text) if text != "" else math.nan

    def records(self) -> List[Dict[str, Any]]:
        """Rows in configuration order as dicts: ``config`` (a tuple) and every other column as a float."""
        order = {c: i for i, c in enumerate(self.all_configs())}
        out = []
        for c in sorted(self.rows, key=order.__getitem__):
            rec: Dict[str, Any] = {"config": c}
            rec.update({col: self.value(c, col) for col in self.columns if col != "config"})
            rec["order"] = order[c]
            out.append(rec)
        return out

    def to_text(self) -> str:
        buf = io.StringIO()
        buf.write(_meta_text(self.magic, self.meta))
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        order = {c: i for i, c in enumerate(self.all_configs())}
        for c in sorted(self.rows, key=order.__getitem__):
            writer.writerow([self.rows[c].get(col, "") for col in self.columns])
        return buf.getvalue()

    def write(self, path: PathLike) -> Path:
        """Write the whole table (rows in configuration order) atomically."""
        path = Path(path)
        atomic_write_text(path, self.to_text())
        self.path = path
        return path


def _meta_text(magic: str, meta: Mapping[str, str]) -> str:
    lines = [f"# {magic}"]
    for key, value in meta.items():
        if "\n" in str(value):
            raise ValueError(f"metadata value of {key!r} must be one line")
        lines.append(f"# {key}: {value}")
    return "\n".join(lines) + "\n"


def _parse_table_text(text: str, source: str, magic: Optional[str]) -> Tuple[Table, int]:
    """Parse a table; returns it and the length (in characters) of its complete lines.

    A last line without its newline is a row cut short by a crash: it is dropped, not an error.
    """
    if not text.strip():
        raise TableError(f"{source} is empty: not a resizable table")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    lines = complete.split("\n")[:-1] if complete else []
    if not lines or not lines[0].startswith("#"):
        raise TableError(f"{source} is not a resizable table (it does not start with '# {magic or TABLE_MAGIC}')")
    found = lines[0][1:].strip()
    accepted = (magic,) if magic else (TABLE_MAGIC, LATENCY_MAGIC)
    if found not in accepted:
        raise TableError(f"{source}: expected '# {' or '.join(accepted)}' on the first line, found {lines[0]!r}")
    meta: Dict[str, str] = {}
    i = 1
    while i < len(lines) and lines[i].startswith("#"):
        key, sep, value = lines[i][1:].partition(":")
        if sep:
            meta[key.strip()] = value.strip()
        i += 1
    for key in ("factors", "num_stages"):
        if key not in meta:
            raise TableError(f"{source}: metadata line '# {key}: ...' is missing")
    if i >= len(lines):
        raise TableError(f"{source}: no header row after the metadata")
    columns = next(csv.reader([lines[i]]))
    if not columns or columns[0] != "config" or len(set(columns)) != len(columns):
        raise TableError(f"{source}: the header must start with 'config' and name each column once, got {columns}")
    table = Table(meta, columns, {}, found, Path(source) if source else None)
    try:
        factors, num_stages = table.factors, table.num_stages
    except ValueError:
        raise TableError(f"{source}: unreadable factors {meta['factors']!r} or num_stages {meta['num_stages']!r}") from None
    for lineno, values in enumerate(csv.reader(lines[i + 1:]), start=i + 2):
        if not values:
            continue
        if len(values) != len(columns):
            raise TableError(f"{source}, line {lineno}: {len(values)} fields where the header has {len(columns)}")
        try:
            config = parse_config(values[0], factors, num_stages)
        except ValueError as e:
            raise TableError(f"{source}, line {lineno}: {e}") from None
        row = dict(zip(columns, values))
        problem = check_row(row)
        if problem:
            raise TableError(f"{source}, line {lineno} ({values[0]}): {problem}")
        if config in table.rows and table.rows[config] != row:
            raise TableError(f"{source}, line {lineno}: configuration {values[0]} appears twice with different values")
        table.rows[config] = row
    return table, len(complete)


# What a value of each known column may be: (low, high); every other column is free text.
_PERCENT, _COUNT = (0.0, 100.0), (0.0, math.inf)


def _column_range(column: str) -> Optional[Tuple[float, float]]:
    if column in ("top1_pct", "top5_pct"):
        return _PERCENT
    if column in ("mmacs", "interp_mmacs", "params_m") or column.startswith("latency_"):
        return _COUNT
    return None


def check_row(row: Mapping[str, str]) -> Optional[str]:
    """What is wrong with a table row's values (``None`` when nothing is): a known column that is not
    a number, or outside its range (accuracies in [0, 100], costs and latencies >= 0). Empty cells
    are allowed (a latency not measured yet)."""
    for column, text in row.items():
        span = _column_range(column)
        if span is None or text == "":
            continue
        try:
            value = float(text)
        except ValueError:
            return f"column {column} holds {text!r}, not a number"
        if not (span[0] <= value <= span[1]):
            return f"column {column} holds {text}, outside [{span[0]:g}, {span[1]:g}]"
    return None


def read_table(path: PathLike, *, magic: Optional[str] = TABLE_MAGIC, required: Sequence[str] = ()) -> Table:
    """Read a table file (a NAS table by default; ``magic=LATENCY_MAGIC`` for a latency table,
    ``None`` for either).

    Args:
        path: the CSV file.
        magic: the kind of table expected.
        required: columns that must be present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no table at {path}")
    table, _ = _parse_table_text(read_text(path, "table (CSV)"), str(path), magic)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; it has {table.columns}")
    return table


def check_same(a: Mapping[str, str], b: Mapping[str, str], keys: Sequence[str], what_a: str, what_b: str) -> None:
    """Refuse to mix two tables (or a table and a run) whose metadata differ in ``keys``."""
    diffs = [k for k in keys if a.get(k) != b.get(k)]
    if diffs:
        detail = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in diffs)
        raise TableError(f"{what_a} and {what_b} are not for the same model and data ({detail}); refusing to mix them")


def open_table(path: Path, magic: str, meta: Dict[str, str], columns: List[str], identity: Sequence[str]) -> Table:
    """Start a table file, or reopen one for resuming: same identity and columns, cut-short line dropped."""
    if path.exists() and path.stat().st_size > 0:
        text = read_text(path, "table (CSV)")
        table, keep = _parse_table_text(text, str(path), magic)
        check_same(table.meta, meta, identity, str(path), "this run")
        if table.meta.get("shard") != meta.get("shard"):
            raise TableError(f"{path} holds shard {table.meta.get('shard')} but this run is shard {meta.get('shard')}")
        if table.columns != columns:
            raise TableError(f"{path} has columns {table.columns}, this run writes {columns}; refusing to mix them")
        if keep < len(text):
            with open(path, "r+b") as f:  # drop the row a crash cut short
                f.truncate(len(text[:keep].encode()))
        return table
    table = Table(dict(meta), list(columns), {}, magic, path)
    buf = io.StringIO()
    buf.write(_meta_text(magic, meta))
    csv.writer(buf, lineterminator="\n").writerow(columns)
    atomic_write_text(path, buf.getvalue())
    return table


def append_rows(path: Path, columns: List[str], rows: Sequence[Dict[str, str]]) -> None:
    """Append rows to a table file and flush them to disk (a crash loses at most the line being written)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    with open(path, "a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def shard_path(out: PathLike, index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` writes: ``table.csv`` -> ``table.shard1of4.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard{index}of{count}{out.suffix}")


def parse_shard(text: str) -> Tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``: shard 1 (0-based) of 4."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n (e.g. 0/4), got {text!r}") from None
    return check_shard((i, n))


def check_shard(shard: Tuple[int, int]) -> Tuple[int, int]:
    """``(i, n)`` with ``0 <= i < n``, as ints."""
    index, count = int(shard[0]), int(shard[1])
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    return index, count


# ---------------------------------------------------------------------------- merging
def merge_tables(paths: Sequence[PathLike], out: Optional[PathLike] = None, *, allow_partial: bool = False) -> Table:
    """Join shard files (or any tables of the same model and data) into one table.

    Args:
        paths: the table files.
        out: where to write the merged table (rows in configuration order); ``None``: do not write.
        allow_partial: accept a result that lacks configurations (else an error names how many).
    """
    if not paths:
        raise ValueError("merge_tables needs at least one table")
    tables = [read_table(p) for p in paths]
    first = tables[0]
    meta = {k: v for k, v in first.meta.items() if k not in ("shard", "unit_depth")}
    merged = Table(meta, list(first.columns), {}, TABLE_MAGIC)
    for path, t in zip(paths, tables):
        check_same(first.meta, t.meta, TABLE_IDENTITY, str(paths[0]), str(path))
        if t.columns != first.columns:
            raise TableError(f"{path} has columns {t.columns}, {paths[0]} has {first.columns}; refusing to mix them")
        for c, row in t.rows.items():
            old = merged.rows.get(c)
            if old is not None and any(old[k] != row[k] for k in old if not k.startswith("latency")):
                raise TableError(f"configuration {format_config(c)} differs between the tables ({path})")
            merged.rows.setdefault(c, row)
    missing = merged.missing()
    if missing and not allow_partial:
        raise TableError(f"the merged table lacks {len(missing)} of {len(merged.all_configs())} configurations "
                         f"(first: {format_config(missing[0])}); are all shards finished?")
    if out is not None:
        merged.write(out)
    return merged


def latency_columns(columns: Sequence[str]) -> List[str]:
    """The median-latency columns (``latency_ms_b{batch}_{device}``) among ``columns``."""
    return [c for c in columns if LATENCY_COLUMN_RE.match(c)]


def merge_latency(table: Union[Table, PathLike], latency_tables: Sequence[PathLike], out: Optional[PathLike] = None
                  ) -> Table:
    """Add the latency columns of latency tables (``resizable latency``, or filled-in templates) to a table.

    Latency tables must be for the same architecture and input size (their metadata is checked when
    present) and cover every configuration the table has. A column the table already has is replaced.

    Args:
        table: the NAS table (or its path).
        latency_tables: latency table files.
        out: where to write the result; default: the table's own file.
    """
    if not isinstance(table, Table):
        table = read_table(table)
    for path in latency_tables:
        lat = read_table(path, magic=None)
        if lat.magic == LATENCY_MAGIC or "arch_sha256" in lat.meta:
            keys = [k for k in ARCH_IDENTITY if k in lat.meta]
            check_same(table.meta, lat.meta, keys, "the table", str(path))
        else:
            check_same(table.meta, lat.meta, ("factors", "num_stages"), "the table", str(path))
        cols = [c for c in lat.columns if c.startswith("latency_")]
        if not cols:
            raise TableError(f"{path} has no latency column (latency_ms_b<batch>_<device>); columns: {lat.columns}")
        lacking = [c for c in table.rows if c not in lat.rows or any(lat.rows[c][col] == "" for col in cols)]
        if lacking:
            raise TableError(f"{path} has no latency for {len(lacking)} configuration(s) of the table "
                             f"(first: {format_config(lacking[0])})")
        for col in cols:
            if col not in table.columns:
                table.columns.append(col)
            for c, row in table.rows.items():
                row[col] = lat.rows[c][col]
        for key in ("device", "device_name", "threads", "torch", "warmup", "repeats", "tag", "runtime",
                    "runtime_version", "memory_format"):
            if key in lat.meta:
                table.meta[f"latency_{lat.meta.get('tag', 'hw')}_{key}"] = lat.meta[key]
    target = out if out is not None else table.path
    if target is None:
        raise ValueError("merge_latency needs out= for a table that has no file")
    table.write(target)
    return table


