"""An Adapt pipeline as deployable files: a classifier's router or a confidence cascade.

- ``torchscript``: one scripted module; ``module(images)`` returns ``(logits, index)``, where
  ``index`` is the configuration each image ran at (the router: an index into the classifier's
  configurations) or the step it stopped at (the cascade). The sidecar (``F.json``, also inside
  the archive as ``resizable.json``) lists the configurations and costs.
- ``onnx``: one network per piece (the stem, the classifier's feature pass and the classifier, one
  network per routed configuration or cascade step), each with a dynamic batch dimension, and a
  JSON file that says how to chain them: which output feeds which network, on which images.
  :func:`run_onnx_pipeline` follows it with onnxruntime (and is the reference for doing it elsewhere).

The pieces are :func:`resizable.deploy.static.export_pieces`: a step or route starts from the
stage output it shares with an earlier piece (the same leading factors), exactly as
:meth:`Cascade.infer` and :meth:`Adapter.infer` do, so the files compute what ``adapt eval``
routes. BN folding (``fold_bn``) and ONNX runtimes change the last bits of the logits, which can
move an image whose confidence (or classifier score) sits on a threshold.
"""
from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..configs import Config, format_config
from ..deploy.fold import fold_bn as fold_batchnorm
from ..deploy.static import export_pieces
from ..utils.fileio import atomic_path, atomic_write_text, read_text
from ..net import ResizableNet
from .cascade import Cascade
from .labels import PathLike
from .routing import Adapter

__all__ = ["PIPELINE_FORMAT", "PIPELINE_FORMATS", "Segment", "CascadeModule", "RouterModule", "PipelineExport",
           "pipeline_module", "export_pipeline", "run_onnx_pipeline"]

PIPELINE_FORMAT = "resizable-adapt-pipeline"
PIPELINE_FORMATS = ("torchscript", "onnx")


