"""The two pieces of attention math: how mask logits become a mask, and how a mask meets the trunk.

Both are Keras layers written with `keras.ops` only, so they run unchanged on every backend and
save and load in safe mode.
"""

import keras
from keras import ops

MASK_ACTIVATIONS = ("mixed", "channel", "spatial", "seed_spatial")
MECHANISMS = ("arl", "nal")

# Guards the divisions of f2 and f3 against a zero norm or a constant channel; the paper gives none.
NORM_EPSILON = 1e-5
# keras.layers.LayerNormalization's default, which the seed used for its "spatial" mask.
SEED_LAYER_NORM_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="resattn")
class MaskActivation(keras.layers.Layer):
    """Turns soft-mask logits x[b, h, w, c] into the mask M.

    - ``mixed``: f1 = sigmoid(x), per position and channel (paper section 3.3).
    - ``channel``: f2 = x / ||x||_2 over the channels at each position.
    - ``spatial``: f3 = sigmoid((x - mean) / std), mean and std over the positions of each
      channel of each example.
    - ``seed_spatial``: the seed's variant, LayerNormalization over the *channel* axis with a
      learned scale and offset, then sigmoid. It is not the paper's spatial attention.
    """

    def __init__(self, kind="mixed", **kwargs):
        super().__init__(**kwargs)
        if kind not in MASK_ACTIVATIONS:
            raise ValueError(f"mask_activation={kind!r} is not valid; choose one of {MASK_ACTIVATIONS}")
        self.kind = kind

    def build(self, input_shape):
        if self.kind == "seed_spatial":
            channels = input_shape[-1]
            self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        if self.kind == "mixed":
            return ops.sigmoid(x)
        if self.kind == "channel":
            norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + NORM_EPSILON)
            return x / norm
        if self.kind == "spatial":
            mean, variance = ops.moments(x, axes=(1, 2), keepdims=True)
            return ops.sigmoid((x - mean) / ops.sqrt(variance + NORM_EPSILON))
        mean, variance = ops.moments(x, axes=(-1,), keepdims=True)
        normalized = (x - mean) / ops.sqrt(variance + SEED_LAYER_NORM_EPSILON)
        return ops.sigmoid(normalized * self.gamma + self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="resattn")
class AttentionCombine(keras.layers.Layer):
    """Combines trunk T and mask M: ``arl`` gives (1 + M) * T, ``nal`` gives M * T."""

    def __init__(self, mechanism="arl", **kwargs):
        super().__init__(**kwargs)
        if mechanism not in MECHANISMS:
            raise ValueError(f"mechanism={mechanism!r} is not valid; choose one of {MECHANISMS}")
        self.mechanism = mechanism

    def call(self, inputs):
        trunk, mask = inputs
        if self.mechanism == "arl":
            return trunk + mask * trunk
        return mask * trunk

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "mechanism": self.mechanism}
