"""Benchmark: what being resizable costs at inference and in training, side by side in one process.

Four ratios, each the median over interleaved rounds of the two variants' same-round ratio (the
variants alternate within every round, the order flipping each round, so a slow spell of the machine
hits all of them):

1. the RS network at all-1.0 over torchvision's same network (same weights, eval, no grad);
2. the dynamic sub-network (the RS model set to a configuration) over its exported static network;
3. that static network with BN folded into the convolutions over the unfolded one;
4. a fair training step (k configurations, the trainer's own ``train_step``) over its physical limit:
   the same k forward/backward passes through the plain exported networks of those configurations,
   plus one optimizer step. The step's cost per MAC against the full configuration's is reported
   beside it, for the fair step and for the plain networks (the part of it the CPU charges for
   smaller resolutions, whatever the network).

Each inference variant runs as ``--copies`` independent copies (default 3) and its time per round
is their mean: where a network's tensors land in memory moves its time by about 1%, as much for two
copies of torchvision's own network, whose spread the report gives as the floor of the ratios.

Models: resnet50, mobilenet_v2 and shufflenet_v2_x1_0 at 224 px (batch 1 and 8), resnet20 at 32 px
(batch 1 and 128; no torchvision counterpart, so ratio 1 is left out). The training ratio runs at
the larger batch only (a training step at batch 1 is not a meaningful BN step). One more line
compares the runtimes (torch eager, TorchScript, ONNX Runtime) on the same configuration.
``benchmarks/results/overhead_gpu.json`` (from ``benchmarks/gpu_check.py``) is rendered as well.

The process reruns itself with glibc's mmap/trim thresholds fixed (``--allocator pinned``): by
default glibc maps large blocks afresh and faults their pages in on every forward pass, which can
double a batch-8 MobileNetV2's time depending on what the process allocated before, for the
torchvision network as much as for the resizable one; that noise would swamp ratios near 1.

    PYTHONPATH=src python benchmarks/overhead.py            # ~12 minutes on 2 CPU cores
    PYTHONPATH=src python benchmarks/overhead.py --render   # rewrite overhead.md from the JSON files

A run into ``benchmarks/results/`` (and ``--render``) also rewrites the summary of ``docs/performance.md``
(each ratio's range) and the README's one-line summary, between their ``<!-- overhead:start -->`` and
``<!-- overhead:end -->`` marks.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

import resizable
from resizable import ConfigSampler, atomic_write_text
from resizable.nas import device_description, load_in_runtime, runtime_description
from resizable.training import train_step

RESULTS = Path(__file__).parent / "results"
# glibc's thresholds for returning memory to the system, fixed at 4 GiB (see --allocator)
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}
GOALS = {  # ratio -> (goal, "<=" or ">=")
    "all_max_vs_torchvision": (1.02, "<="),
    "dynamic_vs_static": (1.03, "<="),
    "folded_vs_unfolded": (0.95, "<="),
    "train_step_vs_plain": (1.05, "<="),
}
LABELS = {
    "all_max_vs_torchvision": "RS network at all-1.0 / torchvision's same network",
    "dynamic_vs_static": "dynamic sub-network / its exported static network",
    "folded_vs_unfolded": "exported static with BN folded / unfolded",
    "train_step_vs_plain": "fair training step / the same passes through the plain static networks",
}
SHORT_LABELS = {  # the README's words for the same ratios
    "all_max_vs_torchvision": "RS at all-1.0 / torchvision",
    "dynamic_vs_static": "sub-network / its static export",
    "folded_vs_unfolded": "BN folded / unfolded",
    "train_step_vs_plain": "fair step / plain networks' passes",
}
# name -> (torchvision builder or None, builder kwargs, input size, batch sizes)
CASES = {
    "resnet50": ("resnet50", {}, 224, (1, 8)),
    "mobilenet_v2": ("mobilenet_v2", {}, 224, (1, 8)),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", {}, 224, (1, 8)),
    "resnet20": (None, {"num_classes": 10}, 32, (1, 128)),
}


def interleaved(fns: dict, rounds: int, min_seconds: float = 0.05) -> dict:
    """Median seconds per call of each function: ``rounds`` rounds, the order flipping every round.

    Each function first runs twice (untimed); each measurement repeats a call enough times to last
    about ``min_seconds``.
    """
    inner = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        inner[name] = max(1, int(min_seconds / max(time.perf_counter() - t0, 1e-6)))
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, n = fns[name], inner[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return {name: {"median_s": statistics.median(t), "seconds": t, "calls_per_measurement": inner[name]}
            for name, t in times.items()}


def paired(t: dict, num: str, den: str) -> float:
    """Median over rounds of ``num``'s time over ``den``'s in the same round (a slow spell hits both)."""
    return statistics.median(a / b for a, b in zip(t[num]["seconds"], t[den]["seconds"]))


def mid_config(model) -> tuple:
    """A mixed configuration with a resize at every stage: stages alternate L[1] and L[-2]."""
    f = model.factors
    return tuple(f[1] if i % 2 == 0 else f[-2] for i in range(model.num_stages))


def build(name: str):
    tv_name, kwargs, size, batches = CASES[name]
    torch.manual_seed(0)
    if tv_name:
        tv = getattr(torchvision.models, tv_name)(**kwargs).eval()
        return tv, resizable.from_torchvision(tv).eval(), size, batches
    return None, resizable.create_model(name, **kwargs).eval(), size, batches


def over_copies(t: dict, variants: list, copies: int) -> dict:
    """Each variant's time per round: the mean over its copies (``variant#i``), with the per-copy raw kept."""
    out = {}
    for v in variants:
        per_copy = [t[f"{v}#{i}"]["seconds"] for i in range(copies)]
        seconds = [statistics.fmean(r) for r in zip(*per_copy)]
        out[v] = {"median_s": statistics.median(seconds), "seconds": seconds,
                  "copies": {str(i): t[f"{v}#{i}"] for i in range(copies)}}
    return out


