"""The README and docs/: every relative link resolves, docs/cli.md is what the parsers generate and names
every command, and the README's Python quick-start runs as written."""
import functools
import importlib.util
import os
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXTERNAL = ("http://", "https://", "mailto:")


@functools.lru_cache(maxsize=None)
def generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prose(text: str) -> str:
    """The page without its fenced code blocks and inline code (links there are examples, not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def anchors(page: Path) -> set:
    """The anchors GitHub gives the page's headings (a repeated heading gets -1, -2, ...)."""
    found, counts = set(), {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", page.read_text()), re.M):
        base = generator().anchor(heading)
        found.add(f"{base}-{counts[base]}" if counts.get(base) else base)
        counts[base] = counts.get(base, 0) + 1
    return found


def links(page: Path):
    return [t for t in LINK.findall(prose(page.read_text())) if not t.startswith(EXTERNAL)]


def test_the_pages_have_links_to_check():
    assert len(PAGES) > 5 and all(p.is_file() for p in PAGES)
    assert sum(len(links(p)) for p in PAGES) > 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_anchor_rule_is_githubs():
    slug = generator().anchor
    assert slug("Building the table: `resizable table`") == "building-the-table-resizable-table"
    assert slug("1. Labels: `resizable adapt label`") == "1-labels-resizable-adapt-label"
    assert slug("resizable adapt eval") == "resizable-adapt-eval"


def test_cli_reference_is_generated_and_current():
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == generator().render(), "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


def test_cli_reference_names_every_command_and_option():
    from resizable.cli import build_parser, COMMANDS

    text = (ROOT / "docs" / "cli.md").read_text()
    gen = generator()
    for name, _, parser in gen.subcommands(build_parser()):
        assert f"\n## resizable {name}\n" in text
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in text, f"resizable {name} {flag} is not in docs/cli.md"
    assert set(COMMANDS) <= {name for name, _, _ in gen.subcommands(build_parser())}


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch):
    gen = generator()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = gen.render()
    assert os.environ["COLUMNS"] == "40"  # put back after rendering
    monkeypatch.setenv("COLUMNS", "250")
    assert narrow == gen.render()


def test_readme_command_table_lists_every_command():
    from resizable.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `resizable (\w+)", readme, re.M))
    assert set(COMMANDS) <= listed, f"missing from the README's command table: {sorted(set(COMMANDS) - listed)}"


def python_blocks(page: Path, section: str):
    text = page.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path, monkeypatch):
    """Each block as written, one after the other in one namespace, then docs/deploy.md's; the run they open is
    a tiny network saved where they look (a demo run's layout: a run folder holding checkpoint.pt, with a bank)."""
    from resizable import create_model, save_checkpoint
    from resizable.evaluation import build_bank

    blocks = python_blocks(ROOT / "README.md", "Python quick-start")
    assert len(blocks) >= 2
    blocks += python_blocks(ROOT / "docs" / "deploy.md", "In Python")
    runs = set(re.findall(r"load_model\(\"([^\"]+)\"\)", "".join(blocks)))
    assert len(runs) == 1, "the snippets should open one run, by a literal path"
    kwargs = {"num_classes": 10, "in_chans": 1, "widths": [4, 8, 8], "stem_stride": 2, "stem_pool": True,
              "strides": [1, 2, 1]}
    tiny = create_model("resnet14", **kwargs)
    images = [(torch.randn(16, 1, 28, 28), torch.zeros(16, dtype=torch.long))]
    tiny.attach_bank(build_bank(tiny, images, num_batches=1))
    run = tmp_path / runs.pop()
    run.mkdir(parents=True)
    save_checkpoint(run / "checkpoint.pt", tiny, "resnet14", kwargs)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "snippet", "exec"), namespace)
    assert (tmp_path / "small.pt").is_file() and (tmp_path / "small.pt.json").is_file()  # deploy.md's export


def marked(page: Path, name: str) -> str:
    text = page.read_text()
    found = re.search(rf"<!-- {name}:start -->\n(.*?)\n?<!-- {name}:end -->", text, re.S)
    assert found, f"{page.name} has no {name} marks"
    return found.group(1)


@pytest.mark.slow  # imports torchvision, through benchmarks/overhead.py
def test_readme_results_are_rendered_from_the_saved_benchmark_results():
    """The README's generated lines (and docs/performance.md's summary) are what the benchmarks' renderers make of
    the committed results, each one line with a link to its full report."""
    import json

    from benchmarks import bank, demo, overhead

    results = ROOT / "benchmarks" / "results"
    readme, performance = ROOT / "README.md", ROOT / "docs" / "performance.md"
    data, gpu = json.loads((results / "overhead.json").read_text()), json.loads((results / "overhead_gpu.json").read_text())
    lines = {
        "overhead": overhead.readme_line(data),
        "bank": bank.readme_line(json.loads((results / "bank.json").read_text())),
    }
    for name, line in lines.items():
        assert marked(readme, name) == line and "\n" not in line and "](" in line, name
    assert marked(performance, "overhead") == overhead.summary_line(data, gpu)
    block = demo.readme_block(json.loads((results / "demo.json").read_text()), results / "demo.json")
    assert marked(readme, "demo") == "\n".join(block)
    assert "[Full record](benchmarks/results/demo.md)" in block[0]
