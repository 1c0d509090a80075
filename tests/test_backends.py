"""Every family trains one step on each backend, each backend in its own process (Keras fixes
the backend at import), op by op: the smallest depth of each, and the seed's 92, whose stages
chain several modules (on JAX, those the compiled steps do not train). Then the compiled step that a GPU runs by default
(bfloat16 and XLA: recipes' "auto" on compute capability >= 8), through the preflight's step
(preprocessing, network, the recipe's optimizer), for the smallest set of networks that holds
every layer combination params/ uses: each mask activation, mechanism, mask structure, wiring,
upsampling, preprocessing and optimizer of its 19 distinct networks; the training engine's own
run compiles one of them (test_training_engine_runs_on_every_backend). Depth only repeats the
same modules (Attention-92 to -452 are Attention-56's layers more times), and ResNet-164's units
are the paper networks' units, so compiling those too would add minutes and no layer."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from resattn import FAMILIES

SCRIPT = Path(__file__).with_name("one_training_step.py")
BACKENDS = ("tensorflow", "jax")
GPU_DEFAULTS = {"precision": "bfloat16", "jit_compile": True, "batch_size": 4, "image_size": 16, "num_classes": 10}
# paper a56-spatial, *-nal, and with them the layers of every paper network: bilinear upsampling (the
# crash of issue 11), pad-and-crop, the paper's SGD (its mixed mask and ARL are seed2's layers).
# The training engine's run compiles it (test_training_engine_runs_on_every_backend).
ENGINE_SPEC = {"family": "paper", "recipe": "paper", "mask_activation": "spatial", "mechanism": "nal"}
COMPILED = [  # what each adds: the params files that use it
    {"family": "seed", "recipe": "seed_adam"},  # seed2: nearest upsampling, mixed, ARL, Adam, the seed's augmentation
    {
        "family": "seed",
        "recipe": "seed_sgd",
        "mask_activation": "seed_spatial",
        "mechanism": "nal",
        "wiring": "published",
    },  # seed1, 3, 4: the seed's spatial mask, NAL, the published wiring, SGD
    ENGINE_SPEC,
    {
        "family": "paper",
        "recipe": "paper",
        "mask_activation": "channel",
        "mask_structure": "local_conv",
    },  # channel, localconv
]
# Deeper networks repeat these layers (every depth is built and counted in test_networks.py).
EAGER = sorted({f"{family}:{min(spec.depths)}" for family, spec in FAMILIES.items()} | {"seed:92"})
# JAX compiles every op the first time it runs op by op (a minute for the first network here), and
# its compiled steps below already train seed:56 and paper:56 with all their layers.
EAGER_ON = {"tensorflow": EAGER, "jax": [network for network in EAGER if network not in ("seed:56", "paper:56")]}


# XLA's CPU code unoptimized (LLVM -O0): it compiles in about 30% less time, and what these tests
# check (that a step lowers through XLA, runs and changes every weight) does not depend on how fast
# the CPU code runs; a GPU compiles its own code anyway.
QUICK_XLA = {"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()}


def run_steps(backend, *args):
    env = {**os.environ, **QUICK_XLA, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=1200)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, done.stderr[-3000:], results


def compiled_steps(backend):
    specs = [json.dumps({**GPU_DEFAULTS, "depth": 56, **spec}) for spec in COMPILED if spec is not ENGINE_SPEC]
    env = {**os.environ, **QUICK_XLA, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-m", "resattn.suite.preflight", *specs], env=env, capture_output=True, text=True, timeout=1800
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, done.stderr[-3000:], results


def both_modes(backend):
    return {"eager": run_steps(backend, "--eager", *EAGER_ON[backend]), "compiled": compiled_steps(backend)}


def train_one_epoch(backend, run_dir, cache):
    config = [
        "dataset=synthetic",
        "synthetic_size=200",
        "image_size=16",
        "depth=56",
        *[f"{key}={value}" for key, value in ENGINE_SPEC.items()],
        "max_epochs=1",
        "max_steps_per_epoch=2",
        "precision=bfloat16",
        "jit_compile=true",
    ]
    env = {**os.environ, **QUICK_XLA, "KERAS_BACKEND": backend, "RESATTN_CACHE": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "resattn.train", *config, "--run-dir", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return done.returncode, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_engine_runs_on_every_backend(tmp_path, backend):
    """The paper recipe (SGD, schedule, weight decay, pad-crop augmentation) under bfloat16 and
    XLA, a GPU's default, on one of the compiled steps' networks (ENGINE_SPEC). On JAX, the
    GPU's backend, the first run leaves its compiled steps in the cache (an H200 spent minutes
    compiling a run's first epoch), and a second run of the config, as a resumed run or a rerun
    would, trains the same from them."""
    runs = [tmp_path / "first", tmp_path / "second"][: 2 if backend == "jax" else 1]
    for run_dir in runs:
        returncode, output = train_one_epoch(backend, run_dir, tmp_path / "cache")
        assert returncode == 0, output
        metrics = json.loads((run_dir / "metrics.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs"] == 1
        assert config["versions"]["backend"] == backend and config["recipe"]["precision"] == "bfloat16"
        assert config["execution"]["xla"] is True and config["model"]["mechanism"] == "nal"
    if backend == "jax":
        assert list((tmp_path / "cache" / "jax").iterdir()), "nothing compiled was kept"
        losses = [pd.read_csv(run_dir / "history.csv")[["loss", "val_loss"]].values.tolist() for run_dir in runs]
        assert losses[0] == losses[1]


@pytest.fixture(scope="module")
def steps():
    """Both backends' runs, side by side so that they share the machine's cores."""
    with ThreadPoolExecutor(len(BACKENDS)) as pool:
        return dict(zip(BACKENDS, pool.map(both_modes, BACKENDS)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_training_step_on_every_family(steps, backend):
    returncode, stderr, results = steps[backend]["eager"]
    assert returncode == 0, f"{backend} eager: {results}\n{stderr}"
    assert {result["network"] for result in results} == set(EAGER_ON[backend])
    for result in results:
        assert result["backend"] == backend and result["eager"]
        assert result["unchanged"] == [], result


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compiled_bfloat16_step_of_every_layer_combination(steps, backend):
    returncode, stderr, results = steps[backend]["compiled"]
    assert returncode == 0, f"{backend}: {[result.get('error') for result in results]}\n{stderr}"
    assert len(results) == len(COMPILED) - 1  # and the engine's run above
    for result in results:
        assert result["precision"] == "bfloat16" and result["xla"] is True, result
    print(f"{backend}: " + ", ".join(f"{result['network']} {result['seconds']} s" for result in results))
