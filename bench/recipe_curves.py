"""Runs of one config under different recipes, side by side: validation accuracy against the
epoch and against the hours spent, as a markdown table and a figure (what a recipe buys).

    python bench/recipe_curves.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--epochs N] [--no-hours] [--out FIGURE.png]

Each RUN_DIR is a run folder with a history.csv (a finished or an interrupted run). The table
has a column per run and a row per epoch, up to `--epochs` (default: the shortest run's);
hours are the sum of the epochs' own seconds, so a pause between sessions does not count.
--no-hours leaves them out: runs timed on different processors, or beside other work, would
compare the machines rather than the recipes.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-hours", action="store_true", help="plot against the epoch only")
    parser.add_argument("--out", type=Path, default=Path("results/recipe_curves.png"))
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        label, _, folder = item.partition("=")
        if not folder:
            sys.exit(f"error: {item!r} is not valid; give LABEL=RUN_DIR")
        if not (Path(folder) / "history.csv").is_file():
            sys.exit(f"error: {folder!r} has no history.csv; give a run folder")
        runs[label] = Path(folder)
    args.runs = runs
    return args


def read_curves(runs):
    """One row per run and epoch: label, epoch, val_accuracy, hours (the epochs' seconds summed)."""
    frames = []
    for label, folder in runs.items():
        history = pd.read_csv(folder / "history.csv")
        frames.append(
            pd.DataFrame(
                {
                    "run": label,
                    "epoch": history["epoch"],
                    "val_accuracy": history["val_accuracy"],
                    "hours": history["seconds"].cumsum() / 3600,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def main(argv=None):
    args = parse(argv)
    curves = read_curves(args.runs)
    epochs = args.epochs or int(curves.groupby("run")["epoch"].max().min())
    curves = curves[curves["epoch"] <= epochs]
    table = curves.pivot(index="epoch", columns="run", values="val_accuracy")[list(args.runs)]
    print("| epoch | " + " | ".join(table.columns) + " |\n|---:|" + "---:|" * len(table.columns))
    for epoch, row in table.iterrows():
        print(f"| {epoch} | " + " | ".join("-" if pd.isna(value) else f"{value:.1%}" for value in row) + " |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    panels = ("epoch",) if args.no_hours else ("epoch", "hours")
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), sharey=True, squeeze=False)
    for axis, x in zip(axes[0], panels):
        sns.lineplot(data=curves, x=x, y="val_accuracy", hue="run", marker="o", markersize=4, ax=axis)
        axis.set_ylabel("validation accuracy")
        axis.grid(alpha=0.3)
    axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if not args.no_hours:
        axes[0][1].set_xlabel("hours of training here")
        axes[0][1].get_legend().remove()
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
