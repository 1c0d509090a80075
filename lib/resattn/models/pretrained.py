"""Pretrained weights: the reference runs' networks, shipped with the project and loaded offline.

A name (`pretrained_names()`) is one trained network: `manifest.json` beside the weights says
which network and config it is, what data and split it was trained and measured on, its
accuracy and the sha256 of its file. `build_model(..., weights=NAME)` builds the network asked
for and loads them, as Keras applications take `weights=`; `load_pretrained(NAME)` builds the
network the weights are for, behind the scaling its run trained with, so it takes uint8 images
as a run's `model.keras` does. A path to any run's `model.keras` works in both places.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PretrainedWeights:
    name: str  # e.g. seed_attention56.fast_cifar10jpeg: the network's name, then how it was trained
    config: str  # the params file the run trained (params/<config>.yaml)
    network: dict  # build_model's keywords for the network the weights belong to
    preprocessing: str  # the scaling in front of the network (resattn.data.preprocessing)
    recipe: str
    data: str  # what it was trained on
    split: str  # which images trained it and which measured it
    epochs: int
    val_accuracy: float  # the run's final validation accuracy, float32 weights
    stored_val_accuracy: float  # the same images through the stored weights (float16)
    file: str
    sha256: str
    run_config: dict | None = None  # the run's config, data_dir left out: gives back its held-out images
    folder: Path = WEIGHTS_DIR  # where the manifest was read, not in it

    @property
    def path(self):
        return Path(self.folder) / self.file

    def to_dict(self):
        return {key: value for key, value in asdict(self).items() if key != "folder"}


def read_manifest(folder=WEIGHTS_DIR):
    """{name: PretrainedWeights} of a weights folder (empty where there is no manifest)."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return {}
    return {
        entry["name"]: PretrainedWeights(**entry, folder=Path(folder)) for entry in json.loads(manifest.read_text())
    }


def pretrained_names():
    return tuple(read_manifest())


def pretrained(name, folder=WEIGHTS_DIR):
    """The manifest entry of a name; an unknown name raises ValueError listing the names."""
    entries = read_manifest(folder)
    if name not in entries:
        raise ValueError(
            f"weights={name!r} is not valid; choose one of {tuple(entries)}, or give a path to a run's model.keras"
        )
    return entries[name]


def sha256(path):
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def read_weights(entry):
    """The arrays of a named network, in its weights' order, after checking the file's sha256."""
    if not entry.path.is_file():
        raise ValueError(f"weights={entry.name!r}: {entry.path} is missing")
    found = sha256(entry.path)
    if found != entry.sha256:
        raise ValueError(
            f"weights={entry.name!r}: {entry.path} is corrupt (sha256 {found[:12]}..., the manifest "
            f"says {entry.sha256[:12]}...)"
        )
    return read_arrays(entry.path)


def read_arrays(path):
    """The arrays `write_weights` wrote, in order."""
    with np.load(path, allow_pickle=False) as arrays:
        return [arrays[key] for key in sorted(arrays.files)]


def write_weights(network, path):
    """The network's weights, float16, one array a weight in order (`read_weights` reads them)."""
    arrays = {
        f"{index:04d}": np.asarray(keras.ops.convert_to_numpy(weight), np.float16)
        for index, weight in enumerate(network.weights)
    }
    np.savez_compressed(path, **arrays)


def load_weights(network, weights, folder=WEIGHTS_DIR):
    """Loads `weights` (a name or a path to a run's model.keras) into a built network; a network
    other than the one the weights are for is refused with one line naming both."""
    if _is_path(weights):
        source = _network_of(keras.saving.load_model(weights, compile=False))
        _check_same_network(network, source.name, [w.shape for w in source.weights], weights)
        network.set_weights(source.get_weights())
        return network
    entry = pretrained(weights, folder)
    from resattn.models.networks import resolve_network

    expected = resolve_network(**entry.network)["name"]
    arrays = read_weights(entry)
    _check_same_network(network, expected, [array.shape for array in arrays], entry.name)
    network.set_weights([array.astype(weight.dtype) for array, weight in zip(arrays, network.weights)])
    return network


def load_pretrained(weights):
    """The trained network behind its run's scaling: a model that takes uint8 images and gives
    class probabilities. `weights`: a name (`pretrained_names()`) or a path to a run's model.keras."""
    if _is_path(weights):
        return keras.saving.load_model(weights)
    from resattn.data.preprocessing import training_model
    from resattn.models.networks import build_model

    entry = pretrained(weights)
    network = build_model(**entry.network, weights=entry.name)
    height, width, channels = network.input_shape[1:]
    shape_only = np.zeros((1, height, width, channels), np.uint8)  # `paper` scaling would need the training images
    if entry.preprocessing == "paper":
        raise ValueError(
            f"weights={entry.name!r}: the paper's per-pixel mean is not stored; load the run's model.keras"
        )
    return training_model(network, entry.preprocessing, shape_only, seed=0, augment=False)


def _is_path(weights):
    return isinstance(weights, Path) or str(weights).endswith(".keras")


def _network_of(model):
    """The network inside a run's model (its last layer, behind the preprocessing), or the model."""
    inner = model.layers[-1]
    return inner if isinstance(inner, keras.Model) else model


def _check_same_network(network, expected_name, shapes, source):
    own = [tuple(weight.shape) for weight in network.weights]
    if network.name != expected_name or own != [tuple(shape) for shape in shapes]:
        raise ValueError(
            f"weights={str(source)!r} are for network {expected_name!r} ({len(shapes)} weights), not for "
            f"{network.name!r} ({len(own)} weights)"
        )
