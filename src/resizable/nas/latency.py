"""Latency of sub-networks on the hardware at hand, measured on what a deployment runs.

Each configuration is exported to its static network (:func:`resizable.export`), loaded into the
runtime the user deploys with (``torch`` eager, ``torchscript`` or ``onnxruntime``, see
:mod:`resizable.nas.runtimes`), warmed up, then timed over many repeats; the table keeps the median and
the spread (inter-quartile range) per batch size, and records the runtime in its metadata. On CUDA
the torch and TorchScript runs are timed with CUDA events and synchronized before reading them, so
the numbers are GPU execution time, not the time to queue the kernels; ONNX Runtime is timed by the
wall clock around each (synchronous) call, host-device copies included.

The latency table is a versioned CSV like the NAS table (``# resizable-latency v1``); its columns
``latency_ms_b{batch}_{tag}`` merge into a NAS table with :func:`resizable.nas.table_file.merge_latency`.
"""
from __future__ import annotations

import platform
import sys
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..deploy.static import export
from ..configs import format_config, parse_config
from .table_file import ARCH_IDENTITY, LATENCY_MAGIC, PathLike, Table, append_rows, model_meta, open_table
from .runtimes import RUNTIMES, check_runtime, load_in_runtime, runtime_meta
from ..net import ResizableNet, SizeLike, check_configs, to_size2d
from ..utils.options import check_options, option

MEMORY_FORMATS = ("auto", "contiguous", "channels-last")

__all__ = ["LatencyOptions", "latency_checkpoint", "LatencyStats", "time_module", "latency_column", "LatencyProbe", "build_latency_table",
           "latency_template", "device_description", "RUNTIMES", "MEMORY_FORMATS"]


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of one module on one input, in milliseconds."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    min_ms: float
    repeats: int

    @property
    def iqr_ms(self) -> float:
        """The spread: 75th minus 25th percentile."""
        return self.p75_ms - self.p25_ms


def time_module(module: Callable[[torch.Tensor], Any], example: torch.Tensor, *, warmup: int = 10,
                repeats: int = 50) -> LatencyStats:
    """Time ``module(example)``: ``warmup`` untimed runs, then ``repeats`` timed ones.

    Args:
        module: the network, already on ``example``'s device and in eval mode (or any callable
            of the batch, e.g. a :class:`resizable.nas.runtimes.OnnxRuntimeModule`).
        example: an input batch.
        warmup: runs before timing (allocator, cuDNN algorithm choice, caches).
        repeats: timed runs (>= 1).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    cuda = example.device.type == "cuda"
    with torch.inference_mode():
        for _ in range(warmup):
            module(example)
        if cuda:
            torch.cuda.synchronize(example.device)
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            for start, end in zip(starts, ends):
                start.record()
                module(example)
                end.record()
            torch.cuda.synchronize(example.device)  # events are only readable once they have happened
            times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        else:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                module(example)
                times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times, dtype=np.float64)
    p25, median, p75 = np.percentile(t, [25, 50, 75])
    return LatencyStats(float(median), float(p25), float(p75), float(t.min()), repeats)


def latency_column(batch: int, tag: str, spread: bool = False) -> str:
    """``latency_ms_b1_cpu`` (median) or ``latency_iqr_ms_b1_cpu`` (spread)."""
    return f"latency_{'iqr_' if spread else ''}ms_b{batch}_{tag}"


def _check_tag(tag: str) -> str:
    tag = str(tag)
    if not tag or not tag[0].isalnum() or not all(ch.isalnum() or ch == "-" for ch in tag):
        raise ValueError(f"a latency tag is letters, digits and '-' (e.g. 'cpu', 'pixel7'), got {tag!r}")
    return tag


def device_description(device: torch.device) -> str:
    """A one-line name of the device (CPU model or GPU name)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


