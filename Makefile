# opsflow — the two commands of the README, and their parts.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := openssh-server openssh-client frr iproute2 nftables prometheus-alertmanager prometheus chromium
LAB_STATE ?= $(CURDIR)/.lab
export OPSFLOW_HOME ?= $(CURDIR)/.opsflow

.PHONY: setup system venv demo test test-unit lint bench lab-down clean

setup: system venv

# System packages the lab needs (Debian/Ubuntu). Installed only when missing.
system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "opsflow: need root to install:$$missing (sudo make setup)"; exit 2; fi; \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BIN)/opsflow: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(BIN)/pip install -q -e '.[dev,celery]'
	@touch $(BIN)/opsflow

venv: $(BIN)/opsflow

# Bring up the lab and run real runbooks against it.
demo: setup
	$(BIN)/opsflow lab up --state-dir $(LAB_STATE)
	$(BIN)/opsflow validate runbooks/ --inventory $(LAB_STATE)/inventory.yml
	$(BIN)/opsflow run runbooks/server-health.yaml --inventory $(LAB_STATE)/inventory.yml
	$(BIN)/opsflow run runbooks/router-static-route.yaml --inventory $(LAB_STATE)/inventory.yml -e prefix=192.0.2.0/24
	$(BIN)/opsflow history

# The whole test suite (unit + lab integration + PostgreSQL store), then lint and types.
test: setup
	$(BIN)/ruff check opsflow tests $(wildcard bench)
	$(BIN)/mypy
	OPSFLOW_TEST_PG=$${OPSFLOW_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test} $(BIN)/pytest -q -rs

# The fast tier alone: pure logic and the engine on local steps (no lab, no root), in seconds.
test-unit: venv
	$(BIN)/pytest -q tests/unit

lint: venv
	$(BIN)/ruff check opsflow tests $(wildcard bench)
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

lab-down: venv
	$(BIN)/opsflow lab down --state-dir $(LAB_STATE)

clean: lab-down
	rm -rf $(VENV) .opsflow .lab
