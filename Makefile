# One place for every command: CI (.ci/run) and the README call these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := $(wildcard sqsx sqsx_lambda tests examples bench)

.PHONY: help venv lint format test test-fast demo bench bench-peers clean build-SqsxLayer

help:
	@echo "make test   - set up .venv, lint (ruff, mypy --strict, cfn-lint) and run every test"
	@echo "make demo   - run the demo on an embedded local SQS"
	@echo "make bench  - run the benchmarks and print the table"
	@echo "make bench-peers - sqsx beside Celery, dramatiq, sqsx 0.7.0 and a boto3 loop on a real local SQS"
	@echo "make lint   - ruff, mypy and cfn-lint only"
	@echo "make test-fast - the tests without the fault suite"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,lambda,local]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	@if [ -f template.yaml ]; then $(BIN)/cfn-lint template.yaml; fi

format: venv
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

test: lint
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not fault"

# Both runtimes on an embedded SQS (moto, 127.0.0.1): `sqsx worker --drain`, then sqsx_lambda.
demo: $(STAMP)
	$(BIN)/python examples/demo.py

# Polling, Lambda and cold-start figures on a simulated SQS; prints one table and refreshes
# BENCHMARKS.md, bench/results.json and bench/throughput.png (about 3 minutes).
bench: $(STAMP)
	$(BIN)/python -m bench

# sqsx beside Celery, dramatiq-sqs, sqsx 0.7.0 and a minimal boto3 loop on one real local SQS
# (LocalStack when .venv-localstack exists, else moto), and boto3's client settings; the
# peers' venvs go to .venv-peers/ on first use. Refreshes BENCHMARKS.md and bench/peers.json.
bench-peers: $(STAMP)
	$(BIN)/python -m bench.client_settings
	$(BIN)/python -m bench.peers

clean:
	rm -rf $(VENV) .venv-sqsx070 .venv-peers .mypy_cache .pytest_cache .ruff_cache build *.egg-info

# Called by `sam build` (template.yaml, SqsxLayer, BuildMethod: makefile): sqsx[lambda] and its
# dependencies as a layer, with wheels for the functions' runtime (python3.13, x86_64).
build-SqsxLayer:
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir "$(ARTIFACTS_DIR)/wheel" .
	$(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)/python" \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.13 \
		--only-binary=:all: "$$(ls "$(ARTIFACTS_DIR)"/wheel/sqsx-*.whl)[lambda]"
	rm -rf "$(ARTIFACTS_DIR)/wheel"
