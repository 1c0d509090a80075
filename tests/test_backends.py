"""Every family and depth trains one step on each backend, each backend in its own process
(Keras fixes the backend at import). The 56-layer networks also run the compiled step that real
training uses; the rest run op by op, since compiling Attention-452 alone takes minutes on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resattn import FAMILIES

SCRIPT = Path(__file__).with_name("one_training_step.py")
COMPILED = ["seed:56", "paper:56", "imagenet:56"]


def run_steps(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=1200
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, f"{backend}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert {result["backend"] for result in results} == {backend}
    return results


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_one_training_step_on_every_network(backend):
    eager = run_steps(backend, "--eager")
    everything = {f"{family}:{depth}" for family, spec in FAMILIES.items() for depth in spec.depths}
    assert {result["network"] for result in eager} == everything
    compiled = run_steps(backend, *COMPILED)
    assert [result["network"] for result in compiled] == COMPILED
    for result in eager + compiled:
        assert result["unchanged"] == [], result
