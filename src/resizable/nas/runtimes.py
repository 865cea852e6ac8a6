"""Runtimes a deployed configuration runs in: eager PyTorch, TorchScript, ONNX Runtime.

Each runtime runs the network that deployment writes for a configuration: the eval-mode static
network of :func:`resizable.export` (``torch``), and the files :func:`resizable.deploy.export.export_to_file`
writes from that same network (``torchscript``: ``torch.jit.script``, loaded with ``torch.jit.load``;
``onnxruntime``: the ONNX file, run by an ``onnxruntime.InferenceSession``). ONNX Runtime is the
optional extra ``pip install 'resizable[onnx]'``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Dict, Sequence

import torch

from ..deploy.export import export_to_file
from ..deploy.static import export
from ..net import ResizableNet, SizeLike, to_size2d
from ..utils.optional import ONNX_MODULES, require

__all__ = ["RUNTIMES", "check_runtime", "runtime_description", "runtime_meta", "load_in_runtime", "OnnxRuntimeModule"]

RUNTIMES = ("torch", "torchscript", "onnxruntime")


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of :data:`RUNTIMES`, else a ``ValueError`` naming them."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; accepted: {', '.join(RUNTIMES)}")
    return runtime


def _onnxruntime():
    # the runtime loads an ONNX file this library writes first: its exporter's packages are needed too
    require(("onnxruntime",) + ONNX_MODULES, "the onnxruntime runtime")
    import onnxruntime

    return onnxruntime


def _ort_providers(device: torch.device) -> list:
    ort = _onnxruntime()
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ValueError(f"onnxruntime on cuda needs the CUDAExecutionProvider (pip install onnxruntime-gpu); "
                         f"this onnxruntime has: {', '.join(ort.get_available_providers())}")
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


def runtime_description(runtime: str, device: torch.device | str = "cpu") -> str:
    """The runtime and its version, e.g. ``onnxruntime 1.20.1 (CPUExecutionProvider)``."""
    check_runtime(runtime)
    device = torch.device(device)
    if runtime == "torch":
        return f"torch {torch.__version__} eager"
    if runtime == "torchscript":
        return f"torchscript (torch {torch.__version__})"
    provider = _ort_providers(device)[0]
    return f"onnxruntime {_onnxruntime().__version__} ({provider if isinstance(provider, str) else provider[0]})"


class OnnxRuntimeModule:
    """An ONNX file in an ``onnxruntime.InferenceSession``, called like a module: ``net(x) -> logits``.

    The session uses as many intra-op threads as torch does (``torch.get_num_threads()``), so that
    the runtimes are compared on the same cores. Inputs and outputs are CPU tensors; on CUDA the
    copies to and from the device are part of each call.
    """

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=options,
                                            providers=_ort_providers(torch.device(device)))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})
        return torch.from_numpy(out)


def load_in_runtime(model: ResizableNet, config: Sequence[float], input_size: SizeLike, runtime: str,
                    device: torch.device | str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """The deployed network of ``config`` in ``runtime``, ready to call on a batch.

    ``torch``: the eval-mode :func:`resizable.export` on ``device``; ``torchscript`` and
    ``onnxruntime``: that network written by :func:`resizable.deploy.export.export_to_file` (a temporary
    file) and loaded back. An ``onnxruntime`` module takes and returns CPU tensors.

    Args:
        model: the ResizableNet (left unchanged).
        config: the configuration.
        input_size: ``H`` or ``(H, W)`` of the inputs.
        runtime: one of :data:`RUNTIMES`.
        device: ``cpu`` or ``cuda[:N]``.
    """
    check_runtime(runtime)
    device = torch.device(device)
    size = to_size2d(input_size)
    if runtime == "torch":
        return export(model, config, size).eval().to(device)
    if runtime == "onnxruntime":
        _ort_providers(device)  # fail before the (slow) export when the runtime is missing
    with tempfile.TemporaryDirectory(prefix="resizable-runtime-") as tmp:
        if runtime == "torchscript":
            path = Path(tmp) / "net.torchscript.pt"
            export_to_file(model, config, path, input_size=size, format="torchscript")
            return torch.jit.load(str(path), map_location=device).eval()
        path = Path(tmp) / "net.onnx"
        export_to_file(model, config, path, input_size=size, format="onnx")
        return OnnxRuntimeModule(path, device)


def runtime_meta(runtime: str, device: torch.device | str) -> Dict[str, str]:
    """What a latency table records about the runtime."""
    return {"runtime": runtime, "runtime_version": runtime_description(runtime, device)}
