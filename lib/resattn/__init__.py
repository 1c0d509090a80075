"""Residual Attention Networks (Wang et al., CVPR 2017) and the seed's reproduction, in Keras 3."""

from resattn.attention import MASK_ACTIVATIONS, MECHANISMS, AttentionCombine, MaskActivation
from resattn.blocks import MASK_STRUCTURES
from resattn.complexity import count_multiply_adds, count_parameters
from resattn.networks import FAMILIES, WIRINGS, build_model, resolve_config
# A saved run's model.keras holds these layers: importing them registers them for load_model.
from resattn.preprocessing import RandomHorizontalFlip, RandomShift

__all__ = [
    "FAMILIES",
    "MASK_ACTIVATIONS",
    "MASK_STRUCTURES",
    "MECHANISMS",
    "WIRINGS",
    "AttentionCombine",
    "MaskActivation",
    "RandomHorizontalFlip",
    "RandomShift",
    "build_model",
    "count_multiply_adds",
    "count_parameters",
    "resolve_config",
]
