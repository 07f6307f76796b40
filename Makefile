# Kyoukai developer commands. Everything installs into .venv inside the checkout.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,examples,docs]'
	touch $(STAMP)

## demo: install and serve the notes example (examples/notes) on 127.0.0.1:4444
## (its SQLite file, examples/notes/notes.sqlite, is created on the first run)
demo: $(STAMP)
	cd examples/notes && PYTHONPATH=. exec $(CURDIR)/$(VENV)/bin/asphalt run config.yml

## test: install into .venv, check style and types, run the whole test suite, build the docs
test: $(STAMP)
	$(VENV)/bin/ruff check src tests examples bench docs/conf.py docs/_ext
	$(VENV)/bin/ruff format --check src tests examples bench docs/conf.py docs/_ext
	$(VENV)/bin/mypy
	$(PY) -m pytest
	$(MAKE) docs

## docs: build the documentation site into docs/_build/html (warnings and broken references
## are errors)
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -n -q -E -a -b html docs docs/_build/html

## lint: ruff (lint + format check) and mypy on src/
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples bench docs/conf.py docs/_ext
	$(VENV)/bin/ruff format --check src tests examples bench docs/conf.py docs/_ext
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests examples bench docs/conf.py docs/_ext
	$(VENV)/bin/ruff check --fix src tests examples bench docs/conf.py docs/_ext

## bench: install wrk and the peers into bench/.venv, run the benchmark, print the ratios
bench:
	bash bench/setup.sh && bench/.venv/bin/python bench/run.py $(BENCH_ARGS)

## clean: remove both virtualenvs (the project's and the benchmark's) and the tool caches
clean:
	rm -rf $(VENV) bench/.venv .pytest_cache .mypy_cache .ruff_cache docs/_build
