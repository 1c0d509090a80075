"""The attention math on known tensors: ARL/NAL and the four mask activations."""

import keras
import numpy as np
import pytest

from resattn import AttentionCombine, MaskActivation
from resattn.models.attention import NORM_EPSILON


def logits(shape=(2, 5, 6, 7), scale=3.0, seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


def test_arl_and_nal_on_known_tensors():
    trunk = np.array([1.0, 2.0, 3.0, -4.0], "float32").reshape(1, 2, 2, 1)
    mask = np.array([0.5, 0.0, 1.0, 0.25], "float32").reshape(1, 2, 2, 1)
    arl = AttentionCombine("arl")([trunk, mask])
    nal = AttentionCombine("nal")([trunk, mask])
    np.testing.assert_allclose(np.ravel(arl), [1.5, 2.0, 6.0, -5.0])
    np.testing.assert_allclose(np.ravel(nal), [0.5, 0.0, 3.0, -1.0])


def test_mixed_is_sigmoid():
    x = logits()
    np.testing.assert_allclose(MaskActivation("mixed")(x), 1 / (1 + np.exp(-x)), rtol=1e-5)


def test_channel_has_unit_l2_norm_over_channels_at_every_position():
    x = logits()
    mask = np.asarray(MaskActivation("channel")(x))
    np.testing.assert_allclose(np.linalg.norm(mask, axis=-1), 1.0, rtol=1e-5)
    # f2 only rescales: each position's vector keeps its direction.
    np.testing.assert_allclose(mask * np.linalg.norm(x, axis=-1, keepdims=True), x, rtol=1e-4, atol=1e-5)


def test_spatial_equals_numpy_reference_of_f3_per_example():
    x = logits()
    x[1] = x[1] * 10 + 5  # a second example on another scale must not change the first's mask
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = np.sqrt(x.var(axis=(1, 2), keepdims=True) + NORM_EPSILON)
    reference = 1 / (1 + np.exp(-(x - mean) / std))
    mask = np.asarray(MaskActivation("spatial")(x))
    np.testing.assert_allclose(mask, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(MaskActivation("spatial")(x[:1])), reference[:1], rtol=1e-5, atol=1e-6)


def test_seed_spatial_is_layer_norm_over_channels_then_sigmoid():
    x = logits()
    activation = MaskActivation("seed_spatial")
    activation.build(x.shape)
    rng = np.random.default_rng(1)
    gamma, beta = rng.normal(size=(2, 7)).astype("float32")
    activation.set_weights([gamma, beta])
    norm = keras.layers.LayerNormalization(axis=-1)  # the seed's layer, default epsilon
    norm.build(x.shape)
    norm.set_weights([gamma, beta])
    np.testing.assert_allclose(activation(x), keras.ops.sigmoid(norm(x)), rtol=1e-5, atol=1e-6)
    assert len(activation.trainable_weights) == 2


@pytest.mark.parametrize("kind", ["mixed", "spatial", "seed_spatial"])
def test_sigmoid_masks_lie_strictly_between_zero_and_one(kind):
    mask = np.asarray(MaskActivation(kind)(logits()))
    assert mask.min() > 0 and mask.max() < 1


def test_channel_mask_is_not_bounded_to_unit_interval():
    # f2 keeps the logits' signs: the paper's channel attention is not a gate in (0, 1).
    assert np.asarray(MaskActivation("channel")(logits())).min() < 0


@pytest.mark.parametrize(
    "layer, value, valid",
    [(MaskActivation, "softmax", "seed_spatial"), (AttentionCombine, "foo", "'arl', 'nal'")],
)
def test_bad_kind_names_value_and_choices(layer, value, valid):
    with pytest.raises(ValueError, match=f"'{value}'.*{valid}"):
        layer(value)


def test_layers_round_trip_through_their_config():
    for layer in (MaskActivation("spatial"), AttentionCombine("nal")):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
