"""Builds networks on tiny inputs and runs one training step on the backend that KERAS_BACKEND
selects. Runs in its own process, since the backend is fixed at import.

    python tests/one_training_step.py [--eager] [FAMILY:DEPTH ...]   (default: every network)

Prints one JSON line per network; exits non-zero if a step gives a non-finite loss or leaves a
trainable weight unchanged.
"""

import argparse
import json
import sys
import time

import keras
import numpy as np

from resattn import FAMILIES, build_model
from resattn.models.networks import input_multiple


def one_step(family, depth, eager, batch=2, num_classes=3):
    keras.utils.set_random_seed(0)
    # Twice the smallest valid side, so that no BatchNorm sees a 1x1 map of two examples (whose
    # gamma gradient can be exactly zero).
    side = 2 * input_multiple(family)
    model = build_model(family, depth, num_classes=num_classes, input_shape=(side, side, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy", run_eagerly=eager)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, side, side, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(batch) % num_classes, num_classes)
    before = [np.array(w) for w in model.trainable_weights]
    start = time.perf_counter()
    loss = float(model.train_on_batch(images, labels))
    seconds = time.perf_counter() - start
    unchanged = [w.path for b, w in zip(before, model.trainable_weights) if np.array_equal(b, np.array(w))]
    return {
        "backend": keras.backend.backend(),
        "network": f"{family}:{depth}",
        "eager": eager,
        "input": side,
        "loss": loss,
        "weights": len(before),
        "unchanged": unchanged,
        "seconds": round(seconds, 2),
    }


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eager", action="store_true", help="run the step op by op instead of compiled")
    parser.add_argument("networks", nargs="*", help="FAMILY:DEPTH, e.g. seed:56")
    args = parser.parse_args(argv)
    everything = [f"{family}:{depth}" for family, spec in FAMILIES.items() for depth in spec.depths]
    failed = False
    for network in args.networks or everything:
        family, depth = network.split(":")
        result = one_step(family, int(depth), args.eager)
        failed |= not np.isfinite(result["loss"]) or bool(result["unchanged"])
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
