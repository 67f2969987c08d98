# kl_rl — set-up and everyday commands. `make train ENV=halfcheetah` and `make test` work on a
# fresh machine: both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENV ?= halfcheetah
STEPS ?= 50000
SEED ?= 0
ARGS ?=

.PHONY: install train demos test bench experiments lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

train: install
	$(VENV)/bin/kl-rl train --env $(ENV) --total-steps $(STEPS) --seed $(SEED) $(ARGS)

demos: install
	$(VENV)/bin/kl-rl demos --env $(ENV) $(ARGS)

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25 tests

bench: install
	$(PY) benchmarks/throughput.py $(ARGS)
	$(PY) benchmarks/sweep.py
	$(PY) benchmarks/prior_costs.py

# The paper's questions (experiments/*.py) into results/; QUICK=1 runs the CI-sized versions.
EXPERIMENT_FLAGS := $(if $(QUICK),--quick,)
experiments: install
	$(PY) experiments/pathology.py $(EXPERIMENT_FLAGS)
	$(PY) experiments/variance.py $(EXPERIMENT_FLAGS)
	$(PY) experiments/priors.py $(EXPERIMENT_FLAGS)
	$(PY) experiments/single_demo.py $(EXPERIMENT_FLAGS)
	$(PY) experiments/door.py $(EXPERIMENT_FLAGS)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
