"""An exported network (TorchScript, ONNX, state_dict) as ``resizable predict`` runs it, with the
preprocessing and class names its sidecar records (``FILE.json``; without one, a TorchScript file's
embedded ``resizable.json`` or an ONNX file's metadata hold the same fields).

An export is fixed: its configuration, BN statistics and input size are what it was written with, so
the options that choose a run's network are refused for it. An export that records no class names
prints class indices.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from ..configs import format_config, parse_config
from .images import Preprocessing
from .network import Network, NetworkChoice, read_sidecar

__all__ = ["export_network", "export_preprocessing"]


def _export_meta(path: Path, kind: str) -> Tuple[Dict[str, Any], str]:
    """The export's fields and where they were read (its sidecar, else the file itself)."""
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_file():
        return read_sidecar(sidecar), str(sidecar)
    if kind == "onnx":
        from ..nas.runtimes import OnnxRuntimeModule

        props = _load_onnx(path, torch.device("cpu"), OnnxRuntimeModule).session.get_modelmeta().custom_metadata_map
        return {k: _json_or_text(v) for k, v in props.items()}, f"{path} (its metadata)"
    if kind == "torchscript":
        extra = {"resizable.json": ""}
        _load_torchscript(path, torch.device("cpu"), extra)
        if extra["resizable.json"]:
            return json.loads(extra["resizable.json"]), f"{path} (its resizable.json)"
    raise ValueError(f"{path}: no sidecar {sidecar.name} beside it, and the file holds no resizable.json; "
                     f"predict needs the preprocessing it records")


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _load_torchscript(path: Path, device: torch.device, extra: Optional[Dict[str, Any]] = None) -> Any:
    try:
        return torch.jit.load(str(path), map_location=device, _extra_files=extra if extra is not None else {}).eval()
    except Exception as e:  # torch raises RuntimeError and others for damaged or foreign archives
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a loadable TorchScript file ({text[:200]})") from None


def _load_onnx(path: Path, device: torch.device, module: Any) -> Any:
    try:
        return module(path, device)
    except ValueError:
        raise
    except Exception as e:  # onnxruntime raises its own error types for damaged or foreign files
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: onnxruntime cannot load it ({text[:200]})") from None


def _refuse_choice(choice: NetworkChoice, meta: Dict[str, Any], where: str) -> None:
    """An export is fixed: refuse the options that would choose another network, naming what it is."""
    fixed = format_config(meta.get("config") or ())
    if choice.config is not None:
        factors, stages = meta.get("factors"), len(meta.get("config") or ())
        if parse_config(choice.config, factors, stages or None) != tuple(float(f) for f in meta.get("config") or ()):
            raise ValueError(f"--config {choice.config}: this exported network is fixed at {fixed} ({where}); "
                             f"export the configuration you want, or predict with the run")
    given = [flag for flag, value in (("--max-mmacs", choice.max_mmacs), ("--table", choice.table),
                                      ("--classifier", choice.classifier), ("--bn-statistics", choice.bn_statistics),
                                      ("--dataset", choice.dataset), ("--data-dir", choice.data_dir))
             if value is not None]
    if given:
        raise ValueError(f"{given[0]} chooses a network of a run; an exported network is fixed (configuration "
                         f"{fixed}, its BN statistics and preprocessing: {where})")


def export_preprocessing(meta: Dict[str, Any], where: str) -> Tuple[Preprocessing, Tuple[str, ...]]:
    """The :class:`Preprocessing` and class names an export's fields record."""
    from ..deploy.export import check_normalisation

    pre = meta.get("preprocessing")
    if not isinstance(pre, dict) or pre.get("mean") is None or pre.get("std") is None:
        raise ValueError(f"{where} records no preprocessing (mean/std): the network was exported from a checkpoint "
                         f"that names no dataset; predict with the run and --dataset instead")
    in_chans = pre.get("in_chans") or meta.get("in_chans")
    check_normalisation(pre["mean"], pre["std"], in_chans, where)
    size = meta["input_size"] if "input_size" in meta else None  # the size the network is fixed to
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"{where}: input_size {size!r} is not [H, W] in pixels")
    side = pre.get("resize_shorter_side")
    prep = Preprocessing(int(in_chans), (size[0], size[1]), tuple(pre["mean"]), tuple(pre["std"]),
                         Preprocessing.method_for(pre.get("dataset")), int(side) if side else None, pre.get("dataset"))
    num_classes = int(meta.get("num_classes") or 0)
    classes = meta.get("classes")
    if classes and (not isinstance(classes, list) or len(classes) != num_classes):
        raise ValueError(f"{where}: {len(classes)} class names for a network of {num_classes} classes")
    return prep, tuple(str(c) for c in classes) if classes else tuple(str(i) for i in range(num_classes))


def export_network(path: Path, kind: str, choice: NetworkChoice, device: torch.device) -> Network:
    """The exported network at ``path`` (``kind``: one of the export formats) on ``device``, fed as its sidecar
    says; ``choice`` must leave the network as it was exported (see the module notes)."""
    meta, where = _export_meta(path, kind)
    if meta.get("format") not in (None, kind):
        raise ValueError(f"{where} describes a {meta.get('format')} file, and {path} is read as {kind}")
    _refuse_choice(choice, meta, where)
    prep, classes = export_preprocessing(meta, where)
    note = ""
    if kind == "onnx":
        from ..nas.runtimes import OnnxRuntimeModule

        if device.type == "cuda" and not _onnx_has_cuda():
            # this onnxruntime runs on the CPU only (pip install onnxruntime-gpu for CUDA); the line says so
            device, note = torch.device("cpu"), " (this onnxruntime has no CUDA provider)"
        net: Callable[[Tensor], Tensor] = _load_onnx(path, device, OnnxRuntimeModule)
    elif kind == "torchscript":
        net = _load_torchscript(path, device)
    else:
        from ..deploy.export import load_static

        try:
            net = load_static(path).to(device)
        except RuntimeError as e:  # weights that do not fit the module the sidecar describes
            raise ValueError(f"{path}: its weights do not load into the network {where} describes "
                             f"({str(e).strip().splitlines()[0][:200]})") from None
    bn = meta.get("bn_statistics") or {}
    about = {"source": str(path), "kind": kind, "model": meta.get("model_name"),
             "config": format_config(meta.get("config") or ()), "mmacs": (meta.get("macs") or 0) / 1e6,
             "bn_statistics": bn.get("describe") or bn.get("source") or "as exported",
             "classes_recorded": bool(meta.get("classes")), "device": f"{device}{note}"}

    @torch.no_grad()
    def forward(x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        return net(x.to(device)).float(), None

    return Network(forward, prep, classes, about)


def _onnx_has_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
