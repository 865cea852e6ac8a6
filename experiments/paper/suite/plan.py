"""What each claim trains: the suite's steps, shared between claims (one run serves every claim needing it).

| step | what | serves |
| --- | --- | --- |
| ``rs-s<seed>`` | the RS network: fair sampling, E epochs | T1 (a), Fig 5, T9 (scale-aware), T11 (fair), Fig 3d, beyond |
| ``rs2x-s<seed>`` | the RS network at 2E epochs (the paper's protocol) | T1 (b) |
| ``single-<s>-s<seed>`` | (s,s,s) trained alone, E epochs, s in L | T1; the 1.0 one: Fig 5, convert |
| ``t2base-s<seed>`` | all-1.0 trained alone on the T2 subset (``t2_train_size`` images, ``t2_epochs``) | T2's baseline |
| ``sharedbn-s<seed>`` | fair sampling with one shared BN (``scale_bn: false``) | T9 |
| ``random-s<seed>`` | random sampling, k configurations per step | T11, T8 |
| ``timing-s<seed>`` | fair and random training steps timed back to back in one process | T8 |
| ``aug-s<seed>`` / ``augshared-s<seed>`` | Resizable-Aug to all-1.0 on the T2 subset, scale-aware / shared BN | T2, T9's Aug column |
| ``augmean-s<seed>`` | Resizable-Aug with ``--loss-reduction mean`` (only if the summed loss destabilises) | T2 |
| ``convert-lr`` | the convert row's learning rate, chosen on val (first seed's twin; lr x 1, 0.1, 0.01) | beyond |
| ``convert-s<seed>`` | the 1.0 twin converted, fair sampling for E/4 epochs at that lr | beyond |
| ``distill-s<seed>`` | RS with ``--distill`` (only if T1 (a) says RS is behind) | beyond |
| ``adapt-s<seed>`` | Adapt on ``rs-s<seed>``: labels on val, two classifier seeds, test | Fig 3d |
| ``adapt-bank-s<seed>`` | the same with the network's statistics bank, and its val and test tables | Fig 3d |

Fig 3(a)-(c) (``fig3abc``) and Fig 3d along the front plan their steps on the default recipe's network in
:mod:`fig3abc` and :mod:`fig3d_front` (the steps: :mod:`apps`).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from .runs import cfg
from .protocol import Protocol
from .steps import Step

CLAIMS = ("recipes", "curve", "t1", "fig5", "t9", "t11", "t2", "fig3abc", "fig3d", "beyond")
# the costliest row runs fewer seeds when the suite would not fit its time (say so in the report)
COSTLY_SEEDS = {"rs2x": 2}
# the converted twin is fine-tuned, not trained from scratch: its lr is chosen on val among these multiples
CONVERT_LR_SCALES = (1.0, 0.1, 0.01)


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
        if {"t1", "fig5", "t9", "t11", "fig3d", "beyond"} & set(claims):
            add(_rs(p, seed))
        if {"t1", "fig5", "t2", "beyond"} & set(claims):
            add(single_step(p, max(p.factors), seed))
        if "t1" in claims:
            for s in p.factors[:-1]:
                add(single_step(p, s, seed))
            if i < COSTLY_SEEDS["rs2x"] or p.quick:
                add(Step(f"rs2x-s{seed}", seed=seed, train={"sampling": "fair", "epochs": 2 * p.epochs,
                                                            "eval_configs": "default"}, evals=("test_cal",)))
        if "t9" in claims:
            add(Step(f"sharedbn-s{seed}", seed=seed, train={"sampling": "fair", "model_args": _shared(p),
                                                            "eval_configs": "default"}, evals=("test_cal", "test_raw")))
        if "t11" in claims:
            add(Step(f"random-s{seed}", seed=seed, train={"sampling": "random", "eval_configs": "default"},
                     evals=("test_cal",)))
            add(Step(f"timing-s{seed}", kind="timing", seed=seed,
                     params={"rounds": 2, "steps": 2} if p.quick else {"rounds": 7, "steps": 20}))
        if {"t2", "t9"} & set(claims):
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
        if "beyond" in claims:
            convert = {"sampling": "fair", "epochs": max(1, round(p.epochs / 4)), "eval_configs": "default"}
            first = seeds[0]
            add(Step("convert-lr", kind="select", seed=first, init_from=f"single-1-s{first}",
                     deps=(f"single-1-s{first}",), train=convert,
                     params={"lr_scales": list(CONVERT_LR_SCALES), "score_configs": [cfg(s) for s in p.factors]}))
            add(Step(f"convert-s{seed}", seed=seed, init_from=f"single-1-s{seed}",
                     deps=(f"single-1-s{seed}", "convert-lr"), train=convert, evals=("test_cal",),
                     params={"lr_from": "convert-lr"}))
    return list(steps.values())


def conditional(p: Protocol, seeds: Sequence[int], claims: Sequence[str], flags: Dict[str, bool]) -> List[Step]:
    """Rows the issue adds only when a first result calls for them (``flags`` from :mod:`claims`)."""
    steps = []
    for seed in seeds:
        if "t2" in claims and flags.get("summed_loss_destabilises"):
            steps.append(Step(f"augmean-s{seed}", seed=seed, train={**_t2_regime(p), "recipe": "aug",
                                                                    "loss_reduction": "mean", "eval_configs": "default"},
                              evals=("own_cal", "own_raw")))
        if "beyond" in claims and flags.get("rs_behind"):
            steps.append(Step(f"distill-s{seed}", seed=seed, train={"sampling": "fair", "distill": True,
                                                                    "eval_configs": "default"}, evals=("test_cal",)))
    return steps
