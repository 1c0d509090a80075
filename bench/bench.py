"""Training throughput of our pipeline against the seed's way of training the same network,
side by side in one run, with the machine's measured peak beside every figure.

    python bench/bench.py [--networks seed56,seed92,paper56,paper92] [--backend tensorflow|jax]
        [--precision float32,bfloat16] [--xla on,off] [--batch-sizes 64,128,256]
        [--steps 8] [--baseline | --no-baseline]

Ours: the library's training model (uint8 images in, scaling and augmentation as layers inside
the compiled step), the recipe's optimizer, the data as arrays handed to `fit`. The baseline is
the seed's: float32 images scaled on the host, a Python generator that flips and shifts each
image on the CPU (scipy, as ImageDataGenerator does), Keras `fit` on it, float32, no XLA,
batch 64. Each figure is the mean over `--steps` steps after a warm-up epoch that traces and
compiles. A training step costs about three forward passes (forward, and the gradients with
respect to activations and weights), so the floor for an epoch is 3 x multiply-adds per image x
50,000 images over the measured peak multiply-add rate.
"""

import argparse
import math
import os
import platform
import sys
import time

NETWORKS = {
    "seed56": ("seed", 56, {}, "seed_adam"),
    "seed92": ("seed", 92, {"mask_activation": "seed_spatial", "wiring": "published"}, "seed_sgd"),  # config 4
    "paper56": ("paper", 56, {}, "paper"),
    "paper92": ("paper", 92, {}, "paper"),
}
EPOCH_IMAGES = 50_000


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"), choices=("tensorflow", "jax"))
    parser.add_argument("--precision", default="float32,bfloat16")
    parser.add_argument("--xla", default="on")
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    args.networks = _choices("networks", args.networks, NETWORKS)
    args.precision = _choices("precision", args.precision, ("float32", "bfloat16"))
    args.xla = [value == "on" for value in _choices("xla", args.xla, ("on", "off"))]
    try:
        args.batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    except ValueError:
        parser.error(f"--batch-sizes {args.batch_sizes!r} is not valid; give integers like 64,256")
    if args.steps < 1:
        parser.error(f"--steps {args.steps} is not valid; it must be >= 1")
    return args


def _choices(name, text, valid):
    values = [value.strip() for value in text.split(",") if value.strip()]
    for value in values:
        if value not in valid:
            sys.exit(f"error: --{name} {value!r} is not valid; choose from {', '.join(valid)}")
    return values


def peak_multiply_adds(precision):
    """Multiply-adds per second of a large square matmul in the backend, best of five."""
    import keras

    size = 2048
    a = keras.random.normal((size, size), dtype=precision)
    b = keras.random.normal((size, size), dtype=precision)
    keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.matmul(a, b), "float32"))
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.sum(keras.ops.matmul(a, b)), "float32"))
        best = min(best, time.perf_counter() - started)
    return size**3 / best


class EpochClock:
    """Wall time of each epoch of a fit, through a callback."""

    def __init__(self):
        import keras

        clock = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                clock.seconds.append(time.perf_counter() - clock.started)

        self.seconds, self.callback = [], Callback()


def ours(name, batch_size, precision, xla, steps):
    """Images per second of the library's pipeline, after a warm-up epoch."""
    import keras
    import numpy as np

    from resattn.recipes import resolve_recipe
    from resattn.training import new_training_model

    family, depth, options, recipe_name = NETWORKS[name]
    recipe = resolve_recipe(recipe_name, precision=precision, jit_compile=xla)
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 256, size=(steps * batch_size, 32, 32, 3), dtype=np.uint8)
    labels = keras.utils.to_categorical(np.arange(len(images)) % 10, 10)
    model = new_training_model({"family": family, "depth": depth, **options}, recipe, images, seed=0)
    network = model.layers[-1]
    clock = EpochClock()
    model.fit(images, labels, batch_size=batch_size, epochs=2, verbose=0, callbacks=[clock.callback])
    return len(images) / clock.seconds[1], network


