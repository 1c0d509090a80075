"""What a network costs: parameters and multiply-adds of one forward pass of one image."""

import math

from keras import layers


def count_parameters(model):
    """Trainable, non-trainable (BatchNorm's moving statistics) and total weights."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}


def count_multiply_adds(model):
    """Multiply-adds of the convolutions and dense layers for one image, the paper's "FLOPs".

    Biases, BatchNorm, activations, pooling and the attention products are left out, as in the
    paper's count.
    """
    total = 0
    for layer in leaf_layers(model):
        if isinstance(layer, layers.Conv2D):
            _, height, width, out_channels = layer.output.shape
            in_channels = layer.input.shape[-1] // layer.groups
            total += height * width * math.prod(layer.kernel_size) * in_channels * out_channels
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return total


def leaf_layers(model):
    """Every layer of a model, nested models opened up."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from leaf_layers(layer)
        else:
            yield layer
