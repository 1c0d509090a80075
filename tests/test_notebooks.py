"""nbval: the committed notebooks, executed afresh under the smoke profile, give the outputs they
were committed with (timings, paths and addresses sanitized; images are not compared)."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from notebook_tree import ORDER, make_tree

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_notebooks_reproduce_their_outputs(tmp_path):
    tree = make_tree(tmp_path / "tree")
    # Every path inside the tree: pytest finds its configuration file above the paths it is given,
    # and this project's (two workers) would spread one notebook's cells over two kernels.
    shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", tree)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "-p", "no:cacheprovider", "-q",
         "--nbval-sanitize-with", "nbval_sanitize.cfg", "--nbval-cell-timeout", "1200",
         *(f"notebooks/{name}" for name in ORDER)],
        cwd=tree, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert f"{sum(cells(tree / 'notebooks' / name) for name in ORDER)} passed" in done.stdout, done.stdout[-2000:]
    assert (tree / "results" / "smoke" / "summary.md").exists()


def cells(path):
    """How many tests nbval makes of a notebook: one per code cell."""
    return sum(cell.cell_type == "code" for cell in nbformat.read(path, as_version=4).cells)
