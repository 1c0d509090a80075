"""One run, top to bottom: check its config, take its folder, decide whether it starts, resumes
or is done, load the data, build or restore the model, train epoch by epoch, measure, save.
What it writes is listed in `run_folder`; a run killed at any moment resumes from its last epoch."""

from dataclasses import replace

import keras
import numpy as np

from resattn.data.datasets import cache_dir
from resattn.models.complexity import count_parameters
from resattn.train.devices import check_device, keep_compiled_steps, run_ops_one_at_a_time
from resattn.train.epoch_recorder import EpochRecorder, StepProgress
from resattn.train.model import apply_weight_decay, new_training_model
from resattn.train.run_config import RunConfig
from resattn.train.run_folder import RunFolder, jsonable, plan_run, restore_checkpoint, save_model
from resattn.train.run_metrics import run_metrics, summary_line
from resattn.train.run_record import record_start, run_record


def train(raw_config, run_dir, force=False, log=print, dataset=None):
    """Trains one config into `run_dir`, resuming a killed run; returns the metrics dict.

    A finished run is served as it is unless `force`; a folder that holds another run (another
    network, recipe, data content, seed...) has that run moved aside into `replaced/` first.
    `dataset`: the config's data if the caller has loaded it already (`RunConfig.load_data`).
    """
    config = RunConfig.from_mapping(raw_config)  # a bad key or value stops here, before any data is read
    check_device()
    run_ops_one_at_a_time(log)
    keep_compiled_steps(cache_dir() / "jax")
    folder = RunFolder(run_dir)
    with folder.lock():
        plan = plan_run(folder, config, force)
        if plan.reason:
            log(plan.reason)
        if plan.action == "serve":
            return folder.metrics()
        if plan.action == "replace":
            moved = folder.move_aside()
            if moved:
                log(f"the previous run's files are in {moved}")
        try:
            return _run(config, folder, log, dataset)
        except Exception as error:
            folder.write_json("metrics.json", {"status": "failed", "error": f"{type(error).__name__}: {error}"})
            raise


def _run(config, folder, log, dataset):
    keras.utils.set_random_seed(config.seed)
    state = folder.state() or {
        "epoch": 0,
        "status": "running",
        "history": [],
        "checkpoint": None,
        "early_stopping": {"best": None, "wait": 0},
    }
    # A resumed run keeps the precision it started with, whatever this machine's `auto` would pick,
    # and its kernels, whatever the recipe now says (a run started before they were kept here has
    # them in its identity).
    execution = state.setdefault("execution", {})
    precision = execution.setdefault("precision", config.recipe.compute_precision())
    started = state.get("identity", {}).get("recipe.kernels", config.recipe.kernels)
    kernels = execution.setdefault("kernels", started)
    recipe = replace(config.recipe, precision=precision, kernels=kernels)
    state.update(identity=jsonable(config.identity()), config=jsonable(config.raw))  # moved data: where it is now

    # Data
    if dataset is None:
        dataset = config.load_data()
    log(f"data: {dataset.summary()}")
    model_options = {**config.model, "num_classes": config.model["num_classes"] or dataset.num_classes}
    if model_options["num_classes"] != dataset.num_classes:
        raise ValueError(
            f"num_classes={model_options['num_classes']} but {dataset.name} has {dataset.num_classes} classes"
        )
    train_size = len(dataset.x_train)
    epochs, steps = recipe.epochs_for(train_size), recipe.steps_per_epoch(train_size)
    # Capped epochs train on the same fixed subset each epoch (the split is already shuffled):
    # Keras would carry its batch iterator over from one capped epoch to the next instead.
    x_train = dataset.x_train[: steps * recipe.batch_size]
    y_train = keras.utils.to_categorical(dataset.y_train[: steps * recipe.batch_size], dataset.num_classes)
    validation = None
    if len(dataset.x_val):
        validation = (dataset.x_val, keras.utils.to_categorical(dataset.y_val, dataset.num_classes))

    # Model: new, or restored from the last checkpoint with its optimizer's step and slots
    model = new_training_model(model_options, recipe, dataset.x_train, config.seed)
    if state["checkpoint"]:
        restore_checkpoint(model, folder.path / state["checkpoint"])
        log(
            f"resuming from epoch {state['epoch']} ({state['checkpoint']}): {type(model.optimizer).__name__} at "
            f"step {int(model.optimizer.iterations)}, {recipe.compute_precision()}, {recipe.kernels} kernels"
        )
    network = model.layers[-1]
    apply_weight_decay(model, recipe.weight_decay)  # a regularizer is not saved with the model
    record = run_record(config, recipe, model_options, dataset, epochs, steps)
    folder.write_json("config.json", record_start(record, folder.record(), state["epoch"]))

    # Training, one epoch at a time; the recorder checkpoints after each
    recorder = EpochRecorder(folder, state, recipe, epochs, log, recipe.learning_rate_schedule(train_size))
    if state["status"] == "running" and state["epoch"] < epochs:
        log(
            f"training {network.name}: {count_parameters(network)['total']:,} parameters, {epochs} epochs of "
            f"{steps} steps; {recipe.compute_precision()}, XLA {'on' if recipe.compiles_with_xla() else 'off'}"
        )
        fit_epochs(
            model,
            x_train,
            y_train,
            batch_size=recipe.batch_size,
            epochs=epochs,
            seed=config.seed,
            first_epoch=state["epoch"],
            validation=validation,
            callbacks=[recorder, StepProgress(epochs, log)],
        )
    if state["status"] == "running":
        state["status"] = "completed"
    recorder.save_state()

    # Outputs
    if state["status"] != "diverged":
        save_model(model, folder.path / "model.keras")
    metrics = run_metrics(model, network, dataset, state, record)
    folder.write_json("metrics.json", metrics)
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
        model.fit(
            x[order],
            y[order],
            batch_size=batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            validation_data=validation,
            shuffle=False,
            verbose=0,
            callbacks=list(callbacks),
        )
        if model.stop_training:
            break
