"""``resizable predict``: image files through a trained run or an exported network, top-k classes each.

The images are prepared exactly as ``resizable eval`` prepares the run's own
(:class:`resizable.inference.images.Preprocessing`), so predicting over a split's images written
as files gives ``eval``'s top-1 on that split. Images that cannot be read are reported one line
each and the rest go on; :class:`PredictSummary` counts both.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, TextIO, Tuple

import torch
from torch import Tensor

from ..bnbank import BN_STATISTICS
from ..utils.fileio import atomic_path
from ..utils.options import check_options, option, required
from .images import image_paths
from .network import Network, NetworkChoice, source_kind
from .output import OUTPUT_FORMATS, Prediction, make_writer, output_format

__all__ = ["PredictOptions", "PredictSummary", "open_network", "predictions", "predict_checkpoint"]


@dataclass(frozen=True)
class PredictOptions:
    """What ``resizable predict`` classifies, with which network, and where the results go."""

    checkpoint: Optional[str] = required("run folder, checkpoint file, or exported network (TorchScript, ONNX or "
                                         "state_dict file, with its .json sidecar); the first positional argument "
                                         "gives it too", metavar="RUN")
    paths: Tuple[str, ...] = option((), "image files, folders (searched recursively) or - (paths read from stdin, "
                                        "one a line)", metavar="PATH")
    config: Optional[str] = option(None, "one factor per stage, comma-separated (e.g. 0.65,0.85,1,1), or 'min' / "
                                         "'max' (default: max, the full network)")
    max_mmacs: Optional[float] = option(None, "budget in millions of multiply-accumulates: the lookup table's most "
                                              "accurate configuration within it; with --classifier, the per-image "
                                              "routing budget", above=0.0)
    table: Optional[str] = option(None, "lookup table for --max-mmacs (default: table.csv in the run folder)")
    count_interp: bool = option(False, "--max-mmacs also counts the resizes' interpolation MACs")
    classifier: Optional[str] = option(None, "route each image to its own configuration with this Resizable-Adapt "
                                             "classifier (resizable adapt train)")
    bn_statistics: Optional[str] = option(None, "BN statistics: bank (each configuration its own, from the "
                                                "checkpoint's statistics bank) or as-trained (default: bank)",
                                          choices=BN_STATISTICS)
    dataset: Optional[str] = option(None, "feed the network as this dataset is fed (default: the training one)")
    data_dir: Optional[str] = option(None, "dataset folder (default: the training one)")
    topk: int = option(5, "classes per image, most probable first (at most the number of classes)", min=1)
    format: Optional[str] = option(None, "text (path<TAB>class:prob ...), csv or json (default: from --out's "
                                         "suffix, else text)", choices=OUTPUT_FORMATS)
    out: Optional[str] = option(None, "write the predictions to this file, atomically, instead of stdout "
                                      "(--output is an alias)", metavar="FILE")
    batch_size: int = option(64, "images per forward pass", min=1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds

    def choice(self) -> NetworkChoice:
        """The options that choose a run's network."""
        return NetworkChoice(self.config, self.max_mmacs, self.table, self.count_interp, self.classifier,
                             self.bn_statistics, self.dataset, self.data_dir)


@dataclass(frozen=True)
class PredictSummary:
    """How many images were classified and how many could not be read; where the results went."""

    classified: int
    unreadable: int
    out: Optional[Path] = None


def open_network(source: str, choice: NetworkChoice, device: torch.device) -> Network:
    """The network at ``source`` (run folder, checkpoint, or export) on ``device``, as ``choice`` says.

    Raises ``ValueError`` (one line) for a choice that does not fit the source, e.g. ``--config`` for an
    export written at another configuration, or ``--max-mmacs`` without a table.
    """
    path = Path(source)
    kind = source_kind(path)
    if kind == "run":
        from .run_network import run_network

        return run_network(path, choice, device)
    from .exported import export_network

    return export_network(path, kind, choice, device)


def _run_batch(network: Network, slots: List[Tuple[str, Optional[Tensor], Optional[str]]], topk: int
               ) -> Iterator[Prediction]:
    images = [t for _, t, _ in slots if t is not None]
    top: List[Tuple[Tuple[int, float], ...]] = []
    configs: List[Optional[tuple]] = []
    if images:
        logits, chosen = network.forward(torch.stack(images))  # (B, classes), (B,) or None
        probs, index = logits.float().softmax(dim=1).topk(topk, dim=1)
        top = [tuple(zip(i.tolist(), p.tolist())) for i, p in zip(index.cpu(), probs.cpu())]
        configs = ([network.configs[j] for j in chosen.tolist()] if chosen is not None and network.configs
                   else [None] * len(images))
    done = iter(zip(top, configs))
    for path, tensor, problem in slots:
        if tensor is None:
            yield Prediction(path, error=problem)
        else:
            best, config = next(done)
            yield Prediction(path, best, config)


