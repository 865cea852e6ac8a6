"""Configuration sampling: fair sampling's exactly-once property, seeding from (seed, step)."""
import random
from collections import Counter

import pytest

from resizable.sampling import ConfigSampler

L = (0.45, 0.65, 0.85, 1.0)


@pytest.mark.parametrize("num_stages", [1, 3, 4, 5])
def test_fair_uses_every_factor_of_every_stage_exactly_once(num_stages):
    s = ConfigSampler(L, num_stages, "fair", seed=3)
    for step in range(200):
        configs = s.sample(step)
        assert len(configs) == len(L)
        for stage in range(num_stages):
            assert sorted(c[stage] for c in configs) == list(L)


def test_same_seed_and_step_same_configs_regardless_of_global_state():
    a = ConfigSampler(L, 4, "fair", seed=7)
    b = ConfigSampler(L, 4, "fair", seed=7)
    random.seed(1)
    first = [a.sample(t) for t in range(50)]
    random.seed(2)
    second = [b.sample(t) for t in reversed(range(50))][::-1]
    assert first == second
    assert a.sample(5) != a.sample(6) or a.sample(6) != a.sample(7)
    assert ConfigSampler(L, 4, "fair", seed=8).sample(0) != a.sample(0) or ConfigSampler(L, 4, "fair", seed=8).sample(1) != a.sample(1)


def test_fair_is_not_a_fixed_pattern():
    s = ConfigSampler(L, 3, "fair", seed=0)
    assert len({tuple(s.sample(t)) for t in range(100)}) > 50


def test_random_mode_is_uniform_and_uneven_per_step():
    s = ConfigSampler(L, 4, "random", seed=0)
    counts = Counter()
    uneven = 0
    for step in range(2000):
        configs = s.sample(step)
        assert len(configs) == 4 and all(len(c) == 4 and set(c) <= set(L) for c in configs)
        counts.update(c[0] for c in configs)
        uneven += sorted(c[0] for c in configs) != list(L)
    assert all(abs(counts[f] / 8000 - 0.25) < 0.03 for f in L)
    assert uneven > 1000  # unlike fair sampling, a step usually misses some factor
    assert len(ConfigSampler(L, 4, "random", num_configs=2).sample(0)) == 2


def test_single_mode():
    s = ConfigSampler(L, 3, "single", single_config=(0.45, 1.0, 0.65))
    assert s.sample(0) == s.sample(99) == [(0.45, 1.0, 0.65)]
    assert ConfigSampler(L, 3, "single").sample(0) == [(1.0, 1.0, 1.0)]


@pytest.mark.parametrize("kwargs,msg", [
    ({"mode": "greedy"}, "accepted: fair, sandwich, random, single"),
    ({"mode": "fair", "num_configs": 2}, "exactly k=4"),
    ({"mode": "single", "single_config": (0.5, 1, 1)}, "single_config must be"),
    ({"mode": "random", "num_configs": 0}, ">= 1"),
])
def test_bad_sampler_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        ConfigSampler(L, 3, **kwargs)


def test_state_dict_guards_resume():
    s = ConfigSampler(L, 3, "fair", seed=1)
    ConfigSampler(L, 3, "fair", seed=1).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="differs"):
        ConfigSampler(L, 3, "fair", seed=2).load_state_dict(s.state_dict())
