"""Training throughput of our pipeline against the seed's way of training the same network,
side by side in one run, with the machine's measured peak beside every figure.

    [KERAS_BACKEND=jax] python bench/bench.py [--networks seed56,seed92,paper56,paper92]
        [--precision auto,float32,bfloat16] [--xla auto,on,off] [--batch-sizes 64,256]
        [--images 512] [--steps-per-execution auto,4] [--kernels fused,keras] [--baseline | --no-baseline]

Ours: the library's training model (uint8 images in, scaling and augmentation as layers inside
the compiled step), the recipe's optimizer, precision, XLA setting and kernels (`fused`, the
recipes' default: TensorFlow's fused kernels for batch norm and optimizer updates; `keras`:
Keras's own for both), the data as arrays handed to `fit`. The baseline is the seed's: the same
network and optimizer (Keras's own layers), float32 images scaled on the host, a Python data source that flips and shifts each
image on the CPU (scipy, as ImageDataGenerator does), Keras `fit` on it, float32, no XLA,
batch 64.

Each figure is the median step time of about `--images` images (at least 4 steps), as images
per second and seconds per 50,000-image epoch. Every model (the baseline, and ours once per
precision, XLA, steps-per-execution and kernels setting, fed at each batch size) is built and
trained in a process of its own, since what one leaves in a process slowed the next 2-3x
(BENCHMARKS.md, 2026-12-04). Every pipeline of a network is first warmed up (a one-step `fit`
that traces and compiles), then all are timed in 4 interleaved rounds of `fit`, one process at
a time, so that a change in the load of this shared machine falls on all of them alike. `auto`
(precision, XLA) is the library's default on this machine, shown resolved. A training step
costs about three forward passes (forward, and the gradients with respect to activations and to
weights), so the floor for an epoch is 3 x multiply-adds per image x 50,000 over the measured
peak multiply-add rate of the precision used.
"""

import argparse
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback
from dataclasses import dataclass

import keras
import numpy as np
from scipy import ndimage

from resattn.data.preprocessing import SEED_MEAN, SEED_SHIFT, SEED_STD
from resattn.models.complexity import count_multiply_adds
from resattn.models.networks import build_model
from resattn.train.devices import has_gpu, processor, run_ops_one_at_a_time
from resattn.train.model import build_training_state, new_training_model
from resattn.train.recipes import KERNELS, resolve_recipe
from resattn.train.run_record import backend_version

NETWORKS = {  # name: (family, depth, build options, recipe)
    "seed56": ("seed", 56, {}, "seed_adam"),
    "seed92": ("seed", 92, {"mask_activation": "seed_spatial", "wiring": "published"}, "seed_sgd"),  # config 4
    "paper56": ("paper", 56, {}, "paper"),
    "paper92": ("paper", 92, {}, "paper"),
}
EPOCH_IMAGES = 50_000
WARM_UP_STEPS = 1
ROUNDS = 4


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--xla", default="auto", help="auto (the library's default), on, off, or a list")
    parser.add_argument("--batch-sizes", default="64,256", help="64 is the seed's; the best of these is reported")
    parser.add_argument("--images", type=int, default=512, help="timed images per figure")
    parser.add_argument(
        "--steps-per-execution",
        default="auto",
        help="the recipe's steps_per_execution: auto (the library's default here), integers, or a list",
    )
    parser.add_argument(
        "--kernels", default="fused", help="the recipe's kernels: fused (the default), keras, or a list"
    )
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    args.kernels = _choices("kernels", args.kernels, KERNELS)
    args.networks = _choices("networks", args.networks, NETWORKS)
    args.precision = _choices("precision", args.precision, ("auto", "float32", "bfloat16"))
    args.xla = [{"on": True, "off": False}.get(v, v) for v in _choices("xla", args.xla, ("auto", "on", "off"))]
    text = args.steps_per_execution
    try:
        args.steps_per_execution = [v if v == "auto" else int(v) for v in text.split(",")]
    except ValueError:
        args.steps_per_execution = [0]
    if any(v != "auto" and v < 1 for v in args.steps_per_execution):
        sys.exit(f"error: --steps-per-execution {text!r} is not valid; give auto or integers >= 1, like auto,4")
    try:
        args.batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    except ValueError:
        sys.exit(f"error: --batch-sizes {args.batch_sizes!r} is not valid; give positive integers like 64,256")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        sys.exit(f"error: --batch-sizes {args.batch_sizes!r} is not valid; give positive integers like 64,256")
    if args.images < 1:
        sys.exit(f"error: --images {args.images} is not valid; it must be >= 1")
    return args


def _choices(name, text, valid):
    values = [value.strip() for value in text.split(",") if value.strip()]
    if not values:
        sys.exit(f"error: --{name} is empty; choose from {', '.join(valid)}")
    for value in values:
        if value not in valid:
            sys.exit(f"error: --{name} {value!r} is not valid; choose from {', '.join(valid)}")
    return values


def peak_multiply_adds(precision, size):
    """Multiply-adds per second of a size x size matmul in the backend, best of five."""
    a = keras.random.normal((size, size), dtype=precision)
    b = keras.random.normal((size, size), dtype=precision)
    keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.matmul(a, b), "float32"))
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.sum(keras.ops.matmul(a, b)), "float32"))
        best = min(best, time.perf_counter() - started)
    return size**3 / best