def baseline(name, steps, batch_size=64):
    """Images per second of the seed's pipeline: host-side scaling and per-image augmentation
    in a Python generator, float32, no XLA."""
    import keras
    import numpy as np
    from scipy import ndimage

    from resattn.networks import build_model
    from resattn.preprocessing import SEED_MEAN, SEED_SHIFT, SEED_STD
    from resattn.recipes import resolve_recipe

    family, depth, options, recipe_name = NETWORKS[name]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(steps * batch_size, 32, 32, 3), dtype=np.uint8)
    scaled = ((images - np.array(SEED_MEAN)) / np.array(SEED_STD)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(len(images)) % 10, 10)

    class Augmented(keras.utils.PyDataset):
        """ImageDataGenerator's flip and shift, one image at a time on the CPU."""

        def __len__(self):
            return steps

        def __getitem__(self, index):
            batch = scaled[index * batch_size : (index + 1) * batch_size].copy()
            for i, image in enumerate(batch):
                if rng.random() < 0.5:
                    image = image[:, ::-1]
                dy, dx = rng.uniform(-SEED_SHIFT, SEED_SHIFT, size=2) * 32
                batch[i] = ndimage.shift(image, (dy, dx, 0), order=1, mode="nearest")
            return batch, labels[index * batch_size : (index + 1) * batch_size]

    network = build_model(family, depth, **options)
    network.compile(optimizer=resolve_recipe(recipe_name).make_optimizer(len(images)),
                    loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    network.optimizer.build(network.trainable_variables)  # a shorter warm-up only; not timed
    clock = EpochClock()
    network.fit(Augmented(), epochs=2, verbose=0, callbacks=[clock.callback])
    return len(images) / clock.seconds[1]


def main(argv=None):
    args = parse(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    import keras

    from resattn.complexity import count_multiply_adds

    started = time.perf_counter()
    peaks = {precision: peak_multiply_adds(precision) for precision in args.precision}
    print(f"# bench: {keras.backend.backend()} {_backend_version()}, keras {keras.__version__}, "
          f"{_device()}, {os.cpu_count()} CPU cores, python {platform.python_version()}")
    print("# peak (2048x2048 matmul): " + ", ".join(f"{p} {peaks[p] / 1e9:.1f} G multiply-adds/s" for p in peaks))
    print("| network | pipeline | precision | XLA | batch | images/s | s per 50k epoch | x baseline "
          "| floor s/epoch | of peak |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.networks:
        base = baseline(name, args.steps) if args.baseline else None
        macs = None
        if base:
            macs = count_multiply_adds(_network(name))
            print(_row(name, "seed-style baseline", "float32", False, 64, base, base, macs, peaks["float32"]
                       if "float32" in peaks else peak_multiply_adds("float32")), flush=True)
        for precision in args.precision:
            for xla in args.xla:
                for batch_size in args.batch_sizes:
                    rate, network = ours(name, batch_size, precision, xla, args.steps)
                    macs = macs or count_multiply_adds(network)
                    print(_row(name, "ours", precision, xla, batch_size, rate, base, macs, peaks[precision]),
                          flush=True)
    print(f"# {time.perf_counter() - started:.0f} s in all")
    return 0


def _network(name):
    from resattn.networks import build_model

    family, depth, options, _ = NETWORKS[name]
    return build_model(family, depth, **options)


def _row(name, pipeline, precision, xla, batch_size, rate, base, macs, peak):
    ratio = f"{rate / base:.2f}" if base else "-"
    floor = 3 * macs * EPOCH_IMAGES / peak
    achieved = 3 * macs * rate / peak
    return (f"| {name} | {pipeline} | {precision} | {'on' if xla else 'off'} | {batch_size} | {rate:,.0f} "
            f"| {EPOCH_IMAGES / rate:,.1f} | {ratio} | {floor:.1f} | {achieved:.0%} |")


def _backend_version():
    import keras

    module = __import__({"tensorflow": "tensorflow", "jax": "jax"}[keras.backend.backend()])
    return module.__version__


def _device():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(sorted({device.device_kind for device in jax.devices()}))
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else (platform.processor() or platform.machine())


if __name__ == "__main__":
    sys.exit(main())
