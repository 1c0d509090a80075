"""What a run records of itself in config.json: its run config resolved, the versions and the device."""

import os
import platform
import sys
import time
from dataclasses import asdict

import keras
import numpy as np

from resattn.models.networks import resolve_network
from resattn.train.devices import backend_devices, processor
from resattn.train.run_folder import jsonable


def run_record(config, recipe, model_options, dataset, epochs, steps):
    """config.json: the run config resolved, the data, the network, and this start's machine."""
    return {
        "config": jsonable(config.raw),
        "seed": config.seed,
        "recipe_name": config.recipe_name,
        "recipe": recipe.to_dict(),
        # What the recipe's "auto" settings resolved to (precision and kernels: at the run's first start).
        "execution": {
            "precision": recipe.compute_precision(),
            "kernels": recipe.kernels,
            "xla": recipe.compiles_with_xla(),
            "steps_per_execution": recipe.execution_steps(),
        },
        "data": {
            **jsonable(asdict(config.data)),
            "classes": dataset.class_names,
            "train_size": len(dataset.x_train),
            "val_size": len(dataset.x_val),
            "noisy_labels": dataset.noisy_labels,
        },
        "model": jsonable(resolve_network(**model_options)),
        "epochs": epochs,
        "steps_per_epoch": steps,
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "backend_version": backend_version(),
            "numpy": np.__version__,
        },
        "device": backend_devices(),
        "processor": processor(),
        # Set by the grid's task (Ray's node); a run started by hand records its host.
        "node": os.environ.get("RESATTN_NODE") or platform.node(),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "command": " ".join(sys.argv),
    }


START_KEYS = ("node", "processor", "device", "visible_devices", "execution", "versions")


def record_start(record, previous, first_epoch):
    """`record` with every start of the run so far (time, first epoch, machine, execution), so a
    run resumed on another machine says which epochs ran where; the top-level keys are this start's."""
    starts = list((previous or {}).get("starts", []))
    if previous and not starts:  # a record written before starts were kept: its one start
        starts.append({"first_epoch": 0, **{key: previous.get(key) for key in START_KEYS}})
    starts.append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "first_epoch": first_epoch,
            **{key: record[key] for key in START_KEYS},
        }
    )
    return {**record, "starts": starts}


def backend_version():
    """The version of the package behind Keras's backend."""
    backend = keras.backend.backend()
    module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend))
    return getattr(module, "__version__", "unknown")
