"""The network ``resizable predict`` runs: a trained run at one configuration, routed by Adapt, or an
exported file (TorchScript, ONNX, state_dict), with the preprocessing and class names that go with it.
This module holds what both kinds share; :mod:`resizable.inference.run_network` opens a run and
:mod:`resizable.inference.exported` an export.

A run is opened as a :class:`resizable.trained_run.TrainedRun` (its dataset, input size,
normalisation and classes; its statistics bank). Its configuration is ``config`` (default: the
largest, all 1.0), or the lookup table's most accurate one under ``max_mmacs``
(:func:`resizable.nas.lookup.search`), or, with an Adapt ``classifier``, each image's own
(:class:`resizable.adapt.routing.Adapter`, under ``max_mmacs`` per image when given).

An export is fixed: its configuration, BN statistics and input size are what it was written with
(:mod:`resizable.inference.exported`).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ..configs import Config
from .images import Preprocessing

__all__ = ["EXPORT_FORMATS", "Forward", "Network", "NetworkChoice", "read_sidecar", "source_kind"]

EXPORT_FORMATS = ("torchscript", "onnx", "state_dict")
Forward = Callable[[Tensor], Tuple[Tensor, Optional[Tensor]]]  # images -> (logits, configuration index or None)


@dataclass(frozen=True)
class NetworkChoice:
    """Which network of a run to use; every field is None for an export (fixed when it was written)."""

    config: Optional[str] = None          # one configuration, 'min' or 'max'
    max_mmacs: Optional[float] = None     # the table's best under it; with ``classifier``, the per-image budget
    table: Optional[str] = None           # the lookup table (default: table.csv in the run folder)
    count_interp: bool = False
    classifier: Optional[str] = None      # an Adapt classifier file: route each image
    bn_statistics: Optional[str] = None   # bank (default) or as-trained
    dataset: Optional[str] = None         # feed the run another dataset's way (as eval --dataset)
    data_dir: Optional[str] = None


@dataclass
class Network:
    """A network ready to classify prepared images, and what it is in words."""

    forward: Forward
    preprocessing: Preprocessing
    classes: Tuple[str, ...]              # names in label order; indices as text when none are recorded
    about: Dict[str, Any] = field(default_factory=dict)  # source, kind, model, config, MMACs, BN statistics...
    configs: Optional[List[Config]] = None  # routed: what a configuration index means


def source_kind(path: Path) -> str:
    """``run`` (a folder or checkpoint file), or an export format: from the sidecar when there is one, else
    from the file (``.onnx``; a TorchScript archive)."""
    if path.is_dir():
        return "run"
    if not path.exists():
        raise FileNotFoundError(f"no run, checkpoint or exported network at {path}")
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_file():
        fmt = read_sidecar(sidecar).get("format")
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"{sidecar}: format {fmt!r} is not an export format ({', '.join(EXPORT_FORMATS)})")
        return fmt
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(n.endswith("constants.pkl") for n in archive.namelist()):
                return "torchscript"
    return "run"


def read_sidecar(path: Path) -> Dict[str, Any]:
    """A JSON sidecar as a dict; a file that is not a JSON object raises ``ValueError`` naming it."""
    from ..utils.fileio import read_text

    try:
        value = json.loads(read_text(path, "JSON sidecar"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a sidecar is a JSON object, not {type(value).__name__}")
    return value
