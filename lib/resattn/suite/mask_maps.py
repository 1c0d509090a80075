"""The soft masks a trained network puts on an image: the paper's Figure 1, from a run folder."""

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from resattn.models.attention import MaskActivation
from resattn.models.pretrained import load_pretrained, pretrained
from resattn.train.run_config import RunConfig


@dataclass(frozen=True)
class FigureImages:
    """The images a mask figure shows, uint8, with their labels, the class names and where they
    come from (one line the notebook prints)."""

    x: np.ndarray
    y: np.ndarray
    class_names: list
    source: str

    @classmethod
    def held_out(cls, run_config, count, source):
        """The first `count` validation images of the data that `run_config` (a run's config) drew."""
        data = RunConfig.from_mapping(run_config).load_data()
        return cls(data.x_val[:count], data.y_val[:count], data.class_names, source)


def load_run(run_dir, count):
    """A finished run's model (preprocessing included) and the first `count` images it held out."""
    run_dir = Path(run_dir)
    model_file = run_dir / "model.keras"
    if not model_file.exists():
        raise FileNotFoundError(f"{model_file}: no trained model; train the config first (notebooks/train.ipynb)")
    model = keras.saving.load_model(model_file, safe_mode=True)
    config = json.loads((run_dir / "config.json").read_text())["config"]
    return model, FigureImages.held_out(config, count, f"held out by {run_dir.name}")


def load_pretrained_with_images(name, data_dir, count):
    """A pretrained network (`resattn.load_pretrained`) and the first `count` images its run held
    out, drawn again from its config and seed out of `data_dir`, the images it trained on. Where
    those are absent (the notebook tests, CI), random images stand in, and `source` says so."""
    entry = pretrained(name)
    model = load_pretrained(name)
    if entry.run_config is not None and Path(data_dir).exists():
        source = f"held out by {entry.config}, the run that trained {name}"
        return model, FigureImages.held_out({**entry.run_config, "data_dir": str(data_dir)}, count, source)
    side, classes = model.input_shape[1], model.output_shape[-1]
    x = np.random.default_rng(0).integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    source = f"random: {data_dir} is absent, so the masks mean nothing here"
    return model, FigureImages(x, np.zeros(count, int), [f"class {k}" for k in range(classes)], source)


def mask_layer_names(network):
    """The mask activation layers of every attention module, in the order of the network."""
    return [layer.name for layer in network.layers if isinstance(layer, MaskActivation)]


def soft_masks(model, images):
    """The soft mask M(x) of every attention module for uint8 `images`, averaged over channels
    (what a figure can show): {layer name: array (images, height, width)} in [0, 1] for the
    sigmoid masks; the channel activation's unit vectors are shown as they are."""
    network = model.layers[-1]
    steps = [layer for layer in model.layers[:-1] if not isinstance(layer, keras.layers.InputLayer)]
    preprocess = keras.Sequential(steps)  # called in inference mode: no augmentation
    names = mask_layer_names(network)
    probe = keras.Model(network.inputs, [network.get_layer(name).output for name in names])
    outputs = probe(preprocess(keras.ops.convert_to_tensor(images), training=False), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {
        name: np.asarray(keras.ops.convert_to_numpy(keras.ops.mean(output, axis=-1)), dtype=np.float32)
        for name, output in zip(names, outputs)
    }


def predict(model, images):
    """Predicted classes and their probabilities for uint8 images."""
    probabilities = keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(images), training=False))
    return probabilities.argmax(-1), probabilities.max(-1)
