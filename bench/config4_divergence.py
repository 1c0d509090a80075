"""Why the seed's config 4 (its published Attention-92, the seed's spatial mask, Nesterov SGD at
0.1 from the first step) blows up in our pipeline: one suspect changed at a time, side by side
on the same real images and the same batches.

    python bench/config4_divergence.py [--data ../shared/data/cifar10-jpeg-train.tar.gz]
        [--limit 10000] [--epochs 3] [--steps 100] [--variants as_published,float32,...] [--seeds 0,1]
        [--out DIR]

Each variant trains `--epochs` epochs of `--steps` steps of 64 images of a `--limit`-image subset
(a fifth held out) through `resattn.train`, once per seed of `--seeds` (initial weights and batch
order), and the table gives each epoch's training loss and validation accuracy, and whether the
run ended as diverged. The stock variant
trains the same network the plain Keras way (host standardization, Keras's flip and shift
layers, Keras's SGD with L2 on the kernels) on the same batches. A benchmark, not a test.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from resattn.train.run_config import read_mapping

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "cifar10-jpeg-train.tar.gz"
# The seed's config 4 as published, on the real images.
CONFIG4 = {
    **read_mapping(ROOT / "params" / "seed4-cifar10-a92-seedspatial-arl-sgd-published.yaml"),
    "dataset": "image_folder",
}
# Each variant: the keys it changes from config 4 as published (float32, its params file says).
VARIANTS = {
    "as_published": {},
    "bfloat16": {"precision": "bfloat16"},  # what `auto` gave before the params file fixed float32
    "float32": {"precision": "float32"},  # as_published now; kept for the commands BENCHMARKS.md gives
    "float32_no_weight_decay": {"precision": "float32", "weight_decay": 0.0},
    "float32_mixed_mask": {"precision": "float32", "mask_activation": "mixed"},
    "float32_chained": {"precision": "float32", "wiring": "chained"},  # the chained twin as its params file says
    "bfloat16_chained": {"precision": "bfloat16", "wiring": "chained"},  # the chained twin under `auto` before
    "float32_lr_0.01": {"precision": "float32", "learning_rate": 0.01},
    # The plain Keras pipeline below, with the weight decay given.
    "stock_float32": {"stock": True, "weight_decay": 1e-4},
    "stock_float32_no_weight_decay": {"stock": True, "weight_decay": 0.0},
}


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=10_000, help="images of the archive to use (a fifth held out)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="steps of 64 images per epoch")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, one run of each variant per seed")
    parser.add_argument("--out", type=Path, default=Path("results/config4-divergence"))
    args = parser.parse_args(argv)
    args.variants = args.variants.split(",")
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        sys.exit(f"error: --seeds {args.seeds!r} is not valid; give comma-separated integers, e.g. 0,1,2")
    for name in args.variants:
        if name not in VARIANTS:
            sys.exit(f"error: --variants {name!r} is not valid; choose from {', '.join(VARIANTS)}")
    if not args.data.exists():
        sys.exit(f"error: --data {str(args.data)!r} does not exist; give the CIFAR-10 image-folder archive")
    return args


def run_ours(config, dataset, run_dir):
    from resattn.train.loop import train
    from resattn.train.run_folder import read_json

    metrics = train(config, run_dir, force=True, dataset=dataset, log=lambda line: print(f"  {line}", flush=True))
    history = read_json(Path(run_dir) / "state.json")["history"]
    return [{"loss": row["loss"], "val_accuracy": row["val_accuracy"]} for row in history], metrics["status"]


def run_stock(dataset, epochs, steps, weight_decay, seed):
    import keras
    import numpy as np

    from resattn.data.preprocessing import SEED_MEAN, SEED_SHIFT, SEED_STD
    from resattn.models.complexity import leaf_layers
    from resattn.models.networks import build_model
    from resattn.train.loop import fit_epochs

    keras.utils.set_random_seed(seed)
    network = build_model("seed", 92, mask_activation="seed_spatial", wiring="published")
    for layer in leaf_layers(network):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            # On the variable: a built layer's `kernel_regularizer` is read only when the kernel is made.
            layer.kernel.regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.RandomFlip("horizontal", seed=0),
            keras.layers.RandomTranslation(SEED_SHIFT, SEED_SHIFT, fill_mode="nearest", seed=1),
            network,
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        "categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    rows = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rows.append({"loss": float(logs["loss"]), "val_accuracy": float(logs["val_accuracy"])})
            print(
                f"  stock: epoch {epoch + 1}: loss {logs['loss']:.4f} val_accuracy {logs['val_accuracy']:.4f}",
                flush=True,
            )

    def standardized(images):
        return ((images.astype("float32") - np.float32(SEED_MEAN)) / np.float32(SEED_STD)).astype("float32")

    count = steps * 64
    fit_epochs(
        model,
        standardized(dataset.x_train[:count]),
        keras.utils.to_categorical(dataset.y_train[:count], 10),
        batch_size=64,
        epochs=epochs,
        seed=seed,
        callbacks=[Record()],
        validation=(standardized(dataset.x_val), keras.utils.to_categorical(dataset.y_val, 10)),
    )
    diverged = any(not np.isfinite(row["loss"]) or row["loss"] > 3 * np.log(10) for row in rows)
    return rows, "diverged" if diverged else "completed"


def main(argv=None):
    args = parse(argv)
    from resattn.train.run_config import RunConfig

    base = {
        **CONFIG4,
        "data_dir": str(args.data.resolve()),
        "limit": args.limit,
        "max_epochs": args.epochs,
        "max_steps_per_epoch": args.steps,
    }
    dataset = RunConfig.from_mapping(base).load_data()
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    runs = [(name, seed, f"{name}-seed{seed}") for name in args.variants for seed in args.seeds]
    for name, seed, key in runs:
        if key in results:
            continue
        print(f"{key}:", flush=True)
        started = time.perf_counter()
        if VARIANTS[name].get("stock"):
            rows, status = run_stock(dataset, args.epochs, args.steps, VARIANTS[name]["weight_decay"], seed)
        else:
            rows, status = run_ours({**base, **VARIANTS[name], "seed": seed}, dataset, args.out / key)
        results[key] = {"rows": rows, "status": status, "seconds": time.perf_counter() - started}
        results_file.write_text(json.dumps(results, indent=1))
    header = " | ".join(f"epoch {epoch + 1} loss / val acc" for epoch in range(args.epochs))
    print(f"\n| variant | seed | {header} | ended |\n|---|---|" + "---|" * (args.epochs + 1))
    for name, seed, key in runs:
        cells = [f"{row['loss']:.3f} / {row['val_accuracy']:.1%}" for row in results[key]["rows"]]
        cells += ["-"] * (args.epochs - len(cells))
        print(f"| {name} | {seed} | {' | '.join(cells)} | {results[key]['status']} |")


if __name__ == "__main__":
    main()
