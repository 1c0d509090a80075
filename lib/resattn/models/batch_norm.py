"""Batch normalization that can train with TensorFlow's fused kernel.

Keras 3 normalizes a batch with separate small ops for the moments, the normalization and each
of their gradients (the seed's Attention-56 has 97 such layers); TensorFlow's fused kernel, the
one tf.keras 2 and so the seed trained with, does the forward pass in one op and the backward pass
in one. Same formula, another rounding order. It runs only where a run asks for it (`fused`, set
by the training model from the recipe's `kernels`) and only in training on TensorFlow; otherwise,
and always in inference, this is Keras's layer. Its moving variance is Keras's (the kernel's
batch variance carries Bessel's correction, taken back out here).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="resattn")
class BatchNormalization(keras.layers.BatchNormalization):
    fused = False  # set per layer by the training model; not part of the saved config

    def call(self, inputs, training=None, mask=None):
        if not (self.fused and training and self.trainable and self._fusable(inputs, mask)):
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
        variance = variance * (count - 1) / count
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
