# The README's commands: `make reproduce-all` (the main job; `make smoke` first) and `make test`.
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

# The settings of every reproduce target (README, "Reproducing"):
#   DATA=keras      the official CIFAR archives, downloaded once before any config; or a folder holding
#                   cifar-10-python.tar.gz / cifar-100-python.tar.gz, for offline machines; or an image
#                   folder of CIFAR-10 (train/<class>/*, or a .tar.gz of one) for the CIFAR-10 configs
#   GPUS=auto       one config per GPU at a time: CUDA_VISIBLE_DEVICES if a scheduler set it, else every
#                   GPU (or MIG device) nvidia-smi lists; or 0,1,... or MIG-... UUIDs, or cpu
#   JOBS=1          configs at once on a machine without a GPU
#   SEEDS=          e.g. 0,1,2: every config once per seed (tables show mean and std)
#   PROFILE=full    full (as published), quick (a tenth of the schedule), fast (the 40-epoch fast recipe) or smoke
#   CONFIGS=        only these configs: names or patterns, e.g. 'seed[123]-*' (unset: every config of the target)
#   ALLOW_CPU=      1: start full or quick on a machine with no GPU (refused otherwise, with an estimate)
#   FORCE=          1: train the selected runs again from scratch (each old run moved into its replaced/)
#   RAY_ADDRESS=    host:port of a running Ray cluster to run the grid on (unset: Ray on this machine)
#   RESULTS=        the results folder (default results/ for full, results/<profile>/ otherwise);
#                   on a cluster, a path every node sees
DATA ?= keras
GPUS ?= auto
JOBS ?= 1
SEEDS ?=
PROFILE ?= full
CONFIGS ?=
FORCE ?=
RESULTS ?= $(if $(filter full,$(PROFILE)),results,results/$(PROFILE))
REPRODUCE = $(BIN)/python -m resattn.suite.reproduce --data $(DATA) --gpus $(GPUS) --jobs $(JOBS) $(if $(SEEDS),--seeds $(SEEDS)) \
	$(if $(CONFIGS),--configs '$(CONFIGS)') \
	--results $(RESULTS) \
	$(if $(ALLOW_CPU),--allow-cpu) $(if $(FORCE),--force) $(if $(RAY_ADDRESS),--ray-address $(RAY_ADDRESS))

.PHONY: reference-runs setup test lint bench learning-check table reproduce-all reproduce-seed reproduce-paper smoke results status tensorboard lab notebooks cifar10-subset clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	@# Kernels send TensorFlow's C++ log lines to the terminal (and log.txt), not into the notebooks.
	mkdir -p $(VENV)/etc/ipython
	echo "c.IPKernelApp.capture_fd_output = False" > $(VENV)/etc/ipython/ipython_kernel_config.py
	touch $@

# ruff's lint and format check first (seconds), then every test.
test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check lib tests bench
	$(BIN)/ruff format --check lib tests bench

# Training throughput of the four networks, ours against the seed-style baseline (BENCHMARKS.md).
# BENCH_ARGS: bench/bench.py's options, e.g. BENCH_ARGS="--precision float32,bfloat16 --networks seed56".
BENCH_ARGS ?=
bench: setup
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

table: setup
	$(BIN)/python -m resattn.suite.model_table

reproduce-all: setup
	$(REPRODUCE) --profile $(PROFILE) --subset all

reproduce-seed: setup
	$(REPRODUCE) --profile $(PROFILE) --subset seed

reproduce-paper: setup
	$(REPRODUCE) --profile $(PROFILE) --subset paper

# Every config under the smoke profile, two at a time on the CPU, into results/smoke/.
smoke: setup
	$(BIN)/python -m resattn.suite.reproduce --profile smoke --gpus cpu --jobs 2 --subset all --no-preflight

results: setup
	$(REPRODUCE) --profile $(PROFILE) --results-only

# Where a grid stands (done, running with its node and estimated end, failed, not started), while
# it runs or after.
status: setup
	$(BIN)/python -m resattn.suite.status --results $(RESULTS)

# Every run of a results folder side by side: loss, accuracy, learning rate per epoch.
tensorboard: setup
	$(BIN)/tensorboard --logdir $(RESULTS)

lab: setup
	$(BIN)/jupyter lab notebooks

# Re-executes the committed notebooks under the smoke profile in a scratch copy and writes them
# back with their outputs: what the nbval test compares against. Run it after changing one.
notebooks: setup
	$(BIN)/python tests/notebook_tree.py

# The seed's Attention-56 for two epochs on 5,000 of the real CIFAR-10 training images in
# ../shared/data (4,000 to train, 1,000 held out), on whatever device is here.
SHARED_CIFAR10 ?= ../shared/data/cifar10-jpeg-train.tar.gz
cifar10-subset: setup
	$(BIN)/python -m resattn.train dataset=image_folder data_dir=$(SHARED_CIFAR10) limit=5000 \
		family=seed depth=56 recipe=seed_adam max_epochs=2 --run-dir results/cifar10-subset-seed56 --force

clean:
	rm -rf $(VENV) .pytest_cache

# The reference runs (README, "Results"): the seed's CIFAR-10 Attention-56 configs 1, 2 and 3 under
# the fast profile on the real CIFAR-10 images of ../shared/data (40,000 to train, 10,000 held out),
# into reference/cpu/ (reference/gpu/ on a GPU machine), one after the other, resumable; then
# results.ipynb over them. REFERENCE_CONFIGS picks others, e.g. REFERENCE_CONFIGS='seed2-*'.
REFERENCE_CONFIGS ?= seed[123]-*
REFERENCE_RESULTS ?= reference/$(if $(HAS_GPU),gpu,cpu)
reference-runs: setup
	$(BIN)/python -m resattn.suite.reproduce --profile fast --subset seed --configs '$(REFERENCE_CONFIGS)' \
		--data $(SHARED_CIFAR10) --gpus $(GPUS) --jobs 1 --results $(REFERENCE_RESULTS)

# Our pipeline against a stock-Keras one on the real CIFAR-10 images of ../shared/data (40,000 /
# 10,000), float32 and auto precision, two seeds: a benchmark, about an hour on 2 cores.
# LEARNING_ARGS: bench/learning_check.py's options, e.g. LEARNING_ARGS="--epochs 3 --seeds 0,1,2".
LEARNING_ARGS ?=
learning-check: setup
	$(BIN)/python bench/learning_check.py --data $(SHARED_CIFAR10) $(LEARNING_ARGS)
