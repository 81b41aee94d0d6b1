# annotation-reconciler: `make demo` and `make test` bootstrap everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

CDK_CLI_VERSION := 2.1148.1
CDK := .cdk-cli/node_modules/.bin/cdk
CDK_OFFLINE := CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1 AWS_EC2_METADATA_DISABLED=true \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=1 JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1

.PHONY: help install demo test lint unit typecheck synth bench clean

help:
	@echo "make demo   # the reconciler end to end on a throwaway PostgreSQL and a local moto S3"
	@echo "make test   # lint, types and the whole test suite"
	@echo "make synth  # cdk synth offline into cdk.out/ (the Lambda asset bundled locally, no Docker)"
	@echo "make bench  # the benchmarks of BENCHMARKS.md"

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

# The npm CLI that reads aws-cdk-lib's cloud assemblies, pinned and kept inside the project.
$(CDK):
	npm install --prefix .cdk-cli --no-audit --no-fund --loglevel=error aws-cdk@$(CDK_CLI_VERSION)

synth: $(STAMP) $(CDK)
	$(CDK_OFFLINE) $(CDK) synth --no-notices --no-lookups --quiet $(CDK_ARGS)

# The benchmarks of BENCHMARKS.md (10-15 minutes on 2 cores); the tables are written into BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all --markdown BENCHMARKS.md

clean:
	rm -rf $(VENV) build cdk.out .cdk-cli .mypy_cache .ruff_cache .pytest_cache
