# annotation-reconciler: `make demo` and `make test` bootstrap everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

# The CDK CLI: infra/cdk-cli/package.json pins it, its package-lock.json holds the integrity hashes; `npm ci`
# installs exactly that into .cdk-cli/, again whenever either file changes (a new version reinstalls).
CDK_CLI_DIR := infra/cdk-cli
CDK := .cdk-cli/node_modules/.bin/cdk
# The Node.js majors jsii supports (jsii warns on any other, and stops supporting it); NODE_VERSIONS="..." overrides.
NODE_VERSIONS ?= 22 24
CDK_OFFLINE := CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1 AWS_EC2_METADATA_DISABLED=true \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=1 JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1

.PHONY: help install demo test test-deep docs lint unit typecheck need-env node-check synth bootstrap diff deploy lock bench mutate clean

help:
	@echo "make demo   # the reconciler end to end on a throwaway PostgreSQL and a local moto S3"
	@echo "make test   # lint, types and the whole test suite (the model-based test at its CI size)"
	@echo "make test-deep  # the model-based test at $(MODEL_DEEP_EXAMPLES) examples; its figures into RELIABILITY.md"
	@echo "make docs   # RELIABILITY.md's test counts, faults injected, corpus and operators' load, with the commit"
	@echo "make synth ENV=myportal    # cdk synth offline into cdk.out/ (infra/env/ENV.json; ENV=none: -c only)"
	@echo "make bootstrap ENV=staging # cdk bootstrap the account and region named in infra/env/ENV.json (once)"
	@echo "make diff ENV=staging      # cdk diff against the deployed stack (AWS credentials)"
	@echo "make deploy ENV=staging    # cdk deploy with infra/env/ENV.json (AWS credentials)"
	@echo "make lock   # regenerate the locks: infra/lambda-requirements.txt, infra/cdk-requirements.txt, infra/cdk-cli/package-lock.json"
	@echo "make bench  # the benchmarks of BENCHMARKS.md, written into it with the commit (a clean lambdas/ and bench/)"
	@echo "make mutate [MUTATE='rules/lifecycle.py rules/paths.py']  # mutation scores, written into RELIABILITY.md with the commit"

# The CDK app's packages come from their lock (hashes checked) before the dev extras, which they then satisfy.
$(STAMP): pyproject.toml infra/cdk-requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r infra/cdk-requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m annotation_reconciler.local.demo

lint: $(STAMP)
	$(BIN)/ruff check lambdas infra tests bench tools
	$(BIN)/ruff format --check lambdas infra tests bench tools
	$(BIN)/mypy

# The model-based test runs RECONCILER_MODEL_EXAMPLES examples (tests/reliability/test_model.py: a CI size by
# default); `make test-deep` runs it alone at MODEL_DEEP_EXAMPLES. PYTEST_DIST=loadfile keeps each file on one worker
# (its module and session fixtures built once) at the cost of coarser balance; `load` (xdist's default) balances test
# by test, the longest first (tests/conftest.py).
MODEL_DEEP_EXAMPLES ?= 1000
PYTEST_DIST ?= load
test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist $(PYTEST_DIST) -p no:cacheprovider

# The model's figures go into RELIABILITY.md (its `model-run` block) with the commit; with uncommitted changes
# in lambdas/ or tests/ the test still runs and nothing is written.
test-deep: $(STAMP)
	$(BIN)/python tools/reliability_figures.py model --examples $(MODEL_DEEP_EXAMPLES) --markdown RELIABILITY.md \
		--run-when-dirty

# RELIABILITY.md's other generated figures, with the commit (refused while lambdas/ or tests/ hold uncommitted
# changes): the test counts (pytest --collect-only), the faults the reliability tests inject (they run, a few
# minutes), the bad-input corpus, the operators' load (tools/operator_load.py).
docs: $(STAMP)
	$(BIN)/python tools/count_tests.py --markdown RELIABILITY.md
	$(BIN)/python tools/reliability_figures.py corpus --markdown RELIABILITY.md
	$(BIN)/python tools/reliability_figures.py faults --markdown RELIABILITY.md
	$(BIN)/python tools/operator_load.py --markdown RELIABILITY.md

node-check:
	@major=$$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || { echo "Node.js is not installed: install one of $(NODE_VERSIONS) (the majors jsii supports)"; exit 2; }; \
	case " $(NODE_VERSIONS) " in *" $$major "*) ;; \
	*) echo "Node.js $$major is not one jsii supports ($(NODE_VERSIONS)): install one of those, or run with NODE_VERSIONS=$$major at your own risk"; exit 2;; esac

# The npm CLI that reads aws-cdk-lib's cloud assemblies, locked and kept inside the project.
$(CDK): $(CDK_CLI_DIR)/package.json $(CDK_CLI_DIR)/package-lock.json
	rm -rf .cdk-cli && mkdir -p .cdk-cli
	cp $(CDK_CLI_DIR)/package.json $(CDK_CLI_DIR)/package-lock.json .cdk-cli/
	cd .cdk-cli && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ENV=name reads infra/env/name.json (committed; copied from infra/env/examples/ and edited); CDK_ARGS adds more
# cdk options. ENV=none: no file, every setting from CDK_ARGS' -c options.
ENV ?=
ENV_ARGS := $(if $(ENV),-c env=$(ENV))

# first of each target's prerequisites, so a missing ENV is said before anything is installed
need-env:
	@test -n "$(ENV)" || { echo "make $(MAKECMDGOALS) needs ENV=<name> (infra/env/<name>.json, copied from infra/env/examples/ and edited)$(if $(filter synth,$(MAKECMDGOALS)), or ENV=none (every setting from CDK_ARGS' -c options))"; exit 2; }

synth: need-env node-check $(STAMP) $(CDK)
	$(CDK_OFFLINE) $(CDK) synth --no-notices --no-lookups --quiet $(if $(filter none,$(ENV)),,-c env=$(ENV)) $(CDK_ARGS)

# These talk to AWS (the credentials of the account that holds the bucket, in its region).
bootstrap diff deploy: need-env node-check $(STAMP) $(CDK)
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
	$(UV) pip compile --quiet --generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock" \
		infra/cdk-requirements.in -o infra/cdk-requirements.txt
	cd $(CDK_CLI_DIR) && npm install --package-lock-only --no-audit --no-fund --loglevel=error

# The benchmarks of BENCHMARKS.md; the tables are written into BENCHMARKS.md with the commit measured (refused while
# lambdas/ or bench/ hold uncommitted changes).
bench: $(STAMP)
	$(BIN)/python -m bench.run_all --markdown BENCHMARKS.md

# mutmut over the decision and deletion code ([tool.mutmut] only_mutate) against tests/unit and tests/integration;
# MUTATE="rules/lifecycle.py portal/deletion.py" (or FILE:FUNCTION_GLOB) for a subset. See RELIABILITY.md.
MUTATE ?=
MUTATE_JOBS ?= $(PYTEST_WORKERS)
# The scores go into RELIABILITY.md's table (a subset replaces its files' rows) and the survivors into
# MUTATION_SURVIVORS.md, with the commit; a run of single functions (FILE:GLOB) only prints.
mutate: $(STAMP)
	$(BIN)/python tools/mutate.py --max-children $(MUTATE_JOBS) $(if $(strip $(MUTATE)),--only $(MUTATE)) \
		$(if $(findstring :,$(MUTATE)),,--markdown RELIABILITY.md)

clean:
	rm -rf $(VENV) build cdk.out .cdk-cli .lock-tools .mypy_cache .ruff_cache .pytest_cache
