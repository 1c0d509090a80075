"""The figures: sample images, learning curves, every run's curves in one grid, our figures
against the reported ones, and soft masks over images."""

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator

sns.set_theme(style="whitegrid", context="notebook")


def sample_images(images, labels, class_names, count=16, columns=8):
    """A grid of the first `count` images with their labels."""
    count = min(count, len(images))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, label in zip(axes.flat, images[:count], labels[:count]):
        axis.imshow(image)
        axis.set_title(class_names[label], fontsize=8)
    figure.tight_layout()
    return _done(figure)


def learning_curves(history, title=""):
    """Training and validation accuracy and loss against epoch, from one run's history.csv."""
    long = history.melt(
        id_vars="epoch", value_vars=[c for c in ("accuracy", "val_accuracy", "loss", "val_loss") if c in history]
    )
    long = long.dropna(subset=["value"])
    long["metric"] = long["variable"].str.replace("val_", "", regex=False)
    long["split"] = np.where(long["variable"].str.startswith("val_"), "validation", "training")
    grid = sns.relplot(
        data=long,
        x="epoch",
        y="value",
        hue="split",
        col="metric",
        kind="line",
        marker="o",
        facet_kws={"sharey": False},
        height=3.2,
        aspect=1.3,
    )
    grid.set_titles("{col_name}")
    _integer_epochs(grid)
    if title:
        grid.figure.suptitle(title, y=1.04)
    return _done(grid.figure)


def curves_grid(histories, metric="accuracy", columns=4):
    """One panel per run: training and validation `metric` against epoch."""
    data = histories[histories["metric"] == metric]
    if data.empty:
        figure, axis = plt.subplots(figsize=(6, 1))
        axis.axis("off")
        axis.text(0.5, 0.5, "no run has a history yet", ha="center", va="center")
        return _done(figure)
    grid = sns.relplot(
        data=data,
        x="epoch",
        y="value",
        hue="split",
        col="run",
        col_wrap=min(columns, data["run"].nunique()),
        kind="line",
        height=2.4,
        aspect=1.3,
        facet_kws={"sharey": False, "sharex": False},
    )
    grid.set_titles("{col_name}", size=8)
    grid.set_ylabels(metric)
    _integer_epochs(grid)
    return _done(grid.figure)


def comparison_chart(table, ours, reported, title):
    """Our figure (mean, with the standard deviation over seeds) beside the reported one, per row."""
    frame = table.reset_index()
    positions = np.arange(len(frame))
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(frame) + 2), 3.6))
    palette = sns.color_palette()
    std = frame["± std"].fillna(0) if "± std" in frame else None
    axis.bar(positions - 0.2, frame[ours], 0.4, yerr=std, capsize=3, color=palette[0], label=f"{ours}: this project")
    axis.bar(positions + 0.2, frame[reported], 0.4, color=palette[1], label=reported)
    if frame[ours].isna().all():
        axis.text(0.5, 0.5, "no finished run yet", transform=axis.transAxes, ha="center", va="center")
    axis.set_xticks(positions, frame[frame.columns[0]], rotation=30, ha="right")
    axis.set_ylabel(ours)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _done(figure)


def attention_overlays(images, masks, titles):
    """Each image, then the mean soft mask of each attention module over it (the paper's Figure 1).

    masks: {module name: array (images, h, w)}, each stretched over the image."""
    names = list(masks)
    # One colour scale per module, from its lowest to its highest value over all these images,
    # written over its column: the shipped network's sigmoid masks span 0.28 to 0.48 in stage 1 and
    # 0.49 to 0.51 in stage 3, which a 0-to-1 scale would show as nearly one colour.
    scales = {name: (float(masks[name].min()), float(masks[name].max())) for name in names}
    figure, axes = plt.subplots(
        len(images), len(names) + 1, figsize=(1.7 * (len(names) + 1), 1.8 * len(images)), squeeze=False
    )
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(titles[row], fontsize=7)
        for column, name in enumerate(names, start=1):
            height, width = image.shape[:2]
            axes[row, column].imshow(image)
            axes[row, column].imshow(
                masks[name][row],
                cmap="jet",
                alpha=0.5,
                interpolation="bilinear",
                vmin=scales[name][0],
                vmax=scales[name][1],
                extent=(-0.5, width - 0.5, height - 0.5, -0.5),
            )
            if row == 0:
                low, high = scales[name]
                axes[row, column].set_title(
                    f"{name.replace('_mask_activation', '')}\n{low:.2f} (blue) to {high:.2f} (red)", fontsize=7
                )
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    return _done(figure)


def _integer_epochs(grid):
    for axis in grid.axes.flat:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _done(figure):
    """Closed to pyplot, so a notebook shows it once, where the cell returns it, and not again
    when the cell ends."""
    plt.close(figure)
    return figure
