"""Runs of one config under different recipes, side by side: validation accuracy against the
epoch and against the hours spent, as a markdown table and a figure (what a recipe buys).

    python bench/recipe_curves.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--epochs N] [--no-hours]
        [--by-schedule] [--out FIGURE.png]

Each RUN_DIR is a run folder with a history.csv (a finished or an interrupted run). The table
has a column per run and a row per epoch, up to `--epochs` (default: the shortest run's);
hours are the sum of the epochs' own seconds, so a pause between sessions does not count.
--no-hours leaves them out: runs timed on different processors, or beside other work, would
compare the machines rather than the recipes. --by-schedule compares schedules of different lengths
at the same fraction of each run's own schedule (its config.json's epochs): a row per epoch of the
shortest schedule, each run at its epoch of that fraction.
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-hours", action="store_true", help="plot against the epoch only")
    parser.add_argument(
        "--by-schedule", action="store_true", help="rows and x axis: the fraction of each run's schedule"
    )
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


def schedule_epochs(folder):
    """The epochs of the run's schedule (its config.json), or of its history where it has no config."""
    config = folder / "config.json"
    if config.is_file():
        return int(json.loads(config.read_text())["epochs"])
    return int(pd.read_csv(folder / "history.csv")["epoch"].max())


def read_curves(runs):
    """One row per run and epoch: label, epoch, schedule (the fraction of the run's schedule done),
    val_accuracy, hours (the epochs' seconds summed)."""
    frames = []
    for label, folder in runs.items():
        history = pd.read_csv(folder / "history.csv")
        length = schedule_epochs(folder)
        frames.append(
            pd.DataFrame(
                {
                    "run": label,
                    "epoch": history["epoch"],
                    "schedule": history["epoch"] / length,
                    "schedule_epochs": length,
                    "val_accuracy": history["val_accuracy"],
                    "hours": history["seconds"].cumsum() / 3600,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def schedule_table(curves):
    """Validation accuracy at each epoch of the shortest schedule, each run at the same fraction of its own."""
    lengths = curves.groupby("run", sort=False)["schedule_epochs"].first().to_dict()
    shortest = min(lengths.values())
    rows = {}
    for epoch in range(1, shortest + 1):
        row = {}
        for label, length in lengths.items():
            if (epoch * length) % shortest:
                continue  # no epoch of this run ends at this fraction
            match = curves[(curves["run"] == label) & (curves["epoch"] == epoch * length // shortest)]
            row[f"{label} (epoch of {length})"] = (
                f"{epoch * length // shortest}: {match['val_accuracy'].iloc[0]:.1%}" if len(match) else "-"
            )
        rows[f"{epoch / shortest:.3f}"] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def main(argv=None):
    args = parse(argv)
    curves = read_curves(args.runs)
    if args.by_schedule:
        index, table = "schedule done", schedule_table(curves)
    else:
        epochs = args.epochs or int(curves.groupby("run")["epoch"].max().min())
        curves = curves[curves["epoch"] <= epochs]
        table = curves.pivot(index="epoch", columns="run", values="val_accuracy")[list(args.runs)]
        index, table = "epoch", table.map(lambda value: None if pd.isna(value) else f"{value:.1%}")
    print(f"| {index} | " + " | ".join(table.columns) + " |\n|---:|" + "---:|" * len(table.columns))
    for key, row in table.iterrows():
        print(f"| {key} | " + " | ".join("-" if pd.isna(value) else value for value in row) + " |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    panels = ("schedule" if args.by_schedule else "epoch",) + (() if args.no_hours else ("hours",))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), sharey=True, squeeze=False)
    for axis, x in zip(axes[0], panels):
        sns.lineplot(data=curves, x=x, y="val_accuracy", hue="run", marker="o", markersize=4, ax=axis)
        axis.set_ylabel("validation accuracy")
        axis.grid(alpha=0.3)
    if args.by_schedule:
        axes[0][0].set_xlabel("fraction of the run's schedule done")
    else:
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
