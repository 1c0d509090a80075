"""Our training pipeline with `kernels: keras` computes what stock Keras computes (issue 10).

The seed's Attention-56 as `python -m resattn.train` builds it (uint8 images in, standardization
inside the model, the recipe's optimizer) with Keras's own kernels, augmentation off, against the same network made of
Keras's own layers, fed images standardized on the host and trained with Keras's own Adam: the
same initial weights on the same batches must give the same loss at every one of a hundred
steps. On this network a difference of one rounding grows into a different trajectory within tens
of steps (Adam moves every weight by about the learning rate from its first step, whatever the
gradient's size), so any kernel that computes differently from Keras's fails here, as
TensorFlow's fused batch norm and Adam do: the default `kernels: fused` is held instead to a
float64 reference (test_batch_norm.py, test_optimizers.py) and to stock Keras's seed-to-seed
range over whole epochs (`make learning-check`, issue 22). bfloat16 is held to float32 in
windows of steps.

Real CIFAR-10 images from ../shared/data when it is there, else the library's synthetic set.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from resattn.data.datasets import load_dataset
from resattn.data.preprocessing import SEED_MEAN, SEED_STD
from resattn.train.model import new_training_model
from resattn.train.recipes import resolve_recipe

SHARED_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg-train.tar.gz"
STEPS, BATCH, WINDOW = 100, 8, 50
MODEL = {"family": "seed", "depth": 56, "num_classes": 10, "input_shape": (32, 32, 3)}
# float32: the same arithmetic, so the same loss to the last bits at every step.
FLOAT32_TOLERANCE = 1e-6
# bfloat16 against float32: a 50-step window's mean loss. Measured on the shared images over 300
# steps, the six gaps were -0.064 to +0.028 at batch 16 and -0.048 to +0.044 at batch 8; the loss's
# step-to-step spread within a window is 0.15 to 0.3, so a window's mean is itself uncertain by about 0.03.
BFLOAT16_WINDOW_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def batches():
    if SHARED_ARCHIVE.exists():
        data = load_dataset("image_folder", SHARED_ARCHIVE, validation_split=0.0, limit=STEPS * BATCH + 10, seed=0)
    else:
        data = load_dataset("synthetic", synthetic_size=STEPS * BATCH, validation_split=0.0, seed=0)
    images, labels = data.x_train[: STEPS * BATCH], keras.utils.to_categorical(data.y_train[: STEPS * BATCH], 10)
    return [(images[i : i + BATCH], labels[i : i + BATCH]) for i in range(0, STEPS * BATCH, BATCH)]


def ours(precision, batches):
    recipe = resolve_recipe("seed_adam", precision=precision, kernels="keras")
    return new_training_model(MODEL, recipe, batches[0][0], seed=0, augment=False)


def stock(network):
    """The same network rebuilt from Keras's own layers (any layer of the library's that shares a
    Keras layer's name is replaced by Keras's), with the same weights, and Keras's own Adam."""

    def keras_layer(layer):
        kind = getattr(keras.layers, type(layer).__name__, None)
        return (kind or type(layer)).from_config(layer.get_config())

    model = keras.models.clone_model(network, clone_function=keras_layer)
    model.set_weights(network.get_weights())
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    return model


def host_standardized(images):
    """The seed's scaling, done on the host by Keras's own Normalization layer."""
    normalization = keras.layers.Normalization(mean=SEED_MEAN, variance=np.square(SEED_STD))
    return keras.ops.convert_to_numpy(normalization(images.astype("float32")))


def losses(model, batches, prepare=lambda images: images):
    return np.array(
        [model.train_on_batch(prepare(images), labels, return_dict=True)["loss"] for images, labels in batches]
    )


@pytest.fixture(scope="module")
def float32_run(batches):
    keras.utils.set_random_seed(0)
    model = ours("float32", batches)
    network = model.layers[-1]
    initial = network.get_weights()
    reference = stock(network)
    return initial, losses(model, batches), losses(reference, batches, host_standardized)


def test_float32_loss_is_stock_keras_loss_at_every_step(float32_run):
    _, got, expected = float32_run
    assert np.all(np.isfinite(got))
    difference = np.abs(got - expected)
    first = int(np.argmax(difference > FLOAT32_TOLERANCE * np.abs(expected)))
    assert np.allclose(got, expected, rtol=FLOAT32_TOLERANCE, atol=0), (
        f"step {first + 1}: ours {got[first]:.7f}, stock Keras {expected[first]:.7f}; "
        f"largest difference {difference.max():.2e} at step {int(np.argmax(difference)) + 1}"
    )
    # It learns: the last window's loss is well below the first's (chance is ln 10 = 2.30).
    assert got[-WINDOW:].mean() < got[:WINDOW].mean() - 0.1


def test_bfloat16_stays_near_float32(float32_run, batches):
    initial, float32_losses, _ = float32_run
    keras.utils.set_random_seed(0)
    model = ours("bfloat16", batches)
    model.layers[-1].set_weights(initial)
    got = losses(model, batches)
    assert np.all(np.isfinite(got))
    gaps = got.reshape(-1, WINDOW).mean(axis=1) - float32_losses.reshape(-1, WINDOW).mean(axis=1)
    assert np.abs(gaps).max() < BFLOAT16_WINDOW_TOLERANCE, f"bfloat16 minus float32, per {WINDOW} steps: {gaps}"
