# The README's commands: `make table` (the main job for now) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A GPU-enabled TensorFlow and JAX where nvidia-smi finds a GPU; CPU builds elsewhere.
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
comma := ,
EXTRAS := dev$(if $(HAS_GPU),$(comma)gpu)
export KERAS_BACKEND ?= tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup test table clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

test: setup
	$(BIN)/python -m pytest

table: setup
	$(BIN)/python -m resattn.model_table

clean:
	rm -rf $(VENV) .pytest_cache
