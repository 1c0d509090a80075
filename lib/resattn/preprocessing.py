"""Input scaling and augmentation as Keras layers, so they run inside the compiled training
step on any backend; augmentation is active only in training."""

import keras
import numpy as np
from keras import layers

# FACTS section 1: the seed's per-channel statistics on the 0..255 scale.
SEED_MEAN = (125.3, 123.0, 113.9)
SEED_STD = (63.0, 62.1, 66.7)
SEED_SHIFT = 0.15
PREPROCESSINGS = ("seed", "paper")


def preprocessing_layers(kind, x_train, seed):
    """The layers between a uint8 image and the network, for the `seed` or `paper` recipe."""
    if kind not in PREPROCESSINGS:
        raise ValueError(f"preprocessing={kind!r} is not valid; choose one of {PREPROCESSINGS}")
    if kind == "seed":
        return [
            layers.Normalization(mean=SEED_MEAN, variance=np.square(SEED_STD), name="seed_standardize"),
            layers.RandomFlip("horizontal", seed=seed, name="random_flip"),
            # ImageDataGenerator's shift: up to 15% each way, bilinear, edges filled by nearest.
            layers.RandomTranslation(
                SEED_SHIFT, SEED_SHIFT, fill_mode="nearest", seed=seed + 1, name="random_shift"
            ),
        ]
    height, width = x_train.shape[1:3]
    mean_image = x_train.astype(np.float64).mean(axis=0)
    return [
        layers.Normalization(
            axis=(1, 2, 3), mean=mean_image, variance=np.ones_like(mean_image), name="per_pixel_mean"
        ),
        # Zero-pad 4 then a random 32x32 crop is an integer shift of up to 4 pixels with zero
        # fill (after mean subtraction zero is the mean pixel, as in common implementations).
        layers.RandomTranslation(
            4 / height,
            4 / width,
            fill_mode="constant",
            fill_value=0.0,
            interpolation="nearest",
            seed=seed + 1,
            name="random_pad_crop",
        ),
        layers.RandomFlip("horizontal", seed=seed, name="random_flip"),
    ]


def training_model(network, kind, x_train, seed):
    """uint8 images -> preprocessing -> network, as one model to train, save and evaluate."""
    inputs = keras.Input(shape=x_train.shape[1:], name="image")
    x = layers.Rescaling(1.0, dtype="float32", name="to_float")(inputs)
    for layer in preprocessing_layers(kind, x_train, seed):
        x = layer(x)
    return keras.Model(inputs, network(x), name=network.name)
