"""A trained run as the network ``resizable predict`` runs: one configuration (given, or the lookup
table's best under a MACs budget) or Adapt routing, fed the way ``resizable eval`` feeds it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from ..configs import Config, format_config, parse_config
from ..costs import config_costs
from ..trained_run import TrainedRun
from .images import Preprocessing
from .network import Network, NetworkChoice

__all__ = ["run_network", "run_preprocessing", "table_choice"]

TABLE_NAME = "table.csv"


def run_preprocessing(run: TrainedRun, size: Tuple[int, int]) -> Tuple[Preprocessing, Tuple[str, ...]]:
    """How ``resizable eval`` prepares this run's images at ``size``, and its class names.

    The dataset it is fed (its own, or the one given to :meth:`TrainedRun.open`) says channels, mean,
    std and classes; without it at hand (an image folder not on this machine) the checkpoint's record
    of them does, and an image folder's resize is then chosen per image.
    """
    info = run.info
    if info is not None:
        record = {"dataset": info.name, "in_chans": info.in_chans, "mean": list(info.mean), "std": list(info.std),
                  "classes": list(info.classes)}
    else:
        record = run.preprocessing()
    if not record or record.get("mean") is None:
        raise ValueError(f"{run.checkpoint} names no dataset, so its preprocessing is unknown; pass --dataset "
                         f"(and --data-dir) to feed it as that dataset is fed")
    dataset = record.get("dataset")
    side = None
    if info is not None and info.name == "imagefolder":
        from ..data.imagefolder import eval_resize_side, folder_stats

        side = eval_resize_side(folder_stats(str(Path(run.data_dir).expanduser())).native_size, size)
    prep = Preprocessing(int(record.get("in_chans") or run.model.in_chans), size, tuple(record["mean"]),
                         tuple(record["std"]), Preprocessing.method_for(dataset), side, dataset)
    classes = record.get("classes") or [str(i) for i in range(run.model.num_classes)]
    if len(classes) != run.model.num_classes:
        raise ValueError(f"{run.checkpoint}: {len(classes)} class names for a network of {run.model.num_classes}")
    return prep, tuple(str(c) for c in classes)


def table_choice(run: TrainedRun, max_mmacs: float, table: Optional[str], count_interp: bool) -> Config:
    """The most accurate configuration of the run's lookup table within ``max_mmacs``.

    The table defaults to ``table.csv`` in the run folder; it must have been built with these weights.
    """
    from ..nas.lookup import search
    from ..nas.table_file import REQUIRED_COLUMNS, read_table, weights_sha256

    path = Path(table) if table is not None else run.run_dir / TABLE_NAME
    if table is None and not path.is_file():
        raise ValueError(f"--max-mmacs needs a lookup table: none at {path}; build it with `resizable table "
                         f"--checkpoint {run.run_dir} --out {path}` or pass --table")
    lookup = read_table(path, required=REQUIRED_COLUMNS)
    if lookup.meta.get("weights_sha256") != weights_sha256(run.model):
        raise ValueError(f"the table {path} was built with other weights than {run.checkpoint}; build it for this "
                         f"checkpoint")
    best = search(lookup, max_mmacs=max_mmacs, count_interp=count_interp, top=1)[0]
    return parse_config(best["config"], run.model.factors, run.model.num_stages)


def _check_choice(choice: NetworkChoice) -> None:
    if choice.config is not None and (choice.max_mmacs is not None or choice.classifier is not None):
        other = "--classifier" if choice.classifier is not None else "--max-mmacs"
        raise ValueError(f"--config and {other} both choose the configuration; give one")
    if choice.table is not None and (choice.max_mmacs is None or choice.classifier is not None):
        raise ValueError("--table goes with --max-mmacs (the table's best configuration under the budget), "
                         "without --classifier")


def run_network(path: Path, choice: NetworkChoice, device: torch.device) -> Network:
    """The run at ``path`` at the configuration ``choice`` says, normalising with its BN statistics."""
    _check_choice(choice)
    run = TrainedRun.open(path, dataset=choice.dataset, data_dir=choice.data_dir, need_data=False)
    run.check_size()
    model = run.model.to(device)
    basis = run.use_bn_statistics(choice.bn_statistics or "bank")
    about = {"source": str(run.checkpoint), "kind": "run", "model": run.model_name, "bn_statistics": basis,
             "device": str(device)}
    if choice.classifier is not None:
        return _routed(run, choice, about)
    if choice.max_mmacs is not None:
        config = table_choice(run, choice.max_mmacs, choice.table, choice.count_interp)
        about["chosen_by"] = f"the table's most accurate configuration within {choice.max_mmacs:g} MMACs"
    else:
        config = parse_config(choice.config or "max", model.factors, model.num_stages)
    size = (run.input_size, run.input_size)
    prep, classes = run_preprocessing(run, size)
    macs, interp, _ = config_costs(model, size, [config])[config]
    about.update({"config": format_config(config), "mmacs": macs / 1e6, "interp_mmacs": interp / 1e6,
                  "classes_recorded": run.info is not None or bool(run.preprocessing().get("classes"))})

    @torch.no_grad()
    def forward(x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        model.set_config(config)
        return model(x.to(device)).float(), None

    return Network(forward, prep, classes, about)


def _routed(run: TrainedRun, choice: NetworkChoice, about: dict) -> Network:
    """Each image at the configuration the Adapt classifier picks for it (within the per-image budget)."""
    from ..adapt.classifier import load_classifier
    from ..adapt.routing import Adapter

    model = run.model
    trained = load_classifier(choice.classifier, model)
    adapter = Adapter.from_trained(model, trained)
    adapter.classifier.to(next(model.parameters()).device)
    allowed = adapter.allowed(choice.max_mmacs, choice.count_interp)
    size = tuple(trained.input_size)  # the size the classifier learnt at, as adapt eval feeds it
    prep, classes = run_preprocessing(run, size)  # type: ignore[arg-type]
    costs = adapter.costs.budget_costs(choice.count_interp)
    budget = "no budget" if choice.max_mmacs is None else f"within {choice.max_mmacs:g} MMACs per image"
    about.update({"config": None, "classes_recorded": run.info is not None or bool(run.preprocessing().get("classes")),
                  "routing": {"classifier": str(choice.classifier), "budget": budget,
                              "configs_allowed": int(allowed.sum()), "configs": len(adapter.configs),
                              "max_image_mmacs": max(c for c, ok in zip(costs, allowed.tolist()) if ok) / 1e6}})

    def forward(x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        device: Any = next(model.parameters()).device
        logits, chosen = adapter.infer(x.to(device), allowed)
        return logits.float(), chosen

    return Network(forward, prep, classes, about, configs=list(adapter.configs))
