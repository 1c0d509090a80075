"""bench/bench.py's options are checked before anything runs. (Its figures are measured by
running it, not here.)"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"


@pytest.mark.parametrize(
    "argument, message",
    [
        ("--networks=seed57", "--networks 'seed57' is not valid; choose from seed56, seed92, paper56, paper92"),
        ("--precision=fp8", "--precision 'fp8' is not valid; choose from auto, float32, bfloat16"),
        ("--batch-sizes=64,x", "--batch-sizes '64,x' is not valid"),
        ("--images=0", "--images 0 is not valid"),
    ],
)
def test_bad_options_stop_with_one_line(argument, message):
    result = subprocess.run([sys.executable, str(BENCH), argument], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in result.stderr
