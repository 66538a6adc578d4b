# One place for every command: CI (.ci/run) and the README call these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := $(wildcard sqsx sqsx_lambda tests examples bench)
# LocalStack, the second SQS server of the tests: its own venv on Python 3.13 (pyenv's),
# pinned by tests/localstack/constraints.txt. The venv lives outside the clone, named after
# the constraints' hash, so every clone on this machine (and CI's) reuses it until the pins
# change; .venv-localstack links to it, where the tests look.
LOCALSTACK_CONSTRAINTS := tests/localstack/constraints.txt
LOCALSTACK_HASH := $(shell sha256sum $(LOCALSTACK_CONSTRAINTS) | cut -c1-12)
LOCALSTACK_VENV ?= $(HOME)/.cache/sqsx/venv-localstack-$(LOCALSTACK_HASH)
LOCALSTACK_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) \
	$(shell command -v python3.13 2>/dev/null))
LOCALSTACK_STAMP := $(LOCALSTACK_VENV)/.installed-stamp

.PHONY: help venv localstack lint lint-deploy format test test-fast test-powertools-oldest dist \
	demo bench bench-peers clean build-SqsxLayer

help:
	@echo "make test   - set up .venv, lint (ruff, mypy --strict, cfn-lint, deploy/) and run every test"
	@echo "make demo   - run the demo on an embedded local SQS"
	@echo "make bench  - run the benchmarks and print the table"
	@echo "make bench-peers - sqsx beside Celery, dramatiq, sqsx 0.7.0 and a boto3 loop on a real local SQS"
	@echo "make lint   - ruff, mypy, cfn-lint, hadolint and kubernetes-validate only"
	@echo "make test-fast - the tests without the fault suite"
	@echo "make dist   - build the sdist and the wheel into dist/ and check them"
	@echo "make localstack - install LocalStack (the tests' second SQS server) for .venv-localstack"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,lambda,local]'
	touch $(STAMP)

venv: $(STAMP)

# No prerequisite: the constraints' content is in the venv's name, and a fresh clone's
# file times would otherwise rebuild it on every run.
$(LOCALSTACK_STAMP):
	@test -n "$(LOCALSTACK_PYTHON)" || { echo "LocalStack needs python3.13 (pyenv install 3.13)"; exit 1; }
	rm -rf $(LOCALSTACK_VENV)
	$(LOCALSTACK_PYTHON) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCALSTACK_VENV)/bin/python -m pip install --quiet -c $(LOCALSTACK_CONSTRAINTS) \
		'localstack-core[runtime]' service_identity
	touch $(LOCALSTACK_STAMP)

localstack: $(LOCALSTACK_STAMP)
	@if [ -e .venv-localstack ] && [ ! -L .venv-localstack ]; then rm -rf .venv-localstack; fi
	ln -sfn $(LOCALSTACK_VENV) .venv-localstack

lint: venv
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	@if [ -f template.yaml ]; then $(BIN)/cfn-lint template.yaml; fi
	@if [ -d deploy ]; then $(MAKE) --no-print-directory lint-deploy; fi

# The fleet's files: the worker image, the Kubernetes objects, the ECS template
# (tests/test_deploy.py checks the KEDA object and that the three agree with each other).
lint-deploy: venv
	$(BIN)/hadolint deploy/Dockerfile
	$(BIN)/kubernetes-validate --strict --quiet deploy/kubernetes/deployment.yaml
	$(BIN)/cfn-lint deploy/ecs/worker.yaml

format: venv
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

# Both servers' halves of the suite at once (scripts/test-both-servers says how it splits).
test: lint dist localstack
	scripts/test-both-servers $(BIN)
	$(MAKE) test-powertools-oldest

# The oldest aws-lambda-powertools the `lambda` extra allows, shadowing the venv's (newest)
# for the tests that touch Powertools: both ends of the range are tested.
POWERTOOLS_OLDEST := 3.2.0
POWERTOOLS_DIR := .powertools-$(POWERTOOLS_OLDEST)

$(POWERTOOLS_DIR)/.stamp:
	$(BIN)/python -m pip install --quiet --target $(POWERTOOLS_DIR) 'aws-lambda-powertools==$(POWERTOOLS_OLDEST)'
	touch $@

test-powertools-oldest: venv $(POWERTOOLS_DIR)/.stamp
	PYTHONPATH=$(POWERTOOLS_DIR) $(BIN)/python -c 'import aws_lambda_powertools.shared.version as v; assert v.VERSION == "$(POWERTOOLS_OLDEST)", v.VERSION'
	PYTHONPATH=$(POWERTOOLS_DIR) $(BIN)/pytest -p no:cacheprovider --sqs-servers=moto \
		tests/test_lambda_powertools.py \
		tests/test_lambda_handler.py -k "powertools or structured"

test-fast: venv localstack
	$(BIN)/pytest -m "not fault"

# The sdist and the wheel, built as PyPI would get them: no warning from the build backend
# (deprecations included), metadata that twine accepts, and nothing but sqsx and sqsx_lambda
# in the wheel (0.7.0 shipped a top-level `tests` package).
dist: venv
	rm -rf dist
	$(BIN)/python -m build --outdir dist . > $(VENV)/build.log 2>&1 || { cat $(VENV)/build.log; exit 1; }
	@if grep -E "Deprecat|SetuptoolsWarning|BuildBackendWarning" $(VENV)/build.log; then \
		echo "make dist: the build printed the warnings above"; exit 1; fi
	$(BIN)/twine check --strict dist/*
	$(BIN)/python -c "import glob, sys, zipfile; names = zipfile.ZipFile(glob.glob('dist/*.whl')[0]).namelist(); \
		extra = sorted({n.split('/')[0] for n in names} - {'sqsx', 'sqsx_lambda'} - {n.split('/')[0] for n in names if n.endswith('.dist-info/METADATA')}); \
		sys.exit(f'unexpected top-level entries in the wheel: {extra}' if extra else 0)"

# Both runtimes on an embedded SQS (moto, 127.0.0.1): `sqsx worker --drain`, then sqsx_lambda.
demo: $(STAMP)
	$(BIN)/python examples/demo.py

# Polling, Lambda and cold-start figures on a simulated SQS; prints one table and refreshes
# BENCHMARKS.md, bench/results.json and bench/throughput.png (about 8 minutes).
bench: $(STAMP)
	$(BIN)/python -m bench

# sqsx beside Celery, dramatiq-sqs, sqsx 0.7.0 and a minimal boto3 loop on one real local SQS
# (LocalStack when .venv-localstack exists, else moto), and boto3's client settings; the
# peers' venvs go to .venv-peers/ on first use. Refreshes BENCHMARKS.md and bench/peers.json.
bench-peers: $(STAMP)
	$(BIN)/python -m bench.client_settings
	$(BIN)/python -m bench.peers

clean:
	rm -rf $(VENV) .venv-localstack .venv-sqsx070 .venv-peers .powertools-* .mypy_cache \
		.pytest_cache .ruff_cache build dist *.egg-info

# Called by `sam build` (template.yaml, SqsxLayer, BuildMethod: makefile): sqsx[lambda] and its
# dependencies as a layer, with wheels for the functions' runtime (python3.13, x86_64).
build-SqsxLayer:
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir "$(ARTIFACTS_DIR)/wheel" .
	$(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)/python" \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.13 \
		--only-binary=:all: "$$(ls "$(ARTIFACTS_DIR)"/wheel/sqsx-*.whl)[lambda]"
	rm -rf "$(ARTIFACTS_DIR)/wheel"
