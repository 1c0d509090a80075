"""One run: resolve and check a config, load data, train with a recipe, measure, save.

A run directory holds, each written atomically:
  config.json   the resolved config, versions, device, seed
  history.csv   one row per epoch
  metrics.json  the run's figures and status
  model.keras   the trained model (preprocessing included: it takes uint8 images)
  state.json and checkpoint-NNNN.keras   what a killed run resumes from
"""

import csv
import io
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from resattn.complexity import count_multiply_adds, count_parameters, leaf_layers
from resattn.data import CIFAR, check_data_options, load_dataset
from resattn.networks import KEYWORDS as MODEL_KEYS
from resattn.networks import build_model, resolve_config
from resattn.preprocessing import training_model
from resattn.recipes import FIELDS as RECIPE_KEYS
from resattn.recipes import check_device, resolve_recipe

DATA_DEFAULTS = {
    "dataset": "synthetic",
    "data_dir": None,
    "validation_split": 0.2,
    "label_noise": 0.0,
    "image_size": 32,
    "limit": None,
    "synthetic_size": 2000,
    "synthetic_classes": 10,
}
RUN_KEYS = ("recipe", "seed")
CONFIG_KEYS = RUN_KEYS + tuple(DATA_DEFAULTS) + tuple(k for k in MODEL_KEYS if k != "input_shape") + RECIPE_KEYS
# A run's status in state.json and metrics.json: "running" while it trains, then one of ENDED.
SUCCEEDED = ("completed", "early_stopped")  # ended with figures that count
ENDED = (*SUCCEEDED, "diverged")  # trains no more unless forced
# warmup: 1 for the first epoch a process trains, whose seconds include tracing and compiling.
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "warmup")


def resolve_run_config(raw):
    """Checks a flat run config (the keys of a params file) and returns it in three parts:
    {"seed", "recipe_name", "data": {...}, "model": {...}, "recipe": Recipe}. Every bad key or
    value raises ValueError naming it, before any data is read."""
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(CONFIG_KEYS)}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; it must be an integer >= 0")
    data = {key: raw.get(key, default) for key, default in DATA_DEFAULTS.items()}
    check_data_options(
        data["dataset"], data["data_dir"], data["validation_split"], data["label_noise"], data["image_size"],
        data["limit"], data["synthetic_classes"],
    )
    if data["dataset"] in CIFAR and data["image_size"] != 32:
        raise ValueError(f"image_size={data['image_size']!r} is not valid for {data['dataset']}; CIFAR images are 32")
    model = {key: raw[key] for key in MODEL_KEYS if key in raw and key != "input_shape"}
    model.setdefault("num_classes", _classes_known_before_loading(data))
    model["input_shape"] = (data["image_size"], data["image_size"], 3)
    resolve_config(**model)
    recipe_name = raw.get("recipe", "seed_adam")
    recipe = resolve_recipe(recipe_name, **{key: raw[key] for key in RECIPE_KEYS if key in raw})
    return {"seed": seed, "recipe_name": recipe_name, "data": data, "model": model, "recipe": recipe}


def _classes_known_before_loading(data):
    if data["dataset"] in CIFAR:
        return CIFAR[data["dataset"]].classes
    if data["dataset"] == "image_folder":
        return None  # counted from the folder once it is read
    return data["synthetic_classes"]


def train(raw_config, run_dir, force=False, log=print, dataset=None):
    """Trains one config into `run_dir`, resuming a killed run; returns the metrics dict.

    A finished run (completed, early stopped or diverged) is not retrained unless `force`.
    `dataset`: the config's data if the caller has loaded it already (`load_run_data`).
    """
    run_dir = Path(run_dir)
    resolved = resolve_run_config(raw_config)
    check_device()
    state = read_json(run_dir / "state.json")
    if state and state["status"] in ENDED and not force:
        log(f"{run_dir}: already {state['status']} after {state['epoch']} epochs; pass force to retrain")
        return read_json(run_dir / "metrics.json")
    if force or (state and state.get("config") != jsonable(raw_config)):
        if state and not force:
            log(f"{run_dir}: the config changed since the last run; starting again")
        state = None
        for stale in run_dir.glob("checkpoint-*.keras"):
            stale.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train(resolved, raw_config, run_dir, state, log, dataset)
    except Exception as error:
        _write_json(run_dir / "metrics.json", {"status": "failed", "error": f"{type(error).__name__}: {error}"})
        raise


