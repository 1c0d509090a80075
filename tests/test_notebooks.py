"""nbval: the committed notebooks, executed afresh under the smoke profile, give the outputs they
were committed with (timings, paths and addresses sanitized; images are not compared)."""

import subprocess
import sys
from pathlib import Path

from notebook_tree import ORDER, make_tree

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_notebooks_reproduce_their_outputs(tmp_path):
    tree = make_tree(tmp_path / "tree")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "-p", "no:cacheprovider", "-q",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), "--nbval-cell-timeout", "1200",
         *(f"notebooks/{name}" for name in ORDER)],
        cwd=tree, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert (tree / "results" / "smoke" / "summary.md").exists()
