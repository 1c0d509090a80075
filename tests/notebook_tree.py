"""A copy of the project's notebooks and params in a scratch folder, where the committed
notebooks run under the smoke profile: train.ipynb, then attention_maps.ipynb, then results.ipynb
(each reads what the one before it wrote under results/smoke/). The notebook test compares a
fresh execution with the committed outputs; `make notebooks` (this file run as a script)
executes them there and writes them back, outputs included.
"""

import shutil
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
    return folder


def refresh(folder):
    """Executes the notebooks in a fresh tree and copies them, outputs included, over notebooks/."""
    import nbformat
    from nbclient import NotebookClient

    tree = make_tree(folder)
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
