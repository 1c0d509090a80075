"""What a run records of itself in config.json: its run config resolved, the versions and the device."""

import os
import platform
import sys

import keras
import numpy as np

from resattn.models.networks import resolve_network
from resattn.train.run_files import jsonable

def run_record(resolved, raw_config, model_options, dataset, epochs, steps):
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
        "device": _device(),
        "processor": processor(),
        # Set by the grid's task (Ray's node); a run started by hand records its host.
        "node": os.environ.get("RESATTN_NODE") or platform.node(),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "command": " ".join(sys.argv),
    }


def backend_version():
    """The version of the package behind Keras's backend."""
    backend = keras.backend.backend()
    module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend))
    return getattr(module, "__version__", "unknown")


def processor():
    """The CPU's model name (/proc/cpuinfo; the platform's word elsewhere): figures differ between
    processors of one machine kind (an AMD EPYC with AVX-512, an Intel Xeon with AMX)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def _device():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices()]
    return [platform.processor() or platform.machine()]
