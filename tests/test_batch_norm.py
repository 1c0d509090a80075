"""The fused batch normalization against Keras's own layer, both measured against a float64
reference (the rule for a faster kernel, issue 22): the forward pass, the gradients and the moving
statistics at least as accurate as Keras's layer is; and training really runs the fused kernel."""

import keras
import numpy as np
import pytest

from resattn.models.batch_norm import BatchNormalization

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
OPTIONS = {"momentum": 0.9, "epsilon": 1e-3}
SHAPE = (16, 8, 8, 32)
# The fused kernel's relative error against float64, on each of the output, the three gradients and
# the moving statistics, is at most this many times Keras's layer's, or within a few units of the
# precision's rounding (float32 2^-24, bfloat16 2^-8), where both errors are rounding noise.
# Measured here (AMD EPYC), fused / Keras: float32 1.9e-7 / 1.0e-7 (output), 1.3e-7 / 9.3e-8
# (input gradient), 3.2e-7 / 6.5e-7, 1.5e-7 / 2.7e-7 (gamma, beta); bfloat16 equal to two digits.
AS_ACCURATE = 2.0
ROUNDING = {"float32": 2.0**-24, "mixed_bfloat16": 2.0**-8}


def layer(kind, dtype):
    made = {"fused": BatchNormalization, "keras": keras.layers.BatchNormalization}[kind](**OPTIONS, dtype=dtype)
    made.fused = kind == "fused"
    made.build((None, *SHAPE[1:]))
    rng = np.random.default_rng(1)
    made.set_weights(
        [
            rng.uniform(0.5, 1.5, SHAPE[-1]),
            rng.normal(size=SHAPE[-1]),
            rng.normal(size=SHAPE[-1]),
            rng.uniform(0.5, 2, SHAPE[-1]),
        ]
    )
    return made


def step(made, x, upstream):
    """Output, gradients (input, gamma, beta) and moving statistics after one training call, as
    float64 arrays; and whether the traced step ran the fused kernel."""
    import tensorflow as tf

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = made(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, upstream.dtype) * upstream)
        return [y, *tape.gradient(loss, [x, made.gamma.value, made.beta.value])]

    x = tf.constant(x, made.compute_dtype if made.compute_dtype != "bfloat16" else "float32")
    graph = run.get_concrete_function(x).graph
    fused = any(op.type == "FusedBatchNormV3" for op in graph.get_operations())
    values = [np.asarray(tf.cast(value, "float64")) for value in run(x)]
    return values + [np.asarray(made.moving_mean, "float64"), np.asarray(made.moving_variance, "float64")], fused


def errors(values, reference):
    return [np.linalg.norm(value - truth) / np.linalg.norm(truth) for value, truth in zip(values, reference)]


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_the_fused_kernel_is_as_accurate_against_float64_as_keras_layer(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=SHAPE) * 3 + 2
    upstream = rng.normal(size=SHAPE)
    import tensorflow as tf

    reference, _ = step(layer("keras", "float64"), x, tf.constant(upstream, "float64"))
    keras_values, keras_fused = step(layer("keras", dtype), x, tf.constant(upstream, "float32"))
    fused_values, fused = step(layer("fused", dtype), x, tf.constant(upstream, "float32"))
    assert fused and not keras_fused
    ours, theirs = errors(fused_values, reference), errors(keras_values, reference)
    names = ["output", "input gradient", "gamma gradient", "beta gradient", "moving mean", "moving variance"]
    report = ", ".join(f"{name} {a:.2g} vs {b:.2g}" for name, a, b in zip(names, ours, theirs))
    assert all(a <= max(AS_ACCURATE * b, 4 * ROUNDING[dtype]) for a, b in zip(ours, theirs)), report


def test_inference_and_an_unfused_layer_are_keras_own(tmp_path):
    x = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    ours, theirs = layer("fused", "float32"), layer("keras", "float32")
    np.testing.assert_array_equal(ours(x, training=False), theirs(x, training=False))
    model = keras.Sequential([keras.Input(SHAPE[1:]), ours])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras").layers[0]
    assert type(loaded) is BatchNormalization and not loaded.fused  # fused is how a run trains, not the layer


def test_a_recipe_with_fused_kernels_trains_the_network_with_them():
    from resattn.train.model import new_training_model
    from resattn.train.recipes import resolve_recipe

    x = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(np.arange(32) % 10, 10)
    options = {"family": "seed", "depth": 56, "num_classes": 10, "input_shape": (16, 16, 3)}
    for kernels in ("keras", "fused"):
        model = new_training_model(options, resolve_recipe("fast", kernels=kernels, batch_size=16), x, seed=0)
        norms = [layer for layer in model.layers[-1].layers if isinstance(layer, BatchNormalization)]
        assert len(norms) > 50 and all(layer.fused == (kernels == "fused") for layer in norms)
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])


def test_a_recipes_bn_momentum_sets_every_batch_norm_layers_moving_average():
    from resattn.train.model import new_training_model
    from resattn.train.recipes import resolve_recipe

    x = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(np.arange(16) % 10, 10)
    options = {"family": "seed", "depth": 56, "num_classes": 10, "input_shape": (16, 16, 3)}

    def norms_of(recipe):
        keras.utils.set_random_seed(0)
        model = new_training_model(options, recipe, x, seed=0)
        return model, [layer for layer in model.layers[-1].layers if isinstance(layer, BatchNormalization)]

    _, norms = norms_of(resolve_recipe("seed_adam", batch_size=16))
    assert {layer.momentum for layer in norms} == {0.99}  # the seed's network keeps Keras's default
    batch_means = []
    for momentum in (None, 0.99, 0.5):
        recipe = resolve_recipe("fast", batch_size=16, **({} if momentum is None else {"bn_momentum": momentum}))
        model, norms = norms_of(recipe)
        momentum = momentum or 0.9  # the fast recipe's own
        assert {layer.momentum for layer in norms} == {momentum}
        model.run_eagerly = True  # the subject is the layers' averages, not the step: one step, not traced
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # one step: moving mean = (1 - momentum) * batch mean
        batch_means.append(np.asarray(norms[0].moving_mean) / (1 - momentum))
    assert np.abs(batch_means[0]).max() > 0.01
    np.testing.assert_allclose(batch_means[1], batch_means[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(batch_means[2], batch_means[0], rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match=r"bn_momentum=1.0 is not valid; it must be a number in \[0, 1\) or null"):
        resolve_recipe("fast", bn_momentum=1.0)
