# Everything here needs only Python >= 3.11, pip and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= postgres,http,test,frameworks

.PHONY: venv demo serve worker test lint typecheck pytest bench bench-smoke clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

venv: $(BIN)/.installed

# The product on its embedded default: the API, its docs page and 4 embedded workers on a
# SQLite file (runkit.db) in the working directory. HOST, PORT and WORKERS override.
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 4
serve: venv
	RUNKIT_ENABLE_TEST_KINDS=$${RUNKIT_ENABLE_TEST_KINDS-1} $(BIN)/runkit serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# An in-process demo: creates runs, executes them with an embedded worker, prints logs.
demo: venv
	$(BIN)/runkit demo

worker: venv
	$(BIN)/runkit worker

lint: venv
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest $(PYTEST_ARGS)

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
