"""Ships a finished run's network as pretrained weights: float16 arrays in lib/resattn/weights/
and an entry in its manifest (resattn.models.pretrained), after measuring the stored weights on
the run's own validation images.

    python -m resattn.suite.export_weights RUN_DIR NAME [--data DESCRIPTION] [--split DESCRIPTION]

Half precision halves the file; the stored weights must give the run's validation accuracy
within 0.1 point, or nothing is written.
"""

import argparse
import json
import sys
from pathlib import Path

import keras

from resattn.models.pretrained import (
    MANIFEST,
    WEIGHTS_DIR,
    PretrainedWeights,
    read_arrays,
    read_manifest,
    sha256,
    write_weights,
)
from resattn.train.run_config import RunConfig

TOLERANCE = 0.001  # accuracy, as a fraction: 0.1 point


def export(run_dir, name, data, split, folder=WEIGHTS_DIR, echo=print):
    run_dir, folder = Path(run_dir), Path(folder)
    record = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics.get("status") != "completed":
        raise ValueError(f"{run_dir}: its run is {metrics.get('status')!r}, not completed")
    model = keras.saving.load_model(run_dir / "model.keras")
    dataset = RunConfig.from_mapping(record["config"]).load_data()
    y_val = keras.utils.to_categorical(dataset.y_val, dataset.num_classes)
    accuracy = model.evaluate(dataset.x_val, y_val, batch_size=500, verbose=0, return_dict=True)["accuracy"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.weights.npz"
    network = model.layers[-1]
    write_weights(network, path)
    stored = keras.saving.load_model(run_dir / "model.keras")
    stored.layers[-1].set_weights([w.astype("float32") for w in read_arrays(path)])
    stored_accuracy = stored.evaluate(dataset.x_val, y_val, batch_size=500, verbose=0, return_dict=True)["accuracy"]
    echo(
        f"{name}: validation accuracy {accuracy:.4f} with the run's weights, {stored_accuracy:.4f} stored in float16 "
        f"({path.stat().st_size / 1e6:.1f} MB)"
    )
    if abs(stored_accuracy - accuracy) >= TOLERANCE:
        path.unlink()
        raise ValueError(
            f"{name}: float16 storage moves the accuracy by {abs(stored_accuracy - accuracy) * 100:.2f} points"
        )
    model_options = {key: value for key, value in record["model"].items() if key != "name"}
    entry = PretrainedWeights(
        name=name,
        config=run_dir.name,
        network=model_options,
        preprocessing=record["recipe"]["preprocessing"],
        recipe=record["recipe_name"],
        data=data,
        split=split,
        epochs=metrics["epochs"],
        val_accuracy=round(float(accuracy), 4),
        stored_val_accuracy=round(float(stored_accuracy), 4),
        file=path.name,
        sha256=sha256(path),
        run_config={key: value for key, value in record["config"].items() if key != "data_dir"},
        folder=folder,
    )
    entries = {**read_manifest(folder), name: entry}
    (folder / MANIFEST).write_text(json.dumps([e.to_dict() for e in entries.values()], indent=1) + "\n")
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m resattn.suite.export_weights", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("name", help="e.g. seed_attention56.fast_cifar10jpeg")
    parser.add_argument("--data", default="CIFAR-10 training images re-encoded as JPEG q75 (../shared/data)")
    parser.add_argument("--split", default="40,000 to train, 10,000 held out (validation_split 0.2, seed 0)")
    args = parser.parse_args(argv)
    try:
        export(args.run_dir, args.name, args.data, args.split)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
