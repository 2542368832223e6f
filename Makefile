# corral: the two commands a user needs are `make demo` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= /tmp/corral-demo

.PHONY: setup test lint typecheck layers unit demo demo-down bench clean

setup:
	./scripts/setup.sh

lint: setup
	$(BIN)/ruff check corral tests bench
	$(BIN)/ruff format --check corral tests bench

typecheck: setup
	$(BIN)/mypy

layers: setup
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest -q -n 2 -m "not e2e" tests

e2e: setup
	$(BIN)/pytest -q -m e2e tests

test: setup lint typecheck layers unit e2e

demo: setup
	./scripts/demo.sh $(DEMO_DIR)

demo-down: setup
	$(BIN)/corral-testkit down --dir $(DEMO_DIR)

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
