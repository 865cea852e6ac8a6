"""The package's layout rules, checked on its source: imports that point down the floors, no import cycle,
no private name used across modules, no module much over 500 lines, evaluation that works under
``torch.inference_mode``, and code outside the library (benchmarks, experiments, scripts) that uses its public names only."""
import pytest
import ast
import importlib
import re
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


# The floors of the house, from the ground up (docs/design.md, "Modules"): a room is a top-level module or a folder,
# and it imports only rooms on its own floor or below. A new room has to be given its floor here.
FLOORS = [
    ("utils",),
    ("configs", "layers", "fingerprint"),
    ("bnbank",),
    ("net",),
    ("registry", "sampling", "macs", "costs"),
    ("models",),
    ("checkpoint",),
    ("data",),
    ("evaluation",),
    ("trained_run",),
    ("training",),
    ("deploy",),
    ("nas",),
    ("adapt",),
    ("inference",),
    ("__init__",),  # the package's face: `import resizable`
    ("commands",),
    ("cli", "__main__"),
]


def _room(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _arrows_up(graph, floors):
    """Every import that runs from a lower floor to a higher one, and every room that stands on no floor."""
    floor = {room: i for i, rooms in enumerate(floors) for room in rooms}
    offences = sorted({f"{_room(m)} stands on no floor" for m in graph if _room(m) not in floor})
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            a, b = _room(m), _room(d)
            if a in floor and b in floor and floor[b] > floor[a]:
                offences.append(f"{m} imports {d}: {b} stands above {a}")
    return offences


def test_imports_point_down():
    _, graph = _graph()
    assert not _arrows_up(graph, FLOORS), _arrows_up(graph, FLOORS)


def test_the_direction_check_can_fail():
    graph = {"resizable.net": {"resizable.configs", "resizable.training.trainer"},
             "resizable.training.trainer": {"resizable.net"}, "resizable.attic.box": set()}
    assert _arrows_up(graph, FLOORS) == [
        "attic stands on no floor", "resizable.net imports resizable.training.trainer: training stands above net"]


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


# The code outside the library (benchmarks, the paper's suite, scripts) uses it as a user does: through the names
# docs/api.md describes under a package that lists them in its __all__. Internal names stay free to change.
ROOT = Path(__file__).resolve().parent.parent
API_PAGE = ROOT / "docs" / "api.md"
NOT_OUTSIDE = {"src", "tests", "runs", "build", "dist"}  # the library and its tests; run and build outputs


def _api_sections(text):
    """``{module: names}``: the names each ``## `module``` section of the API page describes (``- `name`: ...``)."""
    sections, current = {}, None
    for line in text.splitlines():
        heading = re.match(r"^## `([\w.]+)`\s*$", line)
        item = re.match(r"^- ((?:`\w+`(?:, )?)+):", line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
        elif item and current is not None:
            current.update(re.findall(r"`(\w+)`", item.group(1)))
    return sections


def _public_names():
    """``{module: names}``: the described names that their module lists in ``__all__``."""
    return {m: names & set(getattr(importlib.import_module(m), "__all__", ())) for m, names in
            _api_sections(API_PAGE.read_text()).items()}


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id] + parts[::-1] if isinstance(node, ast.Name) else None


def _non_public_uses(tree, public):
    """Every import of a library name that is not public, and every attribute path through a library module that
    reaches one (``resizable.training.trainer``)."""
    offences, bound = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "resizable":
            for a in node.names:
                if f"{node.module}.{a.name}" in public:  # a public package
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
                elif a.name not in public.get(node.module, ()):
                    offences.append(f"line {node.lineno}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != "resizable":
                    continue
                if a.name not in public:
                    offences.append(f"line {node.lineno}: import {a.name}")
                bound[a.asname or "resizable"] = a.name if a.asname else "resizable"
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        path = _dotted(node) if isinstance(node, ast.Attribute) and id(node) not in inner else None
        if not path or path[0] not in bound:
            continue
        module = bound[path[0]]
        for attr in path[1:]:
            if f"{module}.{attr}" in public:
                module = f"{module}.{attr}"
            else:
                if attr not in public.get(module, ()):
                    offences.append(f"line {node.lineno}: {'.'.join(path)}")
                break
    return offences


def _outside_code():
    for top in sorted(ROOT.iterdir()):
        if top.suffix == ".py":
            yield top
        elif top.is_dir() and top.name not in NOT_OUTSIDE and not top.name.startswith("."):
            yield from sorted(top.rglob("*.py"))


def test_the_api_page_describes_public_names_of_packages():
    scripts = re.search(r"^\[project\.scripts\]\n(.*?)(?=^\[|\Z)", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    entry_modules = set(re.findall(r'"([\w.]+):\w+"', scripts.group(1)))
    sections = _api_sections(API_PAGE.read_text())
    assert {"resizable", "resizable.training", "resizable.evaluation", "resizable.nas"} <= set(sections)
    problems = []
    for module, names in sections.items():
        mod = importlib.import_module(module)
        if not hasattr(mod, "__path__") and module not in entry_modules:
            problems.append(f"{module} is a module, not a package: describe its names under their package")
        listed = set(getattr(mod, "__all__", ()))
        problems += [f"{module}.{n} is described but not in its __all__" for n in sorted(names - listed)]
        problems += [f"{module}.{n} is in __all__ but missing" for n in sorted(n for n in listed if not hasattr(mod, n))]
    assert not problems, problems


def test_code_outside_the_library_uses_public_names_only():
    public = _public_names()
    files = list(_outside_code())
    assert any(p.parts[-3:] == ("experiments", "paper", "run.py") for p in files)  # the paper's suite is looked at
    offences = [f"{p.relative_to(ROOT)} {o}" for p in files for o in _non_public_uses(ast.parse(p.read_text()), public)]
    assert not offences, "not public (add the name to its package's __all__ and docs/api.md): " + "; ".join(offences)


def test_the_public_name_check_can_fail():
    public = _api_sections("## `resizable`\n- `create_model`: build.\n## `resizable.training`\n- `train`, `X`: t.\n")
    assert public == {"resizable": {"create_model"}, "resizable.training": {"train", "X"}}
    clean = ("import resizable\nimport resizable.training as rt\nfrom resizable import create_model, training\n"
             "from resizable.training import train\nfrom . import mine\n"
             "resizable.create_model('x').configs()\nresizable.training.train(1)\nrt.train(2)\ntraining.train(3)\n")
    assert _non_public_uses(ast.parse(clean), public) == []
    bad = ("from resizable.training.trainer import build_optimizer\nfrom resizable import _private\n"
           "import resizable.training.step\nimport resizable as r\nr.trained_run.TrainedRun\nr.training.steplog\n"
           "from resizable.training import loss_climbs\n")
    assert _non_public_uses(ast.parse(bad), public) == [
        "line 1: from resizable.training.trainer import build_optimizer", "line 2: from resizable import _private",
        "line 3: import resizable.training.step", "line 7: from resizable.training import loss_climbs",
        "line 5: r.trained_run.TrainedRun", "line 6: r.training.steplog"]
