"""Scaling and augmentation layers: exact at inference, the published augmentation in training."""

import keras
import numpy as np
import pytest

from resattn.data.preprocessing import (
    CUTOUT,
    SEED_MEAN,
    SEED_SHIFT,
    SEED_STD,
    Cutout,
    RandomShift,
    preprocessing_layers,
    training_model,
)


def images(n=6, side=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side, 3)).astype(np.uint8)


def apply(layers, x, training):
    x = keras.ops.convert_to_tensor(x.astype("float32"))
    for layer in layers:
        x = layer(x, training=training)
    return np.asarray(keras.ops.convert_to_numpy(x))


def test_seed_scaling_at_inference_uses_the_published_statistics():
    x = images()
    out = apply(preprocessing_layers("seed", x, seed=0), x, training=False)
    np.testing.assert_allclose(out, (x - np.array(SEED_MEAN)) / np.array(SEED_STD), rtol=1e-5, atol=1e-5)


def test_paper_scaling_subtracts_the_per_pixel_mean_of_the_training_images():
    x = images()
    out = apply(preprocessing_layers("paper", x, seed=0), x, training=False)
    np.testing.assert_allclose(out, x - x.astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-4)


def shifted(image, dy, dx):
    """The image moved by (dy, dx) pixels with zero fill: zero-pad 4 then crop, in one step."""
    side = image.shape[0]
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    return padded[4 - dy : 4 - dy + side, 4 - dx : 4 - dx + side]


def test_paper_augmentation_is_an_integer_pad_crop_shift_and_flip():
    x = images(n=8)
    layers = preprocessing_layers("paper", x, seed=3)
    base = apply(layers[:1], x, training=False)
    out = apply(layers, x, training=True)
    moved = 0
    for original, augmented in zip(base, out):
        matches = [
            (dy, dx, flip)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            for flip in (False, True)
            if np.allclose(shifted(original[:, ::-1] if flip else original, dy, dx), augmented, atol=1e-4)
        ]
        assert matches, "an augmented image is not a pad-crop shift (and flip) of its input"
        moved += (0, 0, False) not in matches
    assert moved > 0


def test_seed_augmentation_acts_in_training_only():
    x = images()
    layers = preprocessing_layers("seed", x, seed=1)
    inference = apply(layers, x, training=False)
    assert not np.allclose(apply(layers, x, training=True), inference)


def test_training_model_takes_uint8_images_and_wraps_the_network():
    x = images(side=8)
    inputs = keras.Input((8, 8, 3))
    network = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs), name="net")
    model = training_model(network, "seed", x, seed=0)
    assert model.layers[-1] is network and model.name == "net"
    expected = ((x - np.array(SEED_MEAN)) / np.array(SEED_STD)).mean(axis=(1, 2))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_unknown_preprocessing_is_refused():
    with pytest.raises(
        ValueError, match=r"preprocessing='imagenet' .*\('seed', 'paper', 'crop_flip', 'crop_flip_cutout'\)"
    ):
        preprocessing_layers("imagenet", images(), seed=0)


def test_the_seed_shift_resamples_as_imagedatagenerator_does():
    # ImageDataGenerator moves each image with scipy: bilinear (order 1), edges repeated.
    from scipy import ndimage

    x = images(n=3).astype("float32")
    offsets = np.array([[1.5, -2.25], [-4.8, 0.4], [0.0, 3.0]], dtype="float32")
    shift = RandomShift(0.15, unit="fraction", fill_mode="nearest")
    out = keras.ops.convert_to_numpy(shift.shift(keras.ops.convert_to_tensor(x), offsets[:, 0], offsets[:, 1]))
    for image, (dy, dx), moved in zip(x, offsets, out):
        np.testing.assert_allclose(moved, ndimage.shift(image, (dy, dx, 0), order=1, mode="nearest"), atol=1e-3)


