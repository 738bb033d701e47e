# Guideline Ingest — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test check lint types layers pytest unit services browser wrk bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml docs-assets.txt scripts/fetch-docs-assets.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	bash scripts/fetch-docs-assets.sh
	touch $(STAMP)

install: $(STAMP) ## install from the hashed lock into .venv (console script: .venv/bin/guideline-ingest)

run: install ## run the service in embedded mode (SQLite, offline LLM, no other service)
	$(BIN)/guideline-ingest serve

services: ## start the local PostgreSQL and Redis that the tests use, if they are down
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; echo "PostgreSQL or Redis did not start" >&2; exit 1

lint: install ## ruff (lint + format check)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: install ## mypy --strict
	$(BIN)/mypy

layers: install ## the layer contract (import-linter)
	$(BIN)/lint-imports

unit: install ## the fast unit tests (in memory only; `make test` also runs them on PostgreSQL)
	$(BIN)/pytest tests/unit -q -m "not postgres"

browser: ## Debian's chromium for the console's browser test (Playwright drives it; no browser download)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; }

pytest: install services browser ## the whole pytest suite (unit + integration)
	$(BIN)/pytest -q

check: lint types layers pytest ## every check: ruff, mypy, layers, pytest

test: check ## install and run every check (what CI runs)

wrk: ## Debian's wrk, the load generator of `make bench`
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	@command -v wrk >/dev/null || { echo "wrk is missing and could not be installed" >&2; exit 1; }

bench: install services wrk ## production-mode benchmark: every figure of issue 13 (BENCH_ARGS="--quick", "--only api")
	$(BIN)/python bench/run_bench.py $(BENCH_ARGS)

clean: ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
