"""Fig 5, T9, T11 + T8 and the rows beyond the paper on the default recipe's RS network, the earlier network beside.

The default recipe is the val winner (:func:`curve.curve_method`) and its RS network the recipes claim's
``full-<method>-s<seed>`` (:func:`curve.default_network`, its weights kept), reused as it is. The steps
here (their table: :mod:`plan`) take the recipe's options, and the all-1.0 network's tuned point, from the
selection, so a new default recipe changes their keys. The earlier network's steps
(:data:`claims.EARLIER`: Algorithm 1 at the protocol's lr) are no longer planned: their committed results
are read and shown under a heading of their own.

Decisions the claims leave open:

- the all-1.0 network of Fig 5 is trained again (``dr-alone-1-s<seed>``): the recipes claim's
  ``full-alone-1-s<seed>`` evaluates its own configuration only and keeps no weights;
- T9's "as trained" row of the RS network is an evaluation of its kept weights (``dr-raw-s<seed>``),
  since the recipes claim's run is evaluated recalibrated only;
- T8's timing (``timing-s<seed>``) stays: it times each sampling mode's passes on the protocol's network,
  and a recipe's loss reduction, lr, warm-up and weight decay change no step's cost;
- the converted network trains with the recipe's options for a quarter of the epochs, its warm-up the same
  share of them, its lr chosen on val among the recipe's x ``CONVERT_LR_SCALES`` (a warm start is dropped:
  the network starts trained);
- in-place distillation (``--distill full``: the full configuration teaches the step's others) runs
  unless the recipe already teaches (distillation, a teacher, or a warm start's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .claims import EARLIER, analyse_beyond, analyse_fig5, analyse_t11, analyse_t9, named
from .curve import curve_method, default_network
from .figures import pyplot, save_figure
from .protocol import PINNED, Protocol
from .recipes import plan_aug, recipe_options, regime_args
from .runs import Results, cfg, mean_table, mmacs
from .steps import Step

CLAIMS_ON_DEFAULT = ("fig5", "t9", "t11", "beyond")
CONVERT_LR_SCALES = (1.0, 0.1, 0.01)  # the converted network is fine-tuned: its lr, as multiples of the recipe's
# the earlier network's sides each claim shows (roles of claims.EARLIER)
EARLIER_ROLES = {"fig5": ("rs", "twin"), "t9": ("rs", "sharedbn", "aug", "augshared"),
                 "t11": ("fair", "random", "timing"), "beyond": ("rs", "convert", "convert_lr", "distill")}
AUG_STEPS = ("t2r-aug-s{}", "t2r-augshared-s{}")  # the recipes claim's RS-Aug with each BN (recipes.plan_aug)


def teaches(opts: Mapping[str, Any]) -> bool:
    """Whether a recipe already distils inside the run: ``--distill``, a frozen teacher, or a warm start's."""
    return (opts.get("distill") not in (None, "none", False) or bool(opts.get("teacher"))
            or (opts.get("warm_start") not in (None, "none") and opts.get("warm_start_teacher") != "none"))


def twin(p: Protocol, selection: Dict[str, Any], seed: int) -> Step:
    """Fig 5's all-1.0 network alone at its tuned point, at every configuration; the converted row's start."""
    top = max(p.factors)
    opts = {**recipe_options(selection, f"alone-{top:g}"), **regime_args(p, "full")}
    return Step(f"dr-alone-{top:g}-s{seed}", seed=seed, train=opts, evals=("test_cal", "test_raw"),
                keep_weights=True)


def variant(p: Protocol, selection: Dict[str, Any], seed: int, name: str, evals: Sequence[str], **change: Any) -> Step:
    """The default recipe's RS network with ``change`` to its options (``dr-<name>-s<seed>``)."""
    return Step(f"dr-{name}-s{seed}", seed=seed, train={**default_network(p, selection, seed).train, **change},
                evals=tuple(evals))


def shared_bn(p: Protocol, selection: Dict[str, Any], seed: int) -> Step:
    args = {**p.model_args, **default_network(p, selection, seed).train.get("model_args", {}), "scale_bn": False}
    return variant(p, selection, seed, "sharedbn", ("test_cal", "test_raw"), model_args=args)


def as_trained(p: Protocol, selection: Dict[str, Any], seed: int) -> Step:
    """T9: the default network's table with its BN running averages as trained (its weights evaluated again)."""
    net = default_network(p, selection, seed)
    return Step(f"dr-raw-s{seed}", kind="evaluate", seed=seed, deps=(net.name,), evals=("test_raw",),
                params={"network": net.name, "network_train": net.train})


def fair_side(p: Protocol, selection: Dict[str, Any], seed: int) -> Step:
    """T11's fair side: the default network itself when its recipe samples fairly."""
    net = default_network(p, selection, seed)
    return net if net.train.get("sampling") == "fair" else variant(p, selection, seed, "fair", ("test_cal",),
                                                                   sampling="fair")


def timing(p: Protocol, seed: int) -> Step:
    """T8: fair and random sampling's training steps timed back to back (:mod:`timing`)."""
    return Step(f"timing-s{seed}", kind="timing", seed=seed,
                params={"rounds": 2, "steps": 2} if p.quick else {"rounds": 7, "steps": 20})


