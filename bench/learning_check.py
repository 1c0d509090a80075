"""Does our pipeline learn like stock Keras on real images? Side by side in one run.

    python bench/learning_check.py [--data ../shared/data/cifar10-jpeg-train.tar.gz]
        [--epochs 2] [--seeds 0,1] [--precisions float32,auto] [--kernels fused] [--out results/learning-check]
        [--fresh]

The seed's config 2 (Attention-56, mixed attention, ARL, the seed's Adam recipe, batch 64) on the
50,000 real CIFAR-10 training images of ../shared/data, split once into 40,000 to train and
10,000 to validate, trained two ways from the same seed:

- ours: exactly what `python -m resattn.train` trains (`resattn.train.loop.train`): uint8 images
  in, the seed's standardization, flip and shift as the library's layers inside the model, with
  `--kernels` (`fused`, the library's default: TensorFlow's fused batch norm and optimizer
  updates, "ours-fused" in the table; `keras`: Keras's own, "ours"; the two share the stock runs);
- stock: the same network trained the plain Keras way: images standardized on the host,
  Keras's `RandomFlip("horizontal")` and `RandomTranslation(0.15, 0.15)` in front of it,
  `keras.optimizers.Adam(1e-3)`, `fit`, on the same batches in the same order as ours.

Each precision (`auto` is the library's default here, shown resolved) is run for every seed.
The table gives, per epoch, each pipeline's training loss, training accuracy and validation
accuracy (mean over seeds, each seed in brackets), ours minus stock, and whether ours lies within
stock's seed-to-seed range (or on which side of it). It is a benchmark, not a test: about an hour on 2 CPU cores. Each
finished run is kept in `--out`/results.json, so an interrupted check picks up where it stopped.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg-train.tar.gz"
METRICS = ("loss", "accuracy", "val_accuracy")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the CIFAR-10 image-folder archive")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--precisions", default="float32,auto")
    parser.add_argument("--kernels", default="fused", help="ours with fused (the default) or keras kernels")
    parser.add_argument("--out", type=Path, default=Path("results/learning-check"))
    parser.add_argument("--fresh", action="store_true", help="redo runs that an earlier check finished")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        sys.exit(f"error: --epochs {args.epochs} is not valid; it must be >= 1")
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        seeds = []
    if len(seeds) < 2 or min(seeds) < 0:
        sys.exit(f"error: --seeds {args.seeds!r} is not valid; give at least two integers >= 0, like 0,1")
    args.seeds = seeds
    args.precisions = args.precisions.split(",")
    for precision in args.precisions:
        if precision not in ("auto", "float32", "bfloat16"):
            sys.exit(f"error: --precisions {precision!r} is not valid; choose from auto, float32, bfloat16")
    if args.kernels not in ("fused", "keras"):
        sys.exit(f"error: --kernels {args.kernels!r} is not valid; choose from fused, keras")
    if not args.data.exists():
        sys.exit(
            f"error: --data {str(args.data)!r} does not exist; give the CIFAR-10 image-folder archive "
            "(../shared/data/cifar10-jpeg-train.tar.gz)"
        )
    return args


def run_ours(dataset, data_dir, precision, kernels, seed, epochs, run_dir):
    from resattn.train.loop import train
    from resattn.train.run_folder import read_json

    config = {
        "dataset": "image_folder",
        "data_dir": str(data_dir),
        "family": "seed",
        "depth": 56,
        "recipe": "seed_adam",
        "precision": precision,
        "kernels": kernels,
        "seed": seed,
        "max_epochs": epochs,
    }
    train(config, run_dir, force=True, dataset=dataset, log=lambda line: print(f"  ours: {line}", flush=True))
    return [{key: row[key] for key in METRICS} for row in read_json(Path(run_dir) / "state.json")["history"]]


def run_stock(dataset, precision, seed, epochs):
    import keras
    import numpy as np

    from resattn.data.preprocessing import SEED_MEAN, SEED_SHIFT, SEED_STD
    from resattn.models.networks import build_model
    from resattn.train.loop import fit_epochs

    keras.utils.set_random_seed(seed)
    policy = keras.mixed_precision.global_policy()
    if precision != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{precision}")
    try:
        network = build_model("seed", 56)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomTranslation(SEED_SHIFT, SEED_SHIFT, fill_mode="nearest", seed=seed + 1),
            network,
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"], jit_compile=False)

    def standardized(images):
        return ((images.astype("float32") - np.float32(SEED_MEAN)) / np.float32(SEED_STD)).astype("float32")

    def one_hot(labels):
        return keras.utils.to_categorical(labels, dataset.num_classes)

    rows = []

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            rows.append({key: float(logs[key]) for key in METRICS})
            figures = "  ".join(f"{key} {logs[key]:.4f}" for key in ("loss", "accuracy", "val_loss", "val_accuracy"))
            print(
                f"  stock: epoch {epoch + 1}/{epochs}  {figures}  {time.perf_counter() - self.started:.1f} s",
                flush=True,
            )

    # The batches ours sees, in its order: fit(shuffle=True) would repeat one order every epoch.
    validation = (standardized(dataset.x_val), one_hot(dataset.y_val))
    fit_epochs(
        model,
        standardized(dataset.x_train),
        one_hot(dataset.y_train),
        batch_size=64,
        epochs=epochs,
        seed=seed,
        validation=validation,
        callbacks=[Progress()],
    )
    return rows


def table(results, precisions, seeds, epochs, ours="ours"):
    """Markdown: one row per precision, epoch and metric, over the seeds both pipelines finished."""
    pipelines = (ours, "stock")
    lines = [
        f"| precision (seeds) | epoch | metric | stock: mean [per seed] | {ours}: mean [per seed] | {ours} - stock "
        f"| stock's range | {ours} within it |",
        "|---|---:|---|---|---|---:|---|---|",
    ]
    for precision in precisions:
        done = [seed for seed in seeds if all(f"{p} {precision} {seed}" in results for p in pipelines)]
        for epoch in range(epochs):
            for metric in METRICS:
                values = {p: [results[f"{p} {precision} {seed}"][epoch][metric] for seed in done] for p in pipelines}
                mean = {p: sum(v) / len(v) for p, v in values.items()}
                low, high = min(values["stock"]), max(values["stock"])
                cells = [f"{mean[p]:.4f} [{', '.join(f'{v:.4f}' for v in values[p])}]" for p in ("stock", ours)]
                lines.append(
                    f"| {precision} ({len(done)}) | {epoch + 1} | {metric} | {cells[0]} | {cells[1]} "
                    f"| {mean[ours] - mean['stock']:+.4f} | {low:.4f} to {high:.4f} "
                    f"| {_verdict(metric, mean[ours], low, high)} |"
                )
    return "\n".join(lines)


def _verdict(metric, value, low, high):
    """Whether ours lies in stock's range, and if not, on which side: a lower loss, a higher accuracy is better."""
    if low <= value <= high:
        return "yes"
    better = value < low if metric == "loss" else value > high
    return "no, better" if better else "no, worse"


