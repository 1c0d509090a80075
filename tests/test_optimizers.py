"""The fused optimizers against Keras's own: the same variables after the same steps, and on
TensorFlow the update really is TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest

from resattn import optimizers

SHAPES = [(3, 3, 4, 8), (8,), (1, 1, 8, 16), (16, 10)]
CASES = {
    "adam": (optimizers.Adam, keras.optimizers.Adam, {}),
    "sgd-nesterov": (optimizers.SGD, keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
    "sgd-momentum": (optimizers.SGD, keras.optimizers.SGD, {"momentum": 0.9}),
    "sgd-plain": (optimizers.SGD, keras.optimizers.SGD, {}),
}


def run_steps(optimizer_class, options, steps=6):
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=shape).astype("float32")) for shape in SHAPES]
    # A rate that drops mid-run, as the recipes' do.
    rate = keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01])
    optimizer = optimizer_class(rate, **options)
    for _ in range(steps):
        gradients = [rng.normal(size=shape).astype("float32") for shape in SHAPES]
        optimizer.apply(gradients, variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.mark.parametrize("case", CASES)
def test_same_update_as_keras(case):
    ours, keras_class, options = CASES[case]
    # Steps of about 0.1 (Adam's are lr-sized); the kernels round in their own order, a few ulps.
    for got, expected in zip(run_steps(ours, options), run_steps(keras_class, options)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernels are TensorFlow's")
@pytest.mark.parametrize("case, kernel", [("adam", "ResourceApplyAdam"), ("sgd-nesterov", "ResourceApplyKerasMomentum")])
def test_update_is_one_fused_kernel_per_variable(case, kernel):
    import tensorflow as tf

    optimizer_class, _, options = CASES[case]
    variables = [keras.Variable(np.ones(shape, "float32")) for shape in SHAPES]
    optimizer = optimizer_class(0.1, **options)
    optimizer.build(variables)
    step = tf.function(lambda gradients: optimizer.apply(gradients, variables))
    graph = step.get_concrete_function([tf.TensorSpec(shape, "float32") for shape in SHAPES]).graph
    op_types = [op.type for op in graph.get_operations()]
    assert op_types.count(kernel) == len(SHAPES)


def test_saved_and_loaded_with_its_state(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is optimizers.Adam
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    model.fit(x, y, epochs=1, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