class Segment(nn.Module):
    """Stages ``start..N-1`` of one configuration and its head: every stage's output, and the logits."""

    def __init__(self, stages: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, x: Tensor) -> Tuple[List[Tensor], Tensor]:
        outs: List[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs, self.head(x)


class CascadeModule(nn.Module):
    """A cascade as one module: ``(logits, step each image stopped at)``; see :class:`resizable.adapt.Cascade`."""

    def __init__(self, stem: nn.Module, segments: Sequence[Segment], starts: Sequence[int], sources: Sequence[int],
                 thresholds: Sequence[float], num_classes: int) -> None:
        super().__init__()
        self.stem = stem
        self.segments = nn.ModuleList(segments)
        self.starts: List[int] = [int(s) for s in starts]
        self.sources: List[int] = [int(s) for s in sources]
        self.thresholds: List[float] = [float(t) for t in thresholds]
        self.num_classes = int(num_classes)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        h0 = self.stem(x)
        n = x.shape[0]
        logits = torch.zeros(n, self.num_classes, dtype=h0.dtype, device=x.device)
        exits = torch.zeros(n, dtype=torch.long, device=x.device)
        active = torch.arange(n, device=x.device)
        rows: List[Tensor] = []
        acts: List[List[Tensor]] = []
        j = 0
        for segment in self.segments:
            outs: List[Tensor] = []
            if active.numel() > 0:
                start, src = self.starts[j], self.sources[j]
                if src < 0:
                    h = h0.index_select(0, active)
                else:  # the rows still going are a subset of the source step's rows
                    h = acts[src][start - 1 - self.starts[src]].index_select(0, torch.searchsorted(rows[src], active))
                outs, out = segment(h)
                logits.index_copy_(0, active, out)
                exits.index_fill_(0, active, j)
                rows.append(active)
                if j < len(self.thresholds):
                    active = active[torch.softmax(out.float(), dim=1).max(dim=1)[0] < self.thresholds[j]]
            else:
                rows.append(active)
            acts.append(outs)
            j += 1
        return logits, exits


class RouterModule(nn.Module):
    """A classifier's router as one module: ``(logits, configuration index of each image)``; see
    :class:`resizable.adapt.Adapter` (``features`` is the smallest configuration's pass, or no stage at all
    for stem features)."""

    def __init__(self, stem: nn.Module, features: Segment, classifier: nn.Module, allowed: Tensor,
                 routes: Sequence[Segment], targets: Sequence[int], starts: Sequence[int], reuse: int,
                 num_classes: int) -> None:
        super().__init__()
        self.stem, self.features, self.classifier = stem, features, classifier
        self.register_buffer("allowed", allowed.bool().clone())
        self.routes = nn.ModuleList(routes)
        self.targets: List[int] = [int(t) for t in targets]
        self.starts: List[int] = [int(s) for s in starts]
        self.reuse = int(reuse)  # the configuration whose logits the feature pass already gave (-1: none)
        self.num_classes = int(num_classes)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        h0 = self.stem(x)
        outs, feature_logits = self.features(h0)
        acts = [h0] + outs  # acts[i]: the output of stage i (0: the stem)
        scores = self.classifier(acts[-1]).float().masked_fill(~self.allowed, float("-inf"))
        choice = scores.argmax(dim=1)
        logits = torch.zeros(x.shape[0], self.num_classes, dtype=h0.dtype, device=x.device)
        j = 0
        for route in self.routes:
            idx = (choice == self.targets[j]).nonzero().squeeze(1)
            if idx.numel() > 0:
                _, out = route(acts[self.starts[j]].index_select(0, idx))
                logits.index_copy_(0, idx, out)
            j += 1
        if self.reuse >= 0:
            idx = (choice == self.reuse).nonzero().squeeze(1)
            logits.index_copy_(0, idx, feature_logits.index_select(0, idx))
        return logits, choice


class _Pieces:
    """Static pieces of several configurations, one copy per distinct prefix (a stage's piece depends only on it)."""

    def __init__(self, model: ResizableNet, input_size: Tuple[int, int], fold: bool) -> None:
        self.model, self.input_size, self.fold = model, input_size, fold
        self.stem: Optional[nn.Module] = None
        self.stage: Dict[Config, nn.Module] = {}  # keyed by the prefix of factors up to the stage
        self.head: Dict[Config, nn.Module] = {}

    def _add(self, config: Config) -> None:
        if config in self.head:
            return
        stem, stages, head = export_pieces(self.model, config, self.input_size)
        prep = (lambda m: fold_batchnorm(m.cpu())) if self.fold else (lambda m: m.cpu().eval())
        self.stem = self.stem if self.stem is not None else prep(stem)
        for i, piece in enumerate(stages):
            self.stage.setdefault(config[:i + 1], prep(piece))
        self.head[config] = prep(head)

    def segment(self, config: Config, start: int) -> Segment:
        """Stages ``start..N-1`` of ``config`` and its head."""
        self._add(config)
        return Segment([self.stage[config[:i + 1]] for i in range(start, self.model.num_stages)], self.head[config])


def pipeline_module(pipeline: Union[Adapter, Cascade], *, fold_bn: bool = False,
                    allowed: Optional[Tensor] = None) -> Union[CascadeModule, RouterModule]:
    """The pipeline as one static module (scriptable; eval mode, on the CPU).

    Args:
        pipeline: a :class:`Cascade`, or an :class:`Adapter` (a classifier's router).
        fold_bn: fold every BatchNorm2d into its convolution.
        allowed: the router's allowed configurations (:meth:`Adapter.allowed`; default: all).
    """
    model = pipeline.model
    pieces = _Pieces(model, pipeline.input_size, fold_bn)
    n = model.num_stages
    if isinstance(pipeline, Cascade):
        plan = pipeline.plan
        segments = [pieces.segment(c, s) for c, s in zip(plan.configs, plan.start)]
        return CascadeModule(pieces.stem, segments, plan.start, plan.source, pipeline.thresholds,
                             model.num_classes).eval()
    allowed = pipeline.allowed() if allowed is None else allowed.bool().cpu()
    clf = copy.deepcopy(pipeline.classifier).cpu().eval()
    clf = fold_batchnorm(clf) if fold_bn else clf
    features = (pieces.segment(model.min_config, 0) if pipeline.source == "min"
                else Segment([], nn.Identity()))
    routes, targets, starts, reuse = [], [], [], -1
    for j, (config, start) in enumerate(zip(pipeline.configs, pipeline.costs.start)):
        if not bool(allowed[j]):
            continue
        if start == n:
            reuse = j
            continue
        routes.append(pieces.segment(config, start))
        targets.append(j)
        starts.append(start)
    return RouterModule(pieces.stem, features, clf, allowed, routes, targets, starts, reuse,
                        model.num_classes).eval()


# ---------------------------------------------------------------------------- the files
@dataclass(frozen=True)
class PipelineExport:
    """Where a pipeline went: its file (the TorchScript archive, or the ONNX chaining JSON), its sidecar, every file."""

    path: Path
    sidecar: Path
    files: List[Path]
    meta: Dict[str, Any]


class _Outputs(nn.Module):
    """A segment as an ONNX network: its logits (when used) and the stage outputs later networks start from."""

    def __init__(self, segment: Segment, keep: Sequence[int], logits: bool) -> None:
        super().__init__()
        self.segment, self.keep, self.logits = segment, list(keep), logits

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs, logits = self.segment(x)
        return tuple([logits] if self.logits else []) + tuple(outs[i] for i in self.keep)


def _network(name: str, module: nn.Module, source: str, outputs: List[str]) -> Dict[str, Any]:
    return {"name": name, "module": module, "input": source, "outputs": outputs}


def _segment_network(name: str, segment: Segment, start: int, source: str, stages_needed: Sequence[int],
                     logits: bool) -> Dict[str, Any]:
    """Stage ``k`` (1-based) of a segment starting after stage ``start`` is its output ``k - 1 - start``."""
    keep = sorted(set(stages_needed))
    names = ([f"{name}.logits"] if logits else []) + [f"{name}.stage{k}" for k in keep]
    # eval mode: an exporter restores the wrapper's mode on everything inside it, shared pieces included
    return _network(name, _Outputs(segment, [k - 1 - start for k in keep], logits).eval(), source, names)


def _cascade_networks(module: CascadeModule) -> List[Dict[str, Any]]:
    nets = [_network("stem", module.stem, "image", ["stem"])]
    for j, segment in enumerate(module.segments):
        start, src = module.starts[j], module.sources[j]
        needed = [module.starts[i] for i in range(j + 1, len(module.segments)) if module.sources[i] == j]
        nets.append(_segment_network(f"step{j}", segment, start, "stem" if src < 0 else f"step{src}.stage{start}",
                                     needed, True))
    return nets


def _router_networks(module: RouterModule, num_stages: int) -> List[Dict[str, Any]]:
    nets = [_network("stem", module.stem, "image", ["stem"])]
    scores_from = "stem"
    if len(module.features.stages):
        needed = [s for s in module.starts if s > 0] + [num_stages]
        nets.append(_segment_network("features", module.features, 0, "stem", needed, module.reuse >= 0))
        scores_from = f"features.stage{num_stages}"
    nets.append(_network("classifier", module.classifier, scores_from, ["scores"]))
    for j, route, start in zip(module.targets, module.routes, module.starts):
        nets.append(_segment_network(f"route{j}", route, start, "stem" if start == 0 else f"features.stage{start}",
                                     [], True))
    return nets


def _write_onnx(module: nn.Module, example: Tensor, path: Path, outputs: List[str], exporter: str,
                opset: Optional[int]) -> None:
    try:
        import onnx
    except ImportError:
        raise ValueError("ONNX export needs the onnx packages: pip install 'resizable[onnx]'") from None
    names = {"input_names": ["input"], "output_names": outputs}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters announce their own deprecations and fallbacks
        if exporter == "dynamo":
            program = torch.onnx.export(module, (example,), None, dynamo=True, verbose=False, external_data=False,
                                        opset_version=opset, dynamic_shapes=({0: torch.export.Dim("batch")},),
                                        **names)
            proto = program.model_proto
        else:
            buffer = io.BytesIO()
            axes = {n: {0: "batch"} for n in ["input"] + outputs}
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset, dynamic_axes=axes,
                              **names)
            proto = onnx.load_from_string(buffer.getvalue())
        onnx.save(proto, str(tmp))