def main(argv=None):
    args = parse(argv)
    import keras

    from resattn.data.datasets import load_dataset
    from resattn.train.recipes import resolve_recipe
    from resattn.train.run_record import backend_version

    started = time.perf_counter()
    precisions = {p: resolve_recipe("seed_adam", precision=p).compute_precision() for p in args.precisions}
    print(
        f"# learning check {time.strftime('%Y-%m-%d')}: keras {keras.__version__}, {keras.backend.backend()} "
        f"{backend_version()}, {os.cpu_count()} CPU cores; precisions "
        + ", ".join(f"{p} = {resolved}" for p, resolved in precisions.items()),
        flush=True,
    )
    dataset = load_dataset("image_folder", args.data, validation_split=0.2, seed=0)
    print(f"# data: {dataset.summary()} (one split for every run)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    # Runs finished by an earlier, interrupted check of the same length are kept, not redone.
    done = json.loads(results_file.read_text()) if results_file.exists() and not args.fresh else {}
    results = {key: rows for key, rows in done.items() if len(rows) == args.epochs}
    ours = "ours" if args.kernels == "keras" else f"ours-{args.kernels}"
    for seed in args.seeds:
        for precision in args.precisions:
            for pipeline in (ours, "stock"):
                key = f"{pipeline} {precision} {seed}"
                if key in results:
                    print(f"# {key}: done in an earlier run ({results_file})", flush=True)
                    continue
                print(f"# {key} ({precisions[precision]})", flush=True)
                if pipeline == ours:
                    run_dir = args.out / f"{ours}-{precision}-seed{seed}"
                    results[key] = run_ours(dataset, args.data, precision, args.kernels, seed, args.epochs, run_dir)
                else:
                    results[key] = run_stock(dataset, precisions[precision], seed, args.epochs)
                results_file.write_text(json.dumps(results, indent=1))  # a crash keeps the runs done so far
    report = table(results, args.precisions, args.seeds, args.epochs, ours)
    (args.out / f"table-{ours}.md").write_text(report + "\n")
    print(f"\n{report}\n\n# {time.perf_counter() - started:.0f} s in all; results in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
