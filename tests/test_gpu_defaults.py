"""What a GPU gets by default (bfloat16 and XLA, recipes' "auto" on compute capability >= 8),
run on this CPU. TensorFlow's XLA lowering of the bilinear UpSampling2D gradient left a float32
tensor in a bfloat16 graph, and every paper network with an encoder-decoder mask stopped at its
first step ("Seen floating point types of different precisions")."""

import keras
import numpy as np
import pytest
from keras import layers

from resattn.models.blocks import PAPER, SEED, ModuleSpec, soft_mask


@pytest.fixture
def bfloat16_policy():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy(policy)


@pytest.mark.parametrize("convention", [PAPER, SEED], ids=["paper-bilinear", "seed-nearest"])
def test_a_soft_mask_trains_a_compiled_step_in_bfloat16(bfloat16_policy, convention):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    spec = ModuleSpec(
        p=1,
        t=1,
        r=1,
        mask_levels=1,
        mask_bottom=1,
        mechanism="arl",
        mask_activation="mixed",
        mask_structure="encoder_decoder",
        convention=convention,
    )
    mask = soft_mask(x, (2, 2, 8), spec, name="mask")
    outputs = layers.Dense(3, activation="softmax", dtype="float32")(layers.GlobalAveragePooling2D()(mask))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", jit_compile=True)
    rng = np.random.default_rng(0)
    loss = model.train_on_batch(rng.normal(size=(4, 8, 8, 3)).astype("float32"), np.eye(3)[[0, 1, 2, 0]])
    assert np.isfinite(loss)
