"""Every family and depth trains one step on each backend, each backend in its own process
(Keras fixes the backend at import). The 56-layer networks also run the compiled step that real
training uses; the rest run op by op, since compiling Attention-452 alone takes minutes on CPU."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from resattn import FAMILIES

SCRIPT = Path(__file__).with_name("one_training_step.py")
BACKENDS = ("tensorflow", "jax")
COMPILED = ["seed:56", "paper:56", "imagenet:56"]
EVERY_NETWORK = {f"{family}:{depth}" for family, spec in FAMILIES.items() for depth in spec.depths}


def run_steps(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=1200
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, done.stderr[-3000:], results


def both_modes(backend):
    return {"eager": run_steps(backend, "--eager"), "compiled": run_steps(backend, *COMPILED)}


@pytest.fixture(scope="module")
def steps():
    """Both backends' runs, side by side so that they share the machine's cores."""
    with ThreadPoolExecutor(len(BACKENDS)) as pool:
        return dict(zip(BACKENDS, pool.map(both_modes, BACKENDS)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_training_step_on_every_network(steps, backend):
    for mode, expected in (("eager", EVERY_NETWORK), ("compiled", set(COMPILED))):
        returncode, stderr, results = steps[backend][mode]
        assert returncode == 0, f"{backend} {mode}: {results}\n{stderr}"
        assert {result["network"] for result in results} == expected
        for result in results:
            assert result["backend"] == backend and result["eager"] == (mode == "eager")
            assert result["unchanged"] == [], result


def train_one_epoch(backend, run_dir):
    config = ["dataset=synthetic", "synthetic_size=200", "image_size=16", "family=paper", "depth=56",
              "recipe=paper", "max_epochs=1", "max_steps_per_epoch=2", "precision=bfloat16"]
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-m", "resattn.run", *config, "--run-dir", str(run_dir)],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    return done.returncode, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_engine_runs_on_every_backend(tmp_path_factory, backend):
    """The paper recipe (SGD, schedule, weight decay, pad-crop augmentation) under bfloat16."""
    run_dir = tmp_path_factory.mktemp(backend)
    returncode, output = train_one_epoch(backend, run_dir)
    assert returncode == 0, output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 1
    assert config["versions"]["backend"] == backend and config["recipe"]["precision"] == "bfloat16"
