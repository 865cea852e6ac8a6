"""Model registry: named builder functions, as in timm."""
from __future__ import annotations

import inspect
import typing
from typing import Callable, Dict, List, Optional, Sequence

from .net import ResizableNet

__all__ = ["register_model", "create_model", "list_models", "is_model"]

_MODELS: Dict[str, Callable[..., ResizableNet]] = {}


def register_model(fn: Callable[..., ResizableNet]) -> Callable[..., ResizableNet]:
    """Register a builder under its function name. Duplicate names raise ``ValueError``."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered; registered models: {sorted(_MODELS)}")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "") -> List[str]:
    """Registered model names, sorted; ``pattern`` keeps names that contain it."""
    return sorted(n for n in _MODELS if pattern in n)


def is_model(name: str) -> bool:
    return name in _MODELS


def create_model(
    name: str,
    *,
    factors: Optional[Sequence[float]] = None,
    num_classes: int = 1000,
    in_chans: int = 3,
    **arch_kwargs,
) -> ResizableNet:
    """Build a registered resizable model.

    Args:
        name: a name from :func:`list_models`.
        factors: the scaling factor list L; ``None`` takes the model's default
            ((0.45, 0.65, 0.85, 1.0) unless the family says otherwise).
        num_classes: classifier outputs.
        in_chans: input image channels.
        **arch_kwargs: architecture arguments of that builder (e.g. ``width``).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    builder = _MODELS[name]
    accepted = _arch_args(builder)
    unknown = sorted(set(arch_kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"{name} got unknown arguments {unknown}; accepted: {accepted}")
    if factors is not None:
        arch_kwargs["factors"] = factors
    return builder(num_classes=num_classes, in_chans=in_chans, **arch_kwargs)


def _arch_args(builder: Callable[..., ResizableNet]) -> List[str]:
    """Architecture arguments a builder takes: its own, plus its model class's when it forwards ``**kwargs``."""
    fixed = ("self", "factors", "num_classes", "in_chans")
    params = inspect.signature(builder).parameters
    names = [p for p, v in params.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]
    if any(v.kind is v.VAR_KEYWORD for v in params.values()):
        cls = typing.get_type_hints(builder).get("return")
        if isinstance(cls, type):
            names += [p for p in inspect.signature(cls.__init__).parameters if p not in names]
    return [n for n in names if n not in fixed and not n.startswith("_")]
