"""What ``resizable predict`` writes: one record per image, as text, CSV or JSON.

- ``text``: one line per classified image, ``path<TAB>class:prob<TAB>class:prob ...`` (most probable
  first, probabilities with 4 decimals; with Adapt routing a last field ``config=0.65,1,1``). Images
  that cannot be read are not in it: each gets one line on stderr.
- ``csv``: a header, then one row per image: ``path``, (``config``,) ``class_1``, ``index_1``,
  ``prob_1``, ... ``class_k``, ``index_k``, ``prob_k``, ``error`` (empty, or why the image could not
  be read; its other cells are then empty).
- ``json``: one object: ``network`` (what ran), ``preprocessing``, ``classes``, ``topk`` and
  ``predictions``, a list of ``{"path", "top": [{"class", "index", "prob"}, ...](, "config")}`` or
  ``{"path", "error"}``.

Every record names its image file. The writers stream: each record is written as it comes.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, TextIO, Tuple

from ..configs import Config, format_config

__all__ = ["OUTPUT_FORMATS", "Prediction", "output_format", "make_writer"]

OUTPUT_FORMATS = ("text", "csv", "json")


@dataclass(frozen=True)
class Prediction:
    """One image's result: its top classes (index, probability), best first, or why it could not be read."""

    path: str
    top: Tuple[Tuple[int, float], ...] = ()
    config: Optional[Config] = None   # the configuration it ran at, when images are routed
    error: Optional[str] = None


def output_format(fmt: Optional[str], out: Optional[str]) -> str:
    """``fmt`` when given, else from ``out``'s suffix (``.csv``, ``.json``), else ``text``."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; accepted: {', '.join(OUTPUT_FORMATS)}")
        return fmt
    suffix = Path(out).suffix.lower() if out else ""
    return {".csv": "csv", ".json": "json"}.get(suffix, "text")


class _TextWriter:
    """``path<TAB>class:prob ...`` per classified image."""

    def __init__(self, stream: TextIO, classes: Sequence[str], topk: int, routed: bool, head: Dict[str, Any]) -> None:
        self.stream, self.classes = stream, classes

    def write(self, p: Prediction) -> None:
        if p.error is not None:
            return  # said on stderr, one line per image
        fields = [p.path] + [f"{self.classes[i]}:{prob:.4f}" for i, prob in p.top]
        if p.config is not None:
            fields.append(f"config={format_config(p.config)}")
        self.stream.write("\t".join(fields) + "\n")

    def close(self) -> None:
        self.stream.flush()


class _CsvWriter:
    """One row per image, with an ``error`` column."""

    def __init__(self, stream: TextIO, classes: Sequence[str], topk: int, routed: bool, head: Dict[str, Any]) -> None:
        self.stream, self.classes, self.topk, self.routed = stream, classes, topk, routed
        self.writer = csv.writer(stream, lineterminator="\n")
        ranks = [f"{name}_{r}" for r in range(1, topk + 1) for name in ("class", "index", "prob")]
        self.writer.writerow(["path"] + (["config"] if routed else []) + ranks + ["error"])

    def write(self, p: Prediction) -> None:
        config = [format_config(p.config) if p.config is not None else ""] if self.routed else []
        if p.error is not None:
            self.writer.writerow([p.path] + config + [""] * (3 * self.topk) + [p.error])
            return
        cells = [v for i, prob in p.top for v in (self.classes[i], i, f"{prob:.6f}")]
        self.writer.writerow([p.path] + config + cells + [""])

    def close(self) -> None:
        self.stream.flush()


class _JsonWriter:
    """One JSON object whose ``predictions`` list is written an item at a time."""

    def __init__(self, stream: TextIO, classes: Sequence[str], topk: int, routed: bool, head: Dict[str, Any]) -> None:
        self.stream, self.classes, self.first = stream, classes, True
        stream.write("{\n")
        for key, value in head.items():
            stream.write(f" {json.dumps(key)}: {json.dumps(value)},\n")
        stream.write(' "predictions": [')

    def write(self, p: Prediction) -> None:
        item: Dict[str, Any] = {"path": p.path}
        if p.error is not None:
            item["error"] = p.error
        else:
            item["top"] = [{"class": self.classes[i], "index": i, "prob": round(prob, 6)} for i, prob in p.top]
            if p.config is not None:
                item["config"] = format_config(p.config)
        self.stream.write(("\n  " if self.first else ",\n  ") + json.dumps(item))
        self.first = False

    def close(self) -> None:
        self.stream.write("\n ]\n}\n")
        self.stream.flush()


_WRITERS = {"text": _TextWriter, "csv": _CsvWriter, "json": _JsonWriter}


def make_writer(fmt: str, stream: TextIO, classes: Sequence[str], topk: int, routed: bool,
                head: Dict[str, Any]) -> Any:
    """A writer of ``fmt`` onto ``stream``: ``write(prediction)`` per image, then ``close()``.

    Args:
        fmt: one of :data:`OUTPUT_FORMATS`.
        classes: class names by index.
        topk: classes per image.
        routed: images carry their configuration (Adapt routing).
        head: what ran (the JSON object's fields before ``predictions``; the others ignore it).
    """
    return _WRITERS[output_format(fmt, None)](stream, classes, topk, routed, head)
