"""The callbacks that record a run: epoch by epoch the history, the checkpoints, TensorBoard
events and early stopping; within a long epoch, a progress line now and then."""

import csv
import io
import math
import time

import keras

from resattn.train.model import weight_penalty
from resattn.train.run_folder import atomic_write
from resattn.train.run_metrics import figure, finite
from resattn.train.tensorboard_log import TensorBoardLog

# A training loss above this many times chance's, ln(classes), is a run that blew up, not one
# that is slow to start: a fresh network's first epoch is near chance, and the blow-ups seen here
# (issue 22) went from 3.2 to 450,005, or opened at 10.6 (CIFAR-10: chance 2.30, the bound 6.91).
DIVERGED_OVER_CHANCE = 3
# warmup: 1 for the first epoch a process trains, whose seconds include tracing and compiling.
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "warmup")


class EpochRecorder(keras.callbacks.Callback):
    """After every epoch: one progress line, a checkpoint, the state and the history, written
    atomically in that order, so a run killed at any moment resumes from its last whole epoch.
    Also applies early stopping (its counters live in the state) and stops a run whose loss is
    not finite or far above chance's (DIVERGED_OVER_CHANCE)."""

    def __init__(self, folder, state, recipe, epochs, log, learning_rate=None):
        super().__init__()
        self.folder, self.state, self.recipe, self.epochs, self.log = folder, state, recipe, epochs, log
        self.learning_rate = recipe.learning_rate if learning_rate is None else learning_rate
        self.warmup = True
        self.tensorboard = TensorBoardLog(folder.path)

    def on_train_begin(self, logs=None):
        # Before the run's first step (or the resume of a run recorded before this key existed);
        # fit starts once per epoch, and the penalty is read once.
        if "initial_penalty" not in self.state:
            self.state["initial_penalty"] = weight_penalty(self.model)

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
        if self._diverged(row["loss"]):
            self.state["status"] = "diverged"
            self.model.stop_training = True
        elif self._should_stop_early(row):
            self.state["status"] = "early_stopped"
            self.model.stop_training = True
        self.save_checkpoint()
        self.tensorboard.write(row)  # after the checkpoint: a resumed run does not repeat this epoch

    def _diverged(self, loss):
        """Whether the epoch's loss is not finite, or far above chance's cross-entropy once the
        weight-decay penalty of the network as initialized is taken out (Keras's loss includes the
        penalty: several units for a fresh network at 5e-4). Not the penalty as it stands now: a
        blow-up inflates the weights, and with them the penalty (the seed's config 4 as published,
        epoch 3: loss 53.8, training accuracy 16%)."""
        chance = math.log(self.model.output_shape[-1])
        if finite(loss) and loss - self.state["initial_penalty"] <= DIVERGED_OVER_CHANCE * chance:
            return False
        self.log(
            f"loss is {loss:.4g} ({self.state['initial_penalty']:.3g} of it the weight penalty the network started "
            f"with), chance's cross-entropy {chance:.3g}: the run diverged; stopping"
        )
        return True

    def _rate_of_the_last_update(self):
        """The epoch's rate: the optimizer's own rate now is the next update's, the next epoch's."""
        if not callable(self.learning_rate):
            return float(self.learning_rate)
        step = max(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) - 1, 0)
        return float(keras.ops.convert_to_numpy(self.learning_rate(step)))

    def _should_stop_early(self, row):
        patience = self.recipe.early_stopping_patience
        value = row.get(self.recipe.early_stopping_monitor)
        if patience is None or not finite(value):
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
        """The checkpoint, then the state naming it, each on disk, and only then the older
        checkpoint deleted: whenever the process dies, state.json names a whole checkpoint."""
        self.state["checkpoint"] = self.folder.save_checkpoint(self.model, self.state["epoch"])
        self.save_state()
        self.folder.remove_checkpoints(keep=self.state["checkpoint"])

    def save_state(self):
        self.folder.write_json("state.json", self.state)
        write_history(self.folder.path / "history.csv", self.state["history"])


class StepProgress(keras.callbacks.Callback):
    """Within an epoch, a line every `every` seconds: the step, the epoch's running loss and
    accuracy, and the time to the epoch's end at the pace so far. An epoch shorter than `every`
    prints none (a GPU's, the tests'); a CPU's, of many minutes, shows it is alive."""

    # It only logs: on JAX Keras then calls it on a thread of its own, not holding a step up (on
    # TensorFlow Keras calls every step's callbacks in line, and reads the step's logs anyway).
    async_safe = True

    def __init__(self, epochs, log, every=60.0):
        super().__init__()
        self.epochs, self.log, self.every = epochs, log, every

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.started = epoch, time.perf_counter()
        self.last = self.started

    def on_train_batch_end(self, batch, logs=None):
        now, steps = time.perf_counter(), self.params.get("steps")
        if now - self.last < self.every or not steps or batch + 1 >= steps:
            return
        self.last = now
        done = now - self.started
        figures = "  ".join(f"{key} {figure(float(logs[key]))}" for key in ("loss", "accuracy") if key in (logs or {}))
        self.log(
            f"{_epoch_label(self.epoch + 1, self.epochs)}  step {batch + 1}/{steps}  {figures}  "
            f"{done / 60:.1f} min, about {done * (steps - batch - 1) / (batch + 1) / 60:.1f} min to the epoch's end"
        )


def _epoch_label(epoch, epochs):
    """`epoch  3/40`: how both kinds of progress line start (nbval's sanitize file matches it)."""
    return f"epoch {epoch:>{len(str(epochs))}}/{epochs}"


def _progress_line(row, epochs):
    figures = "  ".join(f"{key} {figure(row[key])}" for key in HISTORY_COLUMNS[1:5])
    return f"{_epoch_label(row['epoch'], epochs)}  {figures}  lr {row['learning_rate']:.3g}  {row['seconds']:.1f} s"


def write_history(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda temporary: temporary.write_text(buffer.getvalue()))
