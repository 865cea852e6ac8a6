"""``ResizableNet``: the scaling-configuration API shared by every model family."""
from __future__ import annotations

import math
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import bnbank
from .fingerprint import weights_sha256
from .configs import Config, all_configs
from .layers import ResizableStage, ScaleBatchNorm2d, Size2d

__all__ = ["ResizableNet", "DEFAULT_FACTORS", "Config", "check_factors", "check_configs", "to_size2d", "scaled_size"]

DEFAULT_FACTORS: Tuple[float, ...] = (0.45, 0.65, 0.85, 1.0)
SizeLike = Union[int, Sequence[int]]


def check_factors(factors: Sequence[float]) -> Tuple[float, ...]:
    """Validate a scaling factor list L and return it sorted ascending.

    Args:
        factors: positive numbers, no duplicates, any order.
    """
    try:
        values = [float(f) for f in factors]
    except (TypeError, ValueError):
        raise ValueError(f"factors must be a sequence of positive numbers, got {factors!r}") from None
    if not values:
        raise ValueError("factors must hold at least one scaling factor, got an empty list")
    bad = [f for f in values if not (f > 0 and math.isfinite(f))]
    if bad:
        raise ValueError(f"scaling factors must be finite and > 0, got {bad} in {tuple(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"scaling factors must be distinct, got {tuple(values)}")
    return tuple(sorted(values))


def to_size2d(size: SizeLike) -> Size2d:
    """``224`` or ``(224, 224)`` or ``(1, 3, 224, 224)``-style trailing dims -> ``(224, 224)``."""
    if isinstance(size, int):
        hw = (size, size)
    else:
        dims = tuple(int(s) for s in size)
        if len(dims) == 1:
            hw = (dims[0], dims[0])
        elif len(dims) >= 2:
            hw = dims[-2:]
        else:
            raise ValueError(f"input size must be an int or (H, W), got {size!r}")
    if hw[0] < 1 or hw[1] < 1:
        raise ValueError(f"input size must be positive, got {size!r}")
    return hw


def scaled_size(factor: float, baseline: int) -> int:
    """``max(1, round(factor * baseline))`` with halves rounded up (not Python's banker's rounding)."""
    return max(1, int(math.floor(factor * baseline + 0.5)))


def _ceil_div(n: int, d: int) -> int:
    return -(-n // d)


class ResizableNet(nn.Module):
    """Base class of every resizable model: stem -> N resizable stages -> head.

    Subclasses build their modules and name, in forward order, the top-level modules of the stem,
    the stages (each a :class:`ResizableStage`) and the head; they also give the stride of the stem
    and of each stage before its resize point, from which the baseline resolution of every stage
    follows. Everything else (configurations, forward, export) is shared.

    A model whose stem and stages are runs of one flat container (torchvision's MobileNet
    ``features``) names that container as its stem and calls :meth:`attach_stages` with views that
    share the container's modules.
    """

    def __init__(
        self,
        factors: Sequence[float],
        stem_strides: Sequence[int],
        stage_strides: Sequence[int],
        stem_names: Sequence[str],
        stage_names: Sequence[str],
        head_names: Sequence[str],
        in_chans: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        if len(stage_names) != len(stage_strides):
            raise ValueError("one stride per stage is needed")
        self._factors = check_factors(factors)
        self.stem_strides = tuple(int(s) for s in stem_strides)
        self.stage_strides = tuple(int(s) for s in stage_strides)
        self.stem_names = tuple(stem_names)
        self.stage_names = tuple(stage_names)
        self.head_names = tuple(head_names)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self._config: Config = tuple(self._factors[-1] for _ in stage_names)
        self._stem_views: Optional[Tuple[nn.Module, ...]] = None
        self._stage_views: Optional[Tuple[ResizableStage, ...]] = None
        self._size_cache: dict = {}  # (H, W, config) -> stage_sizes; the strides never change
        self._bank: Optional[bnbank.StatisticsBank] = None  # per-configuration BN statistics (resizable.bnbank)
        self._bank_slots: list = []
        self._bank_on = True

    def attach_stages(self, stem: Sequence[nn.Module], stages: Sequence[ResizableStage]) -> None:
        """Use these stem modules and stage views instead of the named top-level modules.

        For models whose stem and stages live in one flat container: the views share (not copy)
        that container's modules, so parameter names stay the container's.

        Args:
            stem: the stem's modules in forward order.
            stages: one :class:`ResizableStage` per stage.
        """
        if len(stages) != self.num_stages:
            raise ValueError(f"attach_stages needs {self.num_stages} stages, got {len(stages)}")
        self._stem_views = tuple(stem)
        self._stage_views = tuple(stages)

    # ------------------------------------------------------------------ configurations
    @property
    def factors(self) -> Tuple[float, ...]:
        """The scaling factor list L, ascending."""
        return self._factors

    @property
    def num_stages(self) -> int:
        """N, the number of resize points."""
        return len(self.stage_names)

    @property
    def config(self) -> Config:
        """The active scaling configuration S."""
        return self._config

    @property
    def max_config(self) -> Config:
        return tuple(self._factors[-1] for _ in range(self.num_stages))

    @property
    def min_config(self) -> Config:
        return tuple(self._factors[0] for _ in range(self.num_stages))

    def check_config(self, config: Sequence[float]) -> Config:
        """Validate a configuration and return it as a tuple of factors from L.

        Args:
            config: one factor per stage, each in ``self.factors``.
        """
        if isinstance(config, (str, bytes)) or not hasattr(config, "__len__"):
            raise ValueError(
                f"a configuration is a sequence of {self.num_stages} factors from {self.factors}, got {config!r}"
            )
        if len(config) != self.num_stages:
            raise ValueError(
                f"a configuration needs {self.num_stages} factors (one per stage), got {len(config)}: "
                f"{tuple(config)}; accepted factors: {self.factors}"
            )
        out = []
        for i, value in enumerate(config):
            try:
                f = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"stage {i + 1}: factor {value!r} is not a number; accepted: {self.factors}") from None
            if not f > 0:
                raise ValueError(f"stage {i + 1}: factor {f} must be > 0; accepted: {self.factors}")
            match = [l for l in self._factors if math.isclose(l, f, rel_tol=0, abs_tol=1e-9)]
            if not match:
                raise ValueError(f"stage {i + 1}: factor {f} is not in the factor list; accepted: {self.factors}")
            out.append(match[0])
        return tuple(out)

    def factor_index(self, config: Sequence[float]) -> Tuple[int, ...]:
        """The index in L of each stage's factor."""
        return tuple(self._factors.index(f) for f in self.check_config(config))

    def set_config(self, config: Sequence[float]) -> None:
        """Make ``config`` the active scaling configuration (selects every BN branch).

        Args:
            config: one factor per stage, each in ``self.factors``.
        """
        config = self.check_config(config)
        index = [self._factors.index(f) for f in config]
        for module in self.modules():
            if isinstance(module, ScaleBatchNorm2d):
                module.active = index[module.stage]
        self._config = config
        if self._bank_slots:
            bnbank.select(self._bank_slots, index, len(self._factors), self._bank_on)

    @contextmanager
    def using(self, config: Sequence[float]) -> Iterator["ResizableNet"]:
        """Run a block under ``config``, then restore the configuration that was active."""
        previous = self._config
        self.set_config(config)
        try:
            yield self
        finally:
            self.set_config(previous)

    # ------------------------------------------------------------------ the statistics bank
    @property
    def bank(self) -> Optional["bnbank.StatisticsBank"]:
        """The attached statistics bank (:mod:`resizable.bnbank`), or None."""
        return self._bank

    def attach_bank(self, bank: Optional["bnbank.StatisticsBank"]) -> None:
        """Normalise every configuration with its own statistics from ``bank`` in eval mode (None: detach).

        The bank must have been built for these weights (:func:`resizable.build_bank`): a bank that records
        other weights (:attr:`StatisticsBank.weights_sha256`) raises ``ValueError``. It moves with the model
        (``.to``, ``.half``) and is not part of ``state_dict`` (checkpoints store it beside).
        """
        if bank is not None:
            bank.check_fits(self)
            problem = bank.mismatch(weights_sha256(self)) if bank.weights_sha256 is not None else None
            if problem:  # a bank without a record (built by hand, or an older one) is the caller's word
                raise ValueError(f"the statistics bank {problem}; build the bank of these weights "
                                 f"(resizable.evaluation.bank.build_bank) or use 'as-trained'")
        for _, layer in bnbank.scale_batchnorms(self):
            layer.bank_entry = None
        if bank is None:
            self._bank, self._bank_slots = None, []
            return
        p = next(self.parameters(), None)
        if p is not None:  # the bank lives where the weights do
            bank = bank.map(lambda t: t.to(device=p.device, dtype=p.dtype if p.is_floating_point() else t.dtype))
        self._bank, self._bank_slots = bank, bank.slots(self)
        self.set_config(self._config)

    @property
    def bn_statistics(self) -> str:
        """What an eval-mode forward normalises with: ``"bank"`` (the active configuration's statistics from
        the attached bank) or ``"as-trained"`` (each branch's running averages)."""
        return "bank" if self._bank is not None and self._bank_on else "as-trained"

    def set_bn_statistics(self, which: str) -> None:
        """``"bank"`` (the default when a bank is attached) or ``"as-trained"``: the running averages."""
        if which not in bnbank.BN_STATISTICS:  # a Python caller's value; the commands' options check their own
            raise ValueError(f"unknown BN statistics {which!r}; accepted: {', '.join(bnbank.BN_STATISTICS)}")
        if which == "bank" and self._bank is None:
            raise ValueError("this model has no statistics bank: build one with resizable.build_bank (or "
                             "`resizable calibrate RUN`) and attach it with attach_bank, or use 'as-trained'")
        self._bank_on = which == "bank"
        self.set_config(self._config)

    @contextmanager
    def using_bn_statistics(self, which: str) -> Iterator["ResizableNet"]:
        """Run a block with ``which`` BN statistics (see :meth:`set_bn_statistics`), then restore the choice."""
        previous = self._bank_on
        self.set_bn_statistics(which)
        try:
            yield self
        finally:
            self._bank_on = previous
            self.set_config(self._config)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        out = super()._apply(fn, recurse)
        if self.__dict__.get("_bank") is not None:  # .to / .half / .cuda move the bank too
            self._bank = self._bank.map(fn)
            self._bank_slots = self._bank.slots(self)
            self.set_config(self._config)
        return out

    def configs(self) -> List[Config]:
        """All k^N configurations, in lexicographic order of factor indices (min first, max last)."""
        return all_configs(self._factors, self.num_stages)

    # ------------------------------------------------------------------ resolutions
    def baseline_sizes(self, input_size: SizeLike) -> List[Size2d]:
        """Resolution R_i of every stage in the baseline (all-1.0) network for this input size."""
        h, w = to_size2d(input_size)
        for s in self.stem_strides:
            h, w = _ceil_div(h, s), _ceil_div(w, s)
        sizes = []
        for s in self.stage_strides:
            h, w = _ceil_div(h, s), _ceil_div(w, s)
            sizes.append((h, w))
        return sizes

    def stage_sizes(self, input_size: SizeLike, config: Sequence[float] | None = None) -> List[Size2d]:
        """Resolution every stage runs at under ``config`` (default: the active one)."""
        config = self._config if config is None else self.check_config(config)
        return [
            (scaled_size(f, h), scaled_size(f, w)) for f, (h, w) in zip(config, self.baseline_sizes(input_size))
        ]

    # ------------------------------------------------------------------ forward, by stage boundary
    # Named children are looked up in ``_modules`` directly: ``Module.__getattr__`` is a slow path,
    # and these lists are built on every forward.
    def stages(self) -> List[ResizableStage]:
        """Every stage, in forward order."""
        if self._stage_views is not None:
            return list(self._stage_views)
        return [self._modules[name] for name in self.stage_names]

    def stage(self, index: int) -> ResizableStage:
        """Stage ``index`` (0-based) as a module; :meth:`ResizableStage.forward_pre` and
        :meth:`ResizableStage.forward_post` are its parts before and after the resize."""
        if not 0 <= index < self.num_stages:
            raise ValueError(f"stage index must be in [0, {self.num_stages - 1}], got {index}")
        return self.stages()[index]

    def stem_modules(self) -> List[nn.Module]:
        """The stem's modules in forward order."""
        if self._stem_views is not None:
            return list(self._stem_views)
        return [self._modules[name] for name in self.stem_names]

    def head_modules(self) -> List[nn.Module]:
        """The head's modules in forward order."""
        return [self._modules[name] for name in self.head_names]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.stem_modules():
            x = module(x)
        return x

    def forward_stage(self, index: int, x: torch.Tensor, size: Size2d) -> torch.Tensor:
        """Run stage ``index`` with its resize going to ``size`` (see :meth:`stage_sizes`)."""
        return self.stage(index)(x, size)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.head_modules():
            x = module(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # the stage sizes are cached per input size and configuration (the strides never change)
        key = (x.shape[-2], x.shape[-1], self._config)
        sizes = self._size_cache.get(key)
        if sizes is None:
            sizes = self._size_cache[key] = self.stage_sizes(key[:2])
        x = self.forward_stem(x)
        for stage, size in zip(self.stages(), sizes):
            x = stage(x, size)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W) -> (B, num_classes)
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------ static export hook
    def static_layout(self) -> "OrderedDict[str, nn.Module]":
        """Top-level modules in forward order; :func:`resizable.export` chains them after the swap.

        A container that holds several pieces (a flat ``features``) appears once, where its first
        piece runs; its children must be in forward order.
        """
        owner = {id(m): name for name, child in self.named_children() for m in child.modules()}
        pieces = self.stem_modules() + [m for i in range(self.num_stages) for m in self.stage(i).children()]
        names: List[str] = []
        for m in pieces + self.head_modules():
            name = owner[id(m)]
            if name not in names:
                names.append(name)
        return OrderedDict((name, getattr(self, name)) for name in names)

    def extra_repr(self) -> str:
        return f"factors={self.factors}, num_stages={self.num_stages}, config={self.config}"


def check_configs(model: ResizableNet, configs: Optional[Iterable[Sequence[float]]]) -> List[Config]:
    """``configs`` checked against the model (default: all ``k^N``); they must be distinct."""
    if configs is None:
        return model.configs()
    out = [model.check_config(c) for c in configs]
    if len(set(out)) != len(out):
        raise ValueError("configurations must be distinct")
    return out