class Pipeline:
    """One thing to time: a compiled model and how to feed it `steps` batches of `batch_size`."""

    def __init__(self, label, precision, xla, batch_size, model, feed, steps_per_call=1):
        self.label, self.precision, self.xla, self.batch_size = label, precision, xla, batch_size
        self.model, self.feed, self.seconds, self.steps_per_call = model, feed, [], steps_per_call

    def warm_up(self):
        started = time.perf_counter()
        self.model.fit(*self.feed(WARM_UP_STEPS, warm_up=True), epochs=1, verbose=0)
        print(
            f"# {self.label} {self.precision} batch {self.batch_size}: warm-up (trace and compile) "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def time_steps(self, steps):
        clock = self

        class StepClock(keras.callbacks.Callback):  # called once per call into the graph
            def on_train_batch_begin(self, batch, logs=None):
                self.started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                clock.seconds.append(time.perf_counter() - self.started)

        calls = max(1, round(steps / self.steps_per_call))
        self.model.fit(*self.feed(calls * self.steps_per_call), epochs=1, verbose=0, callbacks=[StepClock()])

    def images_per_second(self):
        return self.batch_size * self.steps_per_call / statistics.median(self.seconds)

    def described(self):
        return Described(self.label, self.precision, self.xla, self.batch_size, count_multiply_adds(self.model))


@dataclass(frozen=True)
class Described:
    """What the parent process knows of a pipeline that lives in a worker."""

    label: str
    precision: str
    xla: bool
    batch_size: int
    multiply_adds: int


class Worker:
    """The pipelines that `build(*args)` returns, built and trained in a process of their own,
    each call answered in turn: the parent only sends requests and waits."""

    def __init__(self, build, *args):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of another model
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, build, args), daemon=True)
        self.process.start()
        child.close()
        self.what = f"{build.__name__}{args[:2]}"
        self.pipelines = self._answer()

    def call(self, index, method, *args):
        self.connection.send((index, method, args))
        return self._answer()

    def stop(self):
        self.connection.send(None)
        self.process.join(timeout=60)

    def _answer(self):
        try:
            answer = self.connection.recv()
        except EOFError:
            self.process.join(timeout=10)
            raise RuntimeError(f"the worker of {self.what} died (exit code {self.process.exitcode})") from None
        if isinstance(answer, Failure):
            raise RuntimeError(f"the worker of {self.what} failed:\n{answer.traceback}")
        return answer


@dataclass(frozen=True)
class Failure:
    traceback: str


