"""The families against docs/sources.md: parameter counts, multiply-adds, depths, wiring and bad input."""

from pathlib import Path

import keras
import numpy as np
import pytest

from resattn import FAMILIES, build_model, count_multiply_adds, count_parameters
from resattn.suite import model_table
from resattn.suite.reported import PAPER_SIZES, SEED_NON_TRAINABLE, SEED_RESULTS

SEED_56 = [
    # (keywords, the seed's config that trains that network)
    ({"mask_activation": "mixed", "mechanism": "arl"}, "seed2-cifar10-a56-mixed-arl-adam"),
    ({"mask_activation": "mixed", "mechanism": "nal"}, "seed3-cifar10-a56-mixed-nal-adam"),
    ({"mask_activation": "seed_spatial"}, "seed1-cifar10-a56-seedspatial-arl-adam"),
    ({"mask_activation": "mixed", "num_classes": 100}, "seed5-cifar100-a56-mixed-nal-adam"),
    ({"mask_activation": "seed_spatial", "num_classes": 100}, "seed6-cifar100-a56-seedspatial-arl-adam"),
]
SEED_92_PUBLISHED = SEED_RESULTS["seed4-cifar10-a92-seedspatial-arl-sgd-published"].parameters


@pytest.mark.parametrize("options, config", SEED_56)
def test_seed_56_parameter_counts(built, options, config):
    parameters = count_parameters(built(family="seed", depth=56, **options))
    assert parameters["total"] == SEED_RESULTS[config].parameters
    assert parameters["non_trainable"] == SEED_NON_TRAINABLE


def test_seed_92_published_wiring_has_the_reported_count(built):
    model = built(family="seed", depth=92, mask_activation="seed_spatial", wiring="published")
    assert count_parameters(model)["total"] == SEED_92_PUBLISHED
    names = {layer.name for layer in model.layers}
    # The first stage-2 module's output was discarded, so it is not part of the graph.
    assert "stage2_attention1_combine" not in names and "stage2_attention2_combine" in names
    assert model.get_layer("stage3_attention3_combine").output.shape[-1] == 512


def test_seed_92_chained_by_default_keeps_every_module(built):
    model = built(family="seed", depth=92, mask_activation="seed_spatial")
    names = {layer.name for layer in model.layers}
    assert {"stage2_attention1_combine", "stage2_attention2_combine", "stage3_attention3_combine"} <= names
    assert model.get_layer("stage3_attention3_combine").output.shape[1:] == (4, 4, 256)
    assert count_parameters(model)["total"] != SEED_92_PUBLISHED


# How close our count must come to the paper's rounded figure. Attention-452 is not checked: no reading
# of how r enters the CIFAR masks fits 92, 236 and 452 at once (docs/architecture.md).
@pytest.mark.parametrize(
    "family, depth, tolerance",
    [("paper", 92, 0.05), ("paper", 236, 0.05), ("resnet", 164, 0.05), ("imagenet", 56, 0.01), ("imagenet", 92, 0.03)],
)
def test_paper_parameter_counts(built, family, depth, tolerance):
    reported = PAPER_SIZES[(family, depth)].parameters
    total = count_parameters(built(family=family, depth=depth))["total"]
    assert abs(total / reported - 1) <= tolerance, f"{family} {depth}: {total:,} vs {reported:,.0f}"


@pytest.mark.parametrize("depth", [56, 92])
def test_imagenet_multiply_adds_round_to_the_reported_gigaflops(built, depth):
    size = PAPER_SIZES[("imagenet", depth)]
    reported = {
        round(value / 1e9, 1) for value in size.multiply_adds + (size.released.multiply_adds if size.released else ())
    }
    assert round(count_multiply_adds(built(family="imagenet", depth=depth)) / 1e9, 1) in reported


def trunk_depth(model):
    """Weighted layers on the trunk path: every conv and dense layer outside the soft masks and
    the projection shortcuts, which is how the paper names its depths."""
    return sum(
        isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        and "_mask" not in layer.name
        and "_shortcut" not in layer.name
        for layer in model.layers
    )


@pytest.mark.parametrize(
    "family, depth", [(family, depth) for family, spec in FAMILIES.items() for depth in spec.depths]
)
def test_every_network_has_the_depth_it_is_named_after(built, family, depth):
    assert trunk_depth(built(family=family, depth=depth)) == depth


def test_paper_452_uses_p2_t4_r3(built):
    model = built(family="paper", depth=452)
    names = {layer.name for layer in model.layers}
    assert {"stage1_attention1_pre2_add", "stage1_attention1_trunk4_add", "stage1_attention1_mask_down1_3_add"} <= names
    assert "stage1_attention1_pre3_add" not in names


