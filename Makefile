# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench venv system-deps airflow-venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of PyTorch first, so that nothing later resolves a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

# Apache Airflow 3 in build/airflow-venv, apart from .venv: the test that runs the exported DAG.
airflow-venv:
	@bash scripts/airflow-venv.sh

demo: $(STAMP)
	bash examples/churn/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two pytest processes (pytest-xdist), each test module whole in one of them (its fixtures
# made once): the suite's servers, databases and subprocesses wait as much as they compute.
TEST_WORKERS ?= 2

test: $(STAMP) system-deps airflow-venv lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_profile.py
	$(BIN)/python benchmarks/bench_register.py --rows 2000000 --rows 10000000
	$(BIN)/python benchmarks/bench_agreement.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_slices.py
	$(BIN)/python benchmarks/bench_evaluate.py
	$(BIN)/python benchmarks/bench_estimate.py
	$(BIN)/python benchmarks/bench_drift.py --json benchmarks/results/bench_drift.json
	$(BIN)/python benchmarks/bench_monitor.py --json benchmarks/results/bench_monitor.json
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_screen.py
	$(BIN)/python benchmarks/bench_restart.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/scale_10m.py
	$(BIN)/python benchmarks/bench_ui.py --json benchmarks/results/bench_ui.json

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
