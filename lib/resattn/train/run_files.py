"""A run folder's files: written atomically (a temporary file renamed over the old), read back,
and the statuses a run records in them.

A run directory holds, each written atomically:
  config.json   the run config resolved, versions, device, seed (`run_record`)
  history.csv   one row per epoch (`epoch_recorder`)
  metrics.json  the run's figures and status (`run_metrics`)
  model.keras   the trained model (preprocessing included: it takes uint8 images)
  state.json and checkpoint-NNNN.npz   what a killed run resumes from (`checkpoint`)
"""

import json
import math
import os
from pathlib import Path

import numpy as np

# A run's status in state.json and metrics.json: "running" while it trains, then one of ENDED.
SUCCEEDED = ("completed", "early_stopped")  # ended with figures that count
ENDED = (*SUCCEEDED, "diverged")  # trains no more unless forced


def atomic_write(path, write):
    """Writes through a temporary file in the same folder and renames it over `path`."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    write(temporary)
    os.replace(temporary, path)


def write_json(path, value):
    def write(temporary):
        temporary.write_text(json.dumps(jsonable(value), indent=2, allow_nan=False) + "\n")

    atomic_write(path, write)


def save_model(model, path):
    atomic_write(path, lambda temporary: model.save(temporary))


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
