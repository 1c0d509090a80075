"""How long a grid will take, before it starts: every run's training images times its network's
multiply-adds, over a training rate measured here, on the grid's device.

    python -m resattn.suite.estimate '<step config as JSON>' [...]     (what the grid runs)

The child builds every distinct network to count its multiply-adds, and times a few compiled
training steps of the cheapest to measure multiply-adds per second (a training step costs about
three forward passes). Early stopping can only make a grid shorter than the estimate.
"""

import json
import math
import subprocess
import sys
import time

from resattn.data.datasets import CIFAR
from resattn.suite.preflight import distinct_steps, last_error, resolve_step, step_model

TIMED_STEPS = 3


def training_images(effective):
    """The images a run trains on in all (its epochs times its steps times its batch)."""
    from resattn.train.run_config import resolve_run_config

    resolved = resolve_run_config(effective)
    data, recipe = resolved["data"], resolved["recipe"]
    if data["dataset"] in CIFAR:
        available = CIFAR[data["dataset"]].train_size
    elif data["dataset"] == "synthetic":
        available = data["synthetic_size"]
    else:
        available = 50_000  # an image folder is counted when it is read; CIFAR's size until then
    available = min(available, data["limit"] or available)
    train_size = available - round(available * data["validation_split"])
    steps = recipe.steps_per_epoch(train_size)
    return recipe.epochs_for(train_size) * steps * min(recipe.batch_size, train_size)


def estimate(jobs, slots, environment):
    """(seconds for the grid on its slots, a line saying how it was estimated); raises
    RuntimeError with the child's error if the measurement fails."""
    keys = distinct_steps(jobs)
    command = [sys.executable, "-m", "resattn.suite.estimate", *keys]
    done = subprocess.run(command, capture_output=True, text=True, env=environment(slots[0]), timeout=3600)
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not reports:
        raise RuntimeError(last_error(done.stdout + done.stderr))
    report = reports[-1]
    work = sum(3 * macs * training_images(job.effective) for macs, group in zip(report["macs"], keys.values())
               for job in group)
    seconds = work / report["rate"] / len(slots)
    how = (f"{work:.2g} multiply-adds of training at the {report['rate'] / 1e9:,.1f} G/s measured here "
           f"({report['probe']}), on {len(slots)} slot(s)")
    return seconds, how


def duration(seconds):
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} minutes"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:,.0f} days"


def measure(steps):
    """{"rate": training multiply-adds per second of the cheapest step config, "probe": what
    was timed, "macs": [multiply-adds per image of each]}."""
    from resattn.models.complexity import count_multiply_adds
    from resattn.models.networks import build_model

    macs = [count_multiply_adds(build_model(**resolve_step(step)["model"])) for step in steps]
    cheapest = macs.index(min(macs))  # the quickest to compile and time
    resolved = resolve_step(steps[cheapest])
    recipe, batch = resolved["recipe"], resolved["recipe"].batch_size
    model, images, labels = step_model(resolved, batches=TIMED_STEPS)
    model.fit(images[:batch], labels[:batch], batch_size=batch, epochs=1, verbose=0)  # traces and compiles
    started = time.perf_counter()
    model.fit(images, labels, batch_size=batch, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    probe = (f"{model.layers[-1].name}, {recipe.compute_precision()}, XLA {'on' if recipe.compiles_with_xla() else 'off'}"
             f", batch {batch}")
    return {"rate": 3 * macs[cheapest] * len(images) / seconds, "probe": probe, "macs": macs}


def main(argv=None):
    steps = [json.loads(text) for text in (sys.argv[1:] if argv is None else argv)]
    print(json.dumps(measure(steps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
