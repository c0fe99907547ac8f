# Set-up and the everyday jobs. `make demo` and `make test` work on a fresh machine:
# they make .venv, install CPU torch first (so nothing pulls CUDA), then dgm itself.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
# two OpenMP threads on a loaded 2-core machine can spin-wait each other into the ground
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test test-fast lint format bench clean

$(BIN)/dgm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev,molecules]"
	@touch $@

setup: $(BIN)/dgm

demo: setup
	$(BIN)/dgm train arm --data digits --out runs/demo --overwrite

test: setup
	$(BIN)/python -m pytest -q

# the quick loop while working: everything but the tests marked slow (CLI training runs,
# feature-net training, processes); make test and CI run them all
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/bench_digits.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache src/*.egg-info