def _onnx_files(nets: List[Dict[str, Any]], example: Tensor, base: Path, exporter: str,
                opset: Optional[int]) -> List[Path]:
    """One ONNX file per network, each exported on the example values the chain gives it."""
    values = {"image": example}
    files = []
    with torch.no_grad():
        for net in nets:
            x = values[net["input"]]
            out = net["module"](x)
            out = out if isinstance(out, tuple) else (out,)
            values.update(zip(net["outputs"], out))
            path = base.with_name(f"{base.name}.{net['name']}.onnx")
            _write_onnx(net["module"], x, path, net["outputs"], exporter, opset)
            net["file"] = path.name
            files.append(path)
    return files


def _costs_meta(pipeline: Union[Adapter, Cascade], allowed: Optional[Tensor]) -> Dict[str, Any]:
    if isinstance(pipeline, Cascade):
        p = pipeline.plan
        return {"kind": "cascade", "cascade": {"steps": [
            {"config": format_config(c), "threshold": t, "exit_mmacs": m / 1e6, "exit_interp_mmacs": r / 1e6}
            for c, t, m, r in zip(p.configs, pipeline.thresholds + [None], p.exit_macs, p.exit_interp)]}}
    c = pipeline.costs
    allowed = pipeline.allowed() if allowed is None else allowed
    return {"kind": "router", "router": {
        "source": pipeline.source, "feature_mmacs": c.feature_macs / 1e6, "classifier_mmacs": c.classifier_macs / 1e6,
        "configs": [{"config": format_config(cfg), "allowed": bool(ok), "routed_mmacs": m / 1e6,
                     "routed_interp_mmacs": r / 1e6}
                    for cfg, ok, m, r in zip(pipeline.configs, allowed.tolist(), c.routed_macs, c.routed_interp)]}}


