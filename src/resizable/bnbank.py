"""The statistics bank: the BN statistics of every configuration, kept with the weights they belong to.

A stage's BN branch is chosen by that stage's factor, but what it normalises depends on every earlier
stage's factor too, so one pair of running averages per branch is a mix of histories. The bank holds,
for every scale-aware BN layer (:class:`~resizable.layers.ScaleBatchNorm2d`) of stage ``s``, one mean
and one variance per *prefix* of factors ``(f_1, ..., f_{s+1})``: ``k^(s+1)`` rows, not ``k^N``, as
the configuration-tree walk (:mod:`resizable.evaluation.walker`) keys its pieces. Row ``r`` of a
prefix is its factor indices read as a base-``k`` number (the first stage most significant).

Plain BN layers (the stem's, which see the same activations under every configuration, and every
layer of a network built with shared BN) keep their running averages as trained.

In eval mode a network with a bank attached (:meth:`ResizableNet.attach_bank`) normalises with the
active configuration's rows; :meth:`ResizableNet.set_config` only points each layer at its rows, so
switching stays as cheap as before. Training never reads the bank: in train mode every branch uses
batch statistics and updates its running averages as always.

A bank belongs to the weights it was measured on: its ``meta`` records their SHA-256
(:func:`resizable.fingerprint.weights_sha256`, running averages included), and a bank is attached
only to the weights it names (:meth:`StatisticsBank.mismatch`). After the weights change it is
rebuilt (``resizable calibrate``, or :func:`resizable.evaluation.bank.build_bank`).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .layers import ScaleBatchNorm2d

__all__ = ["StatisticsBank", "BANK_FORMAT", "BN_STATISTICS", "prefix_row", "prefix_rows",
           "scale_batchnorms", "select", "size_report"]

BANK_FORMAT = 1
BN_STATISTICS = ("bank", "as-trained")  # what an eval-mode forward normalises with


def prefix_row(index: Sequence[int], k: int) -> int:
    """The bank row of a prefix given as factor indices: the indices as a base-``k`` number."""
    rows = prefix_rows(index, k)
    return rows[-1] if rows else 0


def prefix_rows(index: Sequence[int], k: int) -> List[int]:
    """The bank row of every prefix of ``index``: entry ``s`` is :func:`prefix_row` of ``index[:s + 1]``."""
    rows, row = [], 0
    for i in index:
        row = row * k + int(i)
        rows.append(row)
    return rows


def scale_batchnorms(model: nn.Module) -> List[Tuple[str, ScaleBatchNorm2d]]:
    """Every scale-aware BN layer of ``model`` with its module name, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ScaleBatchNorm2d)]


