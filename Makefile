# Needle: `make demo` runs the whole pipeline on an embedded AWS; `make test` is the one gate.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint types template unit integration e2e bench bench-replay clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.lock layers/needle/pyproject.toml local/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e layers/needle -e local
	touch $(STAMP)

venv: $(STAMP) ## create the virtualenv (pinned: requirements/dev.lock)

demo: $(STAMP) ## run the pipeline on the embedded AWS against the EDR simulators (SERVE=1 keeps it up)
	$(BIN)/python -m needle_local.demo $(if $(SERVE),--serve)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP) ## mypy (strict) on the library, handlers, local runtime and tests
	$(BIN)/mypy

template: $(STAMP) ## cfn-lint and sam validate --lint on template.yaml
	$(BIN)/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint --template template.yaml

unit: $(STAMP) ## unit tests (no network)
	$(BIN)/pytest tests/unit

integration: $(STAMP) ## integration tests (embedded AWS, simulators over HTTP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP) ## end-to-end tests (simulator -> SNS inbox)
	$(BIN)/pytest tests/e2e

test: lint types template ## the gate: ruff, mypy, cfn-lint, sam validate, then every test tier
	$(BIN)/pytest tests

bench: $(STAMP) ## normalizer cost vs json.loads, and 50,000-alert backfills through each simulator
	$(BIN)/python -m bench.normalizers
	$(BIN)/python -m bench.backfill

bench-replay: $(STAMP) ## the whole pipeline at volume: ALERTS (50000) over DAYS (30) through needle replay
	$(BIN)/python -m bench.replay --alerts $(or $(ALERTS),50000) --days $(or $(DAYS),30)

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) .aws-sam .mypy_cache .ruff_cache
