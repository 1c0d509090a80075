"""Block functions: the residual unit, the soft mask branch and the attention module.

Each function takes a Keras tensor and returns one, in the style of
`keras.applications.resnet`. What differs between the seed's code and the paper's networks is
collected in a `Convention`, so one set of functions builds both.
"""

from dataclasses import dataclass

from keras import layers

from resattn.models.attention import AttentionCombine, MaskActivation
from resattn.models.batch_norm import BatchNormalization

MASK_STRUCTURES = ("encoder_decoder", "local_conv")


@dataclass(frozen=True)
class Convention:
    """The layer-level choices that tell the seed's networks from the paper's."""

    use_bias: bool
    # The seed projects the shortcut on every unit (a shape-comparison quirk); the paper only
    # where the shape changes.
    always_project: bool
    # Pre-activation ResNets feed a projection shortcut the unit's BN-ReLU output; the seed
    # feeds it the raw input.
    shortcut_from_preact: bool
    kernel_initializer: str
    bn_momentum: float
    bn_epsilon: float
    upsampling: str  # "nearest" (seed) or "bilinear" (paper)
    # The seed's mask head is two bare 1x1 convs; the paper's is BN-ReLU-Conv1x1 twice.
    mask_head_preact: bool


SEED = Convention(
    use_bias=True,
    always_project=True,
    shortcut_from_preact=False,
    kernel_initializer="glorot_uniform",  # Keras's default, which the seed kept
    bn_momentum=0.99,  # Keras's defaults, which the seed kept
    bn_epsilon=1e-3,
    upsampling="nearest",
    mask_head_preact=False,
)

PAPER = Convention(
    use_bias=False,
    always_project=False,
    shortcut_from_preact=True,
    kernel_initializer="he_normal",
    # The paper does not give BN's settings; these are the pre-activation ResNet's (Torch).
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    # Half-pixel bilinear (Keras's); the authors' Caffe Interp layer aligns corners instead.
    upsampling="bilinear",
    mask_head_preact=True,
)


def conv2d(x, filters, kernel_size, convention, stride=1, name=None):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding="same",
        use_bias=convention.use_bias,
        kernel_initializer=convention.kernel_initializer,
        name=name,
    )(x)


def bn_relu(x, convention, name):
    x = BatchNormalization(momentum=convention.bn_momentum, epsilon=convention.bn_epsilon, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def residual_unit(x, filters, convention, stride=1, name="unit"):
    """Pre-activation bottleneck: BN-ReLU-Conv1x1(f0), BN-ReLU-Conv3x3(f1, stride), BN-ReLU-Conv1x1(f2)."""
    f0, f1, f2 = filters
    preact = bn_relu(x, convention, f"{name}_1")
    y = conv2d(preact, f0, 1, convention, name=f"{name}_1_conv")
    y = bn_relu(y, convention, f"{name}_2")
    y = conv2d(y, f1, 3, convention, stride=stride, name=f"{name}_2_conv")
    y = bn_relu(y, convention, f"{name}_3")
    y = conv2d(y, f2, 1, convention, name=f"{name}_3_conv")
    if convention.always_project or stride != 1 or x.shape[-1] != f2:
        source = preact if convention.shortcut_from_preact else x
        shortcut = conv2d(source, f2, 1, convention, stride=stride, name=f"{name}_shortcut")
    else:
        shortcut = x
    return layers.Add(name=f"{name}_add")([shortcut, y])


def residual_units(x, count, filters, convention, name, stride=1):
    """`count` units in a row; only the first one may stride."""
    for i in range(count):
        x = residual_unit(x, filters, convention, stride=stride if i == 0 else 1, name=f"{name}{i + 1}")
    return x


@dataclass(frozen=True)
class ModuleSpec:
    """An attention module's make-up, its widths aside: p units before and after, t on the
    trunk, r between the mask's poolings; the mask's shape, structure and activation; the
    combination (ARL or NAL); the family's convention."""

    p: int
    t: int
    r: int
    mask_levels: int  # pooling steps of an encoder-decoder mask
    mask_bottom: int  # units at its deepest level, in multiples of r
    mechanism: str
    mask_activation: str
    mask_structure: str
    convention: Convention


def mask_unit_count(levels, bottom, r):
    """Residual units in an encoder-decoder mask: r down and r up per level, a skip unit at every
    level but the deepest, and bottom * r units at the deepest."""
    return (levels - 1) * (2 * r + 1) + bottom * r


def soft_mask(x, filters, spec, name):
    """The soft mask branch M(x), from the module's input to the activated mask.

    ``encoder_decoder``: `mask_levels` max-pool steps with r units after each (mask_bottom * r
    at the deepest) and a skip unit at every level but the deepest, then upsampling steps that
    add the matching skip and run r units. ``local_conv`` (paper Table 4): the same number of
    units at full resolution, no pooling or upsampling.
    """
    levels, bottom, r, convention = spec.mask_levels, spec.mask_bottom, spec.r, spec.convention
    structure = spec.mask_structure
    if structure not in MASK_STRUCTURES:
        raise ValueError(f"mask_structure={structure!r} is not valid; choose one of {MASK_STRUCTURES}")
    if structure == "local_conv":
        y = residual_units(x, mask_unit_count(levels, bottom, r), filters, convention, f"{name}_local")
    else:
        y, skips = x, []
        for level in range(1, levels + 1):
            y = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool{level}")(y)
            units = bottom * r if level == levels else r
            y = residual_units(y, units, filters, convention, f"{name}_down{level}_")
            if level < levels:
                skips.append(residual_unit(y, filters, convention, name=f"{name}_skip{level}"))
        for level in range(levels - 1, 0, -1):
            y = _upsample(y, convention, f"{name}_up{level + 1}")
            y = layers.Add(name=f"{name}_merge{level}")([y, skips[level - 1]])
            y = residual_units(y, r, filters, convention, f"{name}_up{level}_")
        y = _upsample(y, convention, f"{name}_up1")
    channels = filters[-1]
    for i in (1, 2):
        if convention.mask_head_preact:
            y = bn_relu(y, convention, f"{name}_head{i}")
        y = conv2d(y, channels, 1, convention, name=f"{name}_head{i}_conv")
    return MaskActivation(spec.mask_activation, name=f"{name}_activation")(y)


def _upsample(x, convention, name):
    # Bilinear in float32: under bfloat16, TensorFlow's XLA gradient of it mixes precisions and stops.
    dtype = "float32" if convention.upsampling == "bilinear" else None
    return layers.UpSampling2D(2, interpolation=convention.upsampling, dtype=dtype, name=name)(x)


def attention_module(x, filters, spec, name):
    """p units, then trunk T (t units) and soft mask M side by side, combined by ARL or NAL, then p units."""
    x = residual_units(x, spec.p, filters, spec.convention, f"{name}_pre")
    trunk = residual_units(x, spec.t, filters, spec.convention, f"{name}_trunk")
    mask = soft_mask(x, filters, spec, f"{name}_mask")
    x = AttentionCombine(spec.mechanism, name=f"{name}_combine")([trunk, mask])
    return residual_units(x, spec.p, filters, spec.convention, f"{name}_post")
