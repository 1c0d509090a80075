"""The run folder: one run's identity, state, checkpoints, outputs and lock, and the rules that
decide whether a run starts, resumes, is replaced or is served as done, and what its status is.

A run folder holds:
  state.json      the run's identity, status, epoch, history and last checkpoint: what it resumes from
  checkpoint-NNNN.npz   every variable of the model and its optimizer after epoch NNNN
  config.json     the run config resolved, versions, and every start's machine (`run_record`)
  history.csv     one row per epoch
  metrics.json    the run's figures and status (`run_metrics`)
  model.keras     the trained model (preprocessing included: it takes uint8 images)
  tensorboard/    the history as TensorBoard events
  curves.png      drawn by the train notebook
  .lock           held by the one process that writes the folder
and, written by the grid around a run: train.ipynb, log.txt, parameters.yaml, notebook-error.txt.

Every file is written under a name of its writing process's own, flushed to disk, renamed over
the old one and the folder flushed too, so a crash or a power loss leaves either the old file or
the new one, and an older checkpoint is deleted only once the newer one and the state naming it
are on disk.
"""

import fcntl
import json
import math
import os
import platform
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from resattn.train.run_config import LOCATION_KEYS, what_it_trains

# A run's status in state.json and metrics.json: "running" while it trains, then one of ENDED.
SUCCEEDED = ("completed", "early_stopped")  # ended with figures that count
ENDED = (*SUCCEEDED, "diverged")  # trains no more unless forced
# Every file of a run's own; a restart moves them all aside, so two runs never mix.
OUTPUTS = (
    "state.json",
    "config.json",
    "history.csv",
    "metrics.json",
    "model.keras",
    "tensorboard",
    "curves.png",
    "notebook-error.txt",
)
CHECKPOINTS = "checkpoint-*.npz"
REPLACED = "replaced"  # <run>/replaced/<time>/: the outputs of the runs this folder held before
LOCK = ".lock"
LOCK_ENVIRONMENT = "RESATTN_RUN_LOCK"  # "<folder> <token>": a parent process (the grid's task) holds the lock
# A run is running while its folder is locked, or, where locks do not reach (another node on a
# filesystem without them), while its log grew within this many epochs' time (10 minutes at least).
QUIET_EPOCHS, QUIET_SECONDS = 3, 600


class RunFolderBusy(RuntimeError):
    """Another process writes this run folder."""


@dataclass(frozen=True)
class Plan:
    """What to do with a run folder: "start" (nothing there), "resume" (from its checkpoint),
    "finish" (training ended but its model and figures were not written), "serve" (done: its
    figures stand) or "replace" (move the old run aside, then start)."""

    action: str
    reason: str = ""


def plan_run(folder, run_config, force=False):
    """The one rule for what a run does with what its folder holds: the same identity (what it
    trains, wherever its data lies) resumes, or is served as done; another identity, or `force`,
    replaces the old run (moved aside, never deleted), with a line naming what changed."""
    state = folder.state()
    if not state:
        return Plan("start")
    if "identity" in state:
        changed = changed_keys(what_it_trains(state["identity"]), jsonable(run_config.identity()))
    else:  # written before runs had an identity: its config, the data's location aside
        changed = changed_keys(
            *(
                jsonable({key: value for key, value in config.items() if key not in LOCATION_KEYS})
                for config in (state["config"], run_config.raw)
            )
        )
    if changed:
        return Plan("replace", f"{folder.path} holds another run ({'; '.join(changed)}): moving it aside")
    if force:
        return Plan("replace", f"{folder.path}: force: moving its run aside to train it again")
    if state["status"] in ENDED:
        metrics = folder.metrics()
        if metrics and metrics["status"] == state["status"]:
            return Plan(
                "serve",
                f"{folder.path}: already {state['status']} after {state['epoch']} epochs; "
                "force (FORCE=1 for a grid) trains it again",
            )
        return Plan(
            "finish",
            f"{folder.path}: {state['status']} after {state['epoch']} epochs, but its model and "
            f"figures were not written; writing them from {state['checkpoint']}",
        )
    if not state.get("checkpoint"):
        return Plan("replace", f"{folder.path}: its run stopped before its first epoch ended; starting again")
    return Plan("resume")


