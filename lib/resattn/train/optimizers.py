"""Adam and SGD whose update is one fused kernel per variable on TensorFlow (`kernels: fused`).

Keras 3 writes each variable's update as about a dozen small ops; the seed's Attention-56 has
466 trainable variables, so on a TensorFlow CPU the optimizer alone runs some 6,000 tiny ops a
step. Here the step's scalars are computed once and each variable is updated by TensorFlow's own
training kernel (the ones tf.keras 2, and so the seed, used): the same formula in one op, rounded
in its own order. On JAX the step is compiled whole and Keras's update is kept.
`tests/test_optimizers.py` measures both against a float64 reference.
"""

import keras


def _handle(variable):
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


class _FusedOnTensorFlow:
    """Replaces the per-variable loop of Keras's TensorFlow optimizer (`_distributed_tf_update_step`,
    which only the TensorFlow backend calls): the scalars once, then one kernel per variable."""

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        import tensorflow as tf

        scalars = self._step_scalars(tf, tf.cast(learning_rate, "float32"))

        def update(variable, gradient):
            if variable.dtype != tf.float32 or not self._fusable():
                return self.update_step(gradient, variable, learning_rate)
            return self._fused_update(tf, tf.cast(gradient, "float32"), variable, scalars)

        for gradient, variable in grads_and_vars:
            distribution.extended.update(variable, update, args=(gradient,), group=False)


@keras.saving.register_keras_serializable(package="resattn")
class FusedAdam(_FusedOnTensorFlow, keras.optimizers.Adam):
    """Keras's Adam; on TensorFlow each update is one `ResourceApplyAdam` (the same formula)."""

    def _fusable(self):
        return not self.amsgrad

    def _step_scalars(self, tf, learning_rate):
        step = tf.cast(self.iterations + 1, "float32")
        return {
            "beta1_power": tf.pow(tf.constant(self.beta_1, "float32"), step),
            "beta2_power": tf.pow(tf.constant(self.beta_2, "float32"), step),
            "lr": learning_rate,
            "beta1": tf.constant(self.beta_1, "float32"),
            "beta2": tf.constant(self.beta_2, "float32"),
            "epsilon": tf.constant(self.epsilon, "float32"),
        }

    def _fused_update(self, tf, gradient, variable, scalars):
        index = self._get_variable_index(variable)
        return tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            grad=gradient,
            **scalars,
        )


@keras.saving.register_keras_serializable(package="resattn")
class FusedSGD(_FusedOnTensorFlow, keras.optimizers.SGD):
    """Keras's SGD; on TensorFlow each update with momentum is one `ResourceApplyKerasMomentum`
    (m = momentum * m - lr * g, then w += m, or w += momentum * m - lr * g with Nesterov)."""

    def _fusable(self):
        return self.momentum != 0

    def _step_scalars(self, tf, learning_rate):
        return {"lr": learning_rate, "momentum": tf.constant(self.momentum, "float32")}

    def _fused_update(self, tf, gradient, variable, scalars):
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=_handle(variable),
            accum=_handle(self.momentums[self._get_variable_index(variable)]),
            grad=gradient,
            use_nesterov=self.nesterov,
            **scalars,
        )
