"""The model a run trains: the network behind its preprocessing, compiled with the recipe's
optimizer, new or restored from a checkpoint."""

import keras
import numpy as np

from resattn.data.preprocessing import training_model
from resattn.models.batch_norm import BatchNormalization
from resattn.models.complexity import leaf_layers
from resattn.models.networks import build_model


def new_training_model(model_options, recipe, x_train, seed, augment=True):
    """The network behind its preprocessing, compiled with the recipe's optimizer, ready to fit
    `x_train` (uint8 images); `augment=False` leaves out the random flip and shift."""
    policy, precision = keras.mixed_precision.global_policy(), recipe.compute_precision()
    if precision != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{precision}")
    try:
        network = build_model(**model_options)
        model = training_model(network, recipe.preprocessing, x_train, seed, augment)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    for layer in leaf_layers(model):
        if isinstance(layer, BatchNormalization):
            layer.fused = recipe.kernels == "fused"
            if recipe.bn_momentum is not None:
                layer.momentum = recipe.bn_momentum
    model.compile(
        optimizer=recipe.make_optimizer(len(x_train)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
        jit_compile=recipe.compiles_with_xla(),  # saved with the model
        run_eagerly=recipe.run_eagerly,
        steps_per_execution=recipe.execution_steps(),
    )
    build_training_state(model, x_train)
    return model


def build_training_state(model, x_train):
    """Makes the optimizer's slots and the metrics' variables now: made inside the first traced
    step, they make TensorFlow trace that step a second time (Keras 3 defers the metrics on
    TensorFlow), which doubled the warm-up. `_symbolic_build` is what Keras runs itself under a
    distribution strategy; it computes nothing. Run eagerly there is no trace to repeat, and the
    symbolic pass through every layer cost a fifth of a smoke run (Attention-128: 30 s -> 24 s)."""
    model.optimizer.build(model.trainable_variables)
    if model.run_eagerly:
        return
    classes = model.output_shape[-1]
    model._symbolic_build(data_batch=(x_train[:1], np.zeros((1, classes), "float32")))


def apply_weight_decay(model, weight_decay):
    """Adds weight_decay * w to the gradient of every conv and dense kernel, as an L2 penalty."""
    if not weight_decay:
        return
    for layer in leaf_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            layer.kernel.regularizer = keras.regularizers.L2(weight_decay / 2)


def weight_penalty(model):
    """The weight-decay penalty Keras adds to the loss, for the weights as they are now."""
    return sum(float(keras.ops.convert_to_numpy(term)) for term in model.losses)
