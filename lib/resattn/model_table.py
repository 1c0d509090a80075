"""Prints every network's parameters and multiply-adds beside what the seed and the paper reported.

    python -m resattn.model_table          (or: make table)
"""

import sys

from resattn.complexity import count_multiply_adds, count_parameters
from resattn.networks import build_model, resolve_config

# Each row: the build_model keywords and what the seed (FACTS section 1) or the paper
# (section 3) reported for that network, parameters and multiply-adds.
ROWS = (
    ({"family": "seed", "depth": 56}, "2,892,970 (seed 2, 3)"),
    ({"family": "seed", "depth": 56, "mask_activation": "seed_spatial"}, "2,893,866 (seed 1)"),
    ({"family": "seed", "depth": 56, "num_classes": 100}, "2,939,140 (seed 5)"),
    ({"family": "seed", "depth": 56, "num_classes": 100, "mask_activation": "seed_spatial"}, "2,940,036 (seed 6)"),
    ({"family": "seed", "depth": 92, "mask_activation": "seed_spatial", "wiring": "published"}, "9,396,778 (seed 4)"),
    ({"family": "seed", "depth": 92, "mask_activation": "seed_spatial"}, "-"),
    ({"family": "paper", "depth": 56}, "-"),
    ({"family": "paper", "depth": 56, "mask_structure": "local_conv"}, "-"),
    ({"family": "paper", "depth": 92}, "1.9M"),
    ({"family": "paper", "depth": 128}, "-"),
    ({"family": "paper", "depth": 164}, "-"),
    ({"family": "paper", "depth": 236}, "5.1M"),
    ({"family": "paper", "depth": 452}, "8.6M"),
    ({"family": "resnet", "depth": 164}, "1.7M"),
    ({"family": "imagenet", "depth": 56}, "31.9M, 6.2-6.3 G"),
    ({"family": "imagenet", "depth": 92}, "51.3M, 10.4 G (released definition: 52.5M, 10.5 G)"),
)

HEADER = (
    "| network | family | depth | classes | input | parameters | non-trainable | multiply-adds | reported |",
    "|---|---|---|---|---|---:|---:|---:|---|",
)


def table_row(options, reported, build=build_model):
    """One measured row of the table, as a dict."""
    config = resolve_config(**options)
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
        "reported": reported,
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
    for options, reported in ROWS:
        print(markdown_line(table_row(options, reported)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
