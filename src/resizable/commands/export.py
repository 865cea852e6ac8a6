"""``resizable export``: one scaling configuration of a trained model as a standalone static network."""
from __future__ import annotations

import argparse

HELP = "write one scaling configuration as a static network (TorchScript, ONNX or state_dict) with a JSON sidecar"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..deploy.export import ExportOptions
    from ..options import add_dataclass_args

    add_dataclass_args(parser, ExportOptions)


def run(args: argparse.Namespace) -> int:
    from ..configs import format_config
    from ..deploy.export import ExportOptions, export_checkpoint
    from ..options import resolve_options

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
