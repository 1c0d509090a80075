"""One run: check its run config, load data, train with a recipe epoch by epoch, measure, save.
What it writes is listed in `run_files`; a run killed at any moment resumes from its last epoch."""

from pathlib import Path

import keras
import numpy as np

from resattn.data.datasets import load_dataset
from resattn.models.complexity import count_parameters
from resattn.train.epoch_recorder import EpochRecorder
from resattn.train.model import apply_weight_decay, new_training_model, restore_training_model
from resattn.train.recipes import check_device
from resattn.train.run_config import resolve_run_config
from resattn.train.run_files import ENDED, jsonable, read_json, save_model, write_json
from resattn.train.run_metrics import run_metrics, summary_line
from resattn.train.run_record import run_record


def train(raw_config, run_dir, force=False, log=print, dataset=None):
    """Trains one config into `run_dir`, resuming a killed run; returns the metrics dict.

    A finished run (completed, early stopped or diverged) is not retrained unless `force`.
    `dataset`: the config's data if the caller has loaded it already (`load_run_data`).
    """
    run_dir = Path(run_dir)
    resolved = resolve_run_config(raw_config)
    check_device()
    state = read_json(run_dir / "state.json")
    changed = bool(state) and state.get("config") != jsonable(raw_config)
    if state and state["status"] in ENDED and not force:
        metrics = read_json(run_dir / "metrics.json")
        if metrics and metrics["status"] == state["status"]:
            log(f"{run_dir}: already {state['status']} after {state['epoch']} epochs; pass force to retrain")
            return metrics
        if not changed:
            log(f"{run_dir}: {state['status']} after {state['epoch']} epochs, but its model and figures were not "
                f"written; writing them from {state['checkpoint']}")
    if force or changed:
        if state and not force:
            log(f"{run_dir}: the config changed since the last run; starting again")
        state = None
        for stale in run_dir.glob("checkpoint-*"):
            stale.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train(resolved, raw_config, run_dir, state, log, dataset)
    except Exception as error:
        write_json(run_dir / "metrics.json", {"status": "failed", "error": f"{type(error).__name__}: {error}"})
        raise


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
    apply_weight_decay(model, recipe.weight_decay)  # a regularizer is not saved with the model
    config = run_record(resolved, raw_config, model_options, dataset, epochs, steps)
    write_json(run_dir / "config.json", config)

    # Capped epochs train on the same fixed subset each epoch (the split is already shuffled):
    # Keras would carry its batch iterator over from one capped epoch to the next instead.
    x_train, y_train = dataset.x_train[: steps * recipe.batch_size], dataset.y_train[: steps * recipe.batch_size]
    y_train = keras.utils.to_categorical(y_train, dataset.num_classes)
    validation = None
    if len(dataset.x_val):
        validation = (dataset.x_val, keras.utils.to_categorical(dataset.y_val, dataset.num_classes))
    recorder = EpochRecorder(run_dir, state, recipe, epochs, log, recipe.learning_rate_schedule(train_size))
    if state["status"] == "running" and state["epoch"] < epochs:
        log(f"training {network.name}: {count_parameters(network)['total']:,} parameters, {epochs} epochs of "
            f"{steps} steps; {recipe.compute_precision()}, XLA {'on' if recipe.compiles_with_xla() else 'off'}")
        fit_epochs(model, x_train, y_train, batch_size=recipe.batch_size, epochs=epochs, seed=seed,
                   first_epoch=state["epoch"], validation=validation, callbacks=[recorder])
    if state["status"] == "running":
        state["status"] = "completed"
    recorder.save_state()
    if state["status"] != "diverged":
        save_model(model, run_dir / "model.keras")
    metrics = run_metrics(model, network, dataset, state, config)
    write_json(run_dir / "metrics.json", metrics)
    log(summary_line(metrics))
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
