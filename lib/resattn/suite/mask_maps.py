"""The soft masks a trained network puts on an image: the paper's Figure 1, from a run folder."""

import json
from pathlib import Path

import keras
import numpy as np

from resattn.models.attention import MaskActivation
from resattn.train.run_config import RunConfig


def load_run(run_dir):
    """A finished run's model (preprocessing included) and its dataset, split as it trained."""
    run_dir = Path(run_dir)
    model_file = run_dir / "model.keras"
    if not model_file.exists():
        raise FileNotFoundError(f"{model_file}: no trained model; train the config first (notebooks/train.ipynb)")
    model = keras.saving.load_model(model_file, safe_mode=True)
    config = json.loads((run_dir / "config.json").read_text())["config"]
    return model, RunConfig.from_mapping(config).load_data()


def held_out_images(entry, data_dir, count):
    """The first `count` images a pretrained network's run held out (its validation split, drawn
    again from its config and seed), with their labels and class names; None where `data_dir`,
    the images it trained on, is absent."""
    if entry.run_config is None or not Path(data_dir).exists():
        return None
    data = RunConfig.from_mapping({**entry.run_config, "data_dir": str(data_dir)}).load_data()
    return data.x_val[:count], data.y_val[:count], data.class_names


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
