"""Benchmark: Resizable-Adapt vs the lookup table's best single configuration at equal cost (paper Fig. 3d).

Trains a ResizableNet on Fashion-MNIST (Algorithm 1, fair sampling) unless ``--checkpoint`` is
given, labels ``--label-images`` training images with their best configuration, trains one
configuration classifier per (feature source, label rule), and routes the test set under several
per-image budgets. Every configuration is also run on the test set once: that pass gives the
lookup table (the static comparison) and the oracle (each image at its best allowed configuration).
Writes ``benchmarks/results/adapt.json``, ``adapt.md`` and ``adapt.png``.

    PYTHONPATH=src python benchmarks/adapt.py                      # ~10 minutes on 2 busy CPU cores
    PYTHONPATH=src python benchmarks/adapt.py --epochs 30 --max-steps-per-epoch 0 --label-images 60000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from resizable import adapt, nas
from resizable.configs import format_config
from resizable.tables import Table
from resizable.checkpoint import load_checkpoint, load_model, run_options
from resizable.data import load_dataset, make_loader
from resizable.latency import device_description
from resizable.train import TrainOptions, train

RESULTS = Path(__file__).parent / "results"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="use this trained ResizableNet instead of training one")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--widths", default="8,16,32", help="stage widths of the model")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-steps-per-epoch", type=int, default=100, help="0: full epochs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the system location)")
    p.add_argument("--label-images", type=int, default=10000, help="training images to label")
    p.add_argument("--sources", default="min,stem", help="classifier feature sources")
    p.add_argument("--rules", default="cheapest,confident", help="label rules")
    p.add_argument("--clf-width", type=int, default=16, help="channels of the classifier's convolutions")
    p.add_argument("--clf-epochs", type=int, default=15)
    p.add_argument("--budgets", default=None,
                   help="per-image budgets in MMACs, comma-separated (default: 7 points from the smallest to the "
                        "largest configuration's cost)")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--work-dir", default="runs/bench-adapt", help="run folder, label and classifier files")
    p.add_argument("--out", default=str(RESULTS / "adapt.json"))
    return p.parse_args()


def train_network(args: argparse.Namespace, work: Path) -> tuple:
    run = work / "rs"
    if (run / "checkpoint.pt").is_file():
        payload = load_checkpoint(run)
        if payload["epoch"] + 1 == payload["train_options"]["epochs"]:
            print(f"reusing the finished run {run}", flush=True)
            return run, None, True
    cfg = TrainOptions(model=args.model, model_args={"widths": [int(w) for w in args.widths.split(",")]},
                      dataset="fashion-mnist", data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, out_dir=str(work), name="rs", progress=False,
                      max_steps_per_epoch=args.max_steps_per_epoch or None, eval_configs="default",
                      resume=str(run) if (run / "checkpoint.pt").is_file() else None)
    t0 = time.perf_counter()
    train(cfg)
    return run, time.perf_counter() - t0, False


def default_budgets(table: Table) -> list:
    costs = sorted(r["mmacs"] for r in table.records())
    lo, hi = costs[0], costs[-1]
    return [round(lo + f * (hi - lo), 3) for f in (0.05, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0)]


def plot(report: dict, table: Table, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = table.records()
    front = nas.pareto_front(table)
    fig, ax = plt.subplots(figsize=(10.5, 4.8), dpi=120)
    ax.scatter([r["mmacs"] for r in recs], [r["top1_pct"] for r in recs], s=9, color="0.75",
               label=f"all {len(recs)} configurations (static)")
    xs, ys = [], []
    for r in front:  # best static configuration within a cost: a step function
        if xs:
            xs.append(r["mmacs"])
            ys.append(ys[-1])
        xs.append(r["mmacs"])
        ys.append(r["top1_pct"])
    ax.plot(xs, ys, "-", color="C0", label="best static configuration within the cost (lookup table)")
    markers = "osD^v<>"
    for i, (name, variant) in enumerate(report["variants"].items()):
        pts = [(r["adapt"]["mean_mmacs"], r["adapt"]["top1_pct"]) for r in variant["budgets"] if "adapt" in r]
        if pts:
            ax.plot(*zip(*pts), marker=markers[i % len(markers)], ms=4, color=f"C{i + 1}", label=f"Adapt, {name}")
    oracle = {}
    for variant in report["variants"].values():
        for r in variant["budgets"]:
            if "oracle" in r:
                oracle[r["budget_mmacs"]] = (r["oracle"]["mean_mmacs"], r["oracle"]["top1_pct"])
    if oracle:
        pts = sorted(oracle.values())
        ax.plot(*zip(*pts), ":", marker="x", color="k", ms=4,
                label="oracle: each image's cheapest correct configuration (ceiling)")
    ax.set_xlabel("mean MMACs per image (Adapt: feature pass + classifier + routed configuration)")
    ax.set_ylabel("top-1 accuracy on the test set (%)")
    ax.set_title(f"Resizable-Adapt vs static configurations ({report['model']}, Fashion-MNIST)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        "# Resizable-Adapt on Fashion-MNIST (benchmarks/adapt.py)",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}, {report['torch_threads']} torch thread(s), torch {report['torch']}; "
        f"load average {report['load_average_1min'][0]} at the start, {report['load_average_1min'][1]} at the end  ",
        f"Date: {report['date']}  ",
        f"Network: {report['model']} widths {s['widths']}, factors {report['factors']} ({report['num_configs']} "
        f"configurations); trained {s['epochs']} epochs"
        + (f" of at most {s['max_steps_per_epoch']} steps (batch {s['batch_size']}), i.e. "
           f"{s['epochs'] * s['max_steps_per_epoch'] * s['batch_size']} images seen"
           if s["max_steps_per_epoch"] else f" (batch {s['batch_size']})")
        + f"; seed {s['seed']}  ",
        f"Labels: {report['labels']['images']} training images; test: {report['test_images']} images; "
        f"classifier width {s['clf_width']}, {s['clf_epochs']} epochs  ",
        f"Budgets bound each image's MACs (feature pass + classifier + routed configuration); "
        f"static and oracle costs are the configuration's own MACs.",
        "",
        "Wall-clock: " + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in report["seconds"].items()
                                   if v is not None) + ".",
        "",
    ]
    for name, v in report["variants"].items():
        t = v["classifier"]
        lines += [f"## Adapt, {name}", "",
                  f"Classifier: {t['macs'] / 1e6:.4f} MMACs, reads {t['feature_shape']} features "
                  f"(feature pass {v['feature_mmacs']:.3f} MMACs); held-out label accuracy "
                  f"{t['val']['label_accuracy_pct']:.1f} %, trained in {t['seconds']:.0f} s.", "",
                  "| budget (MMACs) | Adapt top-1 % | Adapt mean MMACs | best static within Adapt's mean cost | "
                  "best static within the budget | oracle top-1 % (mean MMACs) | Adapt s | static s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in v["budgets"]:
            if "adapt" not in r:
                lines.append(f"| {r['budget_mmacs']:g} | infeasible: {r['infeasible']} | | | | | | |")
                continue
            a, m, b, o = r["adapt"], r.get("static_at_mean_cost"), r.get("static_at_budget"), r.get("oracle")
            fmt = lambda x: f"{x['top1_pct']:.2f} % ({x['config']}, {x['mmacs']:.3f})" if x else "none fits"
            lines.append(f"| {r['budget_mmacs']:g} | {a['top1_pct']:.2f} | {a['mean_mmacs']:.3f} | {fmt(m)} | {fmt(b)} | "
                         f"{o['top1_pct']:.2f} ({o['mean_mmacs']:.3f}) | {a['seconds']:.2f} | "
                         f"{b.get('seconds', float('nan')) if b else float('nan'):.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    seconds = {}
    if args.checkpoint:
        run, seconds["train_network"], reused = Path(args.checkpoint), None, True
    else:
        run, seconds["train_network"], reused = train_network(args, work)
    model, payload = load_model(run)
    data_dir = args.data_dir or run_options(payload).get("data_dir")

    t0 = time.perf_counter()
    labels, labels_path = adapt.label_checkpoint(run, work / "labels.pt", num_images=args.label_images,
                                                 seed=args.seed, data_dir=data_dir, progress=False)
    seconds["label"] = time.perf_counter() - t0
    print(f"labelled {len(labels.labels)} images in {seconds['label']:.0f} s: {labels.summary()}", flush=True)

    test = load_dataset("fashion-mnist", "test", data_dir=data_dir, augment=False)
    loader = make_loader(test, args.eval_batch_size, shuffle=False)
    t0 = time.perf_counter()
    outcomes = adapt.config_outcomes(model, loader)
    seconds["test_all_configs"] = time.perf_counter() - t0
    table = adapt.outcomes_table(model, outcomes, 28, dataset="fashion-mnist", split="test",
                                 model_name=payload["model_name"])
    table.write(work / "table.csv")
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else default_budgets(table)
    print(f"every configuration on the test set in {seconds['test_all_configs']:.0f} s; budgets {budgets}", flush=True)

    variants = {}
    static_seconds = {}
    for source in args.sources.split(","):
        for rule in args.rules.split(","):
            name = f"{source} features, {rule} labels"
            t0 = time.perf_counter()
            trained, clf_path = adapt.train_checkpoint(labels_path, run, work / f"clf-{source}-{rule}.pt",
                                                       source=source, rule=rule, width=args.clf_width,
                                                       epochs=args.clf_epochs, seed=args.seed, progress=False)
            clf_seconds = time.perf_counter() - t0
            adapter = adapt.Adapter.from_trained(model, trained)
            rows = []
            for budget in budgets:
                try:
                    adapter.allowed(budget)
                except nas.NoFeasibleConfig as e:
                    rows.append({"budget_mmacs": budget, "infeasible": str(e)})
                    continue
                r = adapt.evaluate_adapt(adapter, loader, budget, table=table, outcomes=outcomes,
                                         time_static=budget not in static_seconds)
                if r.get("static_at_budget"):
                    if budget in static_seconds:
                        r["static_at_budget"]["seconds"] = static_seconds[budget]
                    else:
                        static_seconds[budget] = r["static_at_budget"].get("seconds")
                rows.append(r)
                a = r["adapt"]
                m = r.get("static_at_mean_cost") or {}
                print(f"{name} @ {budget:g}: adapt {a['top1_pct']:.2f} % at {a['mean_mmacs']:.3f} MMACs; static at "
                      f"that cost {m.get('top1_pct', float('nan')):.2f} %; oracle {r['oracle']['top1_pct']:.2f} %",
                      flush=True)
            variants[name] = {
                "source": source, "rule": rule, "classifier_file": str(clf_path),
                "feature_mmacs": adapter.costs.feature_macs / 1e6,
                "classifier": {"macs": adapter.costs.classifier_macs, "seconds": clf_seconds,
                               "feature_shape": trained.report["feature_shape"],
                               "train": trained.report.get("train"), "val": trained.report.get("val")},
                "budgets": rows,
            }
    seconds["classifier_training"] = sum(v["classifier"]["seconds"] for v in variants.values())
    seconds["routed_passes"] = sum(r["adapt"]["seconds"] for v in variants.values() for r in v["budgets"]
                                   if "adapt" in r)
    seconds["total"] = time.perf_counter() - start
    report = {
        "benchmark": "Resizable-Adapt vs the lookup table's best static configuration (paper Fig. 3d)",
        "command": "PYTHONPATH=src python " + " ".join(["benchmarks/adapt.py"] + sys.argv[1:]),
        "machine": f"{device_description(torch.device('cpu'))}, {os.cpu_count()} CPU cores (shared with other work)",
        "torch_threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "settings": {"widths": args.widths, "epochs": args.epochs, "max_steps_per_epoch": args.max_steps_per_epoch,
                     "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "clf_width": args.clf_width,
                     "clf_epochs": args.clf_epochs, "label_images": args.label_images,
                     "eval_batch_size": args.eval_batch_size, "network_reused": reused},
        "model": payload["model_name"], "factors": list(model.factors), "num_configs": len(model.configs()),
        "weights_sha256": labels.identity["weights_sha256"],
        "labels": labels.summary(), "test_images": len(test),
        "static": {"best_top1_pct": max(r["top1_pct"] for r in table.records()),
                   "max_config_top1_pct": table.value(model.max_config, "top1_pct"),
                   "min_config_top1_pct": table.value(model.min_config, "top1_pct"),
                   "pareto_front": [{"config": format_config(r["config"]), "mmacs": r["mmacs"],
                                     "top1_pct": r["top1_pct"]} for r in nas.pareto_front(table)]},
        "seconds": seconds,
        "variants": variants,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    plot(report, table, out.with_suffix(".png"))
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
