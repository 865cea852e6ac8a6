"""`resizable train` and `resizable demo` default to the suite's default recipe: the val winner recorded in the
committed selection: the confirmation's winner at its confirmed point once the confirmation has one; until then the
screening's best RS method from scratch at its screened point (a confirmation under way does not move the default
one method at a time)."""
import dataclasses
import json
from pathlib import Path

from resizable.commands import DemoOptions
from resizable.training import TrainOptions

from suite.protocol import Protocol
from suite.confirm import winner
from suite.recipes import chosen_recipes, recipe_options

SELECTION = Path(__file__).resolve().parent.parent / "results" / "selection.json"
# the options a recipe sets (the rest are the protocol's: data, network, epochs, evaluation)
RECIPE_KEYS = ("sampling", "loss_reduction", "lr", "weight_decay", "distill", "distill_temperature",
               "distill_top_down", "warm_start", "warm_start_share", "warm_start_teacher")


def _defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_the_library_and_the_demo_default_to_the_default_recipe():
    selection = json.loads(SELECTION.read_text())
    method = chosen_recipes(selection)[0][1]
    if winner(selection.get("confirmation") or {}):
        recipe = recipe_options(selection, method)
    else:
        screened = selection["recipes"]["methods"][method]
        recipe = {**screened["fixed"], **screened["best"]["point"]}
    p = Protocol()
    train, demo = _defaults(TrainOptions), _defaults(DemoOptions)
    expected = {k: recipe.get(k, train[k] if k != "weight_decay" else p.weight_decay) for k in RECIPE_KEYS}
    if expected["distill"] != "ensemble":
        expected["distill_top_down"] = train["distill_top_down"]  # read only by ensemble distillation
    if expected["warm_start"] == "none":
        expected["warm_start_share"] = train["warm_start_share"]
        expected["warm_start_teacher"] = train["warm_start_teacher"]
    assert {k: train[k] for k in RECIPE_KEYS} == expected, f"the default recipe is {method}: {recipe}"
    # the warm-up: the library's default is a share of the epochs (half), the recipe's is in the suite's epochs
    assert train["warmup_epochs"] is None and TrainOptions(epochs=p.epochs).warmup == recipe.get("warmup_epochs", 0.0)
    assert {k: demo[k] for k in RECIPE_KEYS if k in demo} == {k: expected[k] for k in RECIPE_KEYS if k in demo}
    assert demo["warmup_epochs"] is None
    missing = [k for k in RECIPE_KEYS if k not in demo and expected[k] != train[k]]
    assert not missing, f"the demo cannot set {missing} of the default recipe"
