"""``resizable convert``: trained weights you already have -> a resizable checkpoint to continue from.

Two sources:

- a torchvision (or, when ``timm`` is installed, a timm) model name plus a local weights file (a
  ``state_dict`` saved with ``torch.save(model.state_dict(), path)``): the plain network is built,
  its weights loaded, and :func:`resizable.from_torchvision` gives the ResizableNet whose
  all-max configuration computes what the plain network computes (every BN branch starts as a copy
  of the plain BN);
- a checkpoint or run folder of this project, e.g. a network trained at one configuration
  (``--sampling single``): the BN branches that configuration trained are copied into every branch
  of their bank, so each factor starts from the trained statistics instead of untouched ones.

Either way the result is an ordinary checkpoint (no optimizer state) that ``resizable train
--init-checkpoint`` accepts, e.g. with ``--sampling fair`` to make the network resizable.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..checkpoint import (load_checkpoint, load_weights, read_torch_file, save_checkpoint)
from ..configs import format_config, parse_config
from ..layers import ScaleBatchNorm2d
from ..net import DEFAULT_FACTORS, ResizableNet
from ..utils.optional import MissingDependency, missing_dependency
from ..registry import create_model, from_torchvision, list_models
from ..training.run_folder import output_path
from ..utils.options import check_options, option, required

__all__ = ["ConvertOptions", "convert_checkpoint", "spread_bn_branches"]


@dataclass(frozen=True)
class ConvertOptions:
    """Options of ``resizable convert``."""

    source: Optional[str] = required("a torchvision (or timm) model name, e.g. resnet18, or a checkpoint file or "
                                     "run folder of this project")
    weights: Optional[str] = option(None, "with a model name: its state_dict file "
                                          "(torch.save(model.state_dict(), path))")
    out: Optional[str] = required("the resizable checkpoint to write (a folder: converted.pt inside it)")
    factors: Optional[Tuple[float, ...]] = option(None, "scaling factor list L of the result (default: "
                                                        "0.45,0.65,0.85,1)", min=0.05, max=1.0)
    config: Optional[str] = option(None, "from a run: the configuration whose BN branches start every branch "
                                         "(default: the run's single configuration, else the largest)")

    def __post_init__(self) -> None:
        check_options(self)  # types and declared bounds


@torch.no_grad()
def spread_bn_branches(model: ResizableNet, config: Sequence[float]) -> ResizableNet:
    """Copy the BN branch each bank uses under ``config`` into every branch of that bank (in place)."""
    model.set_config(model.check_config(tuple(config)))
    for module in model.modules():
        if isinstance(module, ScaleBatchNorm2d):
            source = module[module.active].state_dict()
            for i, bn in enumerate(module):
                if i != module.active:
                    bn.load_state_dict(source)
    model.set_config(model.max_config)
    return model


def _plain_model(name: str, weights: str) -> nn.Module:
    """Build torchvision's (else timm's) ``name`` shaped like the weights file, and load it."""
    if not Path(weights).is_file():
        raise FileNotFoundError(f"--weights {weights}: no such file")
    state = read_torch_file(Path(weights))
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{weights}: expected a state_dict (torch.save(model.state_dict(), path)), got "
                         f"{type(state).__name__}")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    kwargs: Dict[str, Any] = {}
    for head in ("fc.weight", "classifier.1.weight", "classifier.weight", "head.fc.weight"):
        if head in state:
            kwargs["num_classes"] = int(state[head].shape[0])
            break
    import torchvision.models as tvm

    builders = {n for n in tvm.list_models(module=tvm)}
    if name in builders:
        plain = tvm.get_model(name, weights=None, **kwargs)
        first = state.get("conv1.weight")
        conv1 = getattr(plain, "conv1", None)
        if isinstance(conv1, nn.Conv2d) and first is not None and first.shape[1] != conv1.in_channels:  # grey ResNet
            old = plain.conv1
            plain.conv1 = nn.Conv2d(first.shape[1], old.out_channels, old.kernel_size, old.stride, old.padding,
                                    bias=old.bias is not None)
    else:
        try:
            timm = importlib.import_module("timm")
        except ImportError as e:
            raise MissingDependency(f"{missing_dependency(e, f'converting {name!r} (not a torchvision model)')}; "
                                    f"torchvision classification models: {', '.join(sorted(builders)[:12])}, ...") \
                from None
        if name not in timm.list_models():
            raise ValueError(f"{name!r} is neither a torchvision nor a timm model name")
        first = state.get("conv1.weight")
        plain = timm.create_model(name, pretrained=False, in_chans=int(first.shape[1]) if first is not None else 3,
                                  **kwargs)
    try:
        plain.load_state_dict(state)
    except RuntimeError as e:
        line = str(e).strip().splitlines()
        raise ValueError(f"{weights}: the weights do not fit {name} ({line[1].strip() if len(line) > 1 else line[0]})") \
            from None
    return plain.eval()


def _registered_name(name: str, model: ResizableNet, kwargs: Dict[str, Any]) -> str:
    """The registered builder that rebuilds ``model`` from ``kwargs`` (so the checkpoint is self-describing)."""
    candidates = [name] + [n for n in list_models() if n != name]
    for candidate in candidates:
        if candidate not in list_models():
            continue
        try:
            rebuilt = create_model(candidate, **kwargs)
            load_weights(rebuilt, model.state_dict(), name)
        except (ValueError, TypeError):
            continue
        return candidate
    raise ValueError(f"no registered resizable model rebuilds the converted {name}; registered: {list_models()}")


def convert_checkpoint(opts: ConvertOptions) -> Path:
    """Convert trained weights into a resizable checkpoint (what ``resizable convert`` runs); returns the
    file written (atomically): ``opts.out``, or ``converted.pt`` inside it when it is a folder.

    ``opts.source`` is a torchvision/timm model name (then ``opts.weights``, the plain model's
    ``state_dict`` file, is required) or a checkpoint or run folder; ``opts.factors`` is the factor list L
    of the result (default: the run's, else the paper's); from a run, ``opts.config`` is the
    configuration whose BN branches are spread to every branch (default: the run's ``--single-config``
    when it trained a single configuration, else the largest).
    """
    source, weights, factors, config = opts.source, opts.weights, opts.factors, opts.config
    out_path = output_path(opts.out, "converted.pt")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if Path(source).exists():
        if weights is not None:
            raise ValueError("--weights goes with a model name; a checkpoint or run folder brings its own weights")
        from ..trained_run import TrainedRun

        run = TrainedRun.open(source, need_data=False)
        model, payload, options = run.model, run.payload, run.options
        if factors is not None and tuple(float(f) for f in factors) != tuple(model.factors):
            raise ValueError(f"--factors: the run's network has factors {model.factors}; a run keeps its own")
        if config:
            chosen = parse_config(config, model.factors, model.num_stages)
        elif options.get("sampling") == "single" and options.get("single_config"):
            chosen = tuple(float(f) for f in options["single_config"])
        else:
            chosen = model.max_config
        spread_bn_branches(model, chosen)
        model.attach_bank(None)  # the spread gives other weights: the run's bank is not theirs (calibrate builds it)
        record = {"from": str(run.checkpoint), "kind": "run", "bn_branches_from": format_config(chosen)}
        state = {k: payload[k] for k in ("train_options", "input_size", "data", "val_split") if k in payload}
        save_checkpoint(out_path, model, payload["model_name"], payload["model_kwargs"], converted=record, **state)
        return out_path
    if weights is None:
        raise ValueError(f"{source!r} is not a checkpoint or run folder; a model name needs --weights FILE "
                         f"(its state_dict)")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"no weights file at {weights}")
    plain = _plain_model(source, weights)
    model = from_torchvision(plain, tuple(factors) if factors else DEFAULT_FACTORS)
    kwargs = {"factors": list(model.factors), "num_classes": model.num_classes, "in_chans": model.in_chans}
    kwargs.update({k: getattr(model, attr) for k, attr in (("groups", "groups"), ("width_per_group", "base_width"))
                   if getattr(model, attr, None) not in (None, 1, 64)})
    name = _registered_name(source, model, kwargs)
    record = {"from": str(weights), "kind": "plain", "model": source}
    save_checkpoint(out_path, model.eval(), name, kwargs, converted=record)
    load_checkpoint(out_path)  # what train --init-checkpoint will read
    return out_path
