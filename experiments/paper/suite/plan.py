"""What each claim trains: the suite's steps, shared between claims (one run serves every claim needing it).

| step | what | serves |
| --- | --- | --- |
| ``rs-s<seed>`` | the RS network: Algorithm 1 (fair sampling, the k losses summed), E epochs | T1 (a), Fig 3d |
| ``rs2x-s<seed>`` | the RS network at 2E epochs (the paper's protocol) | T1 (b) |
| ``single-<s>-s<seed>`` | (s,s,s) trained alone, E epochs, s in L | T1 |
| ``t2base-s<seed>`` | all-1.0 trained alone on the T2 subset (``t2_train_size`` images, ``t2_epochs``) | T2's baseline |
| ``aug-s<seed>`` / ``augshared-s<seed>`` | Resizable-Aug to all-1.0 on the T2 subset, scale-aware / shared BN | T2 |
| ``augmean-s<seed>`` | Resizable-Aug with ``--loss-reduction mean`` (only if the summed loss destabilises) | T2 |
| ``adapt-s<seed>`` | Adapt on ``rs-s<seed>``: labels on val, two classifier seeds, test | Fig 3d |
| ``adapt-bank-s<seed>`` | the same with the network's statistics bank, and its val and test tables | Fig 3d |

Fig 5, T9, T11 + T8 and the rows beyond the paper run on the **default recipe** (the val winner,
``chosen_recipes(selection)[0]``) and its RS network, the recipes claim's ``full-<method>-s<seed>``
(:func:`curve.default_network`, weights kept); :mod:`claims_default` plans them, every option read from the
selection (a new default changes their keys):

| step | what | serves |
| --- | --- | --- |
| ``full-<method>-s<seed>`` | the default recipe's RS network, E epochs (the recipes claim's run) | Fig 5, T9, T11, beyond |
| ``dr-alone-1-s<seed>`` | all-1.0 alone at its tuned point, every configuration (BN as trained, recalibrated) | Fig 5, convert |
| ``dr-raw-s<seed>`` | the default network's kept weights evaluated with BN as trained (trains nothing) | T9 |
| ``dr-sharedbn-s<seed>`` | the default recipe with one shared BN (``scale_bn: false``) | T9 |
| ``t2r-aug-s<seed>`` / ``t2r-augshared-s<seed>`` | the recipes claim's RS-Aug, scale-aware / shared BN | T9's Aug rows |
| ``dr-random-s<seed>`` | the default recipe with random sampling | T11, T8 |
| ``dr-fair-s<seed>`` | the default recipe with fair sampling (only when it samples otherwise) | T11, T8 |
| ``timing-s<seed>`` | fair and random training steps timed back to back (no recipe changes a step's cost) | T8 |
| ``dr-convert-lr`` | the converted row's lr, chosen on val among the recipe's x 1, 0.1, 0.01 (first seed) | beyond |
| ``dr-convert-s<seed>`` | ``dr-alone-1-s<seed>`` converted, then the default recipe, E/4 epochs at that lr | beyond |
| ``dr-distill-s<seed>`` | the default recipe with ``--distill full`` (unless the recipe distils already) | beyond |

The earlier network's steps for these claims (``rs-s``, ``single-1-s``, ``sharedbn-s``, ``aug-s``,
``augshared-s``, ``random-s``, ``convert-lr``, ``convert-s``, ``distill-s``) are no longer planned for them:
their committed results are shown under "Earlier network" (:data:`claims.EARLIER`).
Fig 3(a)-(c) (``fig3abc``) and Fig 3d along the front plan their steps on the default recipe's network in
:mod:`fig3abc` and :mod:`fig3d_front` (the steps: :mod:`apps`).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from .protocol import Protocol
from .steps import Step

CLAIMS = ("recipes", "curve", "t1", "fig5", "t9", "t11", "t2", "fig3abc", "fig3d", "beyond")
# the costliest row runs fewer seeds when the suite would not fit its time (say so in the report)
COSTLY_SEEDS = {"rs2x": 2}


def uniform(s: float, n: int = 3) -> tuple:
    return (float(s),) * n


def _rs(p: Protocol, seed: int) -> Step:
    return Step(f"rs-s{seed}", seed=seed, train={"sampling": "fair", "eval_configs": "default"},
                evals=("test_cal", "test_raw", "val_raw"), keep_weights=True)


def single_step(p: Protocol, s: float, seed: int) -> Step:
    if s == max(p.factors):
        return Step(f"single-{s:g}-s{seed}", seed=seed, train={"sampling": "single", "single_config": uniform(s),
                                                               "eval_configs": "default"},
                    evals=("test_cal", "test_raw"), keep_weights=True)
    return Step(f"single-{s:g}-s{seed}", seed=seed,
                train={"sampling": "single", "single_config": uniform(s), "eval_configs": ",".join([f"{s:g}"] * 3)},
                evals=("own_cal",))


def _t2_regime(p: Protocol) -> Dict:
    """T2's training subset and epochs (the baseline converges there)."""
    return {"train_size": p.t2_train_size, "epochs": p.t2_epochs}