def inference_case(name: str, rounds: int, copies: int = 3) -> list:
    """Every variant as ``copies`` independent copies, timed in the same rounds: where a network's
    weights happen to land in memory moves its time by about 1% (two copies of torchvision's own
    network differ that much), so each variant's time is the mean over its copies."""
    tv, model, size, batches = build(name)
    config = mid_config(model)
    dynamic = copy.deepcopy(model)
    dynamic.set_config(config)
    static = resizable.export(model, config, size).eval()
    folded = resizable.fold_bn(static)
    nets = {"rs_all_max": model, "dynamic": dynamic, "static": static, "folded": folded}
    if tv is not None:
        nets["torchvision"] = tv
    sets = {v: [net] + [copy.deepcopy(net) for _ in range(copies - 1)] for v, net in nets.items()}
    rows = []
    for b in batches:
        x = torch.randn(b, model.in_chans, size, size)
        fns = {f"{v}#{i}": (lambda n=n: n(x)) for v, group in sets.items() for i, n in enumerate(group)}
        with torch.inference_mode():
            t = over_copies(interleaved(fns, rounds, min_seconds=0.1), list(nets), copies)
            if tv is not None:  # same outputs, or the comparison means nothing
                assert torch.allclose(model(x), tv(x), atol=1e-4), f"{name}: all-1.0 differs from torchvision"
            assert torch.allclose(dynamic(x), static(x), atol=1e-4), f"{name}: dynamic differs from static"
        med = {k: v["median_s"] for k, v in t.items()}
        row = {"model": name, "batch": b, "input_size": size, "config": list(config), "copies": copies,
               "median_ms": {k: round(v * 1e3, 4) for k, v in med.items()}, "raw": t,
               "dynamic_vs_static": paired(t, "dynamic", "static"),
               "folded_vs_unfolded": paired(t, "folded", "static")}
        if tv is not None:
            row["all_max_vs_torchvision"] = paired(t, "rs_all_max", "torchvision")
            # the floor of this measurement: torchvision's copies against each other
            row["torchvision_copy_spread"] = max(paired(t["torchvision"]["copies"], str(i), "0")
                                                 for i in range(1, copies)) if copies > 1 else None
        rows.append(row)
        print(f"{name} b{b}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items()), flush=True)
    return rows


def training_case(name: str, rounds: int) -> dict:
    """The fair step against its physical limit: the same forward/backward passes through the plain
    (exported, static) network of each of its configurations, plus one optimizer step of the model.

    Per MAC ratios are reported too, for the fair step and for those plain networks: on a CPU a
    network at smaller resolutions does less work per MAC-second, and that cost is the plain
    network's, not resizability's.
    """
    _, model, size, batches = build(name)
    b = batches[-1]
    model.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, model.in_chans, size, size, generator=g)
    y = torch.randint(0, model.num_classes, (b,), generator=g)
    fair = ConfigSampler(model.factors, model.num_stages, "fair", seed=0).sample(0)
    full = [model.max_config]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    plain = [resizable.export(model, c, size).train() for c in fair]

    def passes(net: nn.Module) -> None:  # what the fair step does per configuration: forward, backward
        net.zero_grad(set_to_none=True)
        criterion(net(x), y).backward()

    train_step(model, x, y, full, optimizer, criterion)  # gradients exist, so the optimizer step below is real
    fns = {"fair": lambda: train_step(model, x, y, fair, optimizer, criterion),
           "full": lambda: train_step(model, x, y, full, optimizer, criterion),
           "optimizer_step": optimizer.step}
    fns.update({f"plain{i}": (lambda net=net: passes(net)) for i, net in enumerate(plain)})
    t = interleaved(fns, rounds, min_seconds=0)
    rounds_limit = [t["optimizer_step"]["seconds"][r] + sum(t[f"plain{i}"]["seconds"][r] for i in range(len(plain)))
                    for r in range(rounds)]
    t["plain_limit"] = {"median_s": statistics.median(rounds_limit), "seconds": rounds_limit}
    macs = {c: resizable.count_macs(model, c, size).macs for c in set(fair) | set(full)}
    mac_ratio = sum(macs[c] for c in fair) / macs[model.max_config]
    time_ratio = paired(t, "fair", "full")
    vs_plain = paired(t, "fair", "plain_limit")
    plain_per_mac = paired(t, "plain_limit", "full") / mac_ratio
    print(f"{name} train b{b}: fair {t['fair']['median_s']:.3f} s, plain limit {t['plain_limit']['median_s']:.3f} s "
          f"(ratio {vs_plain:.3f}), full {t['full']['median_s']:.3f} s, MAC ratio {mac_ratio:.3f}, per MAC: fair "
          f"{time_ratio / mac_ratio:.3f}, plain {plain_per_mac:.3f}", flush=True)
    return {"model": name, "batch": b, "input_size": size, "configs": [list(c) for c in fair],
            "mac_ratio": mac_ratio, "time_ratio": time_ratio, "train_step_vs_plain": vs_plain,
            "train_step_per_mac": time_ratio / mac_ratio, "plain_per_mac": plain_per_mac,
            "median_s": {k: v["median_s"] for k, v in t.items()}, "raw": t}


