"""Does one config train the same in two processes? Same seed, same machine, same run (DEVELOPERS.md).

    python bench/determinism_probe.py [--data ../shared/data/cifar10-jpeg-train.tar.gz] [--steps 6]
        [KEY=VALUE ...]

Trains `--steps` batches of a config (by default the seed's config 4 as published, on a
10,000-image subset of the real images) with `train_on_batch`, from seed 0, in two fresh
processes, and prints per process the sha256 of its training images and of its initial weights
and the loss of every step, then the first step where the two differ. Environment variables pass
through, so `TF_NUM_INTEROP_THREADS=0 python bench/determinism_probe.py` tests TensorFlow's own
number of inter-op threads, where the library runs one op at a time (resattn.train.devices).
A benchmark, not a test: about a minute per process for Attention-92 on 2 cores.
"""

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from resattn.train.run_config import read_mapping

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "cifar10-jpeg-train.tar.gz"
# The seed's config 4 as published, on a 10,000-image subset of the real images.
CONFIG4 = {
    **read_mapping(ROOT / "params" / "seed4-cifar10-a92-seedspatial-arl-sgd-published.yaml"),
    "dataset": "image_folder",
    "limit": 10_000,
}


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("keys", nargs="*", help="KEY=VALUE run keys over config 4's, read as YAML")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        sys.exit(f"error: --steps {args.steps} is not valid; give 2 or more")
    if not args.data.exists():
        sys.exit(f"error: --data {str(args.data)!r} does not exist; give the CIFAR-10 image-folder archive")
    return args


def digest(array):
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def train_steps(config, steps):
    """{data, weights, losses} of `steps` batches of 64 of `config`, in this process, which runs
    TensorFlow's ops as a run does (`run_ops_one_at_a_time`)."""
    from dataclasses import replace

    import keras
    import numpy as np

    from resattn.train.devices import run_ops_one_at_a_time

    run_ops_one_at_a_time()

    from resattn.train.model import apply_weight_decay, new_training_model
    from resattn.train.run_config import RunConfig

    run = RunConfig.from_mapping(config)
    keras.utils.set_random_seed(run.seed)
    data = run.load_data()
    recipe = replace(run.recipe, precision=run.recipe.compute_precision())
    model = new_training_model({**run.model, "num_classes": data.num_classes}, recipe, data.x_train, seed=run.seed)
    apply_weight_decay(model, recipe.weight_decay)
    weights = np.concatenate([np.ravel(keras.ops.convert_to_numpy(w)).astype("float64") for w in model.weights])
    labels = keras.utils.to_categorical(data.y_train, data.num_classes)
    losses = []
    for step in range(steps):
        batch = slice(step * 64, (step + 1) * 64)
        result = model.train_on_batch(data.x_train[batch], labels[batch])
        losses.append(float(result[0] if isinstance(result, list) else result))
    return {"data": digest(data.x_train), "weights": digest(weights), "precision": recipe.precision, "losses": losses}


def main(argv=None):
    args = parse(argv)
    from resattn.train.__main__ import parse_config
    from resattn.train.run_config import RunConfig

    config = {**CONFIG4, "data_dir": str(args.data.resolve()), **parse_config(args.keys)}
    try:
        RunConfig.from_mapping(config)
    except ValueError as error:
        sys.exit(f"error: {error}")
    if args.child:
        print(json.dumps(train_steps(config, args.steps)), flush=True)
        return 0
    runs = []
    for process in (1, 2):
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--data", str(args.data), "--steps", str(args.steps), *args.keys],
            capture_output=True,
            text=True,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            sys.exit(f"error: process {process} failed: {done.stderr[-2000:]}")
        runs.append(json.loads(lines[-1]))
        run = runs[-1]
        print(f"process {process}: {run['precision']}, data {run['data']}, initial weights {run['weights']}")
        print("  losses " + " ".join(f"{loss:.9g}" for loss in run["losses"]), flush=True)
    first, second = runs
    parted = next((step for step, (a, b) in enumerate(zip(first["losses"], second["losses"])) if a != b), None)
    same_start = first["data"] == second["data"] and first["weights"] == second["weights"]
    print(f"same data and initial weights: {'yes' if same_start else 'no'}")
    print("the same at every step" if parted is None else f"the losses part at step {parted}")
    return 0 if parted is None and same_start else 1


if __name__ == "__main__":
    sys.exit(main())