def changed_keys(old, new):
    """What differs between two identities, as "key: old -> new"."""
    keys = sorted(set(old) | set(new))
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys if old.get(key) != new.get(key)]


class RunFolder:
    def __init__(self, path):
        self.path = Path(path)

    # --- reading ---
    def state(self):
        return read_json(self.path / "state.json")

    def metrics(self):
        return read_json(self.path / "metrics.json")

    def record(self):
        return read_json(self.path / "config.json")

    # --- writing ---
    def write_json(self, name, value):
        write_json(self.path / name, value)

    def save_checkpoint(self, model, epoch):
        """Every variable of `model` and its optimizer after `epoch`, as arrays in one `.npz` file,
        in the order the network creates them; returns the file's name.

        Departure from Keras's own checkpoint (`model.save`): that walks every layer and writes
        its config, about 0.75 s for Attention-56 and 9.2 s for Attention-452 on this CPU at every
        epoch; the arrays alone take a seventh of that (bench/checkpoint.py). `.keras` files also
        leave out the seed generators' state, so a resumed run drew other flips and shifts."""
        name = f"checkpoint-{epoch:04d}.npz"
        arrays = {
            f"{index:05d}": keras.ops.convert_to_numpy(variable)
            for index, variable in enumerate(checkpointed_variables(model))
        }

        def write(temporary):
            with open(temporary, "wb") as file:
                np.savez(file, **arrays)

        atomic_write(self.path / name, write)
        return name

    def remove_checkpoints(self, keep):
        for path in self.path.glob(CHECKPOINTS):
            if path.name != keep:
                path.unlink(missing_ok=True)

    def move_aside(self):
        """Moves every output of the run this folder holds into replaced/<time>/, so that a new
        run starts from an empty folder and the old one's figures are never served for it.
        Returns where they went, or None if there was nothing."""
        present = [self.path / name for name in OUTPUTS if (self.path / name).exists()]
        present += sorted(self.path.glob(CHECKPOINTS))
        if not present:
            return None
        target = self.path / REPLACED / time.strftime("%Y%m%d-%H%M%S")
        while target.exists():
            target = target.with_name(target.name + "+")
        target.mkdir(parents=True)
        for path in present:
            os.replace(path, target / path.name)
        _fsync_folder(self.path)
        return target

    # --- the one writer ---
    @contextmanager
    def lock(self):
        """Holds the folder's lock while the block runs; a second writer (another grid, a notebook
        beside a grid, an orphan beside its retry) is refused with one line naming the holder.
        A parent that holds the lock and says so in RESATTN_RUN_LOCK lends it to this process."""
        self.path.mkdir(parents=True, exist_ok=True)
        lent = os.environ.get(LOCK_ENVIRONMENT, "").split(" ", 1)
        if len(lent) == 2 and Path(lent[0]) == self.path.resolve() and lent[1] in self._holder().split("\n"):
            self._clean_partial_files()
            yield
            return
        with hold_lock(self.path):
            self._clean_partial_files()
            yield

    def _holder(self):
        try:
            return (self.path / LOCK).read_text()
        except OSError:
            return ""

    def is_locked(self):
        """Whether a process holds this folder's lock now (on this machine, or on any node of a
        filesystem that shares locks)."""
        if not (self.path / LOCK).exists():
            return False
        descriptor = os.open(self.path / LOCK, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)
        return False

    def _clean_partial_files(self):
        """Temporary files of writers that died mid-write (only the lock's holder writes here)."""
        for path in self.path.glob(".*.partial*"):
            path.unlink(missing_ok=True)

    # --- status ---
    def status(self, now=None):
        """The run's status for tables and `make status`: not started, running, interrupted
        (stopped without ending: the next grid resumes it), failed, or the status it ended with."""
        metrics, state = self.metrics() or {}, self.state() or {}
        if (self.path / "notebook-error.txt").exists() or metrics.get("status") == "failed":
            return "failed"
        if metrics.get("status") in ENDED:
            return metrics["status"]
        if self.is_locked():
            return "running"
        log = self.path / "log.txt"
        if not state and not log.exists():
            return "not started"
        now = time.time() if now is None else now
        seconds = seconds_per_epoch(state.get("history", [])) or 0
        if log.exists() and now - log.stat().st_mtime <= max(QUIET_SECONDS, QUIET_EPOCHS * seconds):
            return "running"
        return "interrupted" if state else "not started"


