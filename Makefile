# Everything a new machine with Python 3.10 or newer needs: `make demo`, `make test`, `make bench`,
# `make docs`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint browser node labextension bench compare docs clean

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

# The JupyterLab extension (labextension/): TypeScript built with @jupyterlab/builder from the npm
# registry into labextension/dist, which the wheel ships as share/jupyter/labextensions/nbresume.
# node and npm come from Debian's packages when missing (root), as Chromium does for `browser`.
LAB := labextension
LAB_SOURCES := $(wildcard $(LAB)/src/*.ts $(LAB)/style/*) $(LAB)/package.json $(LAB)/tsconfig.json
LAB_LINK := $(VENV)/share/jupyter/labextensions/nbresume

node:
	@command -v npm >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null); } \
	  || { echo "no node/npm: install them (apt-get install nodejs npm) to build the JupyterLab extension"; exit 1; }

$(LAB)/node_modules/.package-lock.json: $(LAB)/package.json $(LAB)/package-lock.json | node
	cd $(LAB) && npm ci --no-audit --no-fund --loglevel=error

# NB. jupyterlab's staging package.json names the versions JupyterLab shares with extensions
$(LAB)/dist/package.json: $(LAB_SOURCES) $(LAB)/node_modules/.package-lock.json $(VENV)/.installed
	rm -rf $(LAB)/lib $(LAB)/dist $(LAB)/tsconfig.tsbuildinfo
	cd $(LAB) && node_modules/.bin/tsc
	cd $(LAB) && node node_modules/@jupyterlab/builder/lib/build-labextension.js \
	  --core-path "$$($(abspath $(BIN))/python -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')" .
	touch $@

# the editable install sees the build through a link, like `jupyter labextension develop`
labextension: $(LAB)/dist/package.json
	@mkdir -p $(dir $(LAB_LINK))
	@[ -L $(LAB_LINK) ] || rm -rf $(LAB_LINK)
	ln -sfn $(CURDIR)/$(LAB)/dist $(LAB_LINK)

test: lint browser labextension
	$(BIN)/python -m pytest

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

# BENCH_ARGS=--full for the 1 GiB arrays of issue 9 (default 256 MiB)
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

$(VENV)/.docs-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

# The site (Sphinx + MyST, sources in docs/) into build/docs; any warning fails, and so does a
# reference that does not resolve (-n). Nothing is fetched while building (no intersphinx).
docs: $(VENV)/.docs-installed
	$(BIN)/python -m sphinx -W --keep-going -n -q -b html docs build/docs

# Each notebook plain vs every cell under %%checkpoint, then a restoring re-run (issue 15);
# COMPARE=path/to/public.ipynb to try others
COMPARE ?= tests/notebooks/*.ipynb
compare: setup
	$(BIN)/python scripts/compare_notebook.py $(COMPARE)

clean:
	rm -rf $(VENV) .nbresume .pytest_cache .mypy_cache .ruff_cache build/docs
	rm -rf $(LAB)/node_modules $(LAB)/lib $(LAB)/dist $(LAB)/tsconfig.tsbuildinfo
