"""Benchmark: the built-in demo, run exactly as a user runs it, checked against its targets.

Runs ``python -m resizable demo --no-progress`` in a fresh process (so the wall time includes
start-up and data loading), then writes ``benchmarks/results/demo.md`` and ``demo.json``: the
machine, the command, the demo's own summary (``summary.json`` of its run folder), the wall time,
and whether the targets hold (full configuration >= 90% top-1, every configuration within 4
points of it, about 5 minutes: at most 300 s). The demo's table and plot are copied beside them, and the
README's demo block (between ``<!-- demo:start -->`` and ``<!-- demo:end -->``: one line and what the demo
printed) is rewritten from the result. ``--render`` rewrites the report and that block from the saved JSON.

    PYTHONPATH=src python benchmarks/demo.py            # about 5 minutes on 2 CPU cores
    PYTHONPATH=src python benchmarks/demo.py -- --epochs 1   # anything after -- goes to the demo
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch

from resizable import atomic_write_text
from resizable.nas import device_description

RESULTS = Path(__file__).parent / "results"
TARGETS = {"full_top1_min": 90.0, "gap_points_max": 4.0, "seconds_max": 300.0}
README = Path(__file__).resolve().parent.parent / "README.md"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-dir", default="runs/bench-demo", help="parent of the demo's run folder (replaced)")
    p.add_argument("--out", default=str(RESULTS / "demo.json"))
    p.add_argument("--render", action="store_true", help="only rewrite the .md from an existing --out JSON")
    p.add_argument("demo_args", nargs="*", help="extra arguments for `resizable demo` (after --)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.render:
        out = Path(args.out)
        result = json.loads(out.read_text())
        atomic_write_text(out.with_suffix(".md"), render(result, out))
        write_readme(result, out)
        return 0
    work = Path(args.work_dir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    command = [sys.executable, "-m", "resizable", "demo", "--no-progress", "--out-dir", str(work), "--name", "demo",
               *args.demo_args]
    shown = "python -m resizable demo --no-progress" + "".join(f" {a}" for a in args.demo_args)
    print("running:", shown, flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent / "src"),
                                                      env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        print(f"the demo failed with exit code {proc.returncode}; nothing written", file=sys.stderr)
        return proc.returncode
    run = work / "demo"
    summary = json.loads((run / "summary.json").read_text())
    checks = {
        "full_top1": summary["full"]["top1"] >= TARGETS["full_top1_min"],
        "every_config_within_4_points": summary["gap_points"] <= TARGETS["gap_points_max"],
        "wall_seconds": wall <= TARGETS["seconds_max"],
    }
    result = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": {"cpu": device_description(torch.device("cpu")), "cores": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "command": shown,
        "wall_seconds": wall,
        "summary": summary,
        "targets": TARGETS,
        "checks": checks,
        "demo_output_tail": proc.stdout.splitlines()[-6:],
        "demo_epoch_lines": [line for line in proc.stdout.splitlines() if line.startswith("epoch ")],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "configs.csv", out.with_name(out.stem + "_configs.csv"))
    shutil.copyfile(run / "accuracy_vs_macs.png", out.with_name(out.stem + ".png"))
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), render(result, out))
    write_readme(result, out)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0 if all(checks.values()) else 1


def bn_basis(s: dict) -> str:
    if s["calibrate_bn"]:
        return f"BN recalibrated on {s['calibrate_bn']} batches per configuration"
    return "each configuration's BN statistics from the run's statistics bank"


def spread(out: Path) -> Optional[dict]:
    """Every configuration's top-1 range and the cheapest configuration, from the copied ``*_configs.csv``."""
    table = out.with_name(out.stem + "_configs.csv")
    if not table.is_file():
        return None
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    top = {row["config"]: float(row["top1_pct"]) for row in rows}
    macs = {row["config"]: float(row["mmacs"]) for row in rows}
    cheap = min(macs, key=macs.get)
    return {"count": len(rows), "low": min(top.values()), "high": max(top.values()), "cheap": cheap,
            "cheap_mmacs": macs[cheap], "cheap_top1": top[cheap]}


def spread_sentence(r: dict, out: Path) -> str:
    sp, best, full = spread(out), r["summary"]["best"], r["summary"]["full"]
    if sp is None:
        return ""
    return (f"All {sp['count']} configurations lie between {sp['low']:.2f}% and {sp['high']:.2f}%. The best, "
            f"`{best['config']}`, gives {best['top1']:.2f}% at {best['mmacs']:.2f} MMACs; the cheapest, "
            f"`{sp['cheap']}` at {sp['cheap_mmacs']:.2f} MMACs ({full['mmacs'] / sp['cheap_mmacs']:.1f}x cheaper "
            f"than the full one), keeps {sp['cheap_top1']:.2f}%.")


