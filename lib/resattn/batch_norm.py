"""Batch normalization that trains with TensorFlow's fused kernel.

Keras 3 normalizes a batch with separate small ops for the moments, the normalization and each
of their gradients; the seed's Attention-56 has 97 such layers. TensorFlow's fused kernel (the one tf.keras 2, and so the seed, trained with) does the
forward pass in one op and the backward in one, and its graph optimizer folds the following
ReLU in. The normalization is the same; the moving statistics too: the kernel's batch variance
carries Bessel's correction, which this layer takes back out so the moving variance is Keras's
(the seed's tf.keras kept it in; the difference is a factor n / (n - 1) on at least 4,096
values per channel). Elsewhere (JAX, masks, other layouts) this is Keras's layer unchanged.
`tests/test_batch_norm.py` checks it against Keras's layer.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="resattn")
class BatchNormalization(keras.layers.BatchNormalization):
    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            ops.cast(self.gamma, "float32"),
            ops.cast(self.beta, "float32"),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        count = ops.cast(ops.size(inputs) // ops.shape(inputs)[-1], "float32")
        variance = variance * (count - 1) / count  # the population variance, as Keras keeps
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.scale
            and self.center
            and mask is None
            and not self.renorm
            and not self.synchronized
        )
