"""The training engine: a short run learns and saves everything, the same seed repeats it, a
SIGKILLed run resumes, a NaN ends the run, bad configs stop before any data is read."""

import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from resattn.data.datasets import load_dataset
from resattn.train.epoch_recorder import EpochRecorder, StepProgress
from resattn.train.loop import epoch_order, fit_epochs, train
from resattn.train.model import apply_weight_decay, new_training_model
from resattn.train.recipes import resolve_recipe
from resattn.train.run_config import RunConfig
from resattn.train.run_folder import RunFolder
from resattn.train.run_metrics import flip_accuracy

# A 56-layer paper network on 16x16 synthetic images: small enough for CPU tests.
QUICK = {
    "dataset": "synthetic",
    "synthetic_size": 600,
    "image_size": 16,
    "family": "paper",
    "depth": 56,
    "recipe": "seed_adam",
    "max_epochs": 3,
    "seed": 5,
}
RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras", "state.json")
QUIET = {"log": lambda line: None}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    return run_dir, train(QUICK, run_dir, **QUIET)


def tensorboard_scalars(run_dir):
    """{tag: [(step, value), ...]} from every event file of a run, read with TensorBoard's own loader."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    scalars = {}
    for path in sorted((Path(run_dir) / "tensorboard").glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return {tag: sorted(points) for tag, points in scalars.items()}


def history(run_dir):
    with open(Path(run_dir) / "history.csv") as file:
        return list(csv.DictReader(file))


def test_short_run_learns_and_writes_every_file(reference_run):
    run_dir, metrics = reference_run
    assert all((run_dir / name).is_file() for name in RUN_FILES)
    assert metrics["status"] == "completed" and metrics["epochs"] == 3
    assert metrics["best_val_accuracy"] > 0.6 and metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert metrics["parameters"]["total"] > 1_000_000 and metrics["multiply_adds"] > 0
    assert metrics["seconds_per_epoch"] > 0 and metrics["images_per_second"] > 0
    rows = history(run_dir)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert list(rows[0]) == [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "seconds",
        "warmup",
    ]
    assert [row["warmup"] for row in rows] == ["1", "0", "0"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seed"] == 5 and config["versions"]["keras"] == keras.__version__ and config["device"]
    assert config["recipe"]["batch_size"] == 64 and config["data"]["train_size"] == 480
    assert config["node"] == platform.node()  # not started by the grid: this host
    assert [step for step, _ in tensorboard_scalars(run_dir)["accuracy/validation"]] == [1, 2, 3]


def test_saved_model_loads_in_safe_mode_and_reproduces_the_test_accuracy(reference_run):
    run_dir, metrics = reference_run
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    data = load_dataset("synthetic", synthetic_size=600, image_size=16, seed=5)
    predictions = model.predict(data.x_test, verbose=0).argmax(axis=1)
    assert np.mean(predictions == data.y_test) == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_flip_test_time_augmentation_is_reported_beside_the_plain_accuracy(reference_run):
    run_dir, metrics = reference_run
    assert metrics["test_accuracy_flip"] > 0.6 and metrics["val_accuracy_flip"] > 0.6
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    data = load_dataset("synthetic", synthetic_size=600, image_size=16, seed=5)
    mirrored = ((data.x_test.astype(np.uint16) + data.x_test[:, :, ::-1]) // 2).astype(np.uint8)
    plain = np.mean(model.predict(mirrored, verbose=0).argmax(axis=1) == data.y_test)
    assert flip_accuracy(model, mirrored, data.y_test) == pytest.approx(plain)  # symmetric images: no change
    assert flip_accuracy(model, data.x_test, data.y_test) == pytest.approx(metrics["test_accuracy_flip"])


def test_a_saved_run_loads_after_import_resattn_alone(reference_run):
    # A fresh interpreter: in this one the tests have imported every module already.
    run_dir, _ = reference_run
    load = f"import keras, resattn; keras.saving.load_model({str(run_dir / 'model.keras')!r}); print('loaded')"
    done = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "loaded", done.stderr[-2000:]


def test_finished_run_is_not_retrained(reference_run):
    run_dir, metrics = reference_run
    saved = (run_dir / "model.keras").stat().st_mtime_ns
    lines = []
    assert train(QUICK, run_dir, log=lines.append) == metrics
    assert "already completed" in lines[0] and (run_dir / "model.keras").stat().st_mtime_ns == saved


def start_run(run_dir, **change):
    args = [f"{key}={value}" for key, value in {**QUICK, **change}.items()]
    return subprocess.Popen(
        [sys.executable, "-m", "resattn.train", *args, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigkilled_run_resumes_from_its_last_epoch_and_trains_as_if_never_stopped(reference_run, tmp_path):
    """Same seed, same result, in another process and across a SIGKILL: the resumed epochs draw
    the batches and the augmentation an uninterrupted run does (`.keras` checkpoints lost the
    flips' random state). (A plain rerun in a second process is the epochs before the kill.)
    This run makes three steps a call (the last of an epoch's eight, two), as the GPU's default
    of 32 would, and the reference run one: steps per call change no figure."""
    process = start_run(tmp_path, steps_per_execution=3)
    state_file = tmp_path / "state.json"
    deadline = time.monotonic() + 600
    while not (state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state_file.read_text())["epoch"]
    assert 1 <= killed_at < 3 and not (tmp_path / "metrics.json").exists()

    resumed = start_run(tmp_path, steps_per_execution=3)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert f"resuming from epoch {killed_at}" in output
    assert [int(row["epoch"]) for row in history(tmp_path)] == [1, 2, 3]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 3
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-0003.npz"]
    assert json.loads((tmp_path / "config.json").read_text())["execution"]["steps_per_execution"] == 3
    columns = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
    assert [[row[key] for key in columns] for row in history(tmp_path)] == [
        [row[key] for key in columns] for row in history(reference_run[0])
    ]


def test_a_run_killed_after_its_last_epoch_writes_its_model_and_figures_without_training(reference_run, tmp_path):
    """state.json says completed, but the process died before model.keras and metrics.json."""
    run_dir, metrics = reference_run
    shutil.copytree(run_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "metrics.json").unlink()
    (tmp_path / "model.keras").unlink()
    lines = []
    assert train(QUICK, tmp_path, log=lines.append) == metrics
    assert "completed after 3 epochs, but its model and figures were not written" in lines[0]
    assert not any(line.startswith(("epoch ", "training ")) for line in lines)
    assert (tmp_path / "model.keras").is_file()


def test_a_run_that_crashed_in_epoch_2_resumes_with_each_epochs_own_rate_and_time(tmp_path):
    """The rate logged for an epoch is the one it trained at (the drop after epoch 2 shows in
    epoch 3, not 2), and seconds per epoch leave out each process's first epoch (tracing)."""
    config = {**QUICK, "recipe": "seed_sgd", "lr_drops": [2], "steps_per_execution": 3}

    def crash_in_epoch_2(line):
        if line.startswith("epoch 2/"):
            raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError, match="went away"):
        train(config, tmp_path, log=crash_in_epoch_2)
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 1
    lines = []
    metrics = train(config, tmp_path, log=lines.append)
    rows = history(tmp_path)
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx([0.1, 0.1, 0.01])
    assert any(line.startswith("resuming from epoch 1 (checkpoint-0001.npz): FusedSGD at step 8") for line in lines)
    assert [row["warmup"] for row in rows] == ["1", "1", "0"]  # epoch 2 was the resumed process's first
    assert metrics["status"] == "completed" and metrics["seconds_per_epoch"] == pytest.approx(float(rows[2]["seconds"]))
    # TensorBoard, over both processes' event files: each epoch once, with the rate it trained at.
    scalars = tensorboard_scalars(tmp_path)
    assert [step for step, _ in scalars["learning_rate"]] == [1, 2, 3]
    assert [value for _, value in scalars["learning_rate"]] == pytest.approx([0.1, 0.1, 0.01])
    assert [value for _, value in scalars["loss/training"]] == pytest.approx([float(row["loss"]) for row in rows])


def test_nan_loss_ends_the_run_as_diverged(tmp_path):
    config = {**QUICK, "recipe": "seed_sgd", "learning_rate": 1e30}
    metrics = train(config, tmp_path, **QUIET)
    assert metrics["status"] == "diverged" and metrics["epochs"] == 1
    assert json.loads((tmp_path / "state.json").read_text())["status"] == "diverged"


def test_a_loss_far_above_chance_ends_the_run_as_diverged_the_initial_weight_penalty_aside(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(10, kernel_initializer="ones")(inputs))
    apply_weight_decay(model, 2.0)  # a penalty of 40 in Keras's loss: sum of 40 squared ones, times 1
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    chance = np.log(10)  # the bound is 3 ln 10 = 6.91

    def status(loss, kernel_after=1.0):
        model.layers[-1].kernel.assign(np.ones((4, 10), "float32"))
        state = {"epoch": 0, "status": "running", "history": [], "checkpoint": None, "early_stopping": {}}
        recorder = EpochRecorder(RunFolder(tmp_path), state, resolve_recipe("seed_adam"), 3, lambda line: None)
        recorder.set_model(model)
        recorder.on_train_begin()
        recorder.on_epoch_begin(0)
        model.layers[-1].kernel.assign(np.full((4, 10), kernel_after, "float32"))
        recorder.on_epoch_end(0, {"loss": loss})
        assert state["initial_penalty"] == pytest.approx(40)
        return state["status"]

    assert status(40 + 3 * chance - 0.01) == "running"
    assert status(40 + 3 * chance + 0.01) == "diverged"
    assert status(450_005.0) == "diverged" and status(float("inf")) == "diverged"
    # Weights blown up tenfold: a penalty of 4,000 now, yet the penalty it started with is what counts.
    assert status(4_000 + 2.3, kernel_after=10.0) == "diverged"
    assert status(1.0, kernel_after=0.1) == "running"  # decayed weights, a low loss


def test_a_long_epoch_says_where_it_is_between_its_epoch_lines():
    """Every line names the step, the epoch's loss so far and the time left; the epoch's last
    step leaves it to the epoch's own line."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = np.ones((20, 4), "float32"), keras.utils.to_categorical(np.arange(20) % 2, 2)
    lines = []
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[StepProgress(2, lines.append, every=0.0)])
    assert [line.split("  ")[:2] for line in lines] == [
        [f"epoch {epoch}/2", f"step {step}/5"] for epoch in (1, 2) for step in (1, 2, 3, 4)
    ]
    assert all(
        " loss " in f" {line} " and "accuracy" in line and line.endswith("min to the epoch's end") for line in lines
    )
    quiet = []
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[StepProgress(1, quiet.append)])
    assert quiet == []  # an epoch shorter than a minute


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"depth": 57}, r"depth=57 .*\(56, 92, 128, 164, 236, 452\)"),
        ({"learning_rte": 0.1}, r"unknown config key 'learning_rte'; valid keys: recipe, seed, dataset"),
        ({"recipe": "sgd"}, r"recipe='sgd' .*\('seed_adam', 'seed_sgd', 'paper', 'fast'\)"),
        ({"warmup_epochs": -1}, r"warmup_epochs=-1 .*integer >= 0"),
        (
            {"early_stopping_monitor": "val_accuracy", "early_stopping_patience": 3, "validation_split": 0.0},
            r"early_stopping_monitor='val_accuracy' is not valid with validation_split=0 .*never stop",
        ),
        ({"batch_size": 0}, r"batch_size=0 .*integer >= 1"),
        ({"early_stopping_monitor": "loss"}, r"early_stopping_monitor='loss' .*\('accuracy', 'val_accuracy'\)"),
        ({"precision": "fp8"}, r"precision='fp8' .*'float32', 'bfloat16', 'float16'"),
        ({"dataset": "cifar10", "image_size": 16}, r"image_size=16 .*CIFAR images are 32"),
        ({"mechanism": "both"}, r"mechanism='both' .*\('arl', 'nal'\)"),
        ({"steps_per_execution": 0}, r"steps_per_execution=0 .*integer >= 1 or 'auto'"),
    ],
)
def test_bad_config_stops_before_any_data_is_read(tmp_path, change, pattern):
    config = {**QUICK, "dataset": "image_folder", "data_dir": str(tmp_path / "absent"), **change}
    with pytest.raises(ValueError, match=pattern):
        train(config, tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


def test_recipes_are_the_published_ones():
    paper = resolve_recipe("paper")
    assert paper.epochs_for(50_000) == 205  # 160k iterations of batch 64 over 50,000 images
    schedule = paper.learning_rate_schedule(50_000)
    assert [float(schedule(step)) for step in (0, 63_999, 64_000, 96_000)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    seed_sgd = resolve_recipe("seed_sgd")
    schedule = seed_sgd.learning_rate_schedule(40_000)  # 625 steps per epoch
    assert float(schedule(65 * 625 - 1)) == pytest.approx(0.1) and float(schedule(65 * 625)) == pytest.approx(0.01)
    assert resolve_recipe("seed_adam", learning_rate=3e-4, max_epochs=2).epochs_for(40_000) == 2
    assert RunConfig.from_mapping({"recipe": "seed_adam"}).recipe.early_stopping_monitor == "accuracy"


def test_weight_decay_adds_wd_times_w_to_the_gradient():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, kernel_initializer="ones", use_bias=False)(inputs))
    apply_weight_decay(model, 0.1)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    model.train_on_batch(np.zeros((1, 4), "float32"), np.zeros((1, 2), "float32"))
    np.testing.assert_allclose(model.layers[1].kernel.numpy(), 0.9)  # w - lr * wd * w


ONE_AT_A_TIME = """
import sys
import tensorflow as tf
from resattn.train.devices import run_ops_one_at_a_time
if sys.argv[1] == "op-first":
    tf.constant(1.0) + 1.0
lines = []
run_ops_one_at_a_time(lines.append)
print(tf.config.threading.get_inter_op_parallelism_threads(), lines)
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's inter-op threads")
@pytest.mark.parametrize(
    "environment, when, threads, says",
    [
        ({}, "before-any-op", 1, False),  # a run's process: one op at a time
        ({}, "op-first", 0, True),  # too late to change: said, not silent
        ({"TF_NUM_INTEROP_THREADS": "0"}, "before-any-op", 0, False),  # the user's choice stands
    ],
)
def test_a_run_on_the_cpu_runs_tensorflows_ops_one_at_a_time_unless_told(environment, when, threads, says):
    env = {key: value for key, value in os.environ.items() if key != "TF_NUM_INTEROP_THREADS"}
    env.update(environment, CUDA_VISIBLE_DEVICES="-1")
    done = subprocess.run(
        [sys.executable, "-c", ONE_AT_A_TIME, when], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    count, lines = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) == threads
    assert ("may not repeat to the last digit" in lines) == says, lines


def test_auto_xla_means_xla_on_jax_and_on_a_tensorflow_gpu_only():
    recipe = resolve_recipe("seed_adam")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        assert recipe.compiles_with_xla() == bool(tf.config.list_physical_devices("GPU"))
    else:
        assert recipe.compiles_with_xla() is True
    assert resolve_recipe("seed_adam", jit_compile=True).compiles_with_xla() is True
    assert resolve_recipe("seed_adam", jit_compile=True, run_eagerly=True).compiles_with_xla() is False


def test_auto_steps_per_execution_is_32_on_a_gpu_and_1_elsewhere():
    from resattn.train.devices import has_gpu

    assert resolve_recipe("paper").execution_steps() == (32 if has_gpu() else 1)
    assert resolve_recipe("paper", steps_per_execution=8).execution_steps() == 8
    assert resolve_recipe("paper", steps_per_execution=8, run_eagerly=True).execution_steps() == 1


def test_auto_precision_is_bfloat16_where_the_hardware_has_it_and_the_network_computes_in_it():
    recipe = resolve_recipe("seed_adam")
    assert recipe.precision == "auto"
    if keras.backend.backend() == "tensorflow" and os.path.exists("/proc/cpuinfo"):
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            cpuinfo = open("/proc/cpuinfo").read()
            native = " avx512_bf16" in cpuinfo or " amx_bf16" in cpuinfo
            assert recipe.compute_precision() == ("bfloat16" if native else "float32")
    images = np.zeros((4, 32, 32, 3), "uint8")
    for precision in ("auto", "float32", "bfloat16"):
        chosen = resolve_recipe("seed_adam", precision=precision)
        model = new_training_model({"family": "seed", "depth": 56}, chosen, images, seed=0)
        conv = next(layer for layer in model.layers[-1].layers if isinstance(layer, keras.layers.Conv2D))
        assert conv.compute_dtype == chosen.compute_precision()
        assert model.layers[-1].layers[-1].compute_dtype == "float32"  # the softmax
        assert keras.mixed_precision.global_policy().name == "float32"  # left as it was


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tracing is TensorFlow's")
def test_the_first_fit_traces_the_training_step_once():
    recipe = resolve_recipe("seed_adam", precision="float32")
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    model = new_training_model({"family": "seed", "depth": 56}, recipe, images, seed=0)
    traces = []
    train_step = model.train_step
    model.train_step = lambda data: traces.append(1) or train_step(data)
    model.fit(images, keras.utils.to_categorical([0, 1, 2, 3], 10), batch_size=2, epochs=1, verbose=0)
    assert len(traces) == 1


def test_a_checkpoint_restores_the_optimizer_with_its_wrapper_step_and_momentum(tmp_path):
    """What a resumed run trains on: float16's loss-scale wrapper, the step (the learning-rate
    schedule's position) and the momentum as they were saved. load_model lost all three for
    float16 (a resumed run went to NaN). A `.keras` checkpoint, as runs wrote them before
    checkpoints became arrays, still resumes; arrays of another model are refused."""
    from resattn.train.epoch_recorder import EpochRecorder
    from resattn.train.run_folder import restore_checkpoint

    recipe = resolve_recipe("seed_sgd", precision="float16")
    options = {"family": "paper", "depth": 56, "num_classes": 10, "input_shape": (16, 16, 3)}
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    labels = np.eye(10)[np.arange(32) % 10]
    model = new_training_model(options, recipe, images, seed=0)
    model.run_eagerly = True  # what a checkpoint holds, not the step: two steps, not traced
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    state = {"epoch": 1, "checkpoint": None, "history": []}
    recorder = EpochRecorder(RunFolder(tmp_path), state, recipe, 2, log=lambda line: None)
    recorder.set_model(model)
    recorder.save_checkpoint()
    assert state["checkpoint"] == "checkpoint-0001.npz"
    model.save(tmp_path / "checkpoint-0001.keras")

    for checkpoint in ("checkpoint-0001.npz", "checkpoint-0001.keras"):
        restored = new_training_model(options, recipe, images, 1)
        restore_checkpoint(restored, tmp_path / checkpoint)
        assert type(model.optimizer).__name__ == type(restored.optimizer).__name__ == "LossScaleOptimizer"
        assert int(restored.optimizer.iterations) == 2
        # In order: a second model in one process gets other layer names.
        assert len(model.optimizer.variables) == len(restored.optimizer.variables)
        assert sum("momentum" in v.path for v in model.optimizer.variables) > 100
        assert all(np.array_equal(a, b) for a, b in zip(model.optimizer.variables, restored.optimizer.variables))
        weights = [
            (a.path, np.array(a), np.array(b))
            for a, b in zip(model.variables, restored.variables)
            if checkpoint.endswith(".npz") or "seed_generator" not in a.path
        ]  # .keras leaves the seeds out
        assert all(np.array_equal(a, b) for _, a, b in weights)

    with np.load(tmp_path / "checkpoint-0001.npz") as saved:
        np.savez(tmp_path / "short.npz", **{key: saved[key] for key in sorted(saved.files)[:-1]})
    count = len(model.variables) + len(model.optimizer.variables)
    with pytest.raises(
        ValueError, match=f"short.npz holds {count - 1} variables that do not match this run's model \\({count} "
    ):
        restore_checkpoint(restored, tmp_path / "short.npz")


def test_a_run_given_a_gpu_it_cannot_see_stops_with_one_line(tmp_path):
    from resattn.train.devices import has_gpu

    if has_gpu():
        pytest.skip("this machine has a GPU")
    args = [f"{key}={value}" for key, value in QUICK.items()]
    env = {**os.environ, "RESATTN_DEVICE": "gpu", "CUDA_VISIBLE_DEVICES": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "resattn.train", *args, "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: this run was given GPU 0 but {keras.backend.backend()} sees no GPU (a CPU-only build,"
        " or no driver): run `make setup` on a machine where nvidia-smi works, or GPUS=cpu"
    ]
    assert not (tmp_path / "history.csv").exists()


class FirstImageOfEachBatch(keras.Model):
    """Trains nothing: logs the first value of each batch, to see the order fit visits the images
    in (TensorFlow's train_step signature)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        return {"first": data[0][0, 0]}


def batch_order(first_epoch, epochs, seed):
    seen = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(int(logs["first"])))
    keras.utils.set_random_seed(seed)
    model = FirstImageOfEachBatch()
    model.compile(optimizer="sgd", loss="mse")
    images = np.arange(32, dtype="float32")[:, None]
    fit_epochs(
        model,
        images,
        np.zeros((32, 1), "float32"),
        batch_size=8,
        epochs=epochs,
        seed=seed,
        first_epoch=first_epoch,
        callbacks=[record],
    )
    return [seen[i : i + 4] for i in range(0, len(seen), 4)]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the probe's train_step is TensorFlow's")
def test_every_epoch_visits_the_images_in_its_own_order_fixed_by_seed_and_epoch():
    """Keras 3's fit(shuffle=True) on TensorFlow, after set_random_seed, repeated epoch 1's order
    in every epoch: through it this probe gave [[6, 14, 25, 24]] three times."""
    orders = batch_order(0, 3, seed=0)
    assert len(orders) == 3 and len({tuple(order) for order in orders}) == 3
    assert orders == [list(epoch_order(0, epoch, 32)[::8]) for epoch in range(3)]
    assert batch_order(1, 3, seed=0) == orders[1:]  # a resumed run sees the same batches
    assert batch_order(0, 1, seed=1) != orders[:1]


def test_the_command_line_without_a_dataset_is_refused_rather_than_training_on_synthetic_images(tmp_path):
    args = [f"{key}={value}" for key, value in QUICK.items() if key != "dataset"]
    done = subprocess.run(
        [sys.executable, "-m", "resattn.train", *args, "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and errors == [
        "error: no dataset given; add dataset=... (one of cifar10, cifar100, image_folder, synthetic) to the command "
        "line or the params file"
    ]
    assert not (tmp_path / "run").exists()
