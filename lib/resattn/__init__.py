"""Residual Attention Networks (Wang et al., CVPR 2017) and the seed's reproduction, in Keras 3.

The thin public API: build a network (pretrained or not), count it. Beside it: `resattn.models` (the networks),
`resattn.data` (datasets, preprocessing), `resattn.train` (the training engine) and
`resattn.suite` (the experiments); importing this package imports only the first two, and the
training engine's two objects a saved run holds.
"""

# A saved run's model.keras holds these layers, and these optimizers and schedule in its compile
# config: importing them registers them for load_model.
from resattn.data.preprocessing import RandomHorizontalFlip, RandomShift
from resattn.models.attention import MASK_ACTIVATIONS, MECHANISMS, AttentionCombine, MaskActivation
from resattn.models.blocks import MASK_STRUCTURES
from resattn.models.complexity import count_multiply_adds, count_parameters
from resattn.models.networks import FAMILIES, WIRINGS, build_model, resolve_network
from resattn.models.pretrained import load_pretrained, pretrained_names
from resattn.train.optimizers import FusedAdam, FusedSGD
from resattn.train.schedules import WarmupLinearDecay

__all__ = [
    "FAMILIES",
    "MASK_ACTIVATIONS",
    "MASK_STRUCTURES",
    "MECHANISMS",
    "WIRINGS",
    "AttentionCombine",
    "FusedAdam",
    "FusedSGD",
    "MaskActivation",
    "RandomHorizontalFlip",
    "RandomShift",
    "WarmupLinearDecay",
    "build_model",
    "count_multiply_adds",
    "count_parameters",
    "load_pretrained",
    "pretrained_names",
    "resolve_network",
]
