"""The fused optimizers (`kernels: fused`) against a float64 reference, beside Keras's own; on
TensorFlow the update really is TensorFlow's fused kernel; a model compiled with one saves and
loads after `import resattn` alone."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from resattn.train.optimizers import FusedAdam, FusedSGD
from resattn.train.schedules import WarmupLinearDecay

SHAPES = [(3, 3, 4, 8), (8,), (1, 1, 8, 16), (16, 10)]
STEPS = 8
CASES = {
    "adam": (FusedAdam, keras.optimizers.Adam, {}),
    "sgd-nesterov": (FusedSGD, keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
    "sgd-momentum": (FusedSGD, keras.optimizers.SGD, {"momentum": 0.9}),
    "sgd-plain": (FusedSGD, keras.optimizers.SGD, {}),
}


def problem():
    rng = np.random.default_rng(0)
    start = [rng.normal(size=shape).astype("float32") for shape in SHAPES]
    gradients = [[rng.normal(size=shape).astype("float32") for shape in SHAPES] for _ in range(STEPS)]
    return start, gradients


def rate(step):
    return 0.1 * (step + 1) / 4 if step < 4 else 0.1 * (STEPS - step) / (STEPS - 4)


def run_steps(optimizer_class, options):
    start, gradients = problem()
    variables = [keras.Variable(value) for value in start]
    optimizer = optimizer_class(WarmupLinearDecay(0.1, 4, STEPS), **options)  # a rate that moves every step
    for step_gradients in gradients:
        optimizer.apply(step_gradients, variables)
    return [keras.ops.convert_to_numpy(variable).astype(np.float64) for variable in variables]


def reference(case, options):
    """The same steps in float64, by the formulas Keras documents."""
    start, gradients = problem()
    weights = [value.astype(np.float64) for value in start]
    first = [np.zeros_like(w) for w in weights]
    second = [np.zeros_like(w) for w in weights]
    momentum, nesterov = options.get("momentum", 0.0), options.get("nesterov", False)
    for step, step_gradients in enumerate(gradients):
        lr = rate(step)
        for index, gradient in enumerate(step_gradients):
            g = gradient.astype(np.float64)
            if case == "adam":
                first[index] = 0.9 * first[index] + 0.1 * g
                second[index] = 0.999 * second[index] + 0.001 * g * g
                alpha = lr * np.sqrt(1 - 0.999 ** (step + 1)) / (1 - 0.9 ** (step + 1))
                weights[index] -= alpha * first[index] / (np.sqrt(second[index]) + 1e-7)
            elif momentum:
                first[index] = momentum * first[index] - lr * g
                weights[index] += momentum * first[index] - lr * g if nesterov else first[index]
            else:
                weights[index] -= lr * g
    return weights


@pytest.mark.parametrize("case", CASES)
def test_as_accurate_against_float64_as_keras(case):
    fused, stock, options = CASES[case]
    expected = reference(case, options)
    error = {
        name: max(float(np.abs(got - want).max()) for got, want in zip(run_steps(kind, options), expected))
        for name, kind in (("fused", fused), ("keras", stock))
    }
    # Eight steps of about 0.1 on weights of about 1: float32 leaves some 1e-7 either way.
    assert error["keras"] < 1e-5, error
    assert error["fused"] <= 2 * error["keras"] + 1e-7, error


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernels are TensorFlow's")
@pytest.mark.parametrize(
    "case, kernel", [("adam", "ResourceApplyAdam"), ("sgd-nesterov", "ResourceApplyKerasMomentum")]
)
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


def test_a_model_compiled_with_one_loads_after_import_resattn_alone(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=FusedSGD(WarmupLinearDecay(0.1, 2, 10), momentum=0.9, nesterov=True), loss="mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    # A fresh interpreter: in this one the tests have imported every module already.
    load = (
        "import keras, resattn; model = keras.saving.load_model("
        f"{str(tmp_path / 'model.keras')!r}); print(type(model.optimizer).__name__, int(model.optimizer.iterations))"
    )
    done = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "FusedSGD 2", done.stderr[-2000:]
