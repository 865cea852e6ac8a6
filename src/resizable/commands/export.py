"""``resizable export``: one scaling configuration of a trained model as a standalone static network, or an
Adapt pipeline (``--adapt``: a classifier's router or a confidence cascade)."""
from __future__ import annotations

import argparse
import dataclasses

HELP = ("write one scaling configuration as a static network (TorchScript, ONNX or state_dict) with a JSON sidecar, "
        "or an Adapt pipeline (--adapt)")

# ``--adapt`` exports a pipeline at the size it was made for, with the statistics the checkpoint carries
_NOT_FOR_PIPELINES = ("config", "input_size", "calibrate_bn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..adapt.from_checkpoint import PipelineExportOptions
    from ..deploy.export import ExportOptions
    from ..utils.options import add_dataclass_args

    others = tuple(f.name for f in dataclasses.fields(ExportOptions) if f.name != "checkpoint")
    add_dataclass_args(parser, ExportOptions, exclude=others)  # --checkpoint, then --config, as before
    parser.add_argument("--config", dest="config", default=argparse.SUPPRESS,
                        help="one factor per stage, comma-separated (e.g. 0.65,0.85,1,1), or 'min' / 'max' "
                             "(required unless --adapt)")
    add_dataclass_args(parser, ExportOptions, exclude=("checkpoint", "config"))
    add_dataclass_args(parser, PipelineExportOptions,
                       exclude=("checkpoint", "format", "out", "fold_bn", "bn_statistics", "onnx_exporter"))


def _pipeline(args: argparse.Namespace) -> int:
    from ..adapt.from_checkpoint import PipelineExportOptions, export_pipeline_checkpoint
    from ..utils.options import resolve_options

    given = [name for name in _NOT_FOR_PIPELINES if getattr(args, name, None)]
    if given:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        raise ValueError(f"{flags}: not for --adapt, which exports the pipeline at the input size it was made for")
    result = export_pipeline_checkpoint(resolve_options(PipelineExportOptions, args))
    meta = result.meta
    if meta["kind"] == "cascade":
        steps = meta["cascade"]["steps"]
        what = f"cascade of {len(steps)} configurations ({' > '.join(s['config'] for s in steps)})"
    else:
        routes = [c for c in meta["router"]["configs"] if c["allowed"]]
        what = f"router over {len(routes)} configurations ('{meta['router']['source']}' features)"
    print(f"{meta['model_name']} Adapt {what} at {meta['input_size'][0]}x{meta['input_size'][1]}, "
          f"{meta['runtime']}{', BN folded' if meta['fold_bn'] else ''}")
    for path in result.files:
        print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..configs import format_config
    from ..deploy.export import ExportOptions, export_checkpoint
    from ..utils.options import resolve_options

    if getattr(args, "adapt", None):
        return _pipeline(args)
    if getattr(args, "max_mmacs", None) is not None or getattr(args, "count_interp", None):
        raise ValueError("--max-mmacs and --count-interp bound an Adapt pipeline's routes; give --adapt FILE")
    result = export_checkpoint(resolve_options(ExportOptions, args))
    meta = result.meta
    config = format_config(meta["config"])
    print(f"{meta['model_name']} config {config} at {meta['input_size'][0]}x{meta['input_size'][1]}: "
          f"{meta['macs'] / 1e6:.2f} MMACs (+{meta['interp_macs'] / 1e6:.3f} interpolation), "
          f"{meta['params'] / 1e6:.3f} M params{', BN folded' if meta['fold_bn'] else ''}")
    bn = meta.get("bn_statistics") or {}
    if bn.get("source") == "recalibrated":
        print(f"BN statistics recalibrated on {bn['batches']} training batches of {bn['batch_size']}")
    elif bn:
        print(f"BN statistics: {bn.get('describe') or bn['source']}")
    print(f"wrote {result.path}")
    print(f"wrote {result.sidecar}")
    return 0
