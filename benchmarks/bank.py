"""Benchmark: the statistics bank's size and build time, and what it adds to switching configuration.

For each network (the suite's resnet14 at 28 px with 64 configurations, resnet50 at 224 px with 256,
mobilenet_v2 at 224 px with 256; factors 0.45/0.65/0.85/1.0):

- size: the bank's bytes in float32 and float16 against the weights' (``state_dict``) bytes, and its
  rows (one per prefix of factors per scale-aware BN layer: k^(s+1) for a layer of stage s);
- build time: one walk of the configuration tree per calibration batch (``build_bank``) on random
  images, for the stated batches x batch size; the time grows linearly with the images, so the
  default rule's (8 batches of 256) is extrapolated from it and marked so;
- switching: the median time of ``set_config`` (cycling through every configuration) without a
  bank and with one, and of an eval-mode forward at batch 1 after the switch, both ways;
- what float16 storage costs in accuracy: the suite's kept RS network (``experiments/paper/results/weights/rs-s0.pt``),
  its bank built by the default rule, every configuration's val top-1 with the bank stored in float32
  and in float16 (the largest and the mean absolute difference), and against the running averages.

    PYTHONPATH=src python benchmarks/bank.py      # ~5 minutes on 2 CPU cores

Writes ``benchmarks/results/bank.json`` and ``bank.md``, and the README's bank line between its
``<!-- bank:start -->`` and ``<!-- bank:end -->`` marks (``--render``: both again from the saved bank.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

import resizable
from resizable import atomic_write_text
from resizable.evaluation import BANK_BATCH_SIZE, BANK_BATCHES, build_bank

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
# name, create_model kwargs, input size, calibration batches x batch size measured here
NETWORKS = [
    ("resnet14", {"num_classes": 10, "in_chans": 1}, 28, 8, 256),
    ("resnet50", {"num_classes": 1000}, 224, 1, 8),
    ("mobilenet_v2", {"num_classes": 1000}, 224, 1, 8),
]


def _median_us(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


@torch.no_grad()
def measure(name: str, kwargs: Dict[str, Any], size: int, batches: int, batch: int, switches: int) -> Dict[str, Any]:
    torch.manual_seed(0)
    model = resizable.create_model(name, **kwargs).eval()
    images = [torch.randn(batch, model.in_chans, size, size) for _ in range(batches)]
    t0 = time.perf_counter()
    bank = build_bank(model, images, batches)
    build = time.perf_counter() - t0
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    sizes = {"bank_bytes": bank.nbytes(), "weights_bytes": weights, "ratio": bank.nbytes() / weights,
             "rows": sum(t[0].shape[0] for t in bank.tables.values())}
    configs = model.configs()
    state = {"i": 0}

    def switch() -> None:
        state["i"] = (state["i"] + 1) % len(configs)
        model.set_config(configs[state["i"]])

    x = torch.randn(1, model.in_chans, size, size)
    out: Dict[str, Any] = {"model": name, "input_size": size, "configs": len(configs),
                           "bank_bytes_float32": sizes["bank_bytes"], "bank_bytes_float16": sizes["bank_bytes"] // 2,
                           "weights_bytes": sizes["weights_bytes"], "ratio_float32": sizes["ratio"],
                           "rows": sizes["rows"], "build_images": batches * batch, "build_seconds": build,
                           "build_seconds_default_rule": build * BANK_BATCHES * BANK_BATCH_SIZE / (batches * batch),
                           "default_rule_measured": batches * batch == BANK_BATCHES * BANK_BATCH_SIZE}
    for label, attached in (("without", None), ("with", bank)):
        model.attach_bank(attached)
        out[f"set_config_us_{label}_bank"] = _median_us(switch, switches)
        model.set_config(model.max_config)
        model(x)
        out[f"forward_b1_ms_{label}_bank"] = _median_us(lambda: model(x), 20) / 1000
    return out


KEPT_RS = Path(__file__).resolve().parent.parent / "experiments" / "paper" / "results" / "weights" / "rs-s0.pt"


@torch.no_grad()
def dtype_effect(path: Path) -> Dict[str, Any]:
    """Val top-1 of every configuration of a trained network: bank in float32, bank in float16, as trained."""
    from resizable import TrainedRun, evaluate_configs
    from resizable.evaluation import accuracy

    run = TrainedRun.open(path)
    bank = run.build_bank(dtype=torch.float32)
    loader = run.loader("val", 500)
    out: Dict[str, Any] = {"network": str(path.relative_to(RESULTS.parent.parent)), "split": "val",
                           "images": len(loader.dataset), "bank": bank.describe()}
    tops = {}
    for label, stored in (("float32", bank), ("float16", bank.to(torch.float16)), ("as_trained", None)):
        run.model.attach_bank(stored)
        counts = evaluate_configs(run.model, loader)
        tops[label] = {c: accuracy(v)["top1"] for c, v in counts.items()}
    diffs = [abs(tops["float16"][c] - tops["float32"][c]) for c in tops["float32"]]
    out.update({"max_abs_diff_float16": max(diffs), "mean_abs_diff_float16": statistics.fmean(diffs),
                "mean_top1": {k: statistics.fmean(v.values()) for k, v in tops.items()},
                "top1": {k: {",".join(f"{f:g}" for f in c): v for c, v in t.items()} for k, t in tops.items()}})
    return out


def render(record: Dict[str, Any]) -> str:
    lines = ["# The statistics bank: size, build time, switching cost", "",
             f"Written by `benchmarks/bank.py` on {record['date']} ({record['machine']}). Random weights and "
             f"images (the sizes and times do not depend on them). Build time: one configuration-tree walk per "
             f"calibration batch; for the networks measured on fewer images than the default rule's "
             f"{BANK_BATCHES} x {BANK_BATCH_SIZE}, the rule's time is extrapolated linearly (marked ~).", "",
             "| network | configs | bank float32 | float16 | weights | bank / weights | rows | build (images) | "
             "build, default rule | set_config without / with bank | forward b1 without / with |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["networks"]:
        rule = f"{r['build_seconds_default_rule']:.1f} s" if r["default_rule_measured"] else \
            f"~{r['build_seconds_default_rule']:.0f} s"
        lines.append(f"| {r['model']} ({r['input_size']} px) | {r['configs']} | {r['bank_bytes_float32'] / 1e6:.2f} MB | "
                     f"{r['bank_bytes_float16'] / 1e6:.2f} MB | {r['weights_bytes'] / 1e6:.1f} MB | "
                     f"{100 * r['ratio_float32']:.1f} % | {r['rows']} | {r['build_seconds']:.1f} s "
                     f"({r['build_images']}) | {rule} | {r['set_config_us_without_bank']:.0f} / "
                     f"{r['set_config_us_with_bank']:.0f} us | {r['forward_b1_ms_without_bank']:.2f} / "
                     f"{r['forward_b1_ms_with_bank']:.2f} ms |")
    goal = next(r for r in record["networks"] if r["model"] == "resnet50")["set_config_us_with_bank"]
    lines += ["", f"Goal: switching configuration stays under a millisecond for resnet50 on the CPU with the bank: "
                  f"{goal:.0f} us, {'met' if goal < 1000 else 'NOT met'}.", ""]
    e = record.get("float16")
    if e:
        m = e["mean_top1"]
        lines += [f"Storing the bank in float16 (`resizable calibrate --dtype float16`), on `{e['network']}` "
                  f"({e['split']}, {e['images']} images, all 64 configurations): the largest top-1 change against "
                  f"float32 is {e['max_abs_diff_float16']:.2f} points (mean {e['mean_abs_diff_float16']:.3f}); "
                  f"mean top-1 {m['float32']:.2f} (float32) / {m['float16']:.2f} (float16) / {m['as_trained']:.2f} "
                  f"(the running averages as trained).", ""]
    return "\n".join(lines)


def readme_line(record: Dict[str, Any]) -> str:
    """The README's one line: resnet50's bank against its weights, the switching cost, and what a bank buys."""
    r50 = {r["model"]: r for r in record["networks"]}["resnet50"]
    e = record.get("float16")
    gain = (f"; on the paper suite's network, the configurations' mean val top-1 is "
            f"{e['mean_top1']['float32']:.2f}% with its bank and {e['mean_top1']['as_trained']:.2f}% with the running "
            f"averages" if e else "")
    return (f"**Statistics bank** (`benchmarks/bank.py`, {record['date']}, {record['machine']}): resnet50's holds "
            f"its {r50['configs']} configurations' BN statistics in {r50['bank_bytes_float32'] / 1e6:.1f} MB "
            f"({100 * r50['ratio_float32']:.0f} % of its weights), and `set_config` with it takes "
            f"{r50['set_config_us_with_bank']:.0f} us (goal < 1 ms){gain}. "
            f"[Details](benchmarks/results/bank.md).")


def main(argv: List[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--switches", type=int, default=2000, help="set_config calls timed per network")
    p.add_argument("--out", default=str(RESULTS), help="results folder")
    p.add_argument("--render", action="store_true", help="only re-write bank.md and the README line from bank.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.render:
        write(json.loads((out / "bank.json").read_text()), out)
        return 0
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    record = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"{torch.get_num_threads()} threads",
              "networks": []}
    for name, kwargs, size, batches, batch in NETWORKS:
        r = measure(name, kwargs, size, batches, batch, args.switches)
        print(json.dumps(r), flush=True)
        record["networks"].append(r)
    if KEPT_RS.is_file():
        record["float16"] = dtype_effect(KEPT_RS)
        print(json.dumps({k: v for k, v in record["float16"].items() if k != "top1"}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bank.json", json.dumps(record, indent=1) + "\n")
    write(record, out)
    return 0


def write(record: Dict[str, Any], out: Path) -> None:
    """bank.md, and the README's line when ``out`` is the committed results folder."""
    atomic_write_text(out / "bank.md", render(record))
    if out.resolve() == RESULTS.resolve() and README.is_file():
        text = README.read_text()
        marks = re.compile(r"(<!-- bank:start -->\n).*?(<!-- bank:end -->)", re.S)
        if marks.search(text):
            atomic_write_text(README, marks.sub(lambda m: m.group(1) + readme_line(record) + "\n" + m.group(2), text))
            print(f"wrote the bank line into {README}")
    print(f"wrote {out / 'bank.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
