# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv (once) with a CPU build of torch and every extra the project uses.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0 is pinned first so that pip does not pull a multi-GB CUDA build;
# the package itself accepts any torch>=2.4.
TORCH ?= torch==2.13.0

.PHONY: demo test test-oldest lint bench install

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/eve-scheduler demo

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# The training-quality benchmark (about 5 minutes on 2 cores); needs the `bench` extra.
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	nice -n 10 $(BIN)/python -m benchmarks.quality

# Also checks the formatting (not in `test`: ruff is not pinned, and its style can change).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite on the oldest versions pyproject.toml admits, in .venv-oldest (not run by
# CI: PyPI's torch 2.4.1 is a CUDA build, about 5 GB installed; it runs on the CPU).
OLDEST_PYTHON ?= python3.10
OLDEST ?= torch==2.4.1 lightning==2.5.0 pytorch-lightning==2.5.0
test-oldest:
	$(OLDEST_PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/pip install --quiet --upgrade pip
	.venv-oldest/bin/pip install --quiet -e ".[test]" $(OLDEST)
	.venv-oldest/bin/python -m pytest -q
