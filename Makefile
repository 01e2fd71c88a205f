# dbrelease: the two commands that matter are `make demo` and `make test`. Each sets itself up on a fresh
# Debian/Ubuntu machine: system packages from bindep.txt (as root or with sudo), the Python venv, npm packages.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
BACKEND := examples/app/backend
# Integration test files run in parallel (pytest-xdist, one file per worker: each file starts its own servers and
# hosts on free ports and subnets). One worker per core, at most 4 (one more, 3 on 2 cores, took 13 % less time here;
# the suite's CI runs use one per core); `make integration PYTEST_WORKERS=0` runs serially.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n > 4 ? 4 : n )))

.PHONY: help deps deps-test venv node demo demo-stop demo-clean test lint unit integration faults molecule bench clean

help:
	@echo "make demo        run a whole release on an embedded MariaDB (starts it under .demo/)"
	@echo "make demo-stop   stop the embedded MariaDB and the example backend"
	@echo "make test        lint, unit, integration and molecule tests (real throwaway MariaDB servers)"
	@echo "make bench       benchmarks (schema dry-run, DDL on a live server, backup, verification, log reading, fleet); prints the figures"

deps:
	@scripts/install_deps.sh demo

deps-test:
	@scripts/install_deps.sh test

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@touch $@

venv: $(BIN)/.installed

$(BACKEND)/node_modules/.installed: $(BACKEND)/package.json $(wildcard $(BACKEND)/package-lock.json)
	cd $(BACKEND) && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; \
	  else npm install --no-audit --no-fund --loglevel=error; fi
	@touch $@

node: $(BACKEND)/node_modules/.installed

demo: deps venv node
	$(BIN)/python scripts/demo.py

demo-stop: venv
	$(BIN)/python scripts/demo.py stop-app
	$(BIN)/python scripts/sandbox_db.py stop .demo/mariadb

demo-clean: demo-stop
	rm -rf .demo artifacts

lint: venv
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --offline --profile production
	$(BIN)/ruff check .
	@for inv in local staging production; do \
	  $(BIN)/ansible-playbook --syntax-check -i inventories/$$inv release.yml >/dev/null || exit 1; \
	done; echo "syntax-check: release.yml ok with inventories local, staging, production"

unit: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

integration: deps-test venv node
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -n $(PYTEST_WORKERS) --dist loadfile tests/integration

# The fault matrix (tests/faults): faults injected into real servers and hosts; prints the matrix as a table.
# Two workers (pytest-xdist): each fault is injected when its own run reaches the moment it waits for, so the cases
# need no quiet machine; each worker sends its rows to the one table. `make test` runs it beside molecule.
faults: deps-test venv node
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 tests/faults

molecule: deps-test venv node
	cd $(CURDIR) && $(BIN)/molecule test -s default
	cd $(CURDIR) && $(BIN)/molecule test -s ssh

# `make test` runs lint beside unit, then integration, then the fault matrix beside molecule: the fault tests and the
# molecule scenarios wait on servers, hosts and links about half of their time, so side by side they take little more
# than the longer of the two. Each pair's output is printed whole when that target ends (--output-sync).
test: deps-test venv node
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory -j2 --output-sync=target faults molecule

bench: deps-test venv node
	$(BIN)/python scripts/bench.py

clean:
	rm -rf .pytest_cache .ruff_cache artifacts
	find . -name __pycache__ -prune -exec rm -rf {} +
