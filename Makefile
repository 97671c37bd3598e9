# Bleeper: `make serve` and `make test` are the two commands a new machine needs.
# Each target creates .venv from uv.lock first (installing uv with pip when it is missing).

HOST ?= $(or $(BLEEPER_HOST),127.0.0.1)
PORT ?= $(or $(BLEEPER_PORT),8090)
PYTEST_ARGS ?=

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .tools/bin/uv
endif
VENV := .venv
STAMP := $(VENV)/.synced
RUN := $(UV) run --frozen --no-sync

.PHONY: serve test lint typecheck unit bench vendor clean help

help:
	@echo "make serve   start the server on $(HOST):$(PORT) (override with HOST= PORT=)"
	@echo "make test    lint, type-check and run the whole test suite"
	@echo "make lint    ruff only;  make bench  run the benchmarks"
	@echo "make vendor refresh tests/vendor/axe.min.js from package-lock.json (needs npm)"

.tools/bin/uv:
	@echo "uv not found: installing it into .tools/ with pip"
	python3 -m venv .tools || { echo "python3 -m venv failed: install python3-venv (Debian) and retry"; exit 1; }
	.tools/bin/python -m pip install --quiet uv

$(STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --locked --python python3
	@touch $(STAMP)

serve: $(STAMP)
	$(RUN) bleeper serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(RUN) ruff check src tests examples benchmarks scripts
	$(RUN) ruff format --check src tests examples benchmarks scripts

typecheck: $(STAMP)
	$(RUN) mypy

unit: $(STAMP)
	$(RUN) pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test: lint typecheck unit

bench: $(STAMP)
	$(RUN) python benchmarks/run_all.py

# The web tests' accessibility checker, committed so the tests need no npm: refresh it after changing the
# pinned version in package.json (npm install, then make vendor).
vendor:
	npm ci --no-audit --no-fund
	mkdir -p tests/vendor
	cp node_modules/axe-core/axe.min.js tests/vendor/axe.min.js

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
