"""Building the statistics bank (:mod:`resizable.bnbank`) in one walk of the configuration tree."""
from __future__ import annotations

import time
from typing import Any, Dict, Iterable, Optional

import torch

from ..bnbank import StatisticsBank, prefix_row, scale_batchnorms
from ..fingerprint import weights_sha256
from ..net import ResizableNet
from .walker import calibrate_configs

__all__ = ["build_bank", "BANK_BATCHES", "BANK_BATCH_SIZE"]

BANK_BATCHES = 8        # the default rule: 8 batches of 256 training images (2,048 images), fewer when the
BANK_BATCH_SIZE = 256   # training images hold fewer whole batches


@torch.no_grad()
def build_bank(model: ResizableNet, loader: Iterable, num_batches: int, *, meta: Optional[Dict[str, Any]] = None,
               dtype: Optional[torch.dtype] = None) -> StatisticsBank:
    """Measure the BN statistics of every configuration and return them as a bank (not attached).

    Every prefix's statistics are what :func:`resizable.calibrate_bn` gives a configuration alone
    (reset, then the cumulative average over the first ``num_batches`` batches in train mode), computed
    once per node of the configuration tree (:func:`resizable.calibrate_configs`). The model's weights,
    running averages, mode and configuration are left as they were; the bank records their SHA-256
    (``meta["weights_sha256"]``), and is attached only to those weights.

    Args:
        model: the trained ResizableNet.
        loader: training images (never the ones accuracy is measured on), as the test will see them.
        num_batches: batches to average over (>= 1).
        meta: how the images were drawn, kept in the bank (``batches`` and timing are added).
        dtype: store the statistics in this type (default: the weights' type).
    """
    layers = scale_batchnorms(model)
    if not layers:
        raise ValueError("this network has no scale-aware BN layers (built with shared BN?): every configuration "
                         "uses the same BN layers, so there are no per-configuration statistics to keep")
    t0 = time.perf_counter()
    weights = weights_sha256(model)  # what the bank belongs to: the weights as they are when it is measured
    calibrated = calibrate_configs(model, loader, num_batches)
    owner = {id(branch): (name, layer, j) for name, layer in layers for j, branch in enumerate(layer)}
    k = len(model.factors)
    tables: Dict[str, Any] = {}
    filled: Dict[str, set] = {}
    for key, bns in calibrated.nodes.bns.items():
        prefix = key[1:]
        for bn, (mean, var, _) in zip(bns, calibrated.nodes.state[key]):
            if id(bn) not in owner:
                continue  # a plain BN (the stem's): config-independent, kept as trained
            name, layer, branch = owner[id(bn)]
            if len(prefix) != layer.stage + 1 or model.factors.index(prefix[-1]) != branch:
                raise RuntimeError(f"{name} (stage {layer.stage + 1}) ran in the tree piece {key}, which its "
                                   f"stage does not key it by; the model's stage layout is inconsistent")
            row = prefix_row([model.factors.index(f) for f in prefix], k)
            if name not in tables:
                rows = k ** (layer.stage + 1)
                tables[name] = (mean.new_zeros((rows, mean.numel())), var.new_zeros((rows, var.numel())))
                filled[name] = set()
            tables[name][0][row] = mean
            tables[name][1][row] = var
            filled[name].add(row)
    for name, layer in layers:
        if name not in tables or len(filled[name]) != k ** (layer.stage + 1):
            raise RuntimeError(f"{name}: the calibration walk did not reach every prefix of its stage")
    ordered = {name: tables[name] for name, _ in layers}
    info = dict(meta or {})
    info.update(weights_sha256=weights, batches=calibrated.num_batches, configs=len(calibrated.configs),
                seconds=round(time.perf_counter() - t0, 3), built=time.strftime("%Y-%m-%d %H:%M:%S"))
    bank = StatisticsBank(model.factors, model.num_stages, ordered, info)
    bank = bank.map(lambda t: t.detach().cpu().clone())
    if dtype is not None:
        bank = bank.to(dtype)
    bank.meta.setdefault("dtype", str(next(iter(bank.tables.values()))[0].dtype).replace("torch.", ""))
    return bank