def test_the_pad_crop_draws_every_whole_offset_from_minus_4_to_4_equally_often():
    x = np.zeros((4000, 16, 16, 1), dtype="float32")
    x[:, 8, 8] = 1.0  # one lit pixel: where it lands is the offset
    out = keras.ops.convert_to_numpy(RandomShift(4, unit="pixel", fill_mode="zeros", seed=0)(x, training=True))
    rows, columns = np.nonzero(out[..., 0].max(axis=2))[1] - 8, np.nonzero(out[..., 0].max(axis=1))[1] - 8
    for offsets in (rows, columns):
        counts = np.bincount(offsets + 4, minlength=9)
        assert len(offsets) == 4000 and counts.min() > 0.8 * 4000 / 9 and counts.max() < 1.2 * 4000 / 9


def covered_span(mask):
    """The first and one-past-last index where a 1-D 0/1 mask is 1, checking it is one run."""
    where = np.flatnonzero(mask)
    assert len(where) and np.array_equal(where, np.arange(where[0], where[-1] + 1)), mask
    return where[0], where[-1] + 1


def test_cutout_blanks_one_square_centred_anywhere_in_training_only():
    side, count = 32, 4000
    x = np.ones((count, side, side, 2), dtype="float32")
    cutout = Cutout(CUTOUT, seed=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(cutout(x, training=False)), x)
    blank = keras.ops.convert_to_numpy(cutout(x, training=True)) == 0
    assert np.array_equal(blank[..., 0], blank[..., 1])  # every channel of a pixel
    centres = []
    for image in blank[..., 0]:
        rows, columns = image.any(axis=1), image.any(axis=0)
        assert np.array_equal(image, np.outer(rows, columns))  # a rectangle ...
        for start, stop in (covered_span(rows), covered_span(columns)):
            # ... CUTOUT wide, or cut short by the edge it reaches
            assert stop - start == CUTOUT or (stop - start < CUTOUT and (start == 0 or stop == side))
            centres.append(start + CUTOUT // 2 if start > 0 else stop - CUTOUT // 2)
    counts = np.bincount(centres, minlength=side)
    assert len(counts) == side and counts.min() > 0.8 * 2 * count / side and counts.max() < 1.2 * 2 * count / side


def test_crop_flip_cutout_is_crop_flip_then_cutout():
    x = images(n=4)
    layers = preprocessing_layers("crop_flip_cutout", x, seed=3)
    assert [layer.name for layer in layers] == [
        layer.name for layer in preprocessing_layers("crop_flip", x, seed=3)
    ] + ["random_cutout"]
    np.testing.assert_allclose(apply(layers, x, training=False), apply(layers[:1], x, training=False))


@pytest.mark.parametrize("kind", ["seed", "paper", "crop_flip_cutout"])
def test_the_training_model_compiles_with_xla(kind):
    x = images(n=8)
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = training_model(keras.Model(inputs, outputs), kind, x, seed=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy", jit_compile=True)
    assert model.jit_compile is True  # Keras falls back to False when a layer cannot be compiled
    model.fit(x, keras.utils.to_categorical(np.arange(8) % 10, 10), epochs=1, verbose=0)


def test_the_seed_augmentation_is_keras_own_draw_for_draw():
    """The seed's flip and shift, given Keras's seeds, make Keras's RandomFlip("horizontal") and
    RandomTranslation(0.15, 0.15, fill_mode="nearest") draws: what the learning check's stock
    pipeline trains on is the same augmentation, not merely the same distribution."""
    images = np.random.default_rng(0).uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    for seed in (0, 5):
        ours = [layer for layer in preprocessing_layers("seed", None, seed) if "random" in layer.name]
        stock = [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomTranslation(SEED_SHIFT, SEED_SHIFT, fill_mode="nearest", seed=seed + 1),
        ]
        for mine, theirs in zip(ours, stock):
            np.testing.assert_allclose(
                np.asarray(mine(images, training=True)), np.asarray(theirs(images, training=True)), atol=1e-4
            )  # of 255: bilinear weights rounded in another order
