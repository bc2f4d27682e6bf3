# mlship: `make demo` and `make test` set up everything from nothing (venv, pip, npm).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYSPARK_PYTHON := $(abspath $(VENV))/bin/python
export PYSPARK_DRIVER_PYTHON := $(abspath $(VENV))/bin/python
export MPLBACKEND := Agg
export PATH := $(abspath node_modules/.bin):$(PATH)

.PHONY: setup test demo bench lint clean distclean chromium

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlship needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --progress-bar off -c constraints.txt -e '.[all,dev]'  # every extra
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Headless Chromium renders the HTML reports in the tests (Debian's package; skipped with a warning
# where apt cannot install it, and the browser tests then say so).
chromium:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "warning: could not install chromium (apt)"; }

setup: $(VENV)/.installed node_modules/.installed chromium

test: setup
	$(VENV)/bin/ruff check .
	$(PY) tests/core/test_import_contracts.py  # lint-imports: the contracts in pyproject.toml
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

demo: setup
	$(PY) -m demo

bench: setup
	$(PY) -m pip install --quiet --progress-bar off -c constraints.txt -e '.[bench]'  # Evidently baseline
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf build cdk.out .demo .mlship .pytest_cache

distclean: clean
	rm -rf $(VENV) node_modules