def convert_steps(p: Protocol, selection: Dict[str, Any], seeds: Sequence[int]) -> List[Step]:
    """The all-1.0 network converted and trained with the recipe; its lr chosen on val on the first seed's."""
    opts = {k: v for k, v in default_network(p, selection, seeds[0]).train.items() if not k.startswith("warm_start")}
    epochs = max(1, round(p.epochs / 4))
    warm = opts.get("warmup_epochs", PINNED["warmup_epochs"])
    train = {**opts, "epochs": epochs, **({} if warm is None else {"warmup_epochs": warm * epochs / p.epochs})}
    lr = float(train.get("lr", p.lr))
    sources = {seed: twin(p, selection, seed) for seed in seeds}
    first = sources[seeds[0]]
    # the source's options are in the keys: a twin trained again with others makes these again too
    steps = [Step("dr-convert-lr", kind="select", seed=seeds[0], init_from=first.name, deps=(first.name,),
                  train=train, params={"lrs": [round(lr * s, 12) for s in CONVERT_LR_SCALES],
                                       "score_configs": [cfg(s) for s in p.factors], "source_train": first.train})]
    for seed, source in sources.items():
        steps.append(Step(f"dr-convert-s{seed}", seed=seed, init_from=source.name,
                          deps=(source.name, "dr-convert-lr"), train=train, evals=("test_cal",),
                          params={"lr_from": "dr-convert-lr", "source_train": source.train}))
    return steps


def plan_default(p: Protocol, seeds: Sequence[int], claims: Sequence[str], selection: Dict[str, Any]) -> List[Step]:
    """The steps of the claims among ``CLAIMS_ON_DEFAULT``; T9's evaluations of the kept weights last (a network
    finished before it kept them stops the suite there, with the fix)."""
    want, steps, last = set(claims) & set(CLAIMS_ON_DEFAULT), [], []
    if not want:
        return []
    for seed in seeds:
        net = default_network(p, selection, seed)
        steps.append(net)
        if want & {"fig5", "beyond"}:
            steps.append(twin(p, selection, seed))
        if "t9" in want:
            aug = {n.format(seed) for n in AUG_STEPS}
            steps += [shared_bn(p, selection, seed), *(s for s in plan_aug(p, [seed], selection) if s.name in aug)]
            last.append(as_trained(p, selection, seed))
        if "t11" in want:
            steps += [fair_side(p, selection, seed), variant(p, selection, seed, "random", ("test_cal",),
                                                             sampling="random"), timing(p, seed)]
        if "beyond" in want and not teaches(net.train):
            steps.append(variant(p, selection, seed, "distill", ("test_cal",), distill="full"))
    if "beyond" in want:
        steps += convert_steps(p, selection, seeds)
    out: Dict[str, Step] = {}
    for s in steps + last:
        out.setdefault(s.name, s)
    return list(out.values())


def default_names(p: Protocol, selection: Dict[str, Any]) -> Dict[str, str]:
    """The steps each analysis reads (``{}``: the seed), in the roles of :data:`claims.EARLIER`."""
    def pattern(step: Step) -> str:
        assert step.name.endswith("-s0"), step.name  # every per-seed step is named <what>-s<seed>
        return step.name[:-1] + "{}"

    return {"rs": pattern(default_network(p, selection, 0)), "rs_raw": pattern(as_trained(p, selection, 0)),
            "twin": pattern(twin(p, selection, 0)), "sharedbn": pattern(shared_bn(p, selection, 0)),
            "aug": AUG_STEPS[0], "augshared": AUG_STEPS[1], "fair": pattern(fair_side(p, selection, 0)),
            "random": "dr-random-s{}", "timing": pattern(timing(p, 0)), "convert": "dr-convert-s{}",
            "convert_lr": "dr-convert-lr", "distill": "dr-distill-s{}"}


def earlier_steps(claims: Sequence[str], seeds: Sequence[int]) -> List[str]:
    """The earlier network's steps the claims show (read when committed, never planned)."""
    roles = {r for c in claims for r in EARLIER_ROLES.get(c, ())}
    return sorted({n for r in roles for n in named(EARLIER, r, seeds)})


def _shown(p: Protocol, selection: Dict[str, Any]) -> Dict[str, str]:
    """The steps' names as the report shows them (``<seed>`` for the seed)."""
    return {role: n.format("<seed>") for role, n in default_names(p, selection).items()}


def _words(opts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in opts.items() if k != "eval_configs")


def _network(p: Protocol, selection: Dict[str, Any]) -> str:
    method = curve_method(selection)
    return (f"The default recipe's RS network (`{_shown(p, selection)['rs']}`: `{method}`, the val winner: "
            f"{_words(recipe_options(selection, method))}; {p.epochs} epochs, the recipes claim's run)")


