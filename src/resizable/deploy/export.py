"""Deployment: one scaling configuration written as a standalone static network, with a JSON sidecar.

Formats:

- ``torchscript``: ``torch.jit.script`` of the static network (loads with ``torch.jit.load``, no
  library needed). The sidecar is also stored inside the archive as ``resizable.json``.
- ``onnx``: batch dimension dynamic, spatial size fixed to the export size; the sidecar's fields
  are also written into the ONNX ``metadata_props``. Needs the ``onnx`` extra.
- ``state_dict``: the static network's ``state_dict``. It loads into
  ``resizable.export(resizable.create_model(model_name, **model_kwargs), config, input_size)``,
  wrapped in ``resizable.fold_bn(...)`` when written with ``fold_bn=True``; the sidecar's
  ``module`` field spells this out and :func:`load_static` does it.

Every file ``F`` gets a sidecar ``F.json`` (model name and arguments, configuration, factor list,
input size, format, whether BN was folded, MACs; from a checkpoint also the preprocessing the
network expects, its class names, and which BN statistics it carries). Both are written atomically.
"""
from __future__ import annotations

import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..checkpoint import read_torch_file, warn_if_moved_on
from ..fingerprint import weights_sha256
from ..utils.optional import ONNX_MODULES, missing_dependency, require
from ..configs import Config, format_config, parse_config
from .static import export
from ..utils.fileio import atomic_path, atomic_write_text
from ..macs import count_macs
from .fold import fold_bn as fold_batchnorm
from ..training.run_folder import output_path
from ..trained_run import natural_input_size
from ..trained_run import bn_statistics_option
from ..utils.options import check_options, option, required
from ..net import ResizableNet, SizeLike, to_size2d
from ..registry import create_model

__all__ = [
    "FORMATS",
    "ONNX_EXPORTERS",
    "ExportResult",
    "export_to_file",
    "ExportOptions",
    "export_checkpoint",
    "parse_input_size",
    "load_static",
    "natural_input_size",
    "default_export_name",
    "source_moved_on",
]

