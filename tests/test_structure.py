"""The package's layout rules, checked on its source: no import cycle, no private name used across
modules, no module much over 500 lines, and evaluation that works under ``torch.inference_mode``."""
import pytest
import ast
from pathlib import Path

import torch

import resizable
from resizable.evaluation.walker import calibrate_configs, evaluate_configs, evaluate_naive, forward_all

PACKAGE = Path(resizable.__file__).parent
MAX_LINES = 550


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name, path):
    """``(imported module, [imported names])`` for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None


def _graph():
    modules = dict(_modules())
    graph = {}
    for name, path in modules.items():
        deps = set()
        for target, imported in _imports(name, path):
            if f"{target}.{imported}" in modules:
                deps.add(f"{target}.{imported}")  # `from . import models`
            elif target in modules:
                deps.add(target)
        deps.discard(name)
        graph[name] = deps
    return modules, graph


def test_no_import_cycle():
    _, graph = _graph()
    # a package's __init__ importing its own submodules is not a cycle of ideas
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(edges.get(m, ())):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_crosses_a_module_boundary():
    modules, _ = _graph()
    offences = []
    for name, path in modules.items():
        for target, imported in _imports(name, path):
            if target.startswith("resizable") and target != name and imported and imported.startswith("_") \
                    and not imported.startswith("__"):
                offences.append(f"{name} imports {target}.{imported}")
        tree = ast.parse(path.read_text())
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                   for a in n.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                    and node.attr.startswith("_") and not node.attr.startswith("__") and node.value.id != "torch":
                offences.append(f"{name} uses {node.value.id}.{node.attr}")
    assert not offences, offences


def test_the_private_name_check_can_fail(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("from .evaluation.walker import _Counts\n")
    assert ("resizable.evaluation.walker", "_Counts") in list(_imports("resizable.bad", path))


def test_no_module_much_over_500_lines():
    long = {name: n for name, path in _modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.slow
def test_evaluation_works_under_inference_mode():
    model = resizable.create_model("resnet20", widths=(4, 8, 8), num_classes=10, in_chans=1)
    loader = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))) for _ in range(2)]
    configs = model.configs()[:5] + [model.max_config]
    expected = evaluate_naive(model, loader, configs)
    with torch.inference_mode():
        assert evaluate_configs(model, loader, configs) == expected
        stats = calibrate_configs(model, loader, 1, configs)
        logits = forward_all(model, loader[0][0], configs, bn_stats=stats)
    assert set(logits) == set(configs)


def test_the_configuration_walk_records_no_autograd_graph():
    # the walk leaves inference mode for its in-place check; gradients must stay off all the same
    model = resizable.create_model("resnet20", widths=(4, 8, 8), num_classes=10, in_chans=1)
    x = torch.randn(2, 1, 28, 28)
    for context in (torch.inference_mode, torch.no_grad):
        with context():
            logits = forward_all(model, x, model.configs()[:3])
        assert all(not t.requires_grad and t.grad_fn is None for t in logits.values())


MAX_FUNCTION_LINES = 60  # a function reads top to bottom in one screen (its docstring not counted)


def _body_lines(node):
    body = node.body
    docstring = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
        and isinstance(body[0].value.value, str)
    start = (body[1].lineno if len(body) > 1 else node.end_lineno) if docstring else body[0].lineno
    return node.end_lineno - start + 1


def test_functions_read_in_one_screen():
    long = {}
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_FUNCTION_LINES:
                if name.startswith("resizable.models.") and node.name == "__init__":
                    continue  # a model's constructor lays out its architecture in one place
                long[f"{name}.{node.name}"] = _body_lines(node)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_how_to_feed_a_trained_network_is_said_in_one_place():
    """Input sizes are resolved, and calibration images chosen, by TrainedRun alone (the trainer makes its own)."""
    rules = {'get("input_size")': {"resizable.trained_run"},
             "load_split(": {"resizable.trained_run", "resizable.training.trainer", "resizable.data.splits"},
             "load_dataset(": {"resizable.training.trainer", "resizable.data.splits", "resizable.data.datasets"},
             "shuffle=True, seed=0": {"resizable.trained_run"}}
    offences = []
    for name, path in _modules():
        text = path.read_text()
        for pattern, allowed in rules.items():
            if pattern in text and name not in allowed:
                offences.append(f"{name} has {pattern!r}")
    assert not offences, offences
