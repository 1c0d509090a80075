"""How long a grid will take, before it starts: every run's training images times its network's
multiply-adds, over a training rate measured here, on the grid's device.

    python -m resattn.suite.estimate [--time] '<step config as JSON>' [...]     (what the grid runs)

Children (one per slot, at once) build every distinct network to count its multiply-adds; the
one given --time also times a few compiled training steps of its last network (the shallowest)
to measure multiply-adds per second (a training step costs about three forward passes). Early stopping can only make a grid shorter than the estimate.
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
    from resattn.train.run_config import RunConfig

    run_config = RunConfig.from_mapping(effective)
    data, recipe = run_config.data, run_config.recipe
    if data.dataset in CIFAR:
        available = CIFAR[data.dataset].train_size
    elif data.dataset == "synthetic":
        available = data.synthetic_size
    else:
        available = 50_000  # an image folder is counted when it is read; CIFAR's size until then
    available = min(available, data.limit or available)
    train_size = available - round(available * data.validation_split)
    steps = recipe.steps_per_epoch(train_size)
    return recipe.epochs_for(train_size) * steps * min(recipe.batch_size, train_size)


def estimate(jobs, slots, environment):
    """(seconds for the grid on its slots, a line saying how it was estimated); raises
    RuntimeError with a child's error if the measurement fails. The distinct networks are
    counted in one child per slot at once (building a deep network takes tens of seconds)."""
    steps = distinct_steps(jobs)
    keys = sorted(steps, key=_build_cost, reverse=True)
    probe = keys[-1]  # the quickest to build and compile: its training steps are timed
    shares = [keys[index :: len(slots)] for index in range(min(len(slots), len(keys)))]
    children = []
    for share, slot in zip(shares, slots):
        command = [sys.executable, "-m", "resattn.suite.estimate", *(["--time"] if probe in share else []), *share]
        children.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment(slot)
            )
        )
    macs, report = {}, None
    for share, child in zip(shares, children):
        output, _ = child.communicate(timeout=3600)
        reports = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not reports:
            for other in children:
                other.kill()
            raise RuntimeError(last_error(output))
        macs.update(zip(share, reports[-1]["macs"]))
        report = reports[-1] if "rate" in reports[-1] else report
    work = sum(3 * macs[key] * training_images(job.effective) for key, group in steps.items() for job in group)
    seconds = work / report["rate"] / len(slots)
    how = (
        f"{work:.2g} multiply-adds of training at the {report['rate'] / 1e9:,.1f} G/s measured here "
        f"({report['probe']}), on {len(slots)} slot(s)"
    )
    return seconds, how


def _build_cost(key):
    step = json.loads(key)
    return step.get("depth", 0), step.get("image_size", 32)


def duration(seconds):
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} minutes"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:,.0f} days"


def measure(steps, timed):
    """{"macs": [multiply-adds per image of each step config]}, and if `timed`, "rate": training
    multiply-adds per second of the last one (the quickest to build) and "probe": what was timed."""
    from resattn.models.complexity import count_multiply_adds
    from resattn.models.networks import build_model

    macs = [count_multiply_adds(build_model(**resolve_step(step).model)) for step in steps]
    if not timed:
        return {"macs": macs}
    run_config = resolve_step(steps[-1])
    recipe, batch = run_config.recipe, run_config.recipe.batch_size
    model, images, labels = step_model(run_config, batches=TIMED_STEPS)
    model.fit(images[:batch], labels[:batch], batch_size=batch, epochs=1, verbose=0)  # traces and compiles
    started = time.perf_counter()
    model.fit(images, labels, batch_size=batch, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    probe = (
        f"{model.layers[-1].name}, {recipe.compute_precision()}, XLA {'on' if recipe.compiles_with_xla() else 'off'}"
        f", batch {batch}"
    )
    return {"rate": 3 * macs[-1] * len(images) / seconds, "probe": probe, "macs": macs}


def main(argv=None):
    arguments = sys.argv[1:] if argv is None else argv
    timed = arguments[:1] == ["--time"]
    steps = [json.loads(text) for text in arguments[timed:]]
    print(json.dumps(measure(steps, timed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
