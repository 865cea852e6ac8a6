"""Which scaling configurations a training step uses (paper Algorithm 1 and its baselines)."""
from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Sequence

from .net import Config, check_factors

__all__ = ["SAMPLING_MODES", "ConfigSampler"]

SAMPLING_MODES = ("fair", "sandwich", "random", "single")


class ConfigSampler:
    """Draws the configurations of each training step from ``(seed, step)`` alone.

    - ``fair``: for every stage a random permutation of L; configuration j takes the j-th entry of
      each stage's permutation, so each factor of each stage is used exactly once per step (k
      configurations).
    - ``sandwich`` (slimmable / US-Nets): the all-largest and the all-smallest configurations every
      step, plus k - 2 middle ones, each stage's factor drawn uniformly from the whole list L (as
      US-Nets draw widths over the whole range), so every one of the k^N configurations can be
      trained. The two ends give the smallest and the largest factor's BN branch of every stage a
      gradient each step; a middle factor's branch gets one in the steps whose middle
      configurations draw it (probability ``1 - (1 - 1/k)^(k-2)`` per stage and step). Covering
      every branch each step would force the middle ones to be permutations of the middle factors,
      and then only (k-2)^N + 2 of the k^N configurations would ever train (10 of 64 for k = 4,
      N = 3). Order: largest, smallest, middle ones.
    - ``random``: every stage's factor drawn uniformly and independently, ``num_configs`` times
      (default k, the same cost as fair).
    - ``single``: one fixed configuration (``single_config``, default all-max), ``num_configs``
      times (default 1): an individually trained network.

    Nothing is drawn from global random state, so every DDP rank picks the same configurations and
    a resumed run repeats the uninterrupted one.
    """

    def __init__(
        self,
        factors: Sequence[float],
        num_stages: int,
        mode: str = "fair",
        seed: int = 0,
        num_configs: Optional[int] = None,
        single_config: Optional[Sequence[float]] = None,
    ) -> None:
        if mode not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling mode {mode!r}; accepted: {', '.join(SAMPLING_MODES)}")
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        self.factors = check_factors(factors)
        self.num_stages = num_stages
        self.mode = mode
        self.seed = int(seed)
        k = len(self.factors)
        if num_configs is not None and num_configs < 1:
            raise ValueError(f"num_configs must be >= 1, got {num_configs}")
        if mode in ("fair", "sandwich") and num_configs not in (None, k):
            raise ValueError(f"{mode} sampling uses exactly k={k} configurations per step, got num_configs={num_configs}")
        if mode == "sandwich" and k < 2:
            raise ValueError(f"sandwich sampling needs at least 2 factors (a smallest and a largest), got {self.factors}")
        if num_configs is not None and num_configs > k ** num_stages:
            raise ValueError(f"num_configs {num_configs} is more than the {k ** num_stages} configurations of "
                             f"{k} factors over {num_stages} stages")
        self.num_configs = num_configs or (1 if mode == "single" else k)
        if single_config is None:
            single_config = (self.factors[-1],) * num_stages
        single_config = tuple(float(f) for f in single_config)
        if len(single_config) != num_stages or any(f not in self.factors for f in single_config):
            raise ValueError(f"single_config must be {num_stages} factors from {self.factors}, got {single_config}")
        self.single_config: Config = single_config

    def _rng(self, step: int) -> random.Random:
        # A string seed is hashed with SHA-512 by ``random``: stable across processes and runs.
        return random.Random(f"resizable:{self.seed}:{int(step)}")

    def sample(self, step: int) -> List[Config]:
        """The configurations of training step ``step`` (0-based, counted over the whole run)."""
        if self.mode == "single":
            return [self.single_config] * self.num_configs
        rng = self._rng(step)
        if self.mode == "fair":
            perms = [rng.sample(self.factors, len(self.factors)) for _ in range(self.num_stages)]
            return [tuple(perm[j] for perm in perms) for j in range(len(self.factors))]
        if self.mode == "sandwich":
            ends = [(self.factors[-1],) * self.num_stages, (self.factors[0],) * self.num_stages]
            return ends + [tuple(rng.choice(self.factors) for _ in range(self.num_stages))
                           for _ in range(len(self.factors) - 2)]
        return [tuple(rng.choice(self.factors) for _ in range(self.num_stages)) for _ in range(self.num_configs)]

    def state_dict(self) -> Dict[str, Any]:
        state = {"factors": list(self.factors), "num_stages": self.num_stages, "mode": self.mode, "seed": self.seed,
                 "num_configs": self.num_configs, "single_config": list(self.single_config)}
        if self.mode == "sandwich":  # a run saved when the middle ones came from the middle factors only differs
            state["middles"] = "every factor"
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Check that a resumed run samples as the saved one did (the sampler has no other state)."""
        mine = self.state_dict()
        diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if diff:
            raise ValueError(f"the checkpoint's sampler differs from this run's (saved, now): {diff}")

    def __repr__(self) -> str:
        return (f"ConfigSampler(mode={self.mode!r}, factors={self.factors}, num_stages={self.num_stages}, "
                f"num_configs={self.num_configs}, seed={self.seed})")
