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

.PHONY: setup test table cifar10-subset clean

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

# The seed's Attention-56 for two epochs on 5,000 of the real CIFAR-10 training images in
# ../shared/data (4,000 to train, 1,000 held out), on whatever device is here.
SHARED_CIFAR10 ?= ../shared/data/cifar10-jpeg-train.tar.gz
cifar10-subset: setup
	$(BIN)/python -m resattn.run dataset=image_folder data_dir=$(SHARED_CIFAR10) limit=5000 \
		family=seed depth=56 recipe=seed_adam max_epochs=2 --run-dir results/cifar10-subset-seed56 --force

clean:
	rm -rf $(VENV) .pytest_cache
