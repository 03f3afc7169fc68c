# HashHub: `make run` serves a demo hub; `make test` runs the whole suite. See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test qa lint bench services-up services-down clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

## run: start the embedded PostgreSQL and Redis, migrate, seed the demo once, serve on :8000
run: $(STAMP)
	$(PY) -m hub.embedded run

## test: throwaway PostgreSQL and Redis, the whole pytest suite against them, then tear down
test: $(STAMP)
	$(PY) -m hub.embedded test -- $(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff (lint + format check), mypy, djlint
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/djlint templates --lint

## qa: everything CI cares about
qa: lint test

## bench: benchmark scripts against throwaway servers; they print figures, never pass/fail
bench: $(STAMP)
	$(PY) -m hub.embedded test -- sh -c 'for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script || exit 1; done'

services-up: $(STAMP)
	$(PY) -m hub.embedded up

services-down: $(STAMP)
	$(PY) -m hub.embedded down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