def _section(p: Protocol, seeds: Sequence[int], results: Results, selection: Dict[str, Any],
             analyse: Callable[..., Dict[str, Any]], intro: str) -> Dict[str, Any]:
    """The claim on the default recipe's steps (``intro`` first), then the earlier network's rows."""
    names = default_names(p, selection)
    new, old = analyse(p, seeds, results, names), analyse(p, seeds, results, EARLIER, tag=", earlier network")
    lr = next((r["options"]["lr"] for r in (results.get(n) for n in named(EARLIER, "rs", seeds))
               if r and r.get("options")), p.lr)
    return {"json": {**new["json"], "steps": names, "earlier": old["json"]}, "flags": new["flags"],
            "md": [intro, "", *new["md"], "",
                   f"#### Earlier network: Algorithm 1 (`rs-s<seed>`: fair sampling, the k losses summed, lr {lr:g}), "
                   "from the committed results", "", *old["md"]]}


def analyse_fig5_default(p: Protocol, seeds: Sequence[int], results: Results,
                         selection: Dict[str, Any]) -> Dict[str, Any]:
    alone = recipe_options(selection, f"alone-{max(p.factors):g}")
    return _section(p, seeds, results, selection, analyse_fig5,
                    f"{_network(p, selection)} against the all-1.0 network trained alone at its tuned point "
                    f"(`{_shown(p, selection)['twin']}`: {_words(alone)}).")


def analyse_t9_default(p: Protocol, seeds: Sequence[int], results: Results,
                       selection: Dict[str, Any]) -> Dict[str, Any]:
    shown = _shown(p, selection)
    return _section(p, seeds, results, selection, analyse_t9,
                    f"{_network(p, selection)}; as trained: `{shown['rs_raw']}`, an evaluation of its kept weights "
                    f"with the BN running averages. Against it, the same recipe with one shared BN "
                    f"(`{shown['sharedbn']}`). RS-Aug: the recipes claim's `{shown['aug']}` and `{shown['augshared']}` "
                    "(T2's regime, the chosen recipe's fair phase, tuned on val).")


def analyse_t11_default(p: Protocol, seeds: Sequence[int], results: Results,
                        selection: Dict[str, Any]) -> Dict[str, Any]:
    shown = _shown(p, selection)
    fair = "" if shown["fair"] == shown["rs"] else f", with fair sampling (`{shown['fair']}`)"
    untimed = (" The recipe distils, and its teacher's pass is not timed."
               if teaches(default_network(p, selection, 0).train) else "")
    return _section(p, seeds, results, selection, analyse_t11,
                    f"Fair side: {_network(p, selection)}{fair}; random side: the same recipe with random sampling "
                    f"(`{shown['random']}`). T8's back-to-back timing (`{shown['timing']}`) runs each mode's passes "
                    "on the protocol's network: the recipe's loss reduction, lr, warm-up and weight decay change no "
                    "step's cost." + untimed)


def analyse_beyond_default(p: Protocol, seeds: Sequence[int], results: Results,
                           selection: Dict[str, Any]) -> Dict[str, Any]:
    shown = _shown(p, selection)
    distil = (f"the default recipe with in-place distillation (`--distill full`: the full configuration teaches the "
              f"step's others, one more pass when the sampling does not draw it; `{shown['distill']}`)"
              if not teaches(default_network(p, selection, 0).train) else
              "no distillation row: the default recipe distils already")
    return _section(p, seeds, results, selection, analyse_beyond,
                    f"{_network(p, selection)} against the all-1.0 network (`{shown['twin']}`) converted and trained "
                    "with the default recipe for a quarter of the epochs, its warm-up the same share of them and its "
                    "lr chosen on val among the recipe's x " + ", ".join(f"{s:g}" for s in CONVERT_LR_SCALES)
                    + f" (`{shown['convert_lr']}`, `{shown['convert']}`); and {distil}.")


ANALYSES_ON_DEFAULT = {"fig5": analyse_fig5_default, "t9": analyse_t9_default, "t11": analyse_t11_default,
                       "beyond": analyse_beyond_default}


def plot_fig5(p: Protocol, seeds: Sequence[int], results: Results, selection: Dict[str, Any],
              out: Path) -> Optional[Path]:
    """Fig 5: the all-1.0 network at every configuration (as trained, recalibrated) and the default RS network."""
    names = default_names(p, selection)
    twins, rs = named(names, "twin", seeds), named(names, "rs", seeds)
    costs = mmacs(results, twins[0], "test_cal") or mmacs(results, rs[0], "test_cal")
    series = [(kind, colour, label, twins) for kind, colour, label in (
        ("test_raw", "tab:red", "all-1.0 network, BN as trained"),
        ("test_cal", "tab:orange", "all-1.0 network, BN recalibrated"))]
    series.append(("test_cal", "tab:blue", "RS network (default recipe)", rs))
    tables = [(colour, label, mean_table(results, these, kind)) for kind, colour, label, these in series]
    if not costs or not any(t for _, _, t in tables):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for colour, label, t in tables:
        if t:
            ax.scatter([costs[c] for c in t], list(t.values()), s=10, c=colour, label=label)
    ax.set_title("Fig 5: one network trained at all-1.0, run at every configuration")
    ax.set_xlabel("MMACs (multiply-accumulates, interpolation excluded)")
    ax.set_ylabel("test top-1 %")
    return save_figure(fig, out, ax)

