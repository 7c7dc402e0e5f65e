# Everything a new machine with Python 3.10 or newer needs: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint browser bench compare clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

# The browser tests drive Debian's Chromium; install it when we can (root), never a downloaded build.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium not installed: the browser tests will skip"; }

test: lint browser
	$(BIN)/python -m pytest

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

# BENCH_ARGS=--full for the 1 GiB arrays of issue 9 (default 256 MiB)
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# Each notebook plain vs every cell under %%checkpoint, then a restoring re-run (issue 15);
# COMPARE=path/to/public.ipynb to try others
COMPARE ?= tests/notebooks/*.ipynb
compare: setup
	$(BIN)/python scripts/compare_notebook.py $(COMPARE)

clean:
	rm -rf $(VENV) .nbresume .pytest_cache .mypy_cache .ruff_cache
