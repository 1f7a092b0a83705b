VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/default

.PHONY: setup demo results-doc test lint typecheck unit bench clean

$(VENV)/.installed: pyproject.toml requirements-nodeps.txt scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

## The default job: offline, on the packaged models.
demo: setup
	$(BIN)/safesteer demo --out $(OUT)

## docs/results.md from a fresh default job (generated from its metrics.json, never typed).
results-doc: demo
	$(BIN)/python scripts/results_doc.py $(OUT)/metrics.json docs/results.md

## Lint, type-check and run the whole test suite.
test: setup lint typecheck unit

## ruff lint rules and ruff's formatter (fix with: ruff format src tests benchmarks examples)
lint: setup
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: setup
	$(BIN)/mypy

unit: setup
	bash scripts/test_prereqs.sh
	$(BIN)/pytest -q

## Every benchmark, then a summary table (ours / baseline / ratio / aim); BENCH_ARGS=--quick
bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