class LatencyProbe:
    """Measures every batch size of one configuration: ``probe(config) -> {column: ms}``.

    Args:
        model: the ResizableNet (left unchanged; each configuration is exported from it).
        input_size: the inputs' ``H`` or ``(H, W)``.
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        batch_sizes: batch sizes to time.
        warmup, repeats: see :func:`time_module`.
        tag: column suffix naming the hardware (default: the device type, and the runtime when it
            is not ``torch``: ``cpu``, ``cpu-onnxruntime``, ``cuda-torchscript``).
        runtime: where the exported network runs: one of ``torch``, ``torchscript``, ``onnxruntime``.
        memory_format: ``auto`` (channels-last on CUDA, contiguous on the CPU), ``contiguous`` or
            ``channels-last``; the weights and the input take it (ONNX Runtime picks its own layout).
            On CUDA, contiguous sub-networks at odd sizes ran up to 12x slower than channels-last
            ones (RS-ResNet-50 on an H100, ``benchmarks/results/overhead_gpu.json``), which would
            rank configurations by cuDNN's layout, not by their cost.
    """

    def __init__(self, model: ResizableNet, input_size: SizeLike, *, device: str = "cpu",
                 batch_sizes: Sequence[int] = (1,), warmup: int = 10, repeats: int = 50,
                 tag: Optional[str] = None, runtime: str = "torch", memory_format: str = "auto") -> None:
        self.runtime = check_runtime(runtime)
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f"unknown memory format {memory_format!r}; accepted: {', '.join(MEMORY_FORMATS)}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("latency on cuda was asked for, but no CUDA device is available")
        if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
            raise ValueError(f"batch sizes must be >= 1, got {tuple(batch_sizes)}")
        self.model = model
        self.input_size = to_size2d(input_size)
        self.batch_sizes = tuple(int(b) for b in batch_sizes)
        self.warmup, self.repeats = int(warmup), int(repeats)
        self.tag = _check_tag(tag or (self.device.type if runtime == "torch" else f"{self.device.type}-{runtime}"))
        self._runtime_meta = runtime_meta(runtime, self.device)  # fails early when the runtime is missing
        wants = memory_format == "channels-last" or (memory_format == "auto" and self.device.type == "cuda")
        self.channels_last = wants and runtime != "onnxruntime"

    @property
    def columns(self) -> List[str]:
        return [latency_column(b, self.tag, spread) for b in self.batch_sizes for spread in (False, True)]

    def meta(self) -> Dict[str, str]:
        return {
            "device": str(self.device),
            "device_name": device_description(self.device),
            "threads": str(torch.get_num_threads()),
            "torch": torch.__version__,
            "warmup": str(self.warmup),
            "repeats": str(self.repeats),
            "tag": self.tag,
            "memory_format": "channels-last" if self.channels_last else "contiguous",
            **self._runtime_meta,
        }

    def __call__(self, config: Sequence[float]) -> Dict[str, float]:
        static = load_in_runtime(self.model, config, self.input_size, self.runtime, self.device)
        # ONNX Runtime takes host tensors (and copies them itself); the others run on the device
        where = torch.device("cpu") if self.runtime == "onnxruntime" else self.device
        out: Dict[str, float] = {}
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.runtime != "onnxruntime":
            static = static.to(memory_format=fmt)
        for b in self.batch_sizes:
            x = torch.randn(b, self.model.in_chans, *self.input_size, device=where).contiguous(memory_format=fmt)
            stats = time_module(static, x, warmup=self.warmup, repeats=self.repeats)
            out[latency_column(b, self.tag)] = stats.median_ms
            out[latency_column(b, self.tag, spread=True)] = stats.iqr_ms
        return out


