"""A copy of the project's notebooks, params and reference runs in a scratch folder, where the
committed notebooks run: train.ipynb under the smoke profile, attention_maps.ipynb on the shipped
pretrained weights, results.ipynb over the committed reference runs (reference/cpu/). The notebook
test compares a fresh execution with the committed outputs; `make notebooks` (this file run as a
script) executes them there and writes them back, outputs included. `make notebooks` shows the
real held-out images of ../shared/data where they are (the tree sees them through a link); the
test never does (CI has none), and ignores the outputs that depend on them.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("train.ipynb", "attention_maps.ipynb", "results.ipynb")


def make_tree(folder):
    folder = Path(folder)
    (folder / "notebooks").mkdir(parents=True)
    for name in ORDER:
        shutil.copy(ROOT / "notebooks" / name, folder / "notebooks" / name)
    shutil.copytree(ROOT / "params", folder / "params")
    for path in committed_files("reference"):  # not a run training there now, nor its checkpoints
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, folder / path)
    return folder


def committed_files(under):
    listing = subprocess.run(["git", "ls-files", "-z", under], cwd=ROOT, capture_output=True, check=True, text=True)
    return [Path(name) for name in listing.stdout.split("\0") if name]


def refresh(folder):
    """Executes the notebooks in a fresh tree and copies them, outputs included, over notebooks/."""
    import nbformat
    from nbclient import NotebookClient

    tree = make_tree(folder)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (tree.parent / "shared").symlink_to(shared)  # notebooks/../../shared, as from the checkout
    for name in ORDER:
        path = tree / "notebooks" / name
        notebook = nbformat.read(path, as_version=4)
        print(f"executing {name}", flush=True)
        NotebookClient(notebook, timeout=1200, resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(notebook, path)
        shutil.copy(path, ROOT / "notebooks" / name)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        refresh(Path(scratch) / "tree")
    sys.exit(0)
