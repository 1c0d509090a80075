"""What a run's per-epoch checkpoint costs: Keras's `.keras` save against the arrays that
`RunFolder.save_checkpoint` writes, for the same compiled training model, side by side.

    [KERAS_BACKEND=jax] python bench/checkpoint.py [--depths 56,92,128,236,452] [--repeats 3]

Each figure is the median of `--repeats` saves into a temporary folder (a warm-up save first),
the two ways interleaved so that a change in this shared machine's load falls on both.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from resattn.train.model import new_training_model
from resattn.train.recipes import resolve_recipe
from resattn.train.run_folder import RunFolder, checkpointed_variables, save_model


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="56,92,128,236,452", help="paper-family depths")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def seconds(save, path):
    started = time.perf_counter()
    save(path)
    return time.perf_counter() - started


def main(argv=None):
    args = parse(argv)
    images = np.zeros((8, 32, 32, 3), "uint8")
    print("| network | variables | .keras save (s) | arrays (s) | .keras / arrays | .keras MB | arrays MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for depth in (int(depth) for depth in args.depths.split(",")):
        options = {"family": "paper", "depth": depth, "num_classes": 10, "input_shape": (32, 32, 3)}
        model = new_training_model(options, resolve_recipe("paper"), images, seed=0)
        ways = {
            "keras": (lambda path, model=model: save_model(model, path), "model.keras"),
            "arrays": (
                lambda path, model=model: RunFolder(path.parent).save_checkpoint(model, 0),
                "checkpoint-0000.npz",
            ),
        }
        with tempfile.TemporaryDirectory() as folder:
            times = {name: [] for name in ways}
            for repeat in range(args.repeats + 1):
                for name, (save, file_name) in ways.items():
                    elapsed = seconds(save, Path(folder) / file_name)
                    if repeat:
                        times[name].append(elapsed)
            keras_s, arrays_s = (statistics.median(times[name]) for name in ways)
            sizes = [(Path(folder) / file_name).stat().st_size / 1e6 for _, file_name in ways.values()]
        variables = len(checkpointed_variables(model))
        print(
            f"| Attention-{depth} | {variables:,} | {keras_s:.2f} | {arrays_s:.2f} | {keras_s / arrays_s:.1f} "
            f"| {sizes[0]:.0f} | {sizes[1]:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
