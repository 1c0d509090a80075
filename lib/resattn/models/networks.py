"""Every Residual Attention Network of the seed and the paper, built from one table of families.

A family fixes the stem, the widths, the mask depth per stage and the layer conventions; a
depth preset fixes the number of attention modules per stage and p, t, r. `build_model` takes
the same keyword names as the `params/*.yaml` files.
"""

import math
from dataclasses import dataclass

import keras
from keras import layers

from resattn.models.attention import MASK_ACTIVATIONS, MECHANISMS
from resattn.models.blocks import (
    MASK_STRUCTURES,
    PAPER,
    SEED,
    Convention,
    ModuleSpec,
    attention_module,
    bn_relu,
    conv2d,
    residual_units,
)

WIRINGS = ("chained", "published")


@dataclass(frozen=True)
class Depth:
    modules: tuple  # attention modules in stages 1, 2, 3
    p: int = 1
    t: int = 2
    r: int = 1
    units: tuple = (1, 1, 1)  # plain residual units that open each stage (the first one strides)


@dataclass(frozen=True)
class Family:
    convention: Convention
    stem: str
    stage_filters: tuple
    stage_strides: tuple
    mask_shapes: tuple  # (pooling levels, bottom units in multiples of r) of each stage's mask
    tail_filters: tuple
    tail_stride: int
    tail_units: int
    depths: dict
    input_shape: tuple
    num_classes: int
    has_attention: bool = True


FAMILIES = {
    # The seed's CIFAR network, docs/sources.md, section 2.
    "seed": Family(
        convention=SEED,
        stem="seed",
        stage_filters=((16, 16, 64), (32, 32, 128), (64, 64, 256)),
        stage_strides=(1, 2, 2),
        mask_shapes=((3, 2), (2, 2), (1, 1)),
        tail_filters=(128, 128, 512),
        tail_stride=1,
        tail_units=3,
        depths={56: Depth((1, 1, 1)), 92: Depth((1, 2, 3))},
        input_shape=(32, 32, 3),
        num_classes=10,
    ),
    # The paper's CIFAR network. The paper leaves stem, widths and mask depths open: we take
    # ResNet-164's stem and widths and the released ImageNet masks' 3/2/1 pooling levels, which
    # land on the paper's parameter counts (docs/architecture.md).
    "paper": Family(
        convention=PAPER,
        stem="cifar",
        stage_filters=((16, 16, 64), (32, 32, 128), (64, 64, 256)),
        stage_strides=(1, 2, 2),
        mask_shapes=((3, 2), (2, 2), (1, 2)),
        tail_filters=(64, 64, 256),
        tail_stride=1,
        tail_units=3,
        depths={
            56: Depth((1, 1, 1)),
            92: Depth((2, 2, 2)),
            128: Depth((3, 3, 3)),
            164: Depth((4, 4, 4)),
            236: Depth((6, 6, 6)),
            452: Depth((6, 6, 6), p=2, t=4, r=3),
        },
        input_shape=(32, 32, 3),
        num_classes=10,
    ),
    # The paper's ImageNet network (224x224), after the authors' released Caffe definitions.
    # Strided units stride in their 3x3 conv (our choice; it gives the paper's multiply-adds).
    "imagenet": Family(
        convention=PAPER,
        stem="imagenet",
        stage_filters=((64, 64, 256), (128, 128, 512), (256, 256, 1024)),
        stage_strides=(1, 2, 2),
        mask_shapes=((3, 2), (2, 2), (1, 2)),
        tail_filters=(512, 512, 2048),
        tail_stride=2,
        tail_units=3,
        depths={56: Depth((1, 1, 1)), 92: Depth((1, 2, 3))},
        input_shape=(224, 224, 3),
        num_classes=1000,
    ),
    # The paper's CIFAR baseline: pre-activation ResNet-164, 18 bottleneck units per stage.
    "resnet": Family(
        convention=PAPER,
        stem="cifar",
        stage_filters=((16, 16, 64), (32, 32, 128), (64, 64, 256)),
        stage_strides=(1, 2, 2),
        mask_shapes=(),
        tail_filters=(),
        tail_stride=1,
        tail_units=0,
        depths={164: Depth((0, 0, 0), units=(18, 18, 18))},
        input_shape=(32, 32, 3),
        num_classes=10,
        has_attention=False,
    ),
}

