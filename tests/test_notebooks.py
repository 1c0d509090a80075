"""nbval: the committed notebooks, executed afresh (train.ipynb under the smoke profile,
attention_maps.ipynb on the shipped weights, results.ipynb over reference/cpu/), give the outputs they
were committed with (timings, paths and addresses sanitized; numbers to a tolerance, since their
last digits depend on the processor: nbval_tolerance.py; images are not compared)."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbval_tolerance import numbers_agree
from notebook_tree import ORDER, make_tree

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_notebooks_reproduce_their_outputs(tmp_path):
    tree = make_tree(tmp_path / "tree")
    summary = tree / "reference" / "cpu" / "summary.md"
    summary.unlink()
    # Every path inside the tree: pytest finds its configuration file above the paths it is given,
    # and this project's (several workers) would spread one notebook's cells over two kernels.
    shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", tree)
    shutil.copy(ROOT / "tests" / "nbval_tolerance.py", tree)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            "-p",
            "nbval_tolerance",
            "-p",
            "no:cacheprovider",
            "-q",
            "--nbval-sanitize-with",
            "nbval_sanitize.cfg",
            "--nbval-cell-timeout",
            "1200",
            *(f"notebooks/{name}" for name in ORDER),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert f"{sum(cells(tree / 'notebooks' / name) for name in ORDER)} passed" in done.stdout, done.stdout[-2000:]
    assert (tree / "results" / "smoke" / "seed2-cifar10-a56-mixed-arl-adam" / "metrics.json").exists()
    assert summary.exists()  # written again by results.ipynb


def cells(path):
    """How many tests nbval makes of a notebook: one per code cell."""
    return sum(cell.cell_type == "code" for cell in nbformat.read(path, as_version=4).cells)


def test_numbers_compare_to_the_tolerance_and_text_and_integers_exactly():
    # What an Intel Xeon (AMX) printed against the committed output of an AMD EPYC (AVX-512).
    assert numbers_agree("epoch 1/2  loss 1.6229  accuracy 0.1250", "epoch 1/2  loss 1.6227  accuracy 0.1250")
    assert numbers_agree("loss_1.6229_accuracy", "loss_1.6227_accuracy")  # as the sanitize file leaves it
    assert numbers_agree("mean 0.5012, std 0.0204", "mean 0.5031, std 0.0221")  # within 0.005
    assert not numbers_agree("loss 1.6229", "loss 1.7000")  # 4.6%
    assert not numbers_agree("loss 1.6229", "accuracy 1.6229")
    assert not numbers_agree("2,892,970 parameters", "2,892,971 parameters")
    assert not numbers_agree("epoch 1/2", "epoch 2/2")
    assert not numbers_agree("val_loss 1.2", "val_loss nan")
    assert not numbers_agree("<td>0.5</td>", "<td>0.5</td><td>1</td>")
