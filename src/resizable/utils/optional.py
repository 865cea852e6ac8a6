"""Optional dependencies: a missing one is one line naming what needs it and the command that installs it.

The ``onnx`` extra (``pip install 'resizable[onnx]'``) brings ``onnx``, ``onnxscript`` (and its
``onnx_ir``), which torch's ONNX exporter imports, and ``onnxruntime``. ``timm`` is looked up only
to convert a model torchvision does not have. The ``tensorboard`` extra brings what ``resizable train
--tensorboard`` writes its scalars with. Every command checks what it needs with
:func:`require` before it reads or writes anything, and turns an import that fails later (inside
torch, say) into the same line with :func:`missing_dependency`.
"""
from __future__ import annotations

import importlib
from typing import Sequence

__all__ = ["MissingDependency", "ONNX_MODULES", "install_command", "missing_dependency", "require"]

# module -> the pip argument that installs it
_INSTALL = {"onnx": "'resizable[onnx]'", "onnxscript": "'resizable[onnx]'", "onnx_ir": "'resizable[onnx]'",
            "onnxruntime": "'resizable[onnx]'", "timm": "timm", "tensorboard": "'resizable[tensorboard]'"}
ONNX_MODULES = ("onnx", "onnxscript")  # what writing an ONNX file with torch's default exporter imports


class MissingDependency(ValueError):
    """An optional package a command needs is not installed (a ``ValueError``: one line, exit 2)."""


def install_command(module: str) -> str:
    """The command that installs ``module`` (its top-level package), e.g. ``pip install 'resizable[onnx]'``."""
    top = module.split(".")[0]
    return f"pip install {_INSTALL.get(top, top)}"


def missing_dependency(error: ImportError, what: str) -> MissingDependency:
    """The :class:`MissingDependency` of an import that failed while doing ``what``."""
    module = getattr(error, "name", None)
    if not module:  # an ImportError that names no module: say what torch said
        return MissingDependency(f"{what} failed to import a package ({error}); the optional packages are "
                                 f"installed with: pip install 'resizable[onnx]'")
    return MissingDependency(f"{what} needs the Python package {module.split('.')[0]!r}, which is not installed: "
                             f"{install_command(module)}")


def require(modules: Sequence[str], what: str) -> None:
    """Raise :class:`MissingDependency` naming ``what`` and the install command unless every one of ``modules``
    imports (an import is cached, so checking a package that is there costs nothing the work would not)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise missing_dependency(e, what) from None