ATTENTION_KEYS = ("mechanism", "mask_activation", "mask_structure", "p", "t", "r")
KEYWORDS = ("family", "depth", "num_classes", *ATTENTION_KEYS, "input_shape", "wiring", "name")


def resolve_network(family="seed", depth=56, **options):
    """Validates a model config and fills in the family's defaults; returns a plain dict.

    Every bad value raises a ValueError that names it and lists the valid choices, before
    anything is built.
    """
    unknown = sorted(set(options) - set(KEYWORDS))
    if unknown:
        raise ValueError(f"unknown model keyword {unknown[0]!r}; valid keywords: {', '.join(KEYWORDS)}")
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not valid; choose one of {tuple(FAMILIES)}")
    spec = FAMILIES[family]
    if not _is_int(depth) or depth not in spec.depths:
        raise ValueError(f"depth={depth!r} is not valid for family {family!r}; choose one of {tuple(spec.depths)}")
    preset = spec.depths[depth]
    given = {key: value for key, value in options.items() if value is not None}

    if not spec.has_attention:
        stray = [key for key in ATTENTION_KEYS + ("wiring",) if key in given]
        if stray:
            raise ValueError(
                f"{stray[0]}={given[stray[0]]!r} does not apply: family {family!r} has no attention modules"
            )
    if "wiring" in given and family != "seed":
        raise ValueError(f"wiring={given['wiring']!r} applies only to family 'seed', not {family!r}")

    config = {"family": family, "depth": depth}
    config["num_classes"] = given.get("num_classes", spec.num_classes)
    if not _is_int(config["num_classes"]) or config["num_classes"] < 2:
        raise ValueError(f"num_classes={config['num_classes']!r} is not valid; it must be an integer >= 2")
    if spec.has_attention:
        config["mechanism"] = _choice(given, "mechanism", "arl", MECHANISMS)
        config["mask_activation"] = _choice(given, "mask_activation", "mixed", MASK_ACTIVATIONS)
        config["mask_structure"] = _choice(given, "mask_structure", "encoder_decoder", MASK_STRUCTURES)
        for key, lowest in (("p", 0), ("t", 1), ("r", 1)):
            config[key] = given.get(key, getattr(preset, key))
            if not _is_int(config[key]) or config[key] < lowest:
                raise ValueError(f"{key}={config[key]!r} is not valid; it must be an integer >= {lowest}")
    if family == "seed":
        config["wiring"] = _choice(given, "wiring", "chained", WIRINGS)
    config["input_shape"] = _input_shape(given.get("input_shape", spec.input_shape), family)
    config["name"] = given.get("name", default_name(config))
    return config


def default_name(config):
    """E.g. ``seed_attention92_published``, ``paper_attention56_spatial_nal``, ``resnet164``."""
    if config["family"] == "resnet":
        return f"resnet{config['depth']}"
    parts = [config["family"], f"attention{config['depth']}"]
    if config["mask_activation"] != "mixed":
        parts.append(config["mask_activation"])
    if config["mechanism"] != "arl":
        parts.append(config["mechanism"])
    if config["mask_structure"] != "encoder_decoder":
        parts.append(config["mask_structure"])
    if config.get("wiring") == "published":
        parts.append("published")
    return "_".join(parts)


