"""Adam and SGD whose update is one fused kernel per variable on TensorFlow.

Keras 3 writes each variable's update as about a dozen small ops; Attention-56 has 466
trainable variables, so on a TensorFlow CPU the optimizer alone ran some 6,000 tiny ops a step.
TensorFlow's own training kernels (the ones tf.keras 2, and so the seed, used) compute the very
same update in one op each. On JAX the step is compiled whole, and Keras's update is kept.
`tests/test_optimizers.py` checks both against Keras's own.
"""

import keras
from keras import ops


def _handle(variable):
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def _on_tensorflow():
    return keras.backend.backend() == "tensorflow"


@keras.saving.register_keras_serializable(package="resattn")
class Adam(keras.optimizers.Adam):
    """Keras's Adam; on TensorFlow each update is one `ResourceApplyAdam` (the same formula)."""

    def update_step(self, gradient, variable, learning_rate):
        if not _on_tensorflow() or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=ops.power(ops.cast(self.beta_1, dtype), step),
            beta2_power=ops.power(ops.cast(self.beta_2, dtype), step),
            lr=ops.cast(learning_rate, dtype),
            beta1=ops.cast(self.beta_1, dtype),
            beta2=ops.cast(self.beta_2, dtype),
            epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable(package="resattn")
class SGD(keras.optimizers.SGD):
    """Keras's SGD; on TensorFlow each update with momentum is one `ResourceApplyKerasMomentum`
    (m = momentum * m - lr * g, then w += m, or w += momentum * m - lr * g with Nesterov)."""

    def update_step(self, gradient, variable, learning_rate):
        if not _on_tensorflow() or self.momentum == 0:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_handle(variable),
            accum=_handle(self.momentums[self._get_variable_index(variable)]),
            lr=ops.cast(learning_rate, dtype),
            grad=ops.cast(gradient, dtype),
            momentum=ops.cast(self.momentum, dtype),
            use_nesterov=self.nesterov,
        )
