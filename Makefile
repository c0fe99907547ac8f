# Set-up and the everyday jobs. `make demo` and `make test` work on a fresh machine:
# they make .venv, install CPU torch first (so nothing pulls CUDA), then dgm itself.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
# two OpenMP threads on a loaded 2-core machine can spin-wait each other into the ground
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo demo-arm test test-fast report-screenshot lint format bench clean

# dgm and what it needs (make demo); then the tests' tools and RDKit (make setup, make test)
$(BIN)/dgm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.dev: $(BIN)/dgm
	$(BIN)/pip install -q -e ".[dev,molecules]"
	@touch $@

setup: $(VENV)/.dev

# the main job: one model per family on the digits, 30 s of training each, side by side in
# runs/demo/report.html (run it again: it resumes, and reuses what is done)
demo: $(BIN)/dgm
	$(BIN)/dgm compare --data digits --out runs/demo

# the first demo: the default ARM on digits, its test NLL and runs/demo-arm/samples.png
demo-arm: $(BIN)/dgm
	$(BIN)/dgm train arm --data digits --out runs/demo-arm --overwrite

test: setup
	$(BIN)/python -m pytest -q

# the quick loop while working: everything but the tests marked slow (CLI training runs,
# feature-net training, processes); make test and CI run them all
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# the report page in headless chromium (Debian: apt install chromium; skipped without it):
# loads, sorts, and a screenshot that is not blank. REPORT=runs/demo/report.html checks a real
# report, SHOT=docs/report.png keeps the screenshot
report-screenshot: setup
	DGM_REPORT=$(REPORT) DGM_SCREENSHOT=$(SHOT) $(BIN)/python -m pytest -q -m browser tests/test_report_browser.py

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/bench_digits.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache src/*.egg-info