def _shared(p: Protocol) -> Dict:
    return {**p.model_args, "scale_bn": False}


def plan(p: Protocol, seeds: Sequence[int], claims: Sequence[str]) -> List[Step]:
    """The steps the claims need (each once, in a useful order: what others depend on first)."""
    steps: Dict[str, Step] = {}

    def add(step: Step) -> None:
        steps.setdefault(step.name, step)

    for i, seed in enumerate(seeds):
        if {"t1", "fig3d"} & set(claims):
            add(_rs(p, seed))
        if {"t1", "t2"} & set(claims):
            add(single_step(p, max(p.factors), seed))
        if "t1" in claims:
            for s in p.factors[:-1]:
                add(single_step(p, s, seed))
            if i < COSTLY_SEEDS["rs2x"] or p.quick:
                add(Step(f"rs2x-s{seed}", seed=seed, train={"sampling": "fair", "epochs": 2 * p.epochs,
                                                            "eval_configs": "default"}, evals=("test_cal",)))
        if "t2" in claims:
            regime = _t2_regime(p)
            add(Step(f"t2base-s{seed}", seed=seed, train={**regime, "sampling": "single", "eval_configs": "1,1,1"},
                     evals=("own_cal", "own_raw")))
            add(Step(f"aug-s{seed}", seed=seed, train={**regime, "recipe": "aug", "eval_configs": "default"},
                     evals=("own_cal", "own_raw")))
            add(Step(f"augshared-s{seed}", seed=seed, train={**regime, "recipe": "aug", "model_args": _shared(p),
                                                             "eval_configs": "default"}, evals=("own_cal", "own_raw")))
        if "fig3d" in claims:
            add(Step(f"adapt-s{seed}", kind="adapt", seed=seed, deps=(f"rs-s{seed}",),
                     params={"network": f"rs-s{seed}", "classifier_seeds": list(p.adapt_seeds),
                             "budget_below_dearest": True}))
            add(Step(f"adapt-bank-s{seed}", kind="adapt", seed=seed, deps=(f"rs-s{seed}",),
                     params={"network": f"rs-s{seed}", "classifier_seeds": list(p.adapt_seeds),
                             "budget_below_dearest": True, "bn_statistics": "bank"}))
    return list(steps.values())


def conditional(p: Protocol, seeds: Sequence[int], claims: Sequence[str], flags: Dict[str, bool]) -> List[Step]:
    """Rows added only when a first result calls for them (``flags`` from :mod:`claims`)."""
    steps = []
    for seed in seeds:
        if "t2" in claims and flags.get("summed_loss_destabilises"):
            steps.append(Step(f"augmean-s{seed}", seed=seed, train={**_t2_regime(p), "recipe": "aug",
                                                                    "loss_reduction": "mean", "eval_configs": "default"},
                              evals=("own_cal", "own_raw")))
    return steps
