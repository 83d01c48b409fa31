# `make up` and `make test` install whatever is missing, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
SYSTEM_UP := ffmpeg redis-server
SYSTEM_TEST := $(SYSTEM_UP) postgresql chromium

.PHONY: up test bench lint system-up system-test clean

up: system-up $(RUNTIME_STAMP)
	$(VENV)/bin/mediajobs up

test: system-test $(DEV_STAMP)
	@# Bytecode once, up front: the suite starts a few hundred Python processes, and where
	@# PYTHONDONTWRITEBYTECODE is set each of them would compile the sources again.
	@$(PY) -m compileall -q -j0 src tests >/dev/null
	@set +e; $(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing the run"; exit 1; fi; exit $$rc

bench: system-up $(DEV_STAMP)
	$(PY) -m pip install -q -c requirements.lock -e '.[dev,bench]'
	$(PY) -m bench

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

system-up:
	@scripts/install-system.sh $(SYSTEM_UP)

system-test:
	@scripts/install-system.sh $(SYSTEM_TEST)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUNTIME_STAMP): $(VENV)/bin/python pyproject.toml requirements.lock
	$(PY) -m pip install -q -c requirements.lock -e .
	@touch $@

$(DEV_STAMP): $(VENV)/bin/python pyproject.toml requirements.lock
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	@touch $(RUNTIME_STAMP) $@

clean:
	rm -rf $(VENV) test-output .pytest_cache