FORMATS = ("torchscript", "onnx", "state_dict")
ONNX_EXPORTERS = ("dynamo", "legacy")  # torch.export-based (torch's default) or the older TorchScript-based one
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "state_dict": ".state_dict.pt"}
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and what its sidecar says."""

    path: Path
    sidecar: Path
    meta: Dict[str, Any]


# ---------------------------------------------------------------------------- small helpers
def default_export_name(model_name: str, config: Sequence[float], input_size: SizeLike, format: str,
                        fold_bn: bool) -> str:
    """``<model>_<f1-f2-...>_<H>[x<W>][_folded]<suffix>``, e.g. ``resnet50_0.65-0.85-1-1_224.onnx``."""
    h, w = to_size2d(input_size)
    size = f"{h}" if h == w else f"{h}x{w}"
    tag = format_config(config, sep="-")
    return f"{model_name}_{tag}_{size}{'_folded' if fold_bn else ''}{SUFFIXES[format]}"


def _jsonable(value: Any, what: str) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, what) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{what} holds {value!r} ({type(value).__name__}), which a JSON sidecar cannot record")


def _write_torchscript(net: nn.Module, path: Path, meta_json: str) -> None:
    with warnings.catch_warnings():
        # torch >= 2.10 flags TorchScript as deprecated; the format is still what was asked for.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated")
        scripted = torch.jit.script(net)
        with atomic_path(path) as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files={"resizable.json": meta_json})


def _onnx_modules(exporter: str) -> Tuple[str, ...]:
    """The packages writing an ONNX file with ``exporter`` imports (the legacy exporter needs no onnxscript)."""
    return ONNX_MODULES if exporter == "dynamo" else ("onnx",)


def _write_onnx(net: nn.Module, example: torch.Tensor, path: Path, meta: Dict[str, Any], exporter: str,
                opset: Optional[int]) -> None:
    require(_onnx_modules(exporter), "ONNX export")
    import onnx

    try:
        _export_onnx(net, example, path, meta, exporter, opset, onnx)
    except ImportError as e:  # a package torch's exporter imports on its own: the same one line, nothing written
        raise missing_dependency(e, "ONNX export") from None


def _export_onnx(net: nn.Module, example: torch.Tensor, path: Path, meta: Dict[str, Any], exporter: str,
                 opset: Optional[int], onnx: Any) -> None:
    names = {"input_names": ["input"], "output_names": ["logits"]}
    if exporter == "legacy" and any(getattr(m, "antialias", False) for m in net.modules()):
        raise ValueError("the legacy ONNX exporter cannot write antialiased resizes (resize_antialias=True); "
                         "use onnx_exporter='dynamo' (the default)")
    with atomic_path(path) as tmp:
        if exporter == "dynamo":
            program = torch.onnx.export(
                net, (example,), None, dynamo=True, verbose=False, external_data=False, opset_version=opset,
                dynamic_shapes=({0: torch.export.Dim("batch")},), **names)
            proto = program.model_proto
        else:
            buffer = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation
                torch.onnx.export(net, (example,), buffer, dynamo=False, opset_version=opset,
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **names)
            proto = onnx.load_from_string(buffer.getvalue())
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key = key
            entry.value = value if isinstance(value, str) else json.dumps(value)
        onnx.save(proto, str(tmp))


def export_to_file(
    model: ResizableNet,
    config: Union[str, Sequence[float]],
    path: PathLike,
    *,
    input_size: Optional[SizeLike] = None,
    format: str = "torchscript",
    fold_bn: bool = False,
    model_name: Optional[str] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    onnx_exporter: str = "dynamo",
    opset: Optional[int] = None,
    extra_meta: Optional[Dict[str, Any]] = None,
) -> ExportResult:
    """Write the static sub-network of ``config`` to ``path`` (atomically) and its sidecar ``path.json``.

    The network is the eval-mode :func:`resizable.export` of ``config`` (no scale banks, fixed
    resize sizes), moved to the CPU, optionally with BN folded into the convolutions.

    Args:
        model: the ResizableNet (left unchanged).
        config: one factor per stage, or ``"0.65,0.85,1,1"`` / ``"min"`` / ``"max"``.
        path: the file to write; its sidecar is ``<path>.json``.
        input_size: ``H`` or ``(H, W)`` of the inputs (default: :func:`natural_input_size`).
        format: one of :data:`FORMATS`.
        fold_bn: fold every BatchNorm2d into the convolution before it (see :func:`resizable.fold_bn`).
        model_name, model_kwargs: the registered name and :func:`resizable.create_model` arguments
            that rebuild ``model``; recorded in the sidecar (needed to reload a ``state_dict``).
        onnx_exporter: ``"dynamo"`` (torch's default exporter) or ``"legacy"`` (faster, deprecated).
        opset: ONNX opset (default: the exporter's).
        extra_meta: more sidecar fields (JSON values), e.g. ``preprocessing``, ``classes``, ``bn_statistics``.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; accepted: {', '.join(FORMATS)}")
    if onnx_exporter not in ONNX_EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {onnx_exporter!r}; accepted: {', '.join(ONNX_EXPORTERS)}")
    if not isinstance(model, ResizableNet):
        raise ValueError(f"export_to_file needs a ResizableNet, got {type(model).__name__}")
    if format == "onnx":  # before any work: a missing package is one line, and nothing is written
        require(_onnx_modules(onnx_exporter), "ONNX export")
    config = parse_config(config, model.factors, model.num_stages)
    hw = to_size2d(natural_input_size(model) if input_size is None else input_size)
    path = Path(path)

    static = export(model, config, hw).eval().cpu()
    if fold_bn:
        static = fold_batchnorm(static)
    report = count_macs(model, config, hw)
    module = "resizable.export(resizable.create_model(model_name, **model_kwargs), config, input_size)"
    meta: Dict[str, Any] = {
        "format": format,
        "model_name": model_name,
        "model_kwargs": _jsonable(model_kwargs, "model_kwargs") if model_kwargs is not None else None,
        "config": list(config),
        "factors": list(model.factors),
        "input_size": list(hw),
        "in_chans": model.in_chans,
        "num_classes": model.num_classes,
        "fold_bn": bool(fold_bn),
        "macs": report.macs,
        "interp_macs": report.interp_macs,
        "params": sum(p.numel() for p in static.parameters()),
        "module": f"resizable.fold_bn({module})" if fold_bn else module,
        "file": path.name,
        "torch_version": torch.__version__,
        **_jsonable(extra_meta or {}, "extra_meta"),
    }
    if format == "onnx":
        meta["onnx_exporter"] = onnx_exporter
    meta_json = json.dumps(meta, indent=2)

    if format == "state_dict":
        with atomic_path(path) as tmp:
            torch.save(static.state_dict(), tmp)
    elif format == "torchscript":
        _write_torchscript(static, path, meta_json)
    else:
        p = next(static.parameters())
        example = torch.randn(2, model.in_chans, *hw, dtype=p.dtype)
        _write_onnx(static, example, path, meta, onnx_exporter, opset)
    sidecar = path.with_name(path.name + ".json")
    atomic_write_text(sidecar, meta_json + "\n")
    return ExportResult(path, sidecar, meta)


def check_stage_sizes(model: ResizableNet, config: Config, input_size: SizeLike, trained_size: SizeLike) -> None:
    """Refuse an input size that shrinks a stage of ``config`` to 1x1 px when it is larger at the size
    the network was trained at (such a network runs, but computes something it never learnt)."""
    trained = model.stage_sizes(trained_size, config)

    def collapsed(size: SizeLike) -> List[int]:  # stages at 1x1 px that are larger at the trained size
        return [i for i, ((h, w), (th, tw)) in enumerate(zip(model.stage_sizes(size, config), trained))
                if h * w == 1 and th * tw > 1]

    stages = collapsed(input_size)
    if stages:
        i, (ih, iw), top = stages[0], to_size2d(input_size), max(to_size2d(trained_size))
        ok = next((n for n in range(max(ih, iw), top + 1) if not collapsed(n)), top)
        given = ih if ih == iw else f"{ih},{iw}"
        th, tw = trained[i]
        raise ValueError(f"--input-size {given} shrinks stage {i + 1} of {format_config(config)} to 1x1 px (it runs "
                         f"at {th}x{tw} at the trained size {top}); give --input-size {ok} or more")


def check_normalisation(mean: Any, std: Any, in_chans: Any, source: str) -> None:
    """Raise ``ValueError`` unless ``mean`` and ``std`` hold one finite number per channel, every std > 0."""

    for name, values in (("mean", mean), ("std", std)):
        if values is None:
            continue
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                                            for v in values):
            raise ValueError(f"{source}: {name} {values!r} is not a list of finite numbers")
        if in_chans is not None and len(values) != in_chans:
            raise ValueError(f"{source}: {name} has {len(values)} value(s) for {in_chans} channel(s); it needs one "
                             f"per channel")
    if std is not None and any(v <= 0 for v in std):
        raise ValueError(f"{source}: std {list(std)} has a value <= 0, so (x - mean) / std is undefined")


def _preprocessing(run: Any, hw: Tuple[int, int]) -> Dict[str, Any]:
    """Sidecar fields that say how to feed the network (:meth:`TrainedRun.preprocessing`), checked."""
    data = run.preprocessing()
    if not data:
        return {"preprocessing": None, "classes": None}
    check_normalisation(data.get("mean"), data.get("std"), data.get("in_chans"), "the checkpoint's data record")
    pre = {"input_size": list(hw), "in_chans": data.get("in_chans"), "channel_order": "RGB" if
           data.get("in_chans") == 3 else "gray", "pixel_scale": "values in [0, 1] (uint8 / 255)",
           "mean": data.get("mean"), "std": data.get("std"), "normalize": "(x - mean) / std per channel",
           "dataset": data.get("dataset")}
    if run.info is not None and run.info.name == "imagefolder":
        # evaluation resizes a folder's images by a rule that needs their median size: record its outcome
        from ..data.imagefolder import eval_resize_side, folder_stats

        stats = folder_stats(str(Path(run.data_dir).expanduser()))
        pre["resize_shorter_side"] = eval_resize_side(stats.native_size, hw)
        pre["resize"] = "shorter side to resize_shorter_side px (PIL bilinear), then a centre crop to input_size"
    return {"preprocessing": pre, "classes": data.get("classes") or None}


def _calibrate(run: Any, config: Config, batches: int, batch_size: int) -> Dict[str, Any]:
    """Recompute ``config``'s BN statistics on the run's calibration images, as ``resizable table --calibrate-bn``
    does (:meth:`TrainedRun.calibration_loader`)."""
    from ..evaluation.calibrate import calibrate_bn

    calibrate_bn(run.model, config, run.calibration_loader(batch_size, batches), batches)
    return {"source": "recalibrated", "batches": batches, "batch_size": batch_size,
            "data": f"{run.info.name} train split at {run.input_size} px, no augmentation, shuffled with seed 0"}


def _stored_statistics(run: Any, which: str) -> Dict[str, Any]:
    """The sidecar's ``bn_statistics`` for statistics the checkpoint holds (its bank, or the running averages)."""
    basis = run.use_bn_statistics(which)
    if run.model.bn_statistics == "bank":
        return {"source": "statistics bank", "describe": basis, **run.model.bank.meta}
    return {"source": basis}


@dataclass(frozen=True)
class ExportOptions:
    """What ``resizable export`` writes; each field is also its ``--flag``."""

    checkpoint: Optional[str] = required("run folder or checkpoint file", metavar="RUN")
    config: Optional[str] = required("one factor per stage, comma-separated (e.g. 0.65,0.85,1,1), or 'min' / 'max'")
    format: str = option("torchscript", "file format", choices=FORMATS)
    input_size: Optional[str] = option(None, "input size the network is fixed to, H or H,W (default: the size the "
                                             "run trained at)", metavar="H[,W]")
    out: Optional[str] = option(None, "file to write, or a folder for the default name (default: RUN/export/)",
                                metavar="PATH")
    fold_bn: bool = option(False, "fold batch norm into the preceding convolutions")
    bn_statistics: str = bn_statistics_option("BN statistics the network carries: bank (the configuration's own, "
                                              "from the checkpoint's statistics bank) or as-trained (the running "
                                              "averages)")
    calibrate_bn: int = option(0, "recompute the configuration's BN statistics on N training batches first, as "
                                  "resizable table --calibrate-bn does (0: --bn-statistics)", metavar="N",
                               min=0)
    calibrate_batch_size: int = option(256, "batch size of those batches; use the table's --calibrate-batch-size "
                                            "(or its --batch-size) to export the network whose accuracy the table "
                                            "shows", metavar="B", min=1)
    onnx_exporter: str = option("dynamo", "torch.export-based ONNX exporter, or the older, faster TorchScript-based "
                                "one", choices=ONNX_EXPORTERS)

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds
        parse_input_size(self.input_size)


MAX_INPUT_SIZE = 4096


def parse_input_size(text: Optional[str]) -> Optional[SizeLike]:
    """``"224"`` -> 224, ``"224,192"`` (or ``"224x192"``) -> (224, 192), ``None`` -> ``None``."""
    if text is None:
        return None
    parts = [p for p in str(text).replace("x", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--input-size takes H or H,W in pixels, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < 1 or max(values) > MAX_INPUT_SIZE:
        raise ValueError(f"--input-size {text!r}: expected H or H,W in pixels, each in 1..{MAX_INPUT_SIZE}")
    return values[0] if len(values) == 1 else (values[0], values[1])


def export_checkpoint(opts: ExportOptions) -> ExportResult:
    """Export one configuration of a saved model (what ``resizable export`` runs).

    The input size defaults to the size the run trained at (else :func:`natural_input_size`); a size
    that shrinks a stage to 1x1 px is refused. ``out`` defaults to ``export/`` in the run folder.
    With ``calibrate_bn`` > 0 the configuration's BN statistics are first recomputed on that many
    training batches (the basis of ``resizable table --calibrate-bn``), and the sidecar says so.
    """
    from ..trained_run import TrainedRun

    if opts.format == "onnx":
        require(_onnx_modules(opts.onnx_exporter), "ONNX export")
    run = TrainedRun.open(opts.checkpoint, need_data=bool(opts.calibrate_bn))
    model, fold_bn = run.model, opts.fold_bn
    # which weights the file is computed from (before any recalibration): a later reader compares them
    source = {"checkpoint": str(run.checkpoint.resolve()), "weights_sha256": weights_sha256(model),
              "epoch": run.payload["epoch"] + 1 if isinstance(run.payload.get("epoch"), int) else None}
    config = parse_config(opts.config, model.factors, model.num_stages)
    input_size = parse_input_size(opts.input_size)
    hw = to_size2d(run.input_size if input_size is None else input_size)
    check_stage_sizes(model, config, hw, run.input_size)
    name = default_export_name(run.model_name, config, hw, opts.format, fold_bn)
    path = run.run_dir / "export" / name if opts.out is None else output_path(opts.out, name)
    extra = _preprocessing(run, hw)
    extra["source"] = source
    extra["bn_statistics"] = (_calibrate(run, config, opts.calibrate_bn, opts.calibrate_batch_size)
                              if opts.calibrate_bn else _stored_statistics(run, opts.bn_statistics))
    return export_to_file(model, config, path, input_size=hw, format=opts.format, fold_bn=fold_bn,
                          model_name=run.model_name, model_kwargs=run.payload["model_kwargs"],
                          onnx_exporter=opts.onnx_exporter, extra_meta=extra)


def source_moved_on(meta: Dict[str, Any], path: PathLike) -> Optional[str]:
    """When the checkpoint an export was computed from (its sidecar's ``source``) now holds other weights,
    say so (a :class:`resizable.checkpoint.WeightsMovedOnWarning`, one line) and return the note; else None."""
    source = meta.get("source") or {}
    return warn_if_moved_on(source.get("checkpoint"), source.get("weights_sha256"), path)


def load_static(path: PathLike) -> nn.Module:
    """Load a ``torchscript`` or ``state_dict`` export back as a module, in eval mode.

    A state_dict is loaded into the module its sidecar names (rebuilt with :func:`resizable.export`
    and, if it was folded, :func:`resizable.fold_bn`).
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        raise FileNotFoundError(f"no sidecar {sidecar} next to {path}")
    meta = json.loads(sidecar.read_text())
    source_moved_on(meta, path)
    if meta["format"] == "torchscript":
        return torch.jit.load(str(path), map_location="cpu").eval()
    if meta["format"] != "state_dict":
        raise ValueError(f"{path}: load_static reads torchscript and state_dict exports, not {meta['format']}")
    if not meta.get("model_name"):
        raise ValueError(f"{sidecar} has no model_name: the state_dict cannot be matched to a model")
    model = create_model(meta["model_name"], **(meta.get("model_kwargs") or {}))
    net = export(model, meta["config"], tuple(meta["input_size"])).eval()
    if meta.get("fold_bn"):
        net = fold_batchnorm(net)
    net.load_state_dict(read_torch_file(path))
    return net