def build_model(family="seed", depth=56, weights=None, **options):
    """Builds the network that `resolve_network` describes and returns it as a `keras.Model`.

    Keywords: family, depth, num_classes, mechanism (arl, nal), mask_activation (mixed, channel,
    spatial, seed_spatial), mask_structure (encoder_decoder, local_conv), p, t, r, input_shape,
    wiring (seed only: chained, published) and name. `weights`: None (initialized), a
    pretrained name (`resattn.pretrained_names()`) or a path to a run's model.keras; weights
    made for another network are refused with one line naming both.
    """
    config = resolve_network(family, depth, **options)
    spec = FAMILIES[family]
    preset = spec.depths[depth]
    convention = spec.convention
    inputs = keras.Input(shape=config["input_shape"], name="image")
    x = _stem(inputs, spec.stem, convention)

    def module(x, stage, name, filters=None):
        levels, bottom = spec.mask_shapes[stage]
        module_spec = ModuleSpec(
            p=config["p"],
            t=config["t"],
            r=config["r"],
            mask_levels=levels,
            mask_bottom=bottom,
            mechanism=config["mechanism"],
            mask_activation=config["mask_activation"],
            mask_structure=config["mask_structure"],
            convention=convention,
        )
        return attention_module(x, filters or spec.stage_filters[stage], module_spec, name)

    for stage, filters in enumerate(spec.stage_filters):
        x = residual_units(
            x, preset.units[stage], filters, convention, f"stage{stage + 1}_unit", stride=spec.stage_strides[stage]
        )
        if config.get("wiring") == "published" and depth == 92 and stage > 0:
            x = _seed_published_stage(x, stage, module)
            continue
        for m in range(preset.modules[stage]):
            x = module(x, stage, f"stage{stage + 1}_attention{m + 1}")
    x = residual_units(x, spec.tail_units, spec.tail_filters, convention, "tail_unit", stride=spec.tail_stride)
    x = bn_relu(x, convention, "head")
    # Global pooling equals the seed's AvgPool 4x4 + Flatten (and the paper's 8x8, 7x7 pools) at
    # the published input sizes, and keeps smaller inputs usable in tests.
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = layers.Dense(
        config["num_classes"],
        activation="softmax",
        kernel_initializer=convention.kernel_initializer,
        dtype="float32",  # the softmax stays in float32 under a mixed-precision policy
        name="predictions",
    )(x)
    model = keras.Model(inputs, outputs, name=config["name"])
    if weights is not None:
        from resattn.models.pretrained import load_weights

        load_weights(model, weights)
    return model


def _seed_published_stage(x, stage, module):
    """The seed's Attention-92 as published (docs/sources.md, section 2), kept to reproduce its config 4.

    Stage 2: the second module reads the stage's residual unit again, so the first module's
    output is discarded and drops out of the graph. Stage 3: the two extra modules use the
    tail's widths (128, 128, 512) on the 256-channel stage output.
    """
    if stage == 1:
        module(x, stage, "stage2_attention1")
        return module(x, stage, "stage2_attention2")
    x = module(x, stage, "stage3_attention1")
    x = module(x, stage, "stage3_attention2", filters=FAMILIES["seed"].tail_filters)
    return module(x, stage, "stage3_attention3", filters=FAMILIES["seed"].tail_filters)


def _stem(x, kind, convention):
    if kind == "seed":
        x = conv2d(x, 64, 5, convention, name="stem_conv")
        return layers.MaxPooling2D(2, name="stem_pool")(x)
    if kind == "cifar":
        return conv2d(x, 16, 3, convention, name="stem_conv")
    x = conv2d(x, 64, 7, convention, stride=2, name="stem_conv")
    x = bn_relu(x, convention, "stem")
    return layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


def input_multiple(family):
    """The factor an input's height and width must divide by: every pooling and stride halves
    the map, and the masks upsample by exact factors of two."""
    spec = FAMILIES[family]
    stem = {"seed": 2, "cifar": 1, "imagenet": 4}[spec.stem]
    factor = 1
    for stage in range(3):
        reached = stem * math.prod(spec.stage_strides[: stage + 1])
        levels = spec.mask_shapes[stage][0] if spec.has_attention else 0
        factor = max(factor, reached * 2**levels)
    return max(factor, stem * math.prod(spec.stage_strides) * spec.tail_stride)


def _input_shape(shape, family):
    spec = FAMILIES[family]
    multiple = input_multiple(family)
    valid = (
        isinstance(shape, (tuple, list))
        and len(shape) == 3
        and all(_is_int(n) and n > 0 for n in shape)
        and shape[0] % multiple == 0
        and shape[1] % multiple == 0
    )
    if not valid:
        raise ValueError(
            f"input_shape={shape!r} is not valid for family {family!r}; it must be (height, width, channels)"
            f" with height and width multiples of {multiple}, e.g. {spec.input_shape}"
        )
    return tuple(shape)


def _choice(given, key, default, choices):
    value = given.get(key, default)
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not valid; choose one of {choices}")
    return value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