HOW = {
    "cascade": "run the stem and step 0 on every image; an image whose top softmax probability (of that step's "
               "logits) is below the step's threshold goes on to the next step, the others stop there with those "
               "logits; each network reads the output named as its input, at the rows of the images it runs on",
    "router": "run the stem, the feature pass and the classifier on every image; mask the scores of configurations "
              "not allowed; each image goes to the configuration of its highest score (the first among equals) and "
              "runs that configuration's network (or takes the feature pass's logits); each network reads the "
              "output named as its input, at the rows of the images it runs on",
}


def export_pipeline(pipeline: Union[Adapter, Cascade], path: PathLike, *, format: str = "torchscript",
                    fold_bn: bool = False, allowed: Optional[Tensor] = None, onnx_exporter: str = "dynamo",
                    opset: Optional[int] = None, extra_meta: Optional[Dict[str, Any]] = None) -> PipelineExport:
    """Write a pipeline (atomically; the sidecar last, so it never names a missing file).

    Args:
        pipeline: a :class:`Cascade` or an :class:`Adapter`.
        path: ``torchscript``: the archive (sidecar ``path.json``); ``onnx``: the JSON that chains the
            networks, which are written beside it as ``<name>.<network>.onnx`` (``name``: ``path``'s name
            without ``.json`` and ``.onnx``).
        format: one of :data:`PIPELINE_FORMATS`.
        fold_bn: fold BN into the convolutions.
        allowed: the router's allowed configurations (default: all).
        onnx_exporter: ``dynamo`` or ``legacy`` (as :func:`resizable.deploy.export.export_to_file`).
        opset: ONNX opset (default: the exporter's).
        extra_meta: more sidecar fields (JSON values), e.g. ``preprocessing``, ``classes``, ``bn_statistics``.
    """
    if format not in PIPELINE_FORMATS:
        raise ValueError(f"unknown pipeline format {format!r}; accepted: {', '.join(PIPELINE_FORMATS)}")
    model, path = pipeline.model, Path(path)
    module = pipeline_module(pipeline, fold_bn=fold_bn, allowed=allowed)
    meta: Dict[str, Any] = {"format": PIPELINE_FORMAT, "version": 1, "runtime": format, "fold_bn": bool(fold_bn),
                            "input_size": list(pipeline.input_size), "in_chans": model.in_chans,
                            "num_classes": model.num_classes, **_costs_meta(pipeline, allowed),
                            **(extra_meta or {})}
    meta["how"] = HOW[meta["kind"]]
    if format == "torchscript":
        meta["outputs"] = "(logits, index): index is the configuration each image ran at (router) or the step it " \
                          "stopped at (cascade)"
        text = json.dumps(meta, indent=1)
        with warnings.catch_warnings(), atomic_path(path) as tmp:
            warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated")
            torch.jit.save(torch.jit.script(module), str(tmp), _extra_files={"resizable.json": text})
        sidecar = path.with_name(path.name + ".json")
        atomic_write_text(sidecar, text + "\n")
        return PipelineExport(path, sidecar, [path, sidecar], meta)
    nets = (_cascade_networks(module) if isinstance(module, CascadeModule)
            else _router_networks(module, model.num_stages))
    base = path.with_name(path.name.removesuffix(".json").removesuffix(".onnx"))
    example = torch.randn(2, model.in_chans, *pipeline.input_size)
    files = _onnx_files(nets, example, base, onnx_exporter, opset)
    meta["networks"] = [{k: v for k, v in net.items() if k != "module"} for net in nets]
    meta["onnx_exporter"] = onnx_exporter
    atomic_write_text(path, json.dumps(meta, indent=1) + "\n")
    return PipelineExport(path, path, files + [path], meta)