class StatisticsBank:
    """Per-prefix BN statistics of one network (see the module notes).

    Args:
        factors: the network's factor list L (ascending).
        num_stages: N.
        tables: module name -> ``(mean, var)``, each ``(k^(s+1), C)`` for a layer of stage ``s``.
        meta: how the bank was made (images, batches, batch size, seed...), kept with it.
    """

    def __init__(self, factors: Sequence[float], num_stages: int, tables: Dict[str, Tuple[torch.Tensor, torch.Tensor]],
                 meta: Optional[Dict[str, Any]] = None) -> None:
        self.factors = tuple(float(f) for f in factors)
        self.num_stages = int(num_stages)
        self.tables = dict(tables)
        self.meta = dict(meta or {})

    @property
    def k(self) -> int:
        return len(self.factors)

    @property
    def weights_sha256(self) -> Optional[str]:
        """The SHA-256 of the weights the bank was measured on, or None when it records none (older banks)."""
        return self.meta.get("weights_sha256") or None

    def mismatch(self, weights_sha256: str) -> Optional[str]:
        """Why the bank does not belong to the weights of hash ``weights_sha256``, in words; None when it does."""
        mine = self.weights_sha256
        if mine is None:
            return "records no weights it was measured on (it was built before banks were tied to their weights)"
        if mine != weights_sha256:
            return f"was measured on other weights (weights_sha256 {mine[:12]}..., these are {weights_sha256[:12]}...)"
        return None

    def describe(self) -> str:
        """How the bank was made, in words (what results record as their ``bn_statistics``)."""
        m = self.meta
        made = f"{m.get('batches', '?')} batches of {m.get('batch_size', '?')}"
        return f"statistics bank ({made}; {m['images']})" if m.get("images") else f"statistics bank ({made})"

    def nbytes(self) -> int:
        """Bytes the bank's tensors take."""
        return sum(t.numel() * t.element_size() for pair in self.tables.values() for t in pair)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "StatisticsBank":
        """A bank with ``fn`` applied to every tensor (what ``Module.to`` does to buffers)."""
        return StatisticsBank(self.factors, self.num_stages,
                              {name: (fn(mean), fn(var)) for name, (mean, var) in self.tables.items()}, self.meta)

    def to(self, dtype: torch.dtype) -> "StatisticsBank":
        """The bank stored in another floating-point type (e.g. ``torch.float16`` to halve its size)."""
        out = self.map(lambda t: t.to(dtype))
        out.meta["dtype"] = str(dtype).replace("torch.", "")
        return out

    # ---------------------------------------------------------------- checking against a network
    def check_fits(self, model: nn.Module, source: Any = "the bank") -> None:
        """Raise ``ValueError`` unless the bank has exactly the rows and channels ``model``'s layers need."""
        factors = tuple(float(f) for f in getattr(model, "factors", ()))
        if factors != self.factors or getattr(model, "num_stages", None) != self.num_stages:
            raise ValueError(f"{source} was built for factors {self.factors} and {self.num_stages} stages; the model "
                             f"has {factors} and {getattr(model, 'num_stages', None)}")
        layers = dict(scale_batchnorms(model))
        missing = sorted(set(layers) - set(self.tables))
        extra = sorted(set(self.tables) - set(layers))
        if missing or extra:
            raise ValueError(f"{source} does not fit the model's scale-aware BN layers ("
                             + "; ".join(([f"{len(missing)} missing, e.g. {missing[0]}"] if missing else [])
                                         + ([f"{len(extra)} unknown, e.g. {extra[0]}"] if extra else [])) + ")")
        for name, m in layers.items():
            want = (self.k ** (m.stage + 1), m.num_features)
            for what, t in zip(("mean", "var"), self.tables[name]):
                if tuple(t.shape) != want:
                    raise ValueError(f"{source}: {name} {what} has shape {tuple(t.shape)}, and a layer of stage "
                                     f"{m.stage + 1} with {m.num_features} channels needs {want}")

    # ---------------------------------------------------------------- storage in a checkpoint
    def state_dict(self) -> Dict[str, Any]:
        """Tensors and plain values only (what a checkpoint stores; read back by :meth:`from_state_dict`)."""
        return {"format": BANK_FORMAT, "factors": list(self.factors), "num_stages": self.num_stages,
                "modules": {name: {"mean": mean.detach().cpu(), "var": var.detach().cpu()}
                            for name, (mean, var) in self.tables.items()},
                "meta": dict(self.meta)}

    @classmethod
    def from_state_dict(cls, state: Any, source: Any = "the bank") -> "StatisticsBank":
        """The bank of :meth:`state_dict`; a ``ValueError`` naming ``source`` when it is malformed."""
        if not isinstance(state, dict) or state.get("format") != BANK_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{source}: statistics bank format {found!r}, and this version reads {BANK_FORMAT}")
        modules = state.get("modules")
        if not isinstance(modules, dict) or not isinstance(state.get("factors"), list):
            raise ValueError(f"{source}: damaged statistics bank (no modules or factors)")
        tables = {}
        for name, pair in modules.items():
            mean, var = (pair or {}).get("mean"), (pair or {}).get("var")
            if not (torch.is_tensor(mean) and torch.is_tensor(var)) or mean.shape != var.shape or mean.dim() != 2:
                raise ValueError(f"{source}: damaged statistics bank entry {name} (expected two (rows, C) tensors)")
            if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(var).all())) or bool((var < 0).any()):
                raise ValueError(f"{source}: statistics bank entry {name} holds NaN, infinite or negative values")
            tables[name] = (mean, var)
        return cls(state["factors"], int(state.get("num_stages", 0)), tables, state.get("meta") or {})

    # ---------------------------------------------------------------- selection
    def slots(self, model: nn.Module) -> List[Tuple[ScaleBatchNorm2d, int, Tuple[torch.Tensor, ...],
                                                     Tuple[torch.Tensor, ...]]]:
        """``(layer, stage, mean rows, var rows)`` per layer: the views :meth:`select` hands out."""
        layers = dict(scale_batchnorms(model))
        return [(layers[name], layers[name].stage, mean.unbind(0), var.unbind(0))
                for name, (mean, var) in self.tables.items()]


def select(slots: Sequence[Tuple[ScaleBatchNorm2d, int, Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]],
           index: Sequence[int], k: int, enabled: bool) -> None:
    """Point every layer of ``slots`` at the rows of the configuration with factor indices ``index``
    (``enabled`` False: at none, so the running averages are used)."""
    if not enabled:
        for layer, _, _, _ in slots:
            layer.bank_entry = None
        return
    rows = prefix_rows(index, k)
    for layer, stage, means, variances in slots:
        r = rows[stage]
        layer.bank_entry = (means[r], variances[r])


def size_report(bank: StatisticsBank, model: nn.Module) -> Dict[str, Any]:
    """The bank's size against the weights' (bytes and ratio)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return {"bank_bytes": bank.nbytes(), "weights_bytes": weights,
            "ratio": bank.nbytes() / weights if weights else math.nan,
            "rows": sum(t[0].shape[0] for t in bank.tables.values())}
