"""Model registry: named builder functions, as in timm, and each family's converter from the torchvision model
it mirrors (registered beside the family's builders), with ``from_torchvision``."""
from __future__ import annotations

import inspect
import typing
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from .layers import ScaleBatchNorm2d
from .net import DEFAULT_FACTORS, ResizableNet

__all__ = ["register_model", "create_model", "list_models", "is_model", "from_torchvision", "register_converter",
           "load_plain_weights"]

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


# torchvision class name -> function(tv_model, factors) -> ResizableNet with the same architecture
_CONVERTERS: Dict[str, Callable[[nn.Module, Sequence[float]], ResizableNet]] = {}


def register_converter(tv_class_name: str):
    """Register the builder that mirrors a torchvision model class (used by :func:`from_torchvision`)."""
    def wrap(fn):
        if tv_class_name in _CONVERTERS:
            raise ValueError(f"a converter for {tv_class_name} is already registered")
        _CONVERTERS[tv_class_name] = fn
        return fn
    return wrap


@torch.no_grad()
def load_plain_weights(model: ResizableNet, plain: nn.Module) -> ResizableNet:
    """Copy a plain network's weights into ``model`` by module name.

    Every module with its own parameters or buffers must exist under the same name in ``plain``;
    a scale-aware BN bank receives a copy of the plain BN in every branch.
    """
    plain_modules = dict(plain.named_modules())
    in_bank = {id(bn) for m in model.modules() if isinstance(m, ScaleBatchNorm2d) for bn in m}
    for name, module in model.named_modules():
        if isinstance(module, ScaleBatchNorm2d):
            source = plain_modules.get(name)
            if not isinstance(source, nn.BatchNorm2d):
                raise ValueError(f"no BatchNorm2d named {name!r} in the {type(plain).__name__} to convert")
            for bn in module:
                bn.load_state_dict(source.state_dict())
            continue
        if id(module) in in_bank:
            continue  # filled from the bank above
        own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
        if not own:
            continue
        source = plain_modules.get(name)
        if source is None:
            raise ValueError(f"no module named {name!r} in the {type(plain).__name__} to convert")
        src_state = {k: v for k, v in source.state_dict().items() if "." not in k}
        for key, tensor in own.items():
            if key not in src_state or src_state[key].shape != tensor.shape:
                got = None if key not in src_state else tuple(src_state[key].shape)
                raise ValueError(f"{name}.{key}: shape {tuple(tensor.shape)} here, {got} in the model to convert")
            tensor.copy_(src_state[key])
    return model


def from_torchvision(tv_model: nn.Module, factors: Optional[Sequence[float]] = DEFAULT_FACTORS) -> ResizableNet:
    """Convert a torchvision classification model into a ResizableNet with the same weights.

    Under the all-max configuration (all 1.0 for the default factors) the result gives the
    torchvision model's outputs. The converted model is in the torchvision model's mode.

    Args:
        tv_model: an instance of a supported torchvision class (see the error for the list).
        factors: the scaling factor list L of the result.
    """
    name = type(tv_model).__name__
    if name not in _CONVERTERS:
        raise ValueError(f"cannot convert a {name}; supported torchvision models: {sorted(_CONVERTERS)}")
    model = _CONVERTERS[name](tv_model, factors)
    p = next(tv_model.parameters())
    model.to(device=p.device, dtype=p.dtype)
    load_plain_weights(model, tv_model)
    model.train(tv_model.training)
    return model
