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

.PHONY: help install demo test lint unit typecheck need-env synth bootstrap diff deploy lock bench mutate clean

help:
	@echo "make demo   # the reconciler end to end on a throwaway PostgreSQL and a local moto S3"
	@echo "make test   # lint, types and the whole test suite"
	@echo "make synth ENV=myportal    # cdk synth offline into cdk.out/ (infra/env/ENV.json; ENV=none: -c only)"
	@echo "make bootstrap ENV=staging # cdk bootstrap the account and region named in infra/env/ENV.json (once)"
	@echo "make diff ENV=staging      # cdk diff against the deployed stack (AWS credentials)"
	@echo "make deploy ENV=staging    # cdk deploy with infra/env/ENV.json (AWS credentials)"
	@echo "make lock   # regenerate infra/lambda-requirements.txt (hashes) from lambda-requirements.in"
	@echo "make bench  # the benchmarks of BENCHMARKS.md"
	@echo "make mutate [MUTATE='lifecycle.py paths.py']  # mutation score of the decision and deletion code"

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
	$(BIN)/ruff check lambdas infra tests bench tools
	$(BIN)/ruff format --check lambdas infra tests bench tools
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

# The npm CLI that reads aws-cdk-lib's cloud assemblies, pinned and kept inside the project.
$(CDK):
	npm install --prefix .cdk-cli --no-audit --no-fund --loglevel=error aws-cdk@$(CDK_CLI_VERSION)

# ENV=name reads infra/env/name.json (committed; copied from infra/env/examples/ and edited); CDK_ARGS adds more
# cdk options. ENV=none: no file, every setting from CDK_ARGS' -c options.
ENV ?=
ENV_ARGS := $(if $(ENV),-c env=$(ENV))

# first of each target's prerequisites, so a missing ENV is said before anything is installed
need-env:
	@test -n "$(ENV)" || { echo "make $(MAKECMDGOALS) needs ENV=<name> (infra/env/<name>.json, copied from infra/env/examples/ and edited)$(if $(filter synth,$(MAKECMDGOALS)), or ENV=none (every setting from CDK_ARGS' -c options))"; exit 2; }

synth: need-env $(STAMP) $(CDK)
	$(CDK_OFFLINE) $(CDK) synth --no-notices --no-lookups --quiet $(if $(filter none,$(ENV)),,-c env=$(ENV)) $(CDK_ARGS)

# These talk to AWS (the credentials of the account that holds the bucket, in its region).
bootstrap diff deploy: need-env $(STAMP) $(CDK)
	CDK_DISABLE_CLI_TELEMETRY=true $(CDK) $@ --no-notices $(if $(filter bootstrap,$@),,--no-lookups) $(ENV_ARGS) $(if $(filter deploy,$@),--require-approval broadening) $(CDK_ARGS)

# The Lambda's locked dependency tree for python3.12 on arm64, with hashes, from PyPI.
UV_VERSION := 0.13.9
UV := .lock-tools/bin/uv
$(UV):
	$(PYTHON) -m venv .lock-tools
	.lock-tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

lock: $(UV)
	$(UV) pip compile --quiet --generate-hashes --python-platform aarch64-manylinux2014 --python-version 3.12 \
		--custom-compile-command "make lock" \
		infra/lambda-requirements.in -o infra/lambda-requirements.txt

# The benchmarks of BENCHMARKS.md (10-15 minutes on 2 cores); the tables are written into BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all --markdown BENCHMARKS.md

# mutmut over the decision and deletion code ([tool.mutmut] only_mutate) against tests/unit and tests/integration;
# MUTATE="lifecycle.py portal/deletion.py" (or FILE:FUNCTION_GLOB) for a subset. See RELIABILITY.md.
MUTATE ?=
MUTATE_JOBS ?= $(PYTEST_WORKERS)
mutate: $(STAMP)
	$(BIN)/python tools/mutate.py --max-children $(MUTATE_JOBS) $(if $(strip $(MUTATE)),--only $(MUTATE))

clean:
	rm -rf $(VENV) build cdk.out .cdk-cli .lock-tools .mypy_cache .ruff_cache .pytest_cache