def build_latency_table(model: ResizableNet, out: PathLike, *, input_size: SizeLike,
                        configs: Optional[Iterable[Sequence[float]]] = None, device: str = "cpu",
                        batch_sizes: Sequence[int] = (1,), warmup: int = 10, repeats: int = 50,
                        tag: Optional[str] = None, model_name: Optional[str] = None,
                        progress: bool = True, runtime: str = "torch", memory_format: str = "auto") -> Table:
    """Time the exported network of every configuration into a latency table; resume it if it exists.

    Rows are appended as each configuration finishes; a restarted run skips the ones done.

    Args:
        model: the ResizableNet (only its architecture matters).
        out: the CSV to write.
        input_size: the inputs' ``H`` or ``(H, W)``.
        configs: which configurations (default: all).
        device, batch_sizes, warmup, repeats, tag, runtime, memory_format: see :class:`LatencyProbe`.
        model_name: the registered name, recorded.
        progress: show a progress bar.
    """
    probe = LatencyProbe(model, input_size, device=device, batch_sizes=batch_sizes, warmup=warmup,
                         repeats=repeats, tag=tag, runtime=runtime, memory_format=memory_format)
    configs = check_configs(model, configs)
    meta = {**model_meta(model, input_size, model_name), **probe.meta()}
    columns = ["config"] + probe.columns
    identity = tuple(ARCH_IDENTITY) + ("device", "tag", "warmup", "repeats", "runtime", "memory_format")
    out = Path(out)
    table = open_table(out, LATENCY_MAGIC, meta, columns, identity)
    todo = [c for c in configs if c not in table.rows]
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="cfg", desc="latency", file=sys.stderr, dynamic_ncols=True)
    try:
        for c in todo:
            row = {"config": format_config(c), **{k: f"{v:.4f}" for k, v in probe(c).items()}}
            append_rows(out, columns, [row])
            table.rows[c] = row
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    table.meta = meta
    if all(c in table.rows for c in configs):
        table.write(out)
    return table


def latency_template(model: ResizableNet, out: PathLike, *, input_size: SizeLike, tag: str,
                     batch_sizes: Sequence[int] = (1,), configs: Optional[Iterable[Sequence[float]]] = None,
                     export_dir: Optional[PathLike] = None, model_name: Optional[str] = None) -> Table:
    """A latency table to fill in by hand, for hardware that cannot run this library (a phone).

    The file has the model's metadata, a ``config`` column, a ``file`` column and one empty
    ``latency_ms_b{batch}_{tag}`` column per batch size. With ``export_dir``, each configuration's
    static network is also saved there as TorchScript (``0.45-0.65-1.b<batch>.pt``, traced at that
    batch size), ready for the device's own benchmark tool. Fill in milliseconds, then merge the
    file with :func:`resizable.nas.table_file.merge_latency`.
    """
    tag = _check_tag(tag)
    configs = check_configs(model, configs)
    size = to_size2d(input_size)
    meta = {**model_meta(model, size, model_name), "device": "external", "tag": tag,
            "measured_with": "fill in: the tool and settings used on the device"}
    batch_sizes = tuple(int(b) for b in batch_sizes)
    columns = ["config", "file"] + [latency_column(b, tag) for b in batch_sizes]
    table = Table(meta, columns, {}, LATENCY_MAGIC)
    export_path = Path(export_dir) if export_dir is not None else None
    if export_path is not None:
        export_path.mkdir(parents=True, exist_ok=True)
    for c in configs:
        name = format_config(c)
        row = {"config": name, "file": ""}
        stem = name.replace(",", "-")  # no commas in file names
        if export_path is not None:
            static = export(model, c, size).eval().cpu()
            files = []
            for b in batch_sizes:
                x = torch.zeros(b, model.in_chans, *size)
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # TorchScript still serves PyTorch Mobile
                    traced = torch.jit.trace(static, x)
                f = export_path / f"{stem}.b{b}.pt"
                traced.save(str(f))
                files.append(f.name)
            row["file"] = " ".join(files)
        table.rows[c] = row
    table.write(out)
    return table


