# Kyoukai developer commands. Everything installs into .venv inside the checkout.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,examples]'
	touch $(STAMP)

## demo: install and serve the notes example (examples/notes) on 127.0.0.1:4444
## (its SQLite file, examples/notes/notes.sqlite, is created on the first run)
demo: $(STAMP)
	cd examples/notes && PYTHONPATH=. exec $(CURDIR)/$(VENV)/bin/asphalt run config.yml

## test: install into .venv, check style and types, and run the whole test suite
test: $(STAMP)
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/ruff format --check src tests examples bench
	$(VENV)/bin/mypy
	$(PY) -m pytest

## lint: ruff (lint + format check) and mypy on src/
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/ruff format --check src tests examples bench
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests examples bench
	$(VENV)/bin/ruff check --fix src tests examples bench

## bench: install wrk and the peers into bench/.venv, run the benchmark, print the ratios
bench:
	bash bench/setup.sh && bench/.venv/bin/python bench/run.py $(BENCH_ARGS)

## clean: remove both virtualenvs (the project's and the benchmark's) and the tool caches
clean:
	rm -rf $(VENV) bench/.venv .pytest_cache .mypy_cache .ruff_cache