def run_onnx_pipeline(path: PathLike, images: Tensor) -> Tuple[Tensor, Tensor]:
    """Follow an ONNX pipeline's chaining JSON with onnxruntime: ``(logits, index)`` for ``images`` (B, C, H, W),
    as the TorchScript module returns them."""
    import numpy as np
    import onnxruntime as ort

    path = Path(path)
    meta = json.loads(read_text(path, "pipeline file"))
    if meta.get("format") != PIPELINE_FORMAT or meta.get("runtime") != "onnx":
        raise ValueError(f"{path} is not an ONNX Resizable-Adapt pipeline (format {meta.get('format')!r})")
    nets = {net["name"]: net for net in meta["networks"]}
    sessions = {name: ort.InferenceSession(str(path.with_name(net["file"])), providers=["CPUExecutionProvider"])
                for name, net in nets.items()}
    n = images.shape[0]
    values: Dict[str, Tuple[Any, Any]] = {"image": (np.arange(n), images.float().numpy())}

    def run(name: str, rows: Any) -> None:
        src_rows, src = values[nets[name]["input"]]
        x = src[np.searchsorted(src_rows, rows)]
        for out, value in zip(nets[name]["outputs"], sessions[name].run(nets[name]["outputs"], {"input": x})):
            values[out] = (rows, value)

    logits = torch.zeros(n, meta["num_classes"])
    index = torch.zeros(n, dtype=torch.int64)
    everyone = np.arange(n)
    run("stem", everyone)
    if meta["kind"] == "cascade":
        active = everyone
        for j, step in enumerate(meta["cascade"]["steps"]):
            run(f"step{j}", active)
            out = torch.from_numpy(values[f"step{j}.logits"][1])
            logits[active], index[active] = out, j
            if step["threshold"] is None:
                break
            active = active[(torch.softmax(out, dim=1).max(dim=1).values < step["threshold"]).numpy()]
            if active.size == 0:
                break
        return logits, index
    if "features" in nets:
        run("features", everyone)
    run("classifier", everyone)
    configs = meta["router"]["configs"]
    allowed = torch.tensor([c["allowed"] for c in configs])
    scores = torch.from_numpy(values["scores"][1]).float().masked_fill(~allowed, float("-inf"))
    index = scores.argmax(dim=1)
    for j in range(len(configs)):
        rows = np.nonzero(index.numpy() == j)[0]
        if rows.size == 0:
            continue
        if f"route{j}" in nets:
            run(f"route{j}", rows)
            logits[rows] = torch.from_numpy(values[f"route{j}.logits"][1])
        else:  # the feature pass's own configuration: its logits
            logits[rows] = torch.from_numpy(values["features.logits"][1][np.searchsorted(everyone, rows)])
    return logits, index