# ---------------------------------------------------------------------------- the command
@dataclass(frozen=True)
class LatencyOptions:
    """What ``resizable latency`` measures; each field is also its ``--flag``."""

    checkpoint: Optional[str] = option(None, "checkpoint file or run folder")
    model: Optional[str] = option(None, "or a registered model name (random weights)")
    num_classes: int = option(1000, "with --model: classifier outputs", min=1)
    in_chans: int = option(3, "with --model: input channels", min=1)
    factors: Optional[Tuple[float, ...]] = option(None, "with --model: factor list", min=0.05, max=1.0)
    input_size: Optional[int] = option(None, "input resolution (default: the run's; "
                                             "224 with --model)", min=1, max=4096)
    configs: str = option("all", "all, or a list like '0.45,0.65,1;1,1,1'")
    device: str = option("cpu", "cpu, cuda or cuda:N")
    runtime: str = option("torch", "run the exported network in torch (eager), torchscript or onnxruntime "
                          "(pip install 'resizable[onnx]')", choices=("torch", "torchscript", "onnxruntime"))
    memory_format: str = option("auto", "layout of weights and input: auto (channels-last on cuda, contiguous on "
                                "cpu), contiguous, channels-last", choices=("auto", "contiguous", "channels-last"))
    batch: Tuple[int, ...] = option((1,), "batch sizes, e.g. 1,32", min=1)
    warmup: int = option(10, "untimed runs before timing", min=0)
    repeats: int = option(50, "timed runs", min=1)
    threads: Optional[int] = option(None, "CPU threads (torch.set_num_threads)", min=1)
    tag: Optional[str] = option(None, "column suffix naming the hardware (default: cpu or "
                                      "cuda, plus -RUNTIME when not torch)")
    out: str = option("latency.csv", "the latency table (resumed if it exists)")
    template: bool = option(False, "write an empty table to fill in with timings "
                                   "taken elsewhere (needs --tag), instead of measuring")
    export_dir: Optional[str] = option(None, "with --template: also save each "
                                             "configuration as TorchScript here")
    progress: bool = option(True, "progress bar (shown only on a terminal)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


def _model(opts: LatencyOptions):
    from ..registry import create_model

    if bool(opts.checkpoint) == bool(opts.model):
        raise ValueError("give exactly one of --checkpoint (a trained run) or --model (an architecture)")
    if opts.checkpoint:
        from ..trained_run import TrainedRun

        run = TrainedRun.open(opts.checkpoint, input_size=opts.input_size, need_data=False)
        return run.model, run.model_name, run.input_size
    model = create_model(opts.model, num_classes=opts.num_classes, in_chans=opts.in_chans, factors=opts.factors)
    return model.eval(), opts.model, int(opts.input_size or 224)


def latency_checkpoint(opts: LatencyOptions) -> Table:
    """What ``resizable latency`` runs: the latency table of a checkpoint's (or an architecture's)
    configurations, measured here, or with ``template`` an empty table to fill in elsewhere."""
    from ..training.run_folder import output_path

    opts = dataclasses.replace(opts, out=str(output_path(opts.out, "latency.csv")))
    model, name, size = _model(opts)
    configs = None
    if opts.configs.strip() != "all":
        configs = [parse_config(p, model.factors, model.num_stages) for p in opts.configs.split(";") if p.strip()]
    if opts.template:
        if not opts.tag:
            raise ValueError("--template needs --tag naming the hardware (e.g. --tag pixel7)")
        return latency_template(model, opts.out, input_size=size, tag=opts.tag, batch_sizes=opts.batch,
                                configs=configs, export_dir=opts.export_dir, model_name=name)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    return build_latency_table(model, opts.out, input_size=size, configs=configs, device=opts.device,
                               batch_sizes=opts.batch, warmup=opts.warmup, repeats=opts.repeats, tag=opts.tag,
                               model_name=name, progress=opts.progress, runtime=opts.runtime,
                               memory_format=opts.memory_format)
