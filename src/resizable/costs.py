"""The cost of every configuration, summed from its parts.

A stage's cost depends only on its input resolution (set by the previous stage's factor) and its
own factor, so ``k^2`` counted forwards give every stage's cost for every factor pair, and each
of the ``k^N`` configurations costs the sum of its parts, exactly as :func:`resizable.count_macs`
counts it (checked on the way; a model that does not decompose is counted one by one).
"""
from __future__ import annotations

import itertools
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .configs import Config
from .macs import count_macs
from .net import ResizableNet, SizeLike, check_configs

__all__ = ["part_costs", "config_costs"]


def part_costs(model: ResizableNet, input_size: SizeLike, configs: Optional[Iterable[Sequence[float]]] = None
               ) -> Dict[Config, List[Tuple[int, int]]]:
    """``{config: [(macs, interp_macs) of the stem, stage 1, ..., stage N, the head]}``.

    A stage's cost depends on its own factor and the
    previous one, so ``k^2`` counted forwards give every part of every configuration; a model whose
    parts do not decompose that way is counted configuration by configuration.
    """
    configs = check_configs(model, configs)
    n = model.num_stages
    names = ["stem"] + [f"stage{i + 1}" for i in range(n)] + ["head"]
    parts: Dict[tuple, Tuple[int, int]] = {}
    ends = set()
    for a, b in itertools.product(model.factors, repeat=2):
        probe = tuple(a if i % 2 == 0 else b for i in range(n))
        stages = count_macs(model, probe, input_size).stages
        ends.add((stages["stem"], stages["head"]))
        for i in range(n):
            key = (i, probe[i - 1] if i else None, probe[i])
            if parts.setdefault(key, stages[names[i + 1]]) != stages[names[i + 1]]:
                ends.add(None)  # not decomposable
    out: Dict[Config, List[Tuple[int, int]]] = {}
    if len(ends) == 1 and None not in ends:
        stem, head = ends.pop()
        for c in configs:
            out[c] = [stem] + [parts[(i, c[i - 1] if i else None, c[i])] for i in range(n)] + [head]
        check = configs[-1]
        report = count_macs(model, check, input_size)
        if (sum(m for m, _ in out[check]), sum(r for _, r in out[check])) == (report.macs, report.interp_macs):
            return out
    for c in configs:
        stages = count_macs(model, c, input_size).stages
        out[c] = [stages[name] for name in names]
    return out


def config_costs(model: ResizableNet, input_size: SizeLike, configs: Optional[Iterable[Sequence[float]]] = None
                 ) -> Dict[Config, Tuple[int, int, int]]:
    """``{config: (macs, interp_macs, params)}``, exactly as :func:`resizable.count_macs` gives them.

    Many configurations are summed from their parts (:func:`part_costs`); a sub-network's
    parameters are the same for every configuration (the convolutions are shared, one BN per layer).
    """
    configs = check_configs(model, configs)
    if len(configs) <= len(model.factors) ** 2:
        reports = {c: count_macs(model, c, input_size) for c in configs}
        return {c: (r.macs, r.interp_macs, r.params) for c, r in reports.items()}
    parts = part_costs(model, input_size, configs)
    params = count_macs(model, configs[0], input_size).params
    return {c: (sum(m for m, _ in parts[c]), sum(r for _, r in parts[c]), params) for c in configs}
