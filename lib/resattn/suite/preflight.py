"""Before a grid trains anything, every distinct network of its configs compiles and runs one
training step, as its configs will train it (precision, XLA, batch size, optimizer,
preprocessing) on the device they will use, each in its own process. A step that fails there
would fail every config that uses it, hours into the grid; here it stops the grid in minutes.

    python -m resattn.suite.preflight '<a run config as JSON>' [...]

prints one JSON line per config (what ran, or the error) and exits 1 if any step failed. The grid
runs one config per process.
"""

import json
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from resattn.data.datasets import CIFAR

# The run keys that do not change the compiled step: the data and the schedule.
NOT_IN_STEP = (
    "dataset",
    "data_dir",
    "validation_split",
    "label_noise",
    "limit",
    "synthetic_size",
    "synthetic_classes",
    "seed",
    "learning_rate",
    "epochs",
    "iterations",
    "lr_drops",
    "lr_drop_unit",
    "lr_schedule",
    "warmup_epochs",
    "early_stopping_patience",
    "early_stopping_monitor",
    "schedule_scale",
    "max_epochs",
    "max_steps_per_epoch",
)
CHILD_TIMEOUT = 3600  # compiling Attention-452 with XLA takes minutes; a hung device must not hang the grid


def step_config(effective):
    """The part of a run config that its first training step depends on."""
    step = {key: value for key, value in effective.items() if key not in NOT_IN_STEP}
    dataset = effective.get("dataset", "synthetic")
    if dataset in CIFAR:
        step.setdefault("num_classes", CIFAR[dataset].classes)
    elif dataset == "synthetic":
        step.setdefault("num_classes", effective.get("synthetic_classes", 10))
    else:
        step.setdefault("num_classes", 10)  # an image folder's classes are counted when it is read
    return step


def distinct_steps(jobs):
    """{step config as JSON: [the jobs that train it]}, in the jobs' order."""
    steps = {}
    for job in jobs:
        key = json.dumps(step_config(job.effective), sort_keys=True)
        steps.setdefault(key, []).append(job)
    return steps


def run_preflight(jobs, slots, environment, echo=print):
    """Runs every distinct step, one process per step, at most one per slot at a time. Returns
    one line per failing step, naming the configs it affects ([] when all pass)."""
    steps = distinct_steps(jobs)
    echo(
        f"preflight: {len(steps)} distinct network(s) of {len(jobs)} run(s), one training step each, in its own process"
    )
    free = list(slots)

    def check(item):
        key, group = item
        names = [job.name for job in group]
        slot = free.pop()
        try:
            started = time.perf_counter()
            ok, detail = _child_step(key, environment(slot))
            seconds = time.perf_counter() - started
        finally:
            free.append(slot)
        if ok:
            echo(f"preflight: ok in {seconds:.0f} s: {detail} ({', '.join(names)})")
            return None
        return f"{detail}; affects {', '.join(names)}"

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        return [line for line in pool.map(check, steps.items()) if line]


def _child_step(key, env):
    command = [sys.executable, "-m", "resattn.suite.preflight", key]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, f"no step within {CHILD_TIMEOUT} s"
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and reports and "error" not in reports[-1]:
        report = reports[-1]
        return (
            True,
            f"{report['network']} ({report['precision']}, XLA {'on' if report['xla'] else 'off'}, batch {report['batch_size']})",
        )
    step = json.loads(key)
    output = done.stdout + done.stderr
    allocation = out_of_memory(output)
    if allocation:
        error = f"out of memory: {allocation}"
    elif done.returncode < 0:
        error = f"the process died of {signal.Signals(-done.returncode).name}"
    elif reports:
        error = reports[-1]["error"]
    else:
        error = last_error(output)
    return False, f"the first training step of {step.get('family', 'seed')}:{step.get('depth', 56)} failed: {error}"


def resolve_step(step):
    """A step config as the RunConfig of a run of synthetic images."""
    from resattn.train.run_config import RunConfig

    return RunConfig.from_mapping({**step, "dataset": "synthetic", "synthetic_classes": step["num_classes"]})


def step_model(run_config, batches=1):
    """The training model a run of `run_config` builds, and `batches` batches of random uint8
    images with labels to fit it on."""
    import keras
    import numpy as np

    from resattn.train.model import new_training_model

    recipe, side, classes = run_config.recipe, run_config.data.image_size, run_config.model["num_classes"]
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(
        0, 256, size=(recipe.batch_size * batches, side, side, 3), dtype=np.uint8
    )
    labels = keras.utils.to_categorical(np.arange(len(images)) % classes, classes)
    return new_training_model(run_config.model, recipe, images, seed=0), images, labels


def one_step(step):
    """Builds the training model a run of `step` builds and fits it on one batch of synthetic
    images; returns what ran. Raises whatever the step raises."""
    import numpy as np

    from resattn.train.devices import check_device

    check_device()
    run_config = resolve_step(step)
    recipe = run_config.recipe
    model, images, labels = step_model(run_config)
    loss = model.fit(images, labels, batch_size=recipe.batch_size, epochs=1, verbose=0).history["loss"][-1]
    if not np.isfinite(loss):
        raise FloatingPointError(f"the first step's loss is {loss}")
    return {
        "network": model.layers[-1].name,
        "precision": recipe.compute_precision(),
        "xla": recipe.compiles_with_xla(),
        "batch_size": recipe.batch_size,
        "loss": float(loss),
    }


def out_of_memory(text):
    """What an out-of-memory error in `text` failed to allocate, or None. TensorFlow says "OOM
    when allocating tensor with shape[...]" (in its log and in the exception; the log is silent
    under TF_CPP_MIN_LOG_LEVEL=2), XLA "RESOURCE_EXHAUSTED: Out of memory while trying to
    allocate N bytes"."""
    tensors = re.findall(r"OOM when allocating (tensor with shape\[[^\]]*\](?: and type \w+)?)", text)
    if tensors:
        return tensors[-1]
    exhausted = re.findall(r"RESOURCE_EXHAUSTED: (.*?)(?: on /job|$)", text, flags=re.MULTILINE)
    return exhausted[-1] if exhausted else None


def last_error(output):
    """The exception line papermill reports, or the output's last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    return (errors or lines or ["(no output)"])[-1]


def _cause(error):
    """The line of an error's message that says what went wrong: TensorFlow's start with "Graph
    execution error:" and the Python stack of the failing node, then the cause, then hints."""
    lines = [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and not line[0].isspace() and not line.startswith(("[[", "Detected at node", "Hint:", "[Op:"))
    ]
    causes = [line for line in lines if line != "Graph execution error:"]
    return (causes or lines or ["(no message)"])[-1]


def main(argv=None):
    failed = False
    for text in sys.argv[1:] if argv is None else argv:
        step = json.loads(text)
        try:
            started = time.perf_counter()
            report = {**one_step(step), "seconds": round(time.perf_counter() - started, 1)}
        except Exception as error:
            failed = True
            report = {"step": step, "error": f"{type(error).__name__}: {_cause(error)}"}
        print(json.dumps(report), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