def runtimes_case(rounds: int) -> dict:
    """torch eager, TorchScript and ONNX Runtime on one configuration of RS-ResNet-50, batch 1."""
    _, model, size, _ = build("resnet50")
    config = mid_config(model)
    x = torch.randn(1, 3, size, size)
    nets, versions = {}, {}
    for runtime in ("torch", "torchscript", "onnxruntime"):
        try:
            nets[runtime] = load_in_runtime(model, config, size, runtime)
            versions[runtime] = runtime_description(runtime)
        except ValueError as e:  # onnxruntime not installed
            versions[runtime] = f"not measured: {e}"
    with torch.inference_mode():
        ref = nets["torch"](x)
        diffs = {r: float((n(x) - ref).abs().max()) for r, n in nets.items()}
        t = interleaved({r: (lambda n=n: n(x)) for r, n in nets.items()}, rounds)
    med = {r: v["median_s"] * 1e3 for r, v in t.items()}
    print("runtimes: " + ", ".join(f"{r} {v:.2f} ms" for r, v in med.items()), flush=True)
    return {"model": "resnet50", "config": list(config), "batch": 1, "input_size": size, "median_ms": med,
            "versions": versions, "max_abs_diff_vs_torch": diffs, "raw": t}


def cpu_seconds() -> tuple:
    """(busy CPU seconds of the whole machine, of this process) so far; (None, ...) off Linux."""
    own = os.times()
    mine = own.user + own.system
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None, mine
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), mine