def predictions(network: Network, entries: Iterable[Tuple[str, Optional[str]]], batch_size: int, topk: int
                ) -> Iterator[Prediction]:
    """One :class:`Prediction` per ``(path, problem)`` entry (:func:`resizable.inference.images.image_paths`),
    in order, running ``batch_size`` readable images at a time."""
    slots: List[Tuple[str, Optional[Tensor], Optional[str]]] = []
    ready = 0
    for path, problem in entries:
        tensor = None
        if problem is None:
            try:
                tensor = network.preprocessing.load(path)
            except ValueError as e:  # BadImageError: the message names the file
                problem = str(e)
        if tensor is None and not slots:
            yield Prediction(path, error=problem)  # nothing waits for a batch: say it now
            continue
        slots.append((path, tensor, problem))
        ready += tensor is not None
        if ready == batch_size:
            yield from _run_batch(network, slots, topk)
            slots, ready = [], 0
    if slots:
        yield from _run_batch(network, slots, topk)


def describe_network(network: Network) -> str:
    """What runs, in one line: network, configuration or routing, BN statistics, preprocessing."""
    a = network.about
    if a.get("routing"):
        r = a["routing"]
        what = (f"routed by {r['classifier']} among {r['configs_allowed']} of {r['configs']} configurations "
                f"({r['budget']})")
    else:
        what = f"at {a['config']} ({a['mmacs']:.3f} MMACs)"
    names = "" if a.get("classes_recorded", True) else "; no class names recorded: classes shown by index"
    return (f"{a.get('model') or 'network'} ({a['kind']} {a['source']}) {what}, BN statistics: {a['bn_statistics']}; "
            f"input {network.preprocessing.describe()}; {a.get('device', 'cpu')}{names}")


def _head(network: Network, topk: int) -> dict:
    about = {k: v for k, v in network.about.items() if k != "classes_recorded"}
    return {"network": about, "preprocessing": network.preprocessing.describe(), "classes": list(network.classes),
            "topk": topk}


def _write(network: Network, opts: PredictOptions, stream: TextIO, stdin: Optional[TextIO], stderr: TextIO
           ) -> Tuple[int, int]:
    """Classify every image ``opts.paths`` name onto ``stream``; returns (classified, unreadable)."""
    topk = min(opts.topk, len(network.classes))
    writer = None
    counts = [0, 0]
    for p in predictions(network, image_paths(opts.paths, stdin), opts.batch_size, topk):
        if writer is None:  # said once there is something to classify, so that a refusal stays one line
            print(f"resizable predict: {describe_network(network)}", file=stderr, flush=True)
            writer = make_writer(output_format(opts.format, opts.out), stream, network.classes, topk,
                                 network.configs is not None, _head(network, topk))
        if p.error is not None:
            print(f"resizable predict: {p.error}", file=stderr, flush=True)
        writer.write(p)
        counts[p.error is not None] += 1
    if writer is None:
        raise ValueError(f"no image files in {', '.join(opts.paths)} (folders are searched for "
                         f".png, .jpg, .jpeg, .bmp, .ppm, .pgm, .tif, .tiff, .webp)")
    writer.close()
    return counts[0], counts[1]


def predict_checkpoint(opts: PredictOptions, *, stdout: Optional[TextIO] = None, stdin: Optional[TextIO] = None,
                   stderr: Optional[TextIO] = None) -> PredictSummary:
    """Classify the images ``opts.paths`` name; what ``resizable predict`` runs.

    Results go to ``opts.out`` (written atomically: the file appears whole, or not at all) or ``stdout``;
    one line on ``stderr`` says what runs, and one more per image that cannot be read.

    Raises:
        ValueError: bad options, a source that is not a run or export, or no image files at all.
    """
    from ..utils.distributed import resolve_device
    from ..training.run_folder import output_path

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if not opts.paths:
        raise ValueError("give at least one image file, folder, or - (paths read from stdin)")
    output_format(opts.format, opts.out)
    out = output_path(opts.out) if opts.out else None  # refused before the work, not after
    network = open_network(opts.checkpoint, opts.choice(), resolve_device(opts.device))
    if out is None:
        return PredictSummary(*_write(network, opts, stdout, stdin, stderr))
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        counts = _write(network, opts, stream, stdin, stderr)
    return PredictSummary(*counts, out)