def _serve(connection, build, args):
    """A worker's loop: build the pipelines, describe them, then run each request on one of them."""
    try:
        run_ops_one_at_a_time()  # as a run trains
        pipelines = build(*args)
        connection.send([pipeline.described() for pipeline in pipelines])
        while (request := connection.recv()) is not None:
            index, method, method_args = request
            connection.send(getattr(pipelines[index], method)(*method_args))
    except Exception:
        connection.send(Failure(traceback.format_exc()))


def measure(workers, images):
    """Warms every pipeline up, then times them in interleaved rounds, so that a change in the
    machine's load (it is shared) falls on all of them alike; each gets about `images` images."""
    pipelines = [(worker, index, described) for worker in workers for index, described in enumerate(worker.pipelines)]
    for worker, index, _ in pipelines:
        worker.call(index, "warm_up")
    for _ in range(ROUNDS):
        for worker, index, described in pipelines:
            worker.call(index, "time_steps", max(1, images // described.batch_size // ROUNDS))
    return [worker.call(index, "images_per_second") for worker, index, _ in pipelines]


def random_data(count, seed=0):
    images = np.random.default_rng(seed).integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    return images, keras.utils.to_categorical(np.arange(count) % 10, 10)


def ours(name, precision, xla, batch_sizes, images, steps_per_execution="auto", kernels="fused"):
    """The library's pipeline, one model fed at each batch size."""
    family, depth, options, recipe_name = NETWORKS[name]
    recipe = resolve_recipe(
        recipe_name, precision=precision, jit_compile=xla, steps_per_execution=steps_per_execution, kernels=kernels
    )
    keras.utils.set_random_seed(0)
    x, y = random_data(max(max(images, size * ROUNDS) for size in batch_sizes) + 1)
    model = new_training_model({"family": family, "depth": depth, **options}, recipe, x, seed=0)

    def feeder(size):
        def feed(steps, warm_up=False):
            # The warm-up has one image more than whole batches: as in a run whose training set is
            # not a multiple of the batch, the step is traced once for any batch size.
            count = steps * size + (1 if warm_up else 0)
            return x[:count], y[:count], size

        return feed

    calls = recipe.execution_steps()
    label = "ours" if calls == 1 else f"ours, {calls} steps a call"
    label += ", fused" if kernels == "fused" else ""
    return [
        Pipeline(label, recipe.compute_precision(), recipe.compiles_with_xla(), size, model, feeder(size), calls)
        for size in batch_sizes
    ]


def baseline(name, images, batch_size=64):
    """The seed's pipeline: host-side scaling and per-image augmentation in a Python data source,
    Keras's stock layers and optimizer, float32, no XLA."""
    family, depth, options, recipe_name = NETWORKS[name]
    recipe = resolve_recipe(recipe_name)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = random_data(max(images, batch_size * ROUNDS))
    scaled = ((x - np.array(SEED_MEAN)) / np.array(SEED_STD)).astype("float32")

    class Augmented(keras.utils.PyDataset):
        """ImageDataGenerator's flip and shift, one image at a time on the CPU."""

        def __init__(self, count):
            super().__init__()
            self.count = count

        def __len__(self):
            return self.count

        def __getitem__(self, index):
            batch = scaled[index * batch_size : (index + 1) * batch_size].copy()
            for i, image in enumerate(batch):
                if rng.random() < 0.5:
                    image = image[:, ::-1]
                dy, dx = rng.uniform(-SEED_SHIFT, SEED_SHIFT, size=2) * 32
                batch[i] = ndimage.shift(image, (dy, dx, 0), order=1, mode="nearest")
            return batch, y[index * batch_size : (index + 1) * batch_size]

    network = build_model(family, depth, **options)
    if recipe.optimizer == "adam":
        optimizer = keras.optimizers.Adam(recipe.learning_rate)
    else:
        optimizer = keras.optimizers.SGD(recipe.learning_rate, momentum=recipe.momentum, nesterov=recipe.nesterov)
    network.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    build_training_state(network, scaled)  # a shorter warm-up only (one trace, not two); not timed

    def feed(steps, warm_up=False):
        return (Augmented(steps),)

    return [Pipeline("seed-style baseline", "float32", False, batch_size, network, feed)]


HEADER = (
    "| network | pipeline | precision | XLA | batch | images/s | s per 50k epoch | x baseline "
    "| floor s/epoch | of peak |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|"
)


def main(argv=None):
    args = parse(argv)
    # Several processes share a GPU here: none may take most of its memory at its first op.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    run_ops_one_at_a_time()  # as a run trains, for the peak measured in this process
    started = time.perf_counter()
    precisions = {resolve_recipe("seed_adam", precision=p).compute_precision() for p in ("float32", *args.precision)}
    # 2048 fills a CPU; a GPU finishes it faster than one dispatch, and reaches its peak at 8192.
    size = 8192 if has_gpu() else 2048
    peaks = {precision: peak_multiply_adds(precision, size) for precision in sorted(precisions, reverse=True)}
    print(
        f"# bench {time.strftime('%Y-%m-%d')}: {keras.backend.backend()} {backend_version()}, "
        f"keras {keras.__version__}, {_device()}, {os.cpu_count()} CPU cores, python {platform.python_version()}"
        f"{_inter_op_threads()}"
    )
    print(f"# peak ({size}x{size} matmul): " + ", ".join(f"{p} {peaks[p] / 1e9:.1f} G multiply-adds/s" for p in peaks))
    print(
        f"# median step time over about {args.images} images each (at least {ROUNDS} steps), timed in "
        f"{ROUNDS} interleaved rounds after a {WARM_UP_STEPS}-step warm-up; x baseline = images/s over "
        "the seed-style baseline's"
    )
    print(HEADER)
    best_rows = []
    for name in args.networks:
        workers = [Worker(baseline, name, args.images)] if args.baseline else []
        for precision in args.precision:
            for xla in args.xla:
                for calls in args.steps_per_execution:
                    for kernels in args.kernels:
                        workers.append(
                            Worker(ours, name, precision, xla, args.batch_sizes, args.images, calls, kernels)
                        )
        rates = measure(workers, args.images)
        for worker in workers:
            worker.stop()
        pipelines = [described for worker in workers for described in worker.pipelines]
        base = rates[0] if args.baseline else None
        macs = pipelines[0].multiply_adds
        rows = [(rate, p.label, p.precision, p.xla, p.batch_size) for rate, p in zip(rates, pipelines)]
        for rate, label, precision, xla, batch_size in rows:
            print(_row(name, label, precision, xla, batch_size, rate, base, macs, peaks[precision]), flush=True)
        rate, _, precision, xla, batch_size = max(row for row in rows if row[1].startswith("ours"))
        best_rows.append(_row(name, "ours, best", precision, xla, batch_size, rate, base, macs, peaks[precision]))
    print(f"\nThe best of ours per network:\n\n{HEADER}")
    print("\n".join(best_rows))
    print(f"\n# {time.perf_counter() - started:.0f} s in all")
    return 0


def _row(name, pipeline, precision, xla, batch_size, rate, base, macs, peak):
    ratio = f"{rate / base:.2f}" if base else "-"
    floor = 3 * macs * EPOCH_IMAGES / peak
    achieved = 3 * macs * rate / peak
    return (
        f"| {name} | {pipeline} | {precision} | {'on' if xla else 'off'} | {batch_size} | {rate:,.0f} "
        f"| {EPOCH_IMAGES / rate:,.1f} | {ratio} | {floor:.1f} | {achieved:.0%} |"
    )


def _inter_op_threads():
    if keras.backend.backend() != "tensorflow":
        return ""
    import tensorflow as tf

    threads = os.environ.get("TF_NUM_INTEROP_THREADS") or tf.config.threading.get_inter_op_parallelism_threads()
    return f", inter-op threads {threads or 'as TensorFlow picks'}"


def _device():
    # Imported here: a machine may have only the backend in use (the GPU machine has no TensorFlow).
    if keras.backend.backend() == "jax":
        import jax

        kinds = sorted({device.device_kind for device in jax.devices()})
        return processor() if kinds == ["cpu"] else ", ".join(kinds)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else processor()


if __name__ == "__main__":
    sys.exit(main())
