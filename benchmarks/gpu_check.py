"""Benchmark on a CUDA GPU: the training step with AMP and channels-last against fp32, and latency on CUDA.

Training: RS-ResNet-50 at 224 px, fair sampling (k = 4 configurations per step, the same sequence
of configurations for every variant), batch 128, SGD; four variants (fp32 / AMP, each contiguous
and channels-last), each on its own copy of the same initial weights. Steps are timed in blocks,
the variants interleaved, after warm-up steps; throughput is images per second (each image goes
through the k configurations of the step). The goal is AMP + channels-last >= 2x the fp32 step.
The automatic memory-format choice of the trainer (:func:`resizable.training.pick_memory_format`) is
run once as well. Every variant runs with cuDNN autotuning (``cudnn.benchmark``) off and on.
"fp32" is PyTorch's default precision: cuDNN convolutions may use TF32 (the flags are recorded).

Latency: the static networks of three configurations in process (contiguous and channels-last,
cuDNN autotuning off and on), then ``python -m resizable latency --device cuda`` as a user runs it, for three configurations
at batch 1 and 64, in each runtime (torch, torchscript, onnxruntime; a runtime that cannot run on
CUDA here is recorded with its one-line error).

    PYTHONPATH=src python benchmarks/gpu_check.py --out DIR              # on a CUDA machine, ~3 minutes
    PYTHONPATH=src python benchmarks/gpu_check.py --dry-run --out DIR    # tiny sizes on the CPU: checks the script

Writes ``DIR/overhead_gpu.json``; ``benchmarks/overhead.py --render`` puts it into overhead.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import resizable
from resizable import ConfigSampler
from resizable.nas import device_description
from resizable.training import pick_memory_format, train_step

HERE = Path(__file__).resolve().parent
FULL = dict(model="resnet50", kwargs={}, size=224, batch=128, warmup=3, blocks=3, steps=5,
            latency_configs="0.45,0.45,0.45,0.45;0.65,0.85,0.65,0.85;1,1,1,1", latency_batch="1,64")
DRY = dict(model="resnet20", kwargs={"num_classes": 10}, size=32, batch=8, warmup=1, blocks=2, steps=2,
           latency_configs="0.45,0.45,0.45;1,1,1", latency_batch="1,2")
VARIANTS = {"fp32": (False, False), "fp32_channels_last": (False, True), "amp": (True, False),
            "amp_channels_last": (True, True)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(spec: dict, device: torch.device, cudnn_benchmark: bool) -> dict:
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.manual_seed(0)
    base = resizable.create_model(spec["model"], **spec["kwargs"]).to(device).train()
    fmt = {False: torch.contiguous_format, True: torch.channels_last}
    g = torch.Generator().manual_seed(0)
    images = torch.randn(spec["batch"], 3, spec["size"], spec["size"], generator=g).to(device)
    labels = torch.randint(0, base.num_classes, (spec["batch"],), generator=g).to(device)
    sampler = ConfigSampler(base.factors, base.num_stages, "fair", seed=0)
    criterion = nn.CrossEntropyLoss()
    runs = {}
    for name, (amp, channels_last) in VARIANTS.items():
        model = copy.deepcopy(base).to(memory_format=fmt[channels_last])
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
        x = images.contiguous(memory_format=fmt[channels_last])
        runs[name] = dict(model=model, optimizer=optimizer, scaler=scaler, x=x, amp=amp, seconds=[], step=0)

    def run_steps(r: dict, n: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            train_step(r["model"], r["x"], labels, sampler.sample(r["step"]), r["optimizer"], criterion,
                       amp=r["amp"], scaler=r["scaler"])
            r["step"] += 1
        _sync(device)
        return time.perf_counter() - t0

    peak = {}
    for name, r in runs.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        run_steps(r, spec["warmup"])
        if device.type == "cuda":
            peak[name] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
    names = list(runs)
    for b in range(spec["blocks"]):
        for name in names[b % len(names):] + names[:b % len(names)]:  # rotate the order every block
            runs[name]["seconds"].append(run_steps(runs[name], spec["steps"]))
    out = {}
    for name, r in runs.items():
        best = min(r["seconds"]) / spec["steps"]
        out[name] = {"seconds_per_step_blocks": [s / spec["steps"] for s in r["seconds"]],
                     "best_seconds_per_step": best, "images_per_second": spec["batch"] / best,
                     "peak_memory_gib": peak.get(name)}
    fp32 = out["fp32"]["images_per_second"]
    for name in out:
        out[name]["speedup_vs_fp32"] = round(out[name]["images_per_second"] / fp32, 3)
    with base.using(base.max_config):
        choice = pick_memory_format(base, images, labels, amp=True)
    return {"cudnn_benchmark": cudnn_benchmark, "variants": out, "goal_speedup": 2.0,
            "speedup_amp_channels_last": out["amp_channels_last"]["speedup_vs_fp32"],
            "goal_met": out["amp_channels_last"]["speedup_vs_fp32"] >= 2.0,
            "auto_memory_format_with_amp": {"choice": choice.name, "ms": choice.ms},
            "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}}


def latency_matrix(spec: dict, device: torch.device) -> list:
    """Static-network latency in process: cuDNN autotuning off/on x memory format x configuration."""
    from resizable.nas import time_module

    torch.manual_seed(0)
    model = resizable.create_model(spec["model"], **spec["kwargs"]).eval()
    rows = []
    for text in spec["latency_configs"].split(";"):
        config = tuple(float(v) for v in text.split(","))
        static = resizable.export(model, config, spec["size"]).eval().to(device)
        for channels_last in (False, True):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            net = static.to(memory_format=fmt)
            for benchmark in (False, True):
                torch.backends.cudnn.benchmark = benchmark
                for b in (int(v) for v in spec["latency_batch"].split(",")):
                    x = torch.randn(b, 3, spec["size"], spec["size"], device=device).contiguous(memory_format=fmt)
                    stats = time_module(net, x, warmup=5, repeats=20)
                    rows.append({"config": text, "channels_last": channels_last, "cudnn_benchmark": benchmark,
                                 "batch": b, "median_ms": round(stats.median_ms, 4), "iqr_ms": round(stats.iqr_ms, 4)})
    torch.backends.cudnn.benchmark = False
    return rows


def cuda_latency(spec: dict, device: torch.device, out_dir: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "src"), env.get("PYTHONPATH")]))
    results = {}
    for runtime in ("torch", "torchscript", "onnxruntime"):
        csv = out_dir / f"latency_{device.type}_{runtime}.csv"
        if csv.exists():
            csv.unlink()
        argv = ["latency", "--model", spec["model"], "--input-size", str(spec["size"]), "--device", str(device),
                "--runtime", runtime, "--configs", spec["latency_configs"], "--batch", spec["latency_batch"],
                "--warmup", "10", "--repeats", "50", "--out", str(csv), "--no-progress"]
        if spec["kwargs"].get("num_classes"):
            argv[3:3] = ["--num-classes", str(spec["kwargs"]["num_classes"])]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "resizable", *argv], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        entry = {"command": "python -m resizable " + " ".join(a if ";" not in a else repr(a) for a in argv),
                 "exit_code": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
                 "output": proc.stdout.strip().splitlines()[-4:]}
        if proc.returncode == 0:
            from resizable.nas import LATENCY_MAGIC, read_table

            table = read_table(csv, magic=LATENCY_MAGIC)
            entry["runtime_version"] = table.meta.get("runtime_version")
            entry["rows"] = {",".join(f"{f:g}" for f in c): {k: float(v) for k, v in row.items() if k != "config"}
                             for c, row in table.rows.items()}
        results[runtime] = entry
        print(f"latency {runtime}: exit {proc.returncode}", flush=True)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT") or str(HERE / "results"), help="folder for the JSON")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (checks the script)")
    p.add_argument("--skip-latency", action="store_true")
    args = p.parse_args()
    spec = DRY if args.dry_run else FULL
    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing measured (use --dry-run to check the script on the CPU)", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "benchmarks/gpu_check.py", "dry_run": args.dry_run,
        "command": "PYTHONPATH=src python benchmarks/gpu_check.py" + (" --dry-run" if args.dry_run else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.node(),
        "device": device_description(device), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "python": platform.python_version(),
        "train": {"model": spec["model"], "input_size": spec["size"], "batch": spec["batch"], "sampling": "fair",
                  "configs_per_step": 4, "warmup_steps": spec["warmup"], "blocks": spec["blocks"],
                  "steps_per_block": spec["steps"]},
    }
    t0 = time.perf_counter()
    record["train"]["runs"] = [train_throughput(spec, device, benchmark) for benchmark in (False, True)]
    for run in record["train"]["runs"]:
        print(f"train (cudnn.benchmark={run['cudnn_benchmark']}):",
              {k: round(v["images_per_second"], 1) for k, v in run["variants"].items()},
              "speed-up", run["speedup_amp_channels_last"], flush=True)
    if not args.skip_latency:
        record["latency_matrix"] = latency_matrix(spec, device)
        for row in record["latency_matrix"]:
            print("latency", row, flush=True)
        record["latency"] = cuda_latency(spec, device, out_dir)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    path = out_dir / "overhead_gpu.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
