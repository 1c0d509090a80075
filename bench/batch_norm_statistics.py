"""Whether a run's batch-norm moving statistics fit its weights: validation accuracy of one
checkpoint on its moving statistics, on each batch's own statistics, and on statistics
re-estimated over a few training batches, side by side; and how well the weights fit their own
training images.

    python bench/batch_norm_statistics.py RUN_DIR [--weights NAME] [--images 2000] [--batches 30] [--momentum 0.9]

A large gap between the first figure and the other two says the moving averages lag behind the
weights (docs/training.md, the fast recipe's `bn_momentum`). Uses the run's latest checkpoint, or
with --weights the shipped weights of that name (a committed run keeps no checkpoint), and the
run's own data; the batch-statistics figure runs the preprocessing in training mode, flips and
crops included. The training images are measured on the moving statistics without augmentation:
far below 100% says the network does not fit them (underfitting), whatever the validation figure.
"""

import argparse
import json
from pathlib import Path

import keras
import numpy as np

from resattn.models.batch_norm import BatchNormalization
from resattn.models.complexity import leaf_layers
from resattn.models.pretrained import load_weights
from resattn.train.model import new_training_model
from resattn.train.run_config import RunConfig
from resattn.train.run_folder import restore_checkpoint


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--weights", help="shipped weights to measure instead of the run's checkpoint")
    parser.add_argument("--images", type=int, default=2000, help="validation images to measure on")
    parser.add_argument("--batches", type=int, default=30, help="training batches to re-estimate over")
    parser.add_argument("--momentum", type=float, default=0.9, help="moving-average momentum while re-estimating")
    return parser.parse_args(argv)


def accuracy(model, images, labels, training, batch_size=250):
    predictions = [
        keras.ops.convert_to_numpy(model(images[start : start + batch_size], training=training))
        for start in range(0, len(images), batch_size)
    ]
    return float((np.concatenate(predictions).argmax(axis=1) == labels).mean())


def main(argv=None):
    args = parse(argv)
    state = json.loads((args.run_dir / "state.json").read_text())
    run_config = RunConfig.from_mapping(state["config"])
    seed, recipe = run_config.seed, run_config.recipe
    keras.utils.set_random_seed(seed)
    data = run_config.load_data()
    options = {**run_config.model, "num_classes": run_config.model["num_classes"] or data.num_classes}
    model = new_training_model(options, recipe, data.x_train, seed)
    if args.weights:
        load_weights(model.layers[-1], args.weights)
        source = f"weights {args.weights}"
    else:
        restore_checkpoint(model, args.run_dir / state["checkpoint"])
        source = f"epoch {state['epoch']}"
    images, labels = data.x_val[: args.images], data.y_val[: args.images]
    print(f"{args.run_dir.name}, {source}, {len(images)} validation images")
    print(f"  on the moving statistics:    {accuracy(model, images, labels, False):.2%}")
    seen, seen_labels = data.x_train[: args.images], data.y_train[: args.images]
    print(f"  its training images, as above: {accuracy(model, seen, seen_labels, False):.2%}")
    print(f"  on each batch's statistics:  {accuracy(model, images, labels, True):.2%}")
    for layer in leaf_layers(model):
        if isinstance(layer, BatchNormalization):
            layer.momentum = args.momentum
    for start in range(0, args.batches * recipe.batch_size, recipe.batch_size):
        model(data.x_train[start : start + recipe.batch_size], training=True)  # updates the moving statistics only
    print(
        f"  re-estimated ({args.batches} batches at momentum {args.momentum}): "
        f"{accuracy(model, images, labels, False):.2%}"
    )


if __name__ == "__main__":
    main()