def test_mechanism_changes_the_function_not_the_parameters(built):
    arl, nal = built(family="paper", depth=56), built(family="paper", depth=56, mechanism="nal")
    assert count_parameters(arl) == count_parameters(nal)
    assert nal.get_layer("stage1_attention1_combine").mechanism == "nal"


def test_local_conv_mask_keeps_the_units_and_drops_pooling_and_upsampling(built):
    local = built(family="paper", depth=56, mask_structure="local_conv")
    encoder_decoder = built(family="paper", depth=56)

    def mask_layers(model, kind):
        return [layer for layer in model.layers if "_mask" in layer.name and isinstance(layer, kind)]

    assert not mask_layers(local, (keras.layers.MaxPooling2D, keras.layers.UpSampling2D))
    assert mask_layers(encoder_decoder, keras.layers.MaxPooling2D)
    assert len(mask_layers(local, keras.layers.Conv2D)) == len(mask_layers(encoder_decoder, keras.layers.Conv2D))
    assert count_parameters(local) == count_parameters(encoder_decoder)
    assert count_multiply_adds(local) > count_multiply_adds(encoder_decoder)


@pytest.mark.parametrize("activation", ["mixed", "channel", "spatial", "seed_spatial"])
def test_every_mask_activation_builds_into_the_paper_network(built, activation):
    model = built(family="paper", depth=56, mask_activation=activation)
    assert model.get_layer("stage3_attention1_mask_activation").kind == activation


def test_same_seed_builds_the_same_weights():
    def weights():
        keras.utils.set_random_seed(7)
        return build_model("seed", 56).get_weights()

    first, second = weights(), weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_multiply_adds_of_a_small_hand_counted_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 * 3*3*3 * 4 = 6912
    x = keras.layers.Conv2D(6, 1, strides=2)(x)  # 4*4 * 4 * 6 = 384
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)  # 6 * 2 = 12
    assert count_multiply_adds(keras.Model(inputs, outputs)) == 6912 + 384 + 12


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"depth": 57}, r"depth=57 .*family 'seed'.*\(56, 92\)"),
        ({"family": "paper", "depth": 57}, r"depth=57 .*\(56, 92, 128, 164, 236, 452\)"),
        ({"depth": 56.0}, r"depth=56.0 .*\(56, 92\)"),
        ({"mechanism": "foo"}, r"mechanism='foo' .*\('arl', 'nal'\)"),
        ({"num_classes": 0}, r"num_classes=0 .*integer >= 2"),
        ({"num_classes": 10.0}, r"num_classes=10.0 .*integer >= 2"),
        ({"bogus": 1}, r"'bogus'.*valid keywords: family, depth, num_classes, mechanism"),
        ({"family": "vgg"}, r"family='vgg' .*\('seed', 'paper', 'imagenet', 'resnet'\)"),
        ({"mask_activation": "softmax"}, r"mask_activation='softmax' .*'mixed', 'channel', 'spatial', 'seed_spatial'"),
        ({"mask_structure": "unet"}, r"mask_structure='unet' .*'encoder_decoder', 'local_conv'"),
        ({"wiring": "crossed"}, r"wiring='crossed' .*'chained', 'published'"),
        ({"family": "paper", "wiring": "published"}, r"wiring='published' applies only to family 'seed'"),
        ({"family": "resnet", "depth": 164, "mechanism": "nal"}, r"mechanism='nal' .*no attention modules"),
        ({"r": 0}, r"r=0 .*integer >= 1"),
        ({"input_shape": (30, 30, 3)}, r"input_shape=\(30, 30, 3\) .*multiples of 16"),
        ({"family": "imagenet", "input_shape": (100, 100, 3)}, r"multiples of 32, e.g. \(224, 224, 3\)"),
    ],
)
def test_bad_values_name_themselves_and_the_valid_choices(options, pattern):
    options = {"family": "seed", "depth": 56, **options}
    with pytest.raises(ValueError, match=pattern):
        build_model(**options)


def test_the_architecture_docs_table_is_what_make_table_prints(built):
    """In this file, whose tests build the same networks through the same session cache."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    lines = list(model_table.HEADER) + [
        model_table.markdown_line(model_table.table_row(options, seed_configs, build=built))
        for options, seed_configs in model_table.ROWS
    ]
    assert "\n".join(lines) in readme, "docs/architecture.md's table is stale: paste the output of `make table`"
