"""``resizable latency``: time the exported network of each configuration on this machine."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Optional, Tuple

HELP = "measure the latency of each configuration's exported static network (median and spread)"


@dataclass(frozen=True)
class LatencyOptions:
    """Options of ``resizable latency``."""

    checkpoint: Optional[str] = field(default=None, metadata={"help": "checkpoint file or run folder"})
    model: Optional[str] = field(default=None, metadata={"help": "or a registered model name (random weights)"})
    num_classes: int = field(default=1000, metadata={"help": "with --model: classifier outputs"})
    in_chans: int = field(default=3, metadata={"help": "with --model: input channels"})
    factors: Optional[Tuple[float, ...]] = field(default=None, metadata={"help": "with --model: factor list"})
    input_size: Optional[int] = field(default=None, metadata={"help": "input resolution (default: the run's; "
                                                                      "224 with --model)"})
    configs: str = field(default="all", metadata={"help": "all, or a list like '0.45,0.65,1;1,1,1'"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda or cuda:N"})
    runtime: str = field(default="torch", metadata={"help": "run the exported network in torch (eager), torchscript "
                                                            "or onnxruntime (pip install 'resizable[onnx]')",
                                                    "choices": ("torch", "torchscript", "onnxruntime")})
    memory_format: str = field(default="auto", metadata={"help": "layout of weights and input: auto (channels-last on "
                                                                 "cuda, contiguous on cpu), contiguous, channels-last",
                                                         "choices": ("auto", "contiguous", "channels-last")})
    batch: Tuple[int, ...] = field(default=(1,), metadata={"help": "batch sizes, e.g. 1,32"})
    warmup: int = field(default=10, metadata={"help": "untimed runs before timing"})
    repeats: int = field(default=50, metadata={"help": "timed runs"})
    threads: Optional[int] = field(default=None, metadata={"help": "CPU threads (torch.set_num_threads)"})
    tag: Optional[str] = field(default=None, metadata={"help": "column suffix naming the hardware (default: cpu or "
                                                               "cuda, plus -RUNTIME when not torch)"})
    out: str = field(default="latency.csv", metadata={"help": "the latency table (resumed if it exists)"})
    template: bool = field(default=False, metadata={"help": "write an empty table to fill in with timings "
                                                            "taken elsewhere (needs --tag), instead of measuring"})
    export_dir: Optional[str] = field(default=None, metadata={"help": "with --template: also save each "
                                                                      "configuration as TorchScript here"})
    progress: bool = field(default=True, metadata={"help": "progress bar (shown only on a terminal)"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import add_dataclass_args

    add_dataclass_args(parser, LatencyOptions)


def _model(opts: LatencyOptions):
    from .. import create_model
    from ..checkpoint import load_model, run_options

    if bool(opts.checkpoint) == bool(opts.model):
        raise ValueError("give exactly one of --checkpoint (a trained run) or --model (an architecture)")
    if opts.checkpoint:
        model, payload = load_model(opts.checkpoint)
        train_cfg = run_options(payload)
        size = opts.input_size or payload.get("input_size") or train_cfg.get("input_size")
        if not size and train_cfg.get("dataset"):
            from ..data import dataset_info

            size = dataset_info(train_cfg["dataset"], train_cfg.get("data_dir")).input_size
        return model, payload.get("model_name"), int(size or 224)
    model = create_model(opts.model, num_classes=opts.num_classes, in_chans=opts.in_chans, factors=opts.factors)
    return model.eval(), opts.model, int(opts.input_size or 224)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..options import resolve_options
    from ..console import progress_enabled
    from ..latency import build_latency_table, latency_template
    from ..configs import parse_config

    opts = resolve_options(LatencyOptions, args)
    model, name, size = _model(opts)
    configs = None
    if opts.configs.strip() != "all":
        configs = [parse_config(p, model.factors, model.num_stages) for p in opts.configs.split(";") if p.strip()]
    if opts.template:
        if not opts.tag:
            raise ValueError("--template needs --tag naming the hardware (e.g. --tag pixel7)")
        latency_template(model, opts.out, input_size=size, tag=opts.tag, batch_sizes=opts.batch, configs=configs,
                         export_dir=opts.export_dir, model_name=name)
        print(f"wrote {opts.out}: fill in the latency column(s), then: resizable table --merge-latency {opts.out} "
              f"--out TABLE.csv")
        return 0
    if opts.threads:
        torch.set_num_threads(opts.threads)
    table = build_latency_table(model, opts.out, input_size=size, configs=configs, device=opts.device,
                                batch_sizes=opts.batch, warmup=opts.warmup, repeats=opts.repeats, tag=opts.tag,
                                model_name=name, progress=progress_enabled(opts.progress), runtime=opts.runtime,
                                memory_format=opts.memory_format)
    cols = [c for c in table.columns if c.startswith("latency_ms")]
    for col in cols:
        values = [table.value(c, col) for c in table.rows]
        print(f"{col}: {min(values):.3f}..{max(values):.3f} ms over {len(values)} configurations")
    print(f"wrote {opts.out} ({table.meta['runtime_version']} on {table.meta['device_name']}, "
          f"{table.meta['threads']} threads)")
    return 0
