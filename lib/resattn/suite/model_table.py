"""Prints every network's parameters and multiply-adds beside what the seed and the paper reported.

python -m resattn.suite.model_table          (or: make table)
"""

import sys

from resattn.models.complexity import count_multiply_adds, count_parameters
from resattn.models.networks import build_model, resolve_network
from resattn.suite.reported import PAPER_SIZES, SEED_RESULTS

# Each row: the build_model keywords, and the seed's configs that train that network (docs/sources.md, section 1);
# a paper network's reported size is looked up by its family and depth (section 3).
ROWS = (
    ({"family": "seed", "depth": 56}, ("seed2", "seed3")),
    ({"family": "seed", "depth": 56, "mask_activation": "seed_spatial"}, ("seed1",)),
    ({"family": "seed", "depth": 56, "num_classes": 100}, ("seed5",)),
    ({"family": "seed", "depth": 56, "num_classes": 100, "mask_activation": "seed_spatial"}, ("seed6",)),
    ({"family": "seed", "depth": 92, "mask_activation": "seed_spatial", "wiring": "published"}, ("seed4",)),
    ({"family": "seed", "depth": 92, "mask_activation": "seed_spatial"}, ()),
    ({"family": "paper", "depth": 56}, ()),
    ({"family": "paper", "depth": 56, "mask_structure": "local_conv"}, ()),
    ({"family": "paper", "depth": 92}, ()),
    ({"family": "paper", "depth": 128}, ()),
    ({"family": "paper", "depth": 164}, ()),
    ({"family": "paper", "depth": 236}, ()),
    ({"family": "paper", "depth": 452}, ()),
    ({"family": "resnet", "depth": 164}, ()),
    ({"family": "imagenet", "depth": 56}, ()),
    ({"family": "imagenet", "depth": 92}, ()),
)


def reported_size(options, seed_configs):
    """What the seed or the paper reported for a row's network, as text ("-" for nothing)."""
    if seed_configs:
        counts = {
            figures.parameters
            for name, figures in SEED_RESULTS.items()
            if figures and name.split("-")[0] in seed_configs
        }
        (count,) = counts  # the configs of one row train one network
        return f"{count:,} ({'seed ' + ', '.join(name.removeprefix('seed') for name in seed_configs)})"
    size = PAPER_SIZES.get((options["family"], options["depth"]))
    return size.text() if size and len(options) == 2 else "-"


HEADER = (
    "| network | family | depth | classes | input | parameters | non-trainable | multiply-adds | reported |",
    "|---|---|---|---|---|---:|---:|---:|---|",
)


def table_row(options, seed_configs=(), build=build_model):
    """One measured row of the table, as a dict."""
    config = resolve_network(**options)
    model = build(**options)
    parameters = count_parameters(model)
    return {
        "network": config["name"],
        "family": config["family"],
        "depth": config["depth"],
        "classes": config["num_classes"],
        "input": "x".join(str(n) for n in config["input_shape"]),
        "parameters": parameters["total"],
        "non_trainable": parameters["non_trainable"],
        "multiply_adds": count_multiply_adds(model),
        "reported": reported_size(options, seed_configs),
    }


def markdown_line(row):
    macs = row["multiply_adds"]
    macs = f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.0f} M"
    return (
        f"| {row['network']} | {row['family']} | {row['depth']} | {row['classes']} | {row['input']}"
        f" | {row['parameters']:,} | {row['non_trainable']:,} | {macs} | {row['reported']} |"
    )


def main():
    print("\n".join(HEADER), flush=True)
    for options, seed_configs in ROWS:
        print(markdown_line(table_row(options, seed_configs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