def printed(r: dict) -> List[str]:
    """What the demo printed, shortened: its epoch lines, then its last lines."""
    return ["```", *r.get("demo_epoch_lines", []), "...", *r["demo_output_tail"][-5:], "```"]


def readme_block(r: dict, out: Path) -> List[str]:
    """The README's demo block: one line (what it scored, where it ran, a link to the full record), then what
    it printed."""
    s, m, sp = r["summary"], r["machine"], spread(out)
    line = (f"Run by `benchmarks/demo.py` on {r['date_utc'].split()[0]} ({m['cores']}-core {m['cpu']}, torch "
            f"{m['torch']}), {r['wall_seconds']:.0f} s: the full configuration scores {s['full']['top1']:.2f}% "
            f"top-1 at {s['full']['mmacs']:.2f} MMACs")
    if sp:
        line += (f", all {sp['count']} lie between {sp['low']:.2f}% and {sp['high']:.2f}%, and the cheapest "
                 f"({s['full']['mmacs'] / sp['cheap_mmacs']:.1f}x cheaper) keeps {sp['cheap_top1']:.2f}%")
    line += ". [Full record](benchmarks/results/demo.md). What it printed:"
    return [line, "", *printed(r)]


def write_readme(r: dict, out: Path) -> None:
    """Rewrite the README's demo block, only for the committed result."""
    if out.resolve() != (RESULTS / "demo.json").resolve() or not README.is_file():
        return
    block = readme_block(r, out)
    text = README.read_text()
    marks = re.compile(r"(<!-- demo:start -->\n).*?(<!-- demo:end -->)", re.S)
    if marks.search(text):
        atomic_write_text(README, marks.sub(lambda mm: mm.group(1) + "\n".join(block) + "\n" + mm.group(2), text))
        print(f"wrote the demo block into {README}")


def render(r: dict, out: Path) -> str:
    s, m = r["summary"], r["machine"]
    ok = lambda b: "yes" if b else "NO"  # noqa: E731
    lines = [
        "# The demo, measured",
        "",
        f"Written by `benchmarks/demo.py` on {r['date_utc']} UTC. Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['platform']}, Python {m['python']}, torch {m['torch']} ({s['threads']} threads).",
        "",
        f"Command: `{r['command']}` (model {s['model']} {s['model_args']}, factors {tuple(s['factors'])}, "
        f"{s['epochs']} epochs, batch {s['batch_size']}, lr {s['lr']}, weight decay {s['weight_decay']}, "
        f"seed {s['seed']}; {s.get('distinct_resolutions', '?')} of its {s['num_configs']} configurations with "
        f"distinct stage resolutions; {bn_basis(s)}).",
        "",
        "| | configuration | MMACs | test top-1 % |",
        "|---|---|---|---|",
        f"| full | {s['full']['config']} | {s['full']['mmacs']:.2f} | {s['full']['top1']:.2f} |",
        f"| worst | {s['worst']['config']} | {s['worst']['mmacs']:.2f} | {s['worst']['top1']:.2f} |",
        f"| best | {s['best']['config']} | {s['best']['mmacs']:.2f} | {s['best']['top1']:.2f} |",
        "",
        f"Wall time {r['wall_seconds']:.0f} s (the demo's own count: {s['seconds']['total']:.0f} s, "
        f"training {s['seconds']['train']:.0f} s, evaluating {s['seconds']['evaluate']:.0f} s).",
        "",
        "| target | met |",
        "|---|---|",
        f"| full configuration >= {r['targets']['full_top1_min']:.0f}% top-1 | {ok(r['checks']['full_top1'])} |",
        f"| every configuration within {r['targets']['gap_points_max']:.0f} points of the full one "
        f"(gap {s['gap_points']:.2f}) | {ok(r['checks']['every_config_within_4_points'])} |",
        f"| at most {r['targets']['seconds_max']:.0f} s | {ok(r['checks']['wall_seconds'])} |",
        "",
        spread_sentence(r, out),
        "",
        f"All {s['num_configs']} configurations: [demo_configs.csv](demo_configs.csv); accuracy against MMACs:",
        "",
        "![accuracy against MMACs of every configuration](demo.png)",
        "",
        "What the demo printed (its epoch lines, then its last lines):",
        "",
        *printed(r),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
