"""``resizable export``: one scaling configuration of a trained model as a standalone static network."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

from ..deploy import FORMATS, ONNX_EXPORTERS

HELP = "write one scaling configuration as a static network (TorchScript, ONNX or state_dict) with a JSON sidecar"


@dataclass(frozen=True)
class ExportOptions:
    """What ``resizable export`` was asked to do."""

    checkpoint: str  # run folder or checkpoint file
    config: str  # "0.65,0.85,1,1", "min" or "max"
    format: str = "torchscript"
    input_size: Optional[str] = None  # "224" or "224,192"; None: the model's natural size
    out: Optional[str] = None  # file, or folder for the default name; None: RUN/export/
    fold_bn: bool = False
    onnx_exporter: str = "dynamo"
    calibrate_bn: int = 0  # training batches to recompute the configuration's BN statistics on (0: as trained)
    calibrate_batch_size: int = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="RUN", help="run folder or checkpoint file")
    parser.add_argument("--config", required=True,
                        help="one factor per stage, comma-separated (e.g. 0.65,0.85,1,1), or 'min' / 'max'")
    parser.add_argument("--format", choices=FORMATS, default="torchscript", help="(default: torchscript)")
    parser.add_argument("--input-size", default=None, metavar="H[,W]",
                        help="input size the network is fixed to (default: the size the run trained at)")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="file to write, or a folder for the default name (default: RUN/export/)")
    parser.add_argument("--fold-bn", action="store_true", help="fold batch norm into the preceding convolutions")
    parser.add_argument("--calibrate-bn", type=int, default=0, metavar="N",
                        help="recompute the configuration's BN statistics on N training batches first, as "
                             "resizable table --calibrate-bn does (default: 0, the statistics as trained)")
    parser.add_argument("--calibrate-batch-size", type=int, default=256, metavar="B",
                        help="batch size of those batches; use the table's --calibrate-batch-size (or its "
                             "--batch-size) to export the network whose accuracy the table shows (default: 256)")
    parser.add_argument("--onnx-exporter", choices=ONNX_EXPORTERS, default="dynamo",
                        help="torch.export-based (default) or the older, faster TorchScript-based ONNX exporter")


def _parse_size(text: Optional[str]):
    if text is None:
        return None
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--input-size takes H or H,W in pixels, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise ValueError(f"--input-size takes H or H,W in pixels, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def run(args: argparse.Namespace) -> int:
    from ..configs import format_config
    from ..deploy import export_checkpoint

    opts = ExportOptions(args.checkpoint, args.config, args.format, args.input_size, args.out,
                         args.fold_bn, args.onnx_exporter, args.calibrate_bn, args.calibrate_batch_size)
    result = export_checkpoint(opts.checkpoint, opts.config, format=opts.format,
                               input_size=_parse_size(opts.input_size), out=opts.out, fold_bn=opts.fold_bn,
                               onnx_exporter=opts.onnx_exporter, calibrate_bn=opts.calibrate_bn,
                               calibrate_batch_size=opts.calibrate_batch_size)
    meta = result.meta
    config = format_config(meta["config"])
    print(f"{meta['model_name']} config {config} at {meta['input_size'][0]}x{meta['input_size'][1]}: "
          f"{meta['macs'] / 1e6:.2f} MMACs (+{meta['interp_macs'] / 1e6:.3f} interpolation), "
          f"{meta['params'] / 1e6:.3f} M params{', BN folded' if meta['fold_bn'] else ''}")
    bn = meta.get("bn_statistics") or {}
    if bn.get("source") == "recalibrated":
        print(f"BN statistics recalibrated on {bn['batches']} training batches of {bn['batch_size']}")
    print(f"wrote {result.path}")
    print(f"wrote {result.sidecar}")
    return 0