def met(key: str, value: float) -> bool:
    goal, op = GOALS[key]
    return value <= goal if op == "<=" else value >= goal


def allocator_line(data: dict) -> str:
    env = data.get("malloc_env") or {}
    if env and all(env.values()):
        return "glibc with " + ", ".join(f"`{k}={v}`" for k, v in env.items()) + " (`--allocator pinned`)"
    return "glibc as it comes (`--allocator default`)"


def copies_line(data: dict) -> str:
    rows = [r for r in data["inference"] if r.get("copies", 1) > 1]
    if not rows:
        return ""
    spread = [r["torchvision_copy_spread"] for r in rows if r.get("torchvision_copy_spread")]
    line = (f" Each inference variant ran as {rows[0]['copies']} independent copies and its time is their mean "
            f"(where a network's tensors land in memory moves its time).")
    if spread:
        worst = max(spread, key=lambda v: abs(v - 1))
        line += (f" The floor of these ratios: a copy of torchvision's network against another copy of it, "
                 f"{min(spread):.3f}-{max(spread):.3f} (worst {abs(worst - 1) * 100:.1f}%).")
    return line


def others_line(data: dict) -> str:
    o = data.get("other_processes")
    if not o:
        return ""
    return (f" Other processes used {o['cpu_seconds']:g} CPU-seconds of the {o['of_available']:g} the machine had "
            f"during the run ({100 * o['cpu_seconds'] / o['of_available']:.1f}%).")


