"""Input scaling and augmentation as Keras layers, so they run inside the compiled training
step on any backend; augmentation is active only in training."""

import keras
import numpy as np
from keras import layers, ops

# docs/sources.md, section 1: the seed's per-channel statistics on the 0..255 scale.
SEED_MEAN = (125.3, 123.0, 113.9)
SEED_STD = (63.0, 62.1, 66.7)
SEED_SHIFT = 0.15
# Cutout is neither the seed's nor the paper's: an option no recipe uses until a run shows it pays
# (BENCHMARKS.md). Its square's side: airbench's for its 40-odd-epoch CIFAR-10 runs (DeVries &
# Taylor used 16 for 200 epochs).
CUTOUT = 12
PREPROCESSINGS = ("seed", "paper", "crop_flip", "crop_flip_cutout")


def preprocessing_layers(kind, x_train, seed, augment=True):
    """The layers between a uint8 image and the network: `seed` (the seed's scaling, flip and
    15% shift), `paper` (per-pixel mean, pad-4 crop, flip) or `crop_flip` (the seed's scaling, the
    paper's pad-4 crop and flip: the fast recipe's) or `crop_flip_cutout` (the same, then a
    CUTOUT-pixel square blanked); `augment=False` leaves out every augmentation."""
    if kind not in PREPROCESSINGS:
        raise ValueError(f"preprocessing={kind!r} is not valid; choose one of {PREPROCESSINGS}")
    seed_scaling = [
        layers.Normalization(mean=SEED_MEAN, variance=np.square(SEED_STD), dtype="float32", name="seed_standardize")
    ]
    # Zero-pad 4 then a random crop is a shift by a whole number of pixels in [-4, 4] with zero
    # fill (after mean subtraction or standardization zero is the mean pixel, as in common
    # implementations).
    pad_crop_flip = [
        RandomShift(4, unit="pixel", fill_mode="zeros", seed=seed + 1, name="random_pad_crop"),
        RandomHorizontalFlip(seed=seed, name="random_flip"),
    ]
    if kind == "seed":
        scaling = seed_scaling
        augmentation = [
            RandomHorizontalFlip(seed=seed, name="random_flip"),
            # ImageDataGenerator's shift: up to 15% each way, bilinear, edges filled by nearest.
            RandomShift(SEED_SHIFT, unit="fraction", fill_mode="nearest", seed=seed + 1, name="random_shift"),
        ]
    elif kind == "crop_flip":
        scaling, augmentation = seed_scaling, pad_crop_flip
    elif kind == "crop_flip_cutout":
        scaling, augmentation = seed_scaling, [*pad_crop_flip, Cutout(CUTOUT, seed=seed + 2, name="random_cutout")]
    else:
        mean_image = x_train.astype(np.float64).mean(axis=0)
        scaling = [
            layers.Normalization(
                axis=(1, 2, 3),
                mean=mean_image,
                variance=np.ones_like(mean_image),
                dtype="float32",
                name="per_pixel_mean",
            )
        ]
        augmentation = pad_crop_flip
    return scaling + augmentation if augment else scaling


@keras.saving.register_keras_serializable(package="resattn")
class RandomShift(layers.Layer):
    """Moves each image by its own random offset, in training only.

    unit="fraction": offsets drawn uniformly in +-max_shift times the side, resampled
    bilinearly (the seed's ImageDataGenerator shift); unit="pixel": whole offsets drawn
    uniformly from -max_shift..max_shift (the paper's pad-and-crop). fill_mode: "nearest"
    repeats the edge pixel, "zeros" fills with 0. Resampling is one small matrix product per
    axis, so the layer compiles with XLA on every backend, which Keras's RandomTranslation
    does not on TensorFlow.
    """

    def __init__(self, max_shift, unit="fraction", fill_mode="nearest", seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if unit not in ("fraction", "pixel") or fill_mode not in ("nearest", "zeros"):
            raise ValueError(f"unit={unit!r}, fill_mode={fill_mode!r}: choose fraction|pixel and nearest|zeros")
        self.max_shift, self.unit, self.fill_mode, self.seed = max_shift, unit, fill_mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        return self.shift(images, self._offsets(batch, height), self._offsets(batch, width))

    def shift(self, images, rows, columns):
        """`images` moved down by `rows` and right by `columns` pixels, one offset per image."""
        height, width = images.shape[1], images.shape[2]
        images = ops.einsum("bij,bjwc->biwc", self._resampling(rows, height, images.dtype), images)
        return ops.einsum("bij,bhjc->bhic", self._resampling(columns, width, images.dtype), images)

    def _offsets(self, batch, side):
        if self.unit == "pixel":
            offsets = keras.random.randint((batch,), -self.max_shift, self.max_shift + 1, seed=self.seed_generator)
            return ops.cast(offsets, "float32")
        limit = self.max_shift * side
        return keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)

    def _resampling(self, offsets, side, dtype):
        """(batch, side, side) matrices: output pixel i reads input i - offset, interpolated."""
        offsets = ops.cast(offsets, "float32")
        source = ops.arange(side, dtype="float32")[None, :] - offsets[:, None]
        below = ops.floor(source)
        weight = source - below
        below = ops.cast(below, "int32")
        taps = ((below, 1.0 - weight), (below + 1, weight))
        positions = ops.arange(side, dtype="int32")
        matrix = 0.0
        for index, tap in taps:
            if self.fill_mode == "nearest":
                index = ops.clip(index, 0, side - 1)
            # An index off the image matches no position: its weight is dropped, a zero fill.
            hit = ops.cast(ops.equal(index[:, :, None], positions[None, None, :]), "float32")
            matrix = matrix + hit * tap[:, :, None]
        return ops.cast(matrix, dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "max_shift": self.max_shift,
            "unit": self.unit,
            "fill_mode": self.fill_mode,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="resattn")
class RandomHorizontalFlip(layers.Layer):
    """Mirrors each image left to right with probability 1/2, in training only."""

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        flip = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self.seed_generator) < 0.5
        return ops.where(flip, ops.flip(images, axis=2), images)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="resattn")
class Cutout(layers.Layer):
    """Blanks a size x size square of each image, centred on a pixel drawn uniformly, in training
    only (DeVries & Taylor 2017): a square near an edge is cut by it, so less is blanked there.
    Blank is 0, the mean pixel after standardization."""

    def __init__(self, size, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.size, self.seed = size, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        rows = self._covered(batch, height)
        columns = self._covered(batch, width)
        keep = 1.0 - rows[:, :, None, None] * columns[:, None, :, None]
        return images * ops.cast(keep, images.dtype)

    def _covered(self, batch, side):
        """(batch, side): 1 where the square covers that row (or column), 0 elsewhere."""
        start = keras.random.randint((batch, 1), 0, side, seed=self.seed_generator) - self.size // 2
        positions = ops.arange(side, dtype="int32")[None, :]
        return ops.cast((positions >= start) & (positions < start + self.size), "float32")

    def get_config(self):
        return {**super().get_config(), "size": self.size, "seed": self.seed}


def training_model(network, kind, x_train, seed, augment=True):
    """uint8 images -> preprocessing -> network, as one model to train, save and evaluate."""
    inputs = keras.Input(shape=x_train.shape[1:], name="image")
    x = layers.Rescaling(1.0, dtype="float32", name="to_float")(inputs)
    for layer in preprocessing_layers(kind, x_train, seed, augment):
        x = layer(x)
    return keras.Model(inputs, network(x), name=network.name)
