"""The fused batch normalization against Keras's layer: outputs, gradients and moving
statistics; and on TensorFlow, training really runs the fused kernel."""

import keras
import numpy as np
import pytest

from resattn.batch_norm import BatchNormalization

OPTIONS = {"momentum": 0.9, "epsilon": 1e-5}


def pair(**options):
    """Our layer and Keras's, built alike, with the same non-trivial weights."""
    layers = BatchNormalization(**OPTIONS, **options), keras.layers.BatchNormalization(**OPTIONS, **options)
    rng = np.random.default_rng(1)
    weights = [rng.uniform(0.5, 1.5, 6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6)]
    for layer in layers:
        layer.build((None, 5, 7, 6))
        layer.set_weights([w.astype("float32") for w in weights])
    return layers


def batches(count=3):
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(4, 5, 7, 6)) * 3 + 2).astype("float32") for _ in range(count)]


def test_training_outputs_and_moving_statistics_match_keras():
    ours, reference = pair()
    for x in batches():
        np.testing.assert_allclose(ours(x, training=True), reference(x, training=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, reference.moving_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, reference.moving_variance, rtol=1e-6)
    x = batches(1)[0]
    np.testing.assert_allclose(ours(x, training=False), reference(x, training=False), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="gradients taken with tf.GradientTape")
def test_gradients_match_keras_and_training_uses_the_fused_kernel():
    import tensorflow as tf

    x = tf.constant(batches(1)[0])
    upstream = tf.constant(np.random.default_rng(2).normal(size=x.shape).astype("float32"))
    results = []
    for layer in pair():

        @tf.function
        def step(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True) * upstream)
            return tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])

        results.append(step(x))
        op_types = {op.type for op in step.get_concrete_function(x).graph.get_operations()}
        assert ("FusedBatchNormV3" in op_types) == isinstance(layer, BatchNormalization)
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_bfloat16_policy_matches_keras():
    ours, reference = pair(dtype="mixed_bfloat16")
    x = batches(1)[0]
    got, expected = ours(x, training=True), reference(x, training=True)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(got, "float32"), np.asarray(expected, "float32"), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(ours.moving_variance, reference.moving_variance, rtol=1e-3)


def test_saved_and_loaded(tmp_path):
    model = keras.Sequential([keras.Input((5, 7, 6)), BatchNormalization(**OPTIONS)])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.layers[0]) is BatchNormalization
