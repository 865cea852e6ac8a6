"""Benchmark: evaluating every configuration by walking the configuration tree vs. the naive loop.

For each model, both methods evaluate all k^N configurations on the same random batches; the
logits-based counts must be identical, and the wall time of each is measured ``--repeats`` times
(interleaved, after a warm-up pass that visits every feature-map shape once). Results go to
``benchmarks/results/prefix_sharing.json``.

    PYTHONPATH=src python benchmarks/prefix_sharing.py            # ~3-4 minutes on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import resizable
from resizable import evaluate_configs
from resizable.evaluation import evaluate_naive
from resizable.nas import device_description

# name, builder arguments, input size (H = W), samples, batch size
CASES = {
    "3-stage": ("resnet20", dict(num_classes=10, in_chans=3), 32, 128, 64),
    "4-stage": ("resnet18", dict(num_classes=100, in_chans=3, widths=(16, 32, 64, 128)), 64, 64, 32),
}


def stage_visits(k: int, n: int) -> dict:
    """How many times the stem and each stage run per batch, naive vs. tree."""
    return {"naive": [k ** n] * (n + 1), "tree": [1] + [k ** (i + 1) for i in range(n)]}


def run_case(label: str, repeats: int) -> dict:
    name, kwargs, size, samples, batch = CASES[label]
    torch.manual_seed(0)
    model = resizable.create_model(name, **kwargs).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(samples, kwargs["in_chans"], size, size, generator=g)
    y = torch.randint(0, kwargs["num_classes"], (samples,), generator=g)
    loader = [(x[i:i + batch], y[i:i + batch]) for i in range(0, samples, batch)]
    evaluate_configs(model, [(x[:2], y[:2])])  # warm-up: every shape once
    evaluate_naive(model, [(x[:2], y[:2])])
    times = {"tree": [], "naive": []}
    results = {}
    for _ in range(repeats):
        for method, fn in (("tree", evaluate_configs), ("naive", evaluate_naive)):
            t0 = time.perf_counter()
            results[method] = fn(model, loader)
            times[method].append(time.perf_counter() - t0)
    if results["tree"] != results["naive"]:
        raise SystemExit(f"{label}: prefix sharing and the naive loop disagree")
    tree, naive = min(times["tree"]), min(times["naive"])
    out = {
        "model": name, "model_kwargs": kwargs, "input_size": size, "samples": samples, "batch_size": batch,
        "num_stages": model.num_stages, "factors": list(model.factors), "configs": len(model.configs()),
        "seconds_tree": times["tree"], "seconds_naive": times["naive"],
        "best_seconds_tree": round(tree, 3), "best_seconds_naive": round(naive, 3),
        "speedup_best": round(naive / tree, 2),
        "speedup_median": round(statistics.median(times["naive"]) / statistics.median(times["tree"]), 2),
        "identical_counts": True,
        "runs_per_batch": stage_visits(len(model.factors), model.num_stages),
    }
    print(f"{label} {name}: tree {tree:.2f}s, naive {naive:.2f}s, speed-up {out['speedup_best']}x "
          f"({out['configs']} configurations, {samples} samples)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "prefix_sharing.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    cases = {label: run_case(label, args.repeats) for label in args.cases.split(",")}
    report = {
        "benchmark": "prefix sharing (configuration tree) vs naive per-configuration evaluation",
        "command": "PYTHONPATH=src python " + " ".join(["benchmarks/prefix_sharing.py"] + sys.argv[1:]),
        "device": device_description(torch.device("cpu")), "cpu_count": os.cpu_count(),
        "torch_threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "note": "best of --repeats interleaved runs; counts of both methods compared for equality",
        "cases": cases,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