def render(data: dict, gpu: dict | None) -> str:
    lines = ["# Overhead of resizability, measured side by side",
             "",
             f"Written by `benchmarks/overhead.py` on {data['date']}. Command: `{data['command']}`.",
             f"Machine: {data['machine']} ({data['cpu']}, {data['cores']} cores); torch {data['torch']}, "
             f"torchvision {data['torchvision']}, {data['threads']} threads. Load average before / after: "
             f"{data['load_before']} / {data['load_after']}. {data['rounds']} interleaved rounds (training: "
             f"{data['train_rounds']}); every variant of a row ran in the same rounds, and each ratio is the "
             f"median of its same-round ratios.{copies_line(data)} Allocator: {allocator_line(data)}."
             f"{others_line(data)}",
             "",
             "| ratio | goal | model | batch | measured | met |",
             "|---|---|---|---|---|---|"]
    for key in GOALS:
        goal, op = GOALS[key]
        rows = data["training"] if key == "train_step_vs_plain" else data["inference"]
        for row in rows:
            if key in row:
                lines.append(f"| {LABELS[key]} | {op} {goal} | {row['model']} | {row['batch']} | "
                             f"{row[key]:.3f} | {'yes' if met(key, row[key]) else 'NO'} |")
    lines += ["", f"All goals met: **{'yes' if data['all_met'] else 'no'}**.", ""]
    lines += ["Milliseconds per forward pass (medians; `rs_all_max` is the RS model at all-1.0, `dynamic` "
              "the RS model at the configuration, `static`/`folded` its exported network):", "",
              "| model | batch | configuration | " + " | ".join(data["variant_order"]) + " |",
              "|---|---|---|" + "---|" * len(data["variant_order"])]
    for row in data["inference"]:
        cells = [f"{row['median_ms'][v]:.2f}" if v in row["median_ms"] else "-" for v in data["variant_order"]]
        lines.append(f"| {row['model']} | {row['batch']} | {','.join(f'{f:g}' for f in row['config'])} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Training steps (seconds, medians; ratios are medians of same-round ratios). The fair step runs "
              "the k configurations listed; its limit is the same k forward/backward passes through the plain "
              "exported networks plus one optimizer step. *Per MAC* is a step's time over the full step's, divided "
              "by the MAC ratio: the plain networks' own per-MAC cost shows what the CPU charges for small "
              "resolutions, whatever the network.", "",
              "| model | batch | fair step | plain limit | fair / limit | full step | MAC ratio | per MAC, fair "
              "| per MAC, plain |", "|---|---|---|---|---|---|---|---|---|"]
    for row in data["training"]:
        med = row["median_s"]
        lines.append(f"| {row['model']} | {row['batch']} | {med['fair']:.3f} | {med['plain_limit']:.3f} | "
                     f"{row['train_step_vs_plain']:.3f} | {med['full']:.3f} | {row['mac_ratio']:.3f} | "
                     f"{row['train_step_per_mac']:.3f} | {row['plain_per_mac']:.3f} |")
    rt = data["runtimes"]
    lines += ["", f"Runtimes, same configuration ({rt['model']} {','.join(f'{f:g}' for f in rt['config'])}, batch "
              f"{rt['batch']}, {rt['input_size']} px, `load_in_runtime`): "
              + "; ".join(f"{r} {ms:.2f} ms" for r, ms in rt["median_ms"].items())
              + ". Versions: " + "; ".join(rt["versions"].values()) + ".", ""]
    lines += render_gpu(gpu)
    return "\n".join(lines) + "\n"