def load_run_data(raw_config):
    """The dataset a config trains and tests on, split and noised as its run does."""
    resolved = resolve_run_config(raw_config)
    return load_dataset(**resolved["data"], seed=resolved["seed"])


def _train(resolved, raw_config, run_dir, state, log, dataset):
    seed, recipe = resolved["seed"], resolved["recipe"]
    keras.utils.set_random_seed(seed)
    if dataset is None:
        dataset = load_dataset(**resolved["data"], seed=seed)
    model_options = {**resolved["model"], "num_classes": resolved["model"]["num_classes"] or dataset.num_classes}
    if model_options["num_classes"] != dataset.num_classes:
        raise ValueError(f"num_classes={model_options['num_classes']} but {dataset.name} has {dataset.num_classes} classes")
    log(f"data: {dataset.summary()}")
    train_size = len(dataset.x_train)
    epochs = recipe.epochs_for(train_size)
    steps = recipe.steps_per_epoch(train_size)
    if state:
        checkpoint = run_dir / state["checkpoint"]
        model = restore_training_model(model_options, recipe, dataset.x_train, seed, checkpoint)
        log(f"resuming from epoch {state['epoch']} ({checkpoint.name}): {type(model.optimizer).__name__} at step "
            f"{int(model.optimizer.iterations)}")
    else:
        model = new_training_model(model_options, recipe, dataset.x_train, seed)
        state = {"config": jsonable(raw_config), "epoch": 0, "status": "running", "history": [], "checkpoint": None}
        state["early_stopping"] = {"best": None, "wait": 0}
    network = model.layers[-1]
    _apply_weight_decay(model, recipe.weight_decay)  # a regularizer is not saved with the model
    config = _run_record(resolved, raw_config, model_options, dataset, epochs, steps)
    _write_json(run_dir / "config.json", config)

    # Capped epochs train on the same fixed subset each epoch (the split is already shuffled):
    # Keras would carry its batch iterator over from one capped epoch to the next instead.
    x_train, y_train = dataset.x_train[: steps * recipe.batch_size], dataset.y_train[: steps * recipe.batch_size]
    y_train = keras.utils.to_categorical(y_train, dataset.num_classes)
    validation = None
    if len(dataset.x_val):
        validation = (dataset.x_val, keras.utils.to_categorical(dataset.y_val, dataset.num_classes))
    recorder = EpochRecorder(run_dir, state, recipe, epochs, log, recipe.learning_rate_schedule(train_size))
    if state["epoch"] < epochs:
        log(f"training {network.name}: {count_parameters(network)['total']:,} parameters, {epochs} epochs of "
            f"{steps} steps; {recipe.compute_precision()}, XLA {'on' if recipe.compiles_with_xla() else 'off'}")
        fit_epochs(model, x_train, y_train, batch_size=recipe.batch_size, epochs=epochs, seed=seed,
                   first_epoch=state["epoch"], validation=validation, callbacks=[recorder])
    if state["status"] == "running":
        state["status"] = "completed"
    recorder.save_state()
    if state["status"] != "diverged":
        # The last checkpoint holds this very model and optimizer state: copying it is faster than saving.
        _atomic_write(run_dir / "model.keras", lambda temporary: shutil.copyfile(run_dir / state["checkpoint"], temporary))
    metrics = _metrics(model, network, dataset, state, config)
    _write_json(run_dir / "metrics.json", metrics)
    log(_summary_line(metrics))
    return metrics


def epoch_order(seed, epoch, size):
    """The order in which epoch `epoch` (from 0) visits the training images: a function of the
    run's seed and the epoch alone, so a resumed run sees the batches an uninterrupted one would."""
    return np.random.default_rng([seed, epoch]).permutation(size)


def fit_epochs(model, x, y, *, batch_size, epochs, seed, first_epoch=0, validation=None, callbacks=()):
    """`model.fit` one epoch at a time on the images in `epoch_order`, until `epochs` or until a
    callback sets `model.stop_training` (each `fit` clears it when it starts).
    Departure from `fit(shuffle=True)`: on TensorFlow, after `keras.utils.set_random_seed`, that
    visits the images in the same order every epoch (Keras 3.15); the seed's tf.keras reshuffled."""
    for epoch in range(first_epoch, epochs):
        order = epoch_order(seed, epoch, len(x))
        model.fit(x[order], y[order], batch_size=batch_size, epochs=epoch + 1, initial_epoch=epoch,
                  validation_data=validation, shuffle=False, verbose=0, callbacks=list(callbacks))
        if model.stop_training:
            break


