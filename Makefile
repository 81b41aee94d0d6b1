# annotation-reconciler: `make demo` and `make test` bootstrap everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: help install demo test lint unit typecheck clean

help:
	@echo "make demo   # the reconciler end to end on a throwaway PostgreSQL and a local moto S3"
	@echo "make test   # lint, types and the whole test suite"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m annotation_reconciler.local.demo

lint: $(STAMP)
	$(BIN)/ruff check lambdas infra tests bench
	$(BIN)/ruff format --check lambdas infra tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

clean:
	rm -rf $(VENV) build cdk.out .mypy_cache .ruff_cache .pytest_cache