def render_gpu(gpu: dict | None) -> list:
    if not gpu:
        return ["## GPU", "", "Not measured: no GPU run is recorded in `benchmarks/results/overhead_gpu.json`."]
    tr = gpu["train"]
    out = ["## GPU", "",
           f"From `benchmarks/results/overhead_gpu.json`, written by `{gpu['command']}` on {gpu['date']}: "
           f"{gpu['device']}, torch {gpu['torch']} (CUDA {gpu['cuda']}, cuDNN {gpu['cudnn']}).", "",
           f"Training step, {tr['model']} at {tr['input_size']} px, batch {tr['batch']}, fair sampling "
           f"({tr['configs_per_step']} configurations per step), best of {tr['blocks']} blocks of "
           f"{tr['steps_per_block']} steps after {tr['warmup_steps']} warm-up steps (images per second):", "",
           "| cudnn.benchmark | fp32 | fp32 channels-last | AMP | AMP + channels-last | AMP + channels-last / fp32 "
           "(goal >= 2) | / fp32 channels-last |", "|---|---|---|---|---|---|---|"]
    for run in tr["runs"]:
        v = run["variants"]
        ips = {k: v[k]["images_per_second"] for k in v}
        out.append(f"| {run['cudnn_benchmark']} | {ips['fp32']:.0f} | {ips['fp32_channels_last']:.0f} | {ips['amp']:.0f} "
                   f"| {ips['amp_channels_last']:.0f} | {run['speedup_amp_channels_last']:.2f} "
                   f"({'met' if run['goal_met'] else 'NOT met'}) | "
                   f"{ips['amp_channels_last'] / ips['fp32_channels_last']:.2f} |")
    auto = tr["runs"][0]["auto_memory_format_with_amp"]
    out += ["", f"The trainer's automatic choice on this GPU (AMP, full configuration): {auto['choice']} "
            f"({auto['ms']['channels-last']:.1f} ms channels-last vs {auto['ms']['contiguous']:.1f} ms contiguous "
            f"per forward/backward).", ""]
    if gpu.get("latency_matrix"):
        out += ["Static-network latency on the GPU (ms, medians of 20 after 5 warm-up runs):", "",
                "| configuration | batch | contiguous | channels-last | contiguous, cudnn.benchmark | "
                "channels-last, cudnn.benchmark |", "|---|---|---|---|---|---|"]
        cell = {(r["config"], r["batch"], r["channels_last"], r["cudnn_benchmark"]): r["median_ms"]
                for r in gpu["latency_matrix"]}
        for config, batch in dict.fromkeys((r["config"], r["batch"]) for r in gpu["latency_matrix"]):
            vals = [cell[(config, batch, cl, bm)] for bm in (False, True) for cl in (False, True)]
            out.append(f"| {config} | {batch} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
        out += ["", "Contiguous (NCHW) sub-networks at odd sizes are far slower than channels-last ones, and "
                "slower than the full network: `resizable latency` therefore runs channels-last on CUDA by "
                "default (`--memory-format`).", ""]
    for runtime, entry in gpu.get("latency", {}).items():
        status = (f"{entry.get('runtime_version')}, {len(entry.get('rows', {}))} configurations timed"
                  if entry["exit_code"] == 0 else f"exit {entry['exit_code']}: {entry['output'][-1]}")
        out.append(f"- `resizable latency --device cuda --runtime {runtime}`: {status}.")
    if gpu.get("latency"):
        out.append("  (These command-line runs used the contiguous layout: they predate the channels-last default.)")
    return out


def summary_line(data: dict, gpu: dict | None) -> str:
    """docs/performance.md's summary: the range of each ratio, where it came from, GPU speed-up."""
    parts = []
    for key in GOALS:
        rows = data["training"] if key == "train_step_vs_plain" else data["inference"]
        vals = [row[key] for row in rows if key in row]
        if not vals:
            continue
        goal, op = GOALS[key]
        ok = all(met(key, v) for v in vals)
        parts.append(f"{LABELS[key]}: {min(vals):.3f}-{max(vals):.3f} (goal {op} {goal}{'' if ok else ', NOT met'})")
    line = (f"Measured by `benchmarks/overhead.py` on {data['date']} ({data['cpu']}, {data['threads']} threads, torch "
            f"{data['torch']}, load average {data['load_before'][0]} before): " + "; ".join(parts) + ".")
    if gpu:
        run = gpu["train"]["runs"][0]
        line += (f" On an {gpu['device']} (`benchmarks/gpu_check.py`, {gpu['date']}), a fair training step with AMP "
                 f"and channels-last ran {run['speedup_amp_channels_last']:.1f}x the fp32 step "
                 f"({gpu['train']['model']}, batch {gpu['train']['batch']}).")
    return line + " Details: [benchmarks/results/overhead.md](../benchmarks/results/overhead.md)."


def readme_line(data: dict) -> str:
    """The README's one line: how many goals hold, and each ratio's worst value against its goal."""
    worst = []
    for key, (goal, op) in GOALS.items():
        rows = data["training"] if key == "train_step_vs_plain" else data["inference"]
        vals = [row[key] for row in rows if key in row]
        if vals:
            worst.append((key, max(vals) if op == "<=" else min(vals), goal, op))
    held = sum(met(key, value) for key, value, _, _ in worst)
    return (f"**Cost of being resizable** (`benchmarks/overhead.py`, {data['date'].split()[0]}, {data['cpu']}, "
            f"{data['threads']} threads): {held} of {len(worst)} goals met; worst cases: "
            + "; ".join(f"{SHORT_LABELS[key]} {value:.3f} (goal {op} {goal})" for key, value, goal, op in worst)
            + ". [Details](docs/performance.md).")


def write_marked_line(page: Path, line: str) -> None:
    """Replace the text between the page's ``<!-- overhead:start -->`` / ``<!-- overhead:end -->`` marks."""
    start, end = "<!-- overhead:start -->", "<!-- overhead:end -->"
    text = page.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{page} has no {start} ... {end} section to write into")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(page, f"{head}{start}\n{line}\n{end}{tail}")


def write_summaries(data: dict, gpu: dict | None) -> None:
    """The README's line and docs/performance.md's summary, from the committed results."""
    root = Path(__file__).resolve().parent.parent
    write_marked_line(root / "docs" / "performance.md", summary_line(data, gpu))
    write_marked_line(root / "README.md", readme_line(data))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=21, help="interleaved rounds for inference timings")
    p.add_argument("--train-rounds", type=int, default=7, help="interleaved rounds for training steps")
    p.add_argument("--copies", type=int, default=3, help="independent copies of each network timed (>= 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    p.add_argument("--out", default=str(RESULTS / "overhead.json"))
    p.add_argument("--render", action="store_true", help="only rewrite the .md from the JSON files")
    p.add_argument("--allocator", choices=("pinned", "default"), default="pinned",
                   help="pinned (default): rerun with glibc's mmap and trim thresholds fixed, so large "
                        "activations are not mapped and faulted in afresh on every call (that costs up to 2x "
                        "on batch-8 MobileNetV2, depending on the process's allocation history, and would swamp "
                        "the ratios); default: the allocator as it comes")
    args = p.parse_args()
    if args.allocator == "pinned" and PINNED_MALLOC.keys() - os.environ.keys():
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **PINNED_MALLOC})
    out = Path(args.out)
    gpu_path = out.with_name("overhead_gpu.json")
    gpu = json.loads(gpu_path.read_text()) if gpu_path.is_file() else None
    if args.render:
        data = json.loads(out.read_text())
        atomic_write_text(out.with_suffix(".md"), render(data, gpu))
        write_summaries(data, gpu)
        return 0
    if args.copies < 1:
        p.error("--copies must be >= 1")
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown model(s) {unknown}; accepted: {', '.join(CASES)}", file=sys.stderr)
        return 2
    load_before = [round(v, 2) for v in os.getloadavg()]
    busy0, mine0 = cpu_seconds()
    start = time.perf_counter()
    inference = [row for n in names for row in inference_case(n, args.rounds, args.copies)]
    training = [training_case(n, args.train_rounds) for n in names]
    runtimes = runtimes_case(args.rounds)
    all_met = all(met(k, row[k]) for k in GOALS for row in inference + training if k in row)
    busy1, mine1 = cpu_seconds()
    wall = time.perf_counter() - start
    others = None if busy0 is None else {  # what else ran on the machine meanwhile (load averages lag)
        "cpu_seconds": round(max(0.0, (busy1 - busy0) - (mine1 - mine0)), 1),
        "of_available": round(wall * (os.cpu_count() or 1), 1)}
    data = {
        "benchmark": "benchmarks/overhead.py", "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": "PYTHONPATH=src python benchmarks/overhead.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "machine": platform.node(), "cpu": device_description(torch.device("cpu")), "cores": os.cpu_count(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "threads": torch.get_num_threads(),
        "rounds": args.rounds, "train_rounds": args.train_rounds, "load_before": load_before,
        "other_processes": others, "allocator": args.allocator, "malloc_env": {k: os.environ.get(k) for k in PINNED_MALLOC},
        "load_after": [round(v, 2) for v in os.getloadavg()], "seconds": round(time.perf_counter() - start, 1),
        "goals": {k: list(v) for k, v in GOALS.items()}, "all_met": all_met,
        "variant_order": ["torchvision", "rs_all_max", "dynamic", "static", "folded"],
        "inference": inference, "training": training, "runtimes": runtimes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".md"), render(data, gpu))
    if out.resolve().parent == RESULTS.resolve():  # the committed results: the README and docs quote them
        write_summaries(data, gpu)
    print(f"wrote {out} and {out.with_suffix('.md')}; all goals met: {all_met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