def new_training_model(model_options, recipe, x_train, seed, augment=True):
    """The network behind its preprocessing, compiled with the recipe's optimizer, ready to fit
    `x_train` (uint8 images); `augment=False` leaves out the random flip and shift."""
    policy, precision = keras.mixed_precision.global_policy(), recipe.compute_precision()
    if precision != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{precision}")
    try:
        network = build_model(**model_options)
        model = training_model(network, recipe.preprocessing, x_train, seed, augment)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    model.compile(
        optimizer=recipe.make_optimizer(len(x_train)),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=recipe.compiles_with_xla(),  # saved with the model
        run_eagerly=recipe.run_eagerly,
        steps_per_execution=recipe.execution_steps(),
    )
    build_training_state(model, x_train)
    return model


def restore_training_model(model_options, recipe, x_train, seed, checkpoint):
    """A checkpoint's model and optimizer state (step, slots, loss scale) in a model compiled
    as a new run's is: `load_model` restores a float16 run's optimizer without its loss-scale
    wrapper, and so without its step and momentum."""
    model = new_training_model(model_options, recipe, x_train, seed)
    model.load_weights(checkpoint)
    return model


def build_training_state(model, x_train):
    """Makes the optimizer's slots and the metrics' variables now: made inside the first traced
    step, they make TensorFlow trace that step a second time (Keras 3 defers the metrics on
    TensorFlow), which doubled the warm-up. `_symbolic_build` is what Keras runs itself under a
    distribution strategy; it computes nothing."""
    model.optimizer.build(model.trainable_variables)
    classes = model.output_shape[-1]
    model._symbolic_build(data_batch=(x_train[:1], np.zeros((1, classes), "float32")))


class EpochRecorder(keras.callbacks.Callback):
    """After every epoch: one progress line, a checkpoint, the state and the history, written
    atomically in that order, so a run killed at any moment resumes from its last whole epoch.
    Also applies early stopping (its counters live in the state) and stops on a NaN loss."""

    def __init__(self, run_dir, state, recipe, epochs, log, learning_rate=None):
        super().__init__()
        self.run_dir, self.state, self.recipe, self.epochs, self.log = run_dir, state, recipe, epochs, log
        self.learning_rate = recipe.learning_rate if learning_rate is None else learning_rate
        self.warmup = True

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        row = {"epoch": epoch + 1, **{key: logs.get(key, math.nan) for key in HISTORY_COLUMNS[1:5]}}
        row["learning_rate"] = self._rate_of_the_last_update()
        row["seconds"] = time.perf_counter() - self.started
        row["warmup"], self.warmup = int(self.warmup), False
        self.state["history"].append(row)
        self.state["epoch"] = epoch + 1
        self.log(_progress_line(row, self.epochs))
        if not _finite(row["loss"]):
            self.state["status"] = "diverged"
            self.log(f"loss is {row['loss']}: the run diverged; stopping")
            self.model.stop_training = True
        elif self._should_stop_early(row):
            self.state["status"] = "early_stopped"
            self.model.stop_training = True
        self.save_checkpoint()

    def _rate_of_the_last_update(self):
        """The epoch's rate: the optimizer's own rate now is the next update's, the next epoch's."""
        if not callable(self.learning_rate):
            return float(self.learning_rate)
        step = max(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) - 1, 0)
        return float(keras.ops.convert_to_numpy(self.learning_rate(step)))

    def _should_stop_early(self, row):
        patience = self.recipe.early_stopping_patience
        value = row.get(self.recipe.early_stopping_monitor)
        if patience is None or not _finite(value):
            return False
        stopping = self.state["early_stopping"]
        if stopping["best"] is None or value > stopping["best"]:
            stopping["best"], stopping["wait"] = value, 0
        else:
            stopping["wait"] += 1
        if stopping["wait"] >= patience:
            self.log(f"early stopping: {self.recipe.early_stopping_monitor} has not improved for {patience} epochs")
            return True
        return False

    def save_checkpoint(self):
        previous = self.state["checkpoint"]
        name = f"checkpoint-{self.state['epoch']:04d}.keras"
        _save_model(self.model, self.run_dir / name)
        self.state["checkpoint"] = name
        self.save_state()
        if previous and previous != name:
            (self.run_dir / previous).unlink(missing_ok=True)

    def save_state(self):
        _write_json(self.run_dir / "state.json", self.state)
        _write_history(self.run_dir / "history.csv", self.state["history"])


