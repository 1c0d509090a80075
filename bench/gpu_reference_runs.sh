#!/usr/bin/env bash
# The seed's configs under the fast recipe on a lent GPU, with the JAX backend, in one prepared
# call of the device tool (DEVELOPERS.md, "Tools"): that machine has JAX but no TensorFlow, Keras
# or papermill, and reaches nothing outside it, so what it lacks travels in .whl/ and .data/.
#
#   bench/gpu_reference_runs.sh prepare            here, once: the wheels and the data archive
#   bench/gpu_reference_runs.sh run [CONFIG[:KEY=VALUE,...] ...]
#                                                  there, with carry [".whl", ".data"]
#
# `run` trains the configs (default: the seed's configs 1, 2 and 3) side by side with
# `python -m resattn.train` on the real CIFAR-10 images (40,000 to train, 10,000 held out), each
# capped at SECONDS_PER_RUN of wall time (default 480, so that the call returns inside the
# device's 10 minutes: on an H200 three side by side took 213-273 s to compile and 5.8 s an epoch
# after; never set --xla_gpu_autotune_level=0, 14 times slower); a run cut short keeps its epochs
# and is marked so by its own state.json. BENCH_SECONDS, when set, runs bench/bench.py first and
# caps it (on an H200 its compile alone outran 150 s).
# Into $OUT (the device tool's folder; a folder of its own elsewhere): runs.tar.gz (each run's
# files, no checkpoints or model), bench.txt, gpu.txt, log.txt. EXTRA adds run keys to every
# run, e.g. EXTRA="max_epochs=1 max_steps_per_epoch=2" for a look at the plumbing on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=cifar10-jpeg-train.tar.gz
# Keras and what it needs beyond the device image's packages (KINDS.md), at this checkout's versions.
WHEELS="keras==3.15.1 namex==0.1.0 optree==0.20.0"

prepare() {
    mkdir -p .whl .data
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS
    cp ../shared/data/$ARCHIVE .data/
    du -sh .whl .data
}

run() {
    local out=${OUT:-results/gpu}
    mkdir -p "$out"
    if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import keras" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH=lib${PYTHONPATH:+:$PYTHONPATH} KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
    (nvidia-smi -L || echo "no GPU") > "$out/gpu.txt" 2>&1
    local configs=("$@")
    if [ ${#configs[@]} -eq 0 ]; then
        configs=(seed1-cifar10-a56-seedspatial-arl-adam seed2-cifar10-a56-mixed-arl-adam seed3-cifar10-a56-mixed-nal-adam)
    fi
    local runs=/tmp/gpu-runs
    mkdir -p "$runs"
    # The bench first, alone on the device, so that its figures are not shared with the runs'.
    if [ -n "${BENCH_SECONDS:-}" ]; then
        timeout "$BENCH_SECONDS" python3 bench/bench.py --networks seed56 --batch-sizes 256 --images 4096 \
            --no-baseline > "$out/bench.txt" 2>&1 || echo "bench stopped ($?)" >> "$out/bench.txt"
        tail -n 20 "$out/bench.txt"
    fi
    # The runs side by side, each with a share of the device's memory (JAX takes 75% by default):
    # one network at these sizes leaves a GPU mostly idle between its small kernels.
    local share
    share=$(python3 -c "print(round(0.9 / ${#configs[@]}, 2))")
    local names=()
    for spec in "${configs[@]}"; do
        # CONFIG or CONFIG:KEY=VALUE,KEY=VALUE (run keys after recipe=fast, e.g. recipe=seed_adam);
        # the run's folder is named after both.
        local config=${spec%%:*} keys="" name=${spec%%:*}
        if [[ $spec == *:* ]]; then
            keys=${spec#*:}
            name=$config-${keys//[=,]/-}
        fi
        names+=("$name")
        # shellcheck disable=SC2086
        XLA_PYTHON_CLIENT_MEM_FRACTION=$share timeout "${SECONDS_PER_RUN:-480}" python3 -m resattn.train \
            "params/$config.yaml" recipe=fast dataset=image_folder data_dir=.data/$ARCHIVE ${keys//,/ } ${EXTRA:-} \
            --run-dir "$runs/$name" > "$runs/$name.log" 2>&1 &
    done
    wait || true
    for name in "${names[@]}"; do
        echo "=== $name" >> "$out/log.txt"
        grep -v -e '^I0000' -e '^W0000' -e '^W[0-9]*.*cuda_timer' "$runs/$name.log" >> "$out/log.txt"
    done
    cat "$out/log.txt"
    tar -C "$runs" --exclude='checkpoint-*' --exclude=model.keras --exclude=.lock -czf "$out/runs.tar.gz" .
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 prepare | run [CONFIG ...]" >&2; exit 2 ;;
esac
