"""The bench scripts' options are checked before anything runs.
(Their figures are measured by running them, not here.)"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
BAD_OPTIONS = [
    ("bench.py", "--networks=seed57", "--networks 'seed57' is not valid; choose from seed56, seed92, paper56, paper92"),
    ("bench.py", "--precision=fp8", "--precision 'fp8' is not valid; choose from auto, float32, bfloat16"),
    ("bench.py", "--batch-sizes=64,x", "--batch-sizes '64,x' is not valid"),
    ("bench.py", "--images=0", "--images 0 is not valid"),
    ("bench.py", "--steps-per-execution=auto,0", "--steps-per-execution 'auto,0' is not valid; give auto or integers"),
    ("bench.py", "--kernels=cudnn", "--kernels 'cudnn' is not valid; choose from fused, keras"),
    ("learning_check.py", "--seeds=0", "--seeds '0' is not valid; give at least two integers >= 0"),
    ("learning_check.py", "--epochs=0", "--epochs 0 is not valid"),
    ("learning_check.py", "--precisions=fp8", "--precisions 'fp8' is not valid; choose from auto, float32"),
    ("learning_check.py", "--kernels=cudnn", "--kernels 'cudnn' is not valid; choose from fused, keras"),
    ("learning_check.py", "--data=/no/such/archive", "--data '/no/such/archive' does not exist"),
    ("determinism_probe.py", "--steps=1", "--steps 1 is not valid; give 2 or more"),
    ("determinism_probe.py", "--data=/no/such/archive", "--data '/no/such/archive' does not exist"),
]


def script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{Path(name).stem}", BENCH / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, argument, message", BAD_OPTIONS)
def test_bad_options_stop_with_one_line(name, argument, message):
    """Each script's `parse`, which its `main` calls first, in this process."""
    with pytest.raises(SystemExit) as stopped:
        script(name).parse([argument])
    assert str(stopped.value.code).startswith("error: ") and message in str(stopped.value.code)


@pytest.mark.parametrize("name", sorted({name for name, _, _ in BAD_OPTIONS}))
def test_the_command_line_says_one_error_line_and_no_traceback(name):
    _, argument, message = next(option for option in BAD_OPTIONS if option[0] == name)
    result = subprocess.run([sys.executable, str(BENCH / name), argument], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in result.stderr
