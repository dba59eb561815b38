# Set-up and the two everyday commands: `make train` (the main job) and `make test` (the whole suite).
# Everything installs into ./.venv on first use, so both work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LEGACY_TEST_DIRS := tests/layers tests/models $(sort $(shell find tests -type d -name legacy))

.PHONY: install lint test test-keras3 test-legacy train benchmark-step

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,tfrs,serving,beam,notebooks,tensorboard]"
	touch $@

# Lint first (seconds), then Keras 3 (the default runtime) runs every test; legacy tf-keras (TFRS users) runs the layer
# and model tests and the `legacy/` folders. The runtime is fixed when TensorFlow is imported, hence two pytest
# processes.
test: lint test-keras3 test-legacy

# ruff on everything, mypy (strict) on the whole package and train.py (both configured in pyproject.toml).
lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

test-keras3: install
	$(PY) -m pytest tests

test-legacy: install
	TF_USE_LEGACY_KERAS=1 $(PY) -m pytest $(LEGACY_TEST_DIRS)

train: install
	$(PY) train.py

benchmark-step: install
	$(PY) benchmarks/speed/step_time.py