def _apply_weight_decay(model, weight_decay):
    """Adds weight_decay * w to the gradient of every conv and dense kernel, as an L2 penalty."""
    if not weight_decay:
        return
    for layer in leaf_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            layer.kernel.regularizer = keras.regularizers.L2(weight_decay / 2)


def _metrics(model, network, dataset, state, config):
    history = state["history"]
    seconds = [row["seconds"] for row in history]
    val = [row["val_accuracy"] for row in history if _finite(row["val_accuracy"])]
    steady = [row["seconds"] for row in history if not row.get("warmup")] or seconds
    mean_seconds = float(np.mean(steady)) if steady else math.nan
    steps = config["steps_per_epoch"]
    images_per_epoch = min(len(dataset.x_train), steps * config["recipe"]["batch_size"])
    metrics = {
        "status": state["status"],
        "epochs": state["epoch"],
        "best_val_accuracy": max(val) if val else None,
        "final_val_accuracy": val[-1] if val else None,
        "test_loss": None,
        "test_accuracy": None,
        # The seed's measure, the mean over epochs after the first, and after a resume's first too.
        "seconds_per_epoch": mean_seconds,
        "images_per_second": images_per_epoch / mean_seconds if mean_seconds else None,
        "parameters": count_parameters(network),
        "multiply_adds": count_multiply_adds(network),
    }
    if dataset.x_test is not None and state["status"] != "diverged":
        y_test = keras.utils.to_categorical(dataset.y_test, dataset.num_classes)
        loss, accuracy = model.evaluate(dataset.x_test, y_test, batch_size=256, verbose=0)
        metrics["test_loss"], metrics["test_accuracy"] = float(loss), float(accuracy)
    return metrics


def _run_record(resolved, raw_config, model_options, dataset, epochs, steps):
    return {
        "config": jsonable(raw_config),
        "seed": resolved["seed"],
        "recipe_name": resolved["recipe_name"],
        "recipe": resolved["recipe"].to_dict(),
        # What the recipe's "auto" settings resolved to on this machine.
        "execution": {"precision": resolved["recipe"].compute_precision(), "xla": resolved["recipe"].compiles_with_xla(),
                      "steps_per_execution": resolved["recipe"].execution_steps()},
        "data": {**resolved["data"], "classes": dataset.class_names, "train_size": len(dataset.x_train),
                 "val_size": len(dataset.x_val), "noisy_labels": dataset.noisy_labels},
        "model": jsonable(resolve_config(**model_options)),
        "epochs": epochs,
        "steps_per_epoch": steps,
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "backend_version": backend_version(),
            "numpy": np.__version__,
        },
        "device": _device(),
        "command": " ".join(sys.argv),
    }


def backend_version():
    """The version of the package behind Keras's backend."""
    backend = keras.backend.backend()
    module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend))
    return getattr(module, "__version__", "unknown")


def _device():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices()]
    return [platform.processor() or platform.machine()]


def _progress_line(row, epochs):
    figures = "  ".join(f"{key} {_figure(row[key])}" for key in HISTORY_COLUMNS[1:5])
    return f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  {figures}  lr {row['learning_rate']:.3g}  {row['seconds']:.1f} s"


def _figure(value):
    return f"{value:.4f}" if _finite(value) else "n/a"


def _finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def _summary_line(metrics):
    return (
        f"{metrics['status']} after {metrics['epochs']} epochs: best val_accuracy {_figure(metrics['best_val_accuracy'])}"
        f", test accuracy {_figure(metrics['test_accuracy'])}, {_figure(metrics['seconds_per_epoch'])} s per epoch"
        " (mean after the first)"
    )


# --- atomic files ----------------------------------------------------------------------------


def _atomic_write(path, write):
    """Writes through a temporary file in the same folder and renames it over `path`."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    write(temporary)
    os.replace(temporary, path)


def _write_json(path, value):
    def write(temporary):
        temporary.write_text(json.dumps(jsonable(value), indent=2, allow_nan=False) + "\n")

    _atomic_write(path, write)


def _write_history(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, lambda temporary: temporary.write_text(buffer.getvalue()))


def _save_model(model, path):
    _atomic_write(path, lambda temporary: model.save(temporary))


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def jsonable(value):
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN: a missing or diverged figure is null
    if isinstance(value, Path):
        return str(value)
    return value
