# Everything here needs only Python >= 3.11, pip and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two installs into one venv, each with its own marker: running the product (serve, worker,
# demo) needs only RUNTIME_EXTRAS, so a first `make serve` does not wait for the test and
# framework tools; developing (test, lint, bench) needs EXTRAS, a superset, and a later
# `make test` installs the rest. Serving PostgreSQL needs RUNTIME_EXTRAS=http,postgres.
RUNTIME_EXTRAS ?= http
EXTRAS ?= postgres,http,test,frameworks,web,duckdb,files,dlt,llm,flashboard

.PHONY: venv runtime demo serve worker test lint typecheck pytest browser bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[$(RUNTIME_EXTRAS)]'
	touch $@

# Also marks the runtime install done: EXTRAS include RUNTIME_EXTRAS, so a `make serve`
# after `make test` has nothing to install.
$(BIN)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@ $(BIN)/.installed-runtime

runtime: $(BIN)/.installed-runtime
venv: $(BIN)/.installed-dev

# The product on its embedded default: the dashboard, the API, its docs page and 4 embedded
# workers on a SQLite file (runkit.db) in the working directory. HOST, PORT and WORKERS
# override.
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 4
serve: runtime
	RUNKIT_ENABLE_TEST_KINDS=$${RUNKIT_ENABLE_TEST_KINDS-1} $(BIN)/runkit serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# An in-process demo: creates runs, executes them with an embedded worker, prints logs.
demo: runtime
	$(BIN)/runkit demo

worker: runtime
	$(BIN)/runkit worker

lint: venv
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: venv
	$(BIN)/mypy

pytest: venv browser
	$(BIN)/pytest $(PYTEST_ARGS)

# create_flashboard's dashboard is checked in a real headless Chromium (Debian's chromium
# and chromium-driver); those tests fail, never skip, without it. Installed when missing
# (root, or sudo without a password).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

test: lint typecheck pytest

# The full run measures runkit beside pgqueuer, procrastinate and DBOS (installed here).
bench: venv
	$(BIN)/pip install -q -e '.[$(EXTRAS),bench]'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# CI: small sizes, correctness and gross ratio regressions only; peers are skipped.
bench-smoke: venv
	$(BIN)/pip install -q -e '.[$(EXTRAS),benchbase]'
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
