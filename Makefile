# Two entry points do all the set-up: `make demo` (the main job) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-quick test-paper setup dataset docs clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

dataset:
	@bash scripts/get-fashion-mnist.sh

demo: setup dataset
	$(BIN)/resizable demo

test: setup dataset
	$(BIN)/python -m pytest -q

# the edit-test loop: everything but the tests marked slow (a few minutes on 2 cores)
test-quick: setup dataset
	$(BIN)/python -m pytest -q -m "not slow"

# the paper's experiment suite (experiments/paper): its own tests, apart from the library's
test-paper: setup
	$(BIN)/python -m pytest -q experiments/paper/tests

# docs/cli.md from the command line's parsers (a test checks it is current)
docs: setup
	$(BIN)/python scripts/gen_cli_docs.py

clean-venv:
	rm -rf $(VENV)