@contextmanager
def hold_lock(folder, wait=0.0):
    """The lock of run folder `folder`, held by this process while the block runs; yields the
    token that a child process can be lent it with (`lend_lock`). `wait`: seconds to wait for a
    holder to let go (a retried task whose first try's process is still dying)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                holder = (
                    os.pread(descriptor, 4096, 0).decode(errors="replace").split("\n")[0].strip() or "another process"
                )
                raise RunFolderBusy(
                    f"{folder} is being written by {holder}; one run folder takes one writer: "
                    "wait for it to end or stop it"
                ) from None
        token = uuid.uuid4().hex
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {platform.node()}\n{token}\n".encode(), 0)
        try:
            yield token
        finally:
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # releases the lock


def lend_lock(folder, token):
    """The environment entry that lends a held lock to a child process (the train notebook)."""
    return {LOCK_ENVIRONMENT: f"{Path(folder).resolve()} {token}"}


def checkpointed_variables(model):
    """The variables a run resumes from. Order, not name, matches them: a second model built in
    one process gets other automatic layer names."""
    return [*model.variables, *model.optimizer.variables]


def restore_checkpoint(model, path):
    """Assigns a checkpoint's arrays to `model`, built and compiled as the run that saved it
    was (its optimizer's variables made): a checkpoint of another network is refused."""
    if Path(path).suffix == ".keras":  # written before checkpoints were arrays: Keras reads its own
        model.load_weights(path)
        return
    variables = checkpointed_variables(model)
    with np.load(path, allow_pickle=False) as saved:
        arrays = [saved[key] for key in sorted(saved.files)]
    expected = [tuple(variable.shape) for variable in variables]
    if [array.shape for array in arrays] != expected:
        raise ValueError(
            f"{path} holds {len(arrays)} variables that do not match this run's model "
            f"({len(expected)} variables): it was saved by another network or optimizer"
        )
    for variable, array in zip(variables, arrays):
        variable.assign(array)


def seconds_per_epoch(history):
    """The seed's measure: the mean over epochs after the first that each process trained
    (tracing and compiling), or over every epoch if there is no other."""
    seconds = [row["seconds"] for row in history if not row.get("warmup")] or [row["seconds"] for row in history]
    return float(np.mean(seconds)) if seconds else None


def atomic_write(path, write):
    """Writes through a temporary file of this process's own in the same folder, flushes it to
    disk, renames it over `path` and flushes the folder: `path` is the old file or the new one."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{platform.node()}-{os.getpid()}.partial")
    try:
        write(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder):
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json(path, value):
    def write(temporary):
        temporary.write_text(json.dumps(jsonable(value), indent=2, allow_nan=False) + "\n")

    atomic_write(path, write)


def save_model(model, path):
    """Keras's own file (it must end in .keras): written under a temporary .keras name."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{platform.node()}-{os.getpid()}.partial.keras")
    try:
        model.save(temporary)
        atomic_write(path, lambda target: os.replace(temporary, target))
    finally:
        temporary.unlink(missing_ok=True)


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
