"""Every run under a results folder, in the seed's and the paper's tables beside what they reported.

A run is `results/<config>/` (the config's own seed) or `results/<config>-seed<N>/` (a repeat);
repeats of one config are shown as a mean and a standard deviation. Every config in params/
gets a row: a config with no run is `missing`, a run that raised is `failed`, one that was
killed is `interrupted`; none is dropped.
"""

import glob
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from resattn.suite.params import list_params_files, read_mapping
from resattn.suite.reported import PAPER_ERRORS, PAPER_TABLES, SEED_RESULTS, paper_errors, seed_figures
from resattn.train.recipes import RECIPES
from resattn.train.run_folder import SUCCEEDED, RunFolder, read_json

SEED_TITLE = "Seed: accuracy and time per epoch (docs/sources.md, section 1)"
TIMING_COLUMNS = ("s/epoch", "seed's s/epoch (T4)", "seconds_per_epoch")
REPEAT = re.compile(r"^(?P<config>.+)-seed(?P<seed>\d+)$")
OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "Nesterov SGD"}
MASK_NAMES = {"seed_spatial": "spatial (seed variant)"}


def collect_runs(results_dir, params_dir):
    """One row per run (and one per config without a run): its status and figures."""
    results_dir = Path(results_dir)
    rows = []
    for path in list_params_files(params_dir):
        config = read_mapping(path)
        runs = config_runs(results_dir, path.stem)
        if not runs:
            rows.append({"config": path.stem, "run": None, "seed": config.get("seed", 0), "status": "missing"})
        rows += [_run_row(path.stem, run, config) for run in runs]
    columns = [
        "config",
        "run",
        "seed",
        "status",
        "error",
        "epochs",
        "accuracy",
        "error_rate",
        "measured_on",
        "best_val_accuracy",
        "seconds_per_epoch",
        "parameters",
        "multiply_adds",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def config_runs(results_dir, config):
    """The run folders of one config: `<config>/` if there is one, then its repeats by seed."""
    results_dir = Path(results_dir)
    repeats = {}
    for run in results_dir.glob(f"{glob.escape(config)}-seed*"):
        match = REPEAT.match(run.name)
        if match and match["config"] == config and run.is_dir():
            repeats[int(match["seed"])] = run
    own = [results_dir / config] if (results_dir / config).is_dir() else []
    return own + [repeats[seed] for seed in sorted(repeats)]


def _run_row(name, run, config):
    metrics = read_json(run / "metrics.json") or {}
    state = read_json(run / "state.json") or {}
    recorded = read_json(run / "config.json") or {}
    row = {"config": name, "run": run.name, "seed": recorded.get("seed", config.get("seed", 0))}
    row["status"] = RunFolder(run).status()
    error_file = run / "notebook-error.txt"
    if error_file.exists():
        lines = error_file.read_text().strip().splitlines()
        row["error"] = lines[-1] if lines else "(no message)"
    elif metrics.get("status") == "failed":
        row["error"] = metrics.get("error")
    row["epochs"] = metrics.get("epochs", state.get("epoch"))
    # A run with no test images (an image folder with train/ only) is measured on its held-out
    # validation images, at its last epoch, and says so.
    if row["status"] in SUCCEEDED:
        for key, split in (("test_accuracy", "test"), ("final_val_accuracy", "validation")):
            if metrics.get(key) is not None:
                row.update(accuracy=100 * metrics[key], error_rate=100 - 100 * metrics[key], measured_on=split)
                break
    if metrics.get("best_val_accuracy") is not None:
        row["best_val_accuracy"] = 100 * metrics["best_val_accuracy"]
    row["seconds_per_epoch"] = metrics.get("seconds_per_epoch")
    row["parameters"] = (metrics.get("parameters") or {}).get("total")
    row["multiply_adds"] = metrics.get("multiply_adds")
    return row


def aggregate(runs):
    """One row per config: finished runs' mean and standard deviation, and how every run ended."""
    rows = []
    for name, group in runs.groupby("config", sort=False):
        done = group[group["status"].isin(SUCCEEDED) & group["accuracy"].notna()]
        counts = group["status"].value_counts()
        status = (
            ", ".join(f"{count} {state}" for state, count in counts.items())
            if len(group) > 1
            else group["status"].iloc[0]
        )
        rows.append(
            {
                "config": name,
                "runs": len(done),
                "status": status,
                "accuracy": done["accuracy"].mean() if len(done) else math.nan,
                "accuracy_std": done["accuracy"].std() if len(done) > 1 else math.nan,
                "error_rate": done["error_rate"].mean() if len(done) else math.nan,
                "error_rate_std": done["error_rate"].std() if len(done) > 1 else math.nan,
                "measured_on": ", ".join(sorted(set(done["measured_on"]))) or math.nan,
                "seconds_per_epoch": group.loc[group["status"].isin(SUCCEEDED), "seconds_per_epoch"].mean(),
                "parameters": group["parameters"].dropna().iloc[0] if group["parameters"].notna().any() else math.nan,
                "error": "; ".join(group["error"].dropna().astype(str)) or None,
            }
        )
    return pd.DataFrame(rows).set_index("config")


def seed_table(runs, params_dir):
    """The seed's accuracy and time-per-epoch tables (docs/sources.md, section 1) with ours beside them; ours
    measured on the test images, or on the held-out validation images where a run has none."""
    summary = aggregate(runs)
    rows = []
    for name, reported in SEED_RESULTS.items():
        config = read_mapping(Path(params_dir) / f"{name}.yaml") if (Path(params_dir) / f"{name}.yaml").exists() else {}
        ours = summary.loc[name] if name in summary.index else None
        accuracy, seconds, parameters = (
            (reported.accuracy, reported.seconds_per_epoch, reported.parameters) if reported else (math.nan,) * 3
        )
        rows.append(
            {
                "config": name,
                "dataset": {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(
                    config.get("dataset"), config.get("dataset")
                ),
                "depth": config.get("depth"),
                "optimizer": OPTIMIZER_NAMES.get(_optimizer(config), _optimizer(config)),
                "mask activation": MASK_NAMES.get(config.get("mask_activation"), config.get("mask_activation")),
                "mechanism": str(config.get("mechanism", "")).upper(),
                "acc (%)": _get(ours, "accuracy"),
                "± std": _get(ours, "accuracy_std"),
                "runs": _get(ours, "runs", 0),
                "measured on": _get(ours, "measured_on", "-"),
                "seed's acc (%)": accuracy,
                "difference": _get(ours, "accuracy") - accuracy,
                "s/epoch": _get(ours, "seconds_per_epoch"),
                "seed's s/epoch (T4)": seconds,
                "parameters": _get(ours, "parameters"),
                "seed's parameters": parameters,
                "status": _get(ours, "status", "missing"),
            }
        )
    return pd.DataFrame(rows).set_index("config")


def paper_table(runs, number):
    """The paper's CIFAR table `number` (1, 3, 4, 5 or 6) with our error beside the paper's test error."""
    if number not in PAPER_TABLES:
        raise ValueError(f"table={number!r} is not valid; choose one of {tuple(PAPER_TABLES)}")
    summary = aggregate(runs)
    rows = []
    for table, row, config, error in PAPER_ERRORS:
        if table != number:
            continue
        ours = summary.loc[config] if config in summary.index else None
        rows.append(
            {
                "row": row,
                "config": config,
                "error (%)": _get(ours, "error_rate"),
                "± std": _get(ours, "error_rate_std"),
                "runs": _get(ours, "runs", 0),
                "measured on": _get(ours, "measured_on", "-"),
                "paper's error (%)": error,
                "difference": _get(ours, "error_rate") - error,
                "status": _get(ours, "status", "missing"),
            }
        )
    return pd.DataFrame(rows).set_index("row")


def paper_title(number):
    return f"Paper Table {number}: {PAPER_TABLES[number]}"


@dataclass
class Tables:
    """The seed's table and the paper's, each by its name."""

    seed: pd.DataFrame
    paper: dict  # the paper's table number -> its table

    def titled(self):
        """Every table by its title, the seed's first."""
        return {SEED_TITLE: self.seed, **{paper_title(number): table for number, table in self.paper.items()}}


def tables(runs, params_dir):
    """The seed's table and every paper table."""
    return Tables(seed_table(runs, params_dir), {number: paper_table(runs, number) for number in PAPER_TABLES})


def histories(runs, results_dir):
    """Every run's history.csv in one long frame: config, run, epoch, metric, split, value."""
    frames = []
    for run in runs["run"].dropna():
        path = Path(results_dir) / run / "history.csv"
        if not path.exists():
            continue
        history = pd.read_csv(path)
        for metric in ("accuracy", "loss"):
            for split, column in (("training", metric), ("validation", f"val_{metric}")):
                frames.append(
                    pd.DataFrame(
                        {
                            "config": runs.loc[runs["run"] == run, "config"].iloc[0],
                            "run": run,
                            "epoch": history["epoch"],
                            "metric": metric,
                            "split": split,
                            "value": history[column],
                        }
                    )
                )
    columns = ["config", "run", "epoch", "metric", "split", "value"]
    return pd.concat(frames, ignore_index=True).dropna(subset=["value"]) if frames else pd.DataFrame(columns=columns)


def write_summary(tables, runs, results_dir):
    """results/summary.csv (every table row, long) and results/summary.md (the tables)."""
    tables = tables.titled()
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    frames = [table.reset_index().assign(table=title) for title, table in tables.items()]
    summary = pd.concat(frames, ignore_index=True)
    summary = summary[["table", *[column for column in summary.columns if column != "table"]]]
    summary.convert_dtypes().to_csv(results_dir / "summary.csv", index=False, float_format="%.4f")
    lines = ["# Results", "", f"Runs in `{results_dir.name}/`: {status_counts(runs)}.", ""]
    for title, table in tables.items():
        lines += [f"## {title}", "", markdown_table(table), ""]
    (results_dir / "summary.md").write_text("\n".join(lines))
    return results_dir / "summary.md"


def formatted(table):
    """A results table as text, for reading: two decimals, thousands separators, seconds with
    their unit, `-` for no value."""
    frame = table.copy()
    for column in frame.columns:
        unit = " s" if column in TIMING_COLUMNS else ""
        frame[column] = [_cell(value, unit) for value in frame[column]]
    return frame


def markdown_table(table):
    """A results table as Markdown, formatted as `formatted` does."""
    frame = table.reset_index()
    text = formatted(frame)
    header = "| " + " | ".join(str(column) for column in frame.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns) + "|"
    body = ["| " + " | ".join(row) + " |" for row in text.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _cell(value, unit=""):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e3:
        return f"{value:,.0f}{unit}"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{unit}"
    return str(value)


def status_counts(runs):
    counts = runs["status"].value_counts()
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def reported(config):
    """What the seed or the paper reported for a config, by the config's name: {measure: value}."""
    seed = seed_figures(config)
    if seed:
        return {
            "test accuracy (%)": seed.accuracy,
            "seconds per epoch": f"{seed.seconds_per_epoch} s (T4)",
            "parameters": f"{seed.parameters:,}",
        }
    errors = paper_errors(config)
    return {"test error (%)": errors[0]} if errors else {}


def metrics_table(metrics, reported=None):
    """One run's figures (metrics.json) as a table, with a reported column where there is one."""
    accuracy = metrics.get("test_accuracy")
    flip, split = metrics.get("test_accuracy_flip"), "test"
    if flip is None:
        flip, split = metrics.get("val_accuracy_flip"), "validation"
    ours = {
        "status": metrics["status"],
        "epochs": metrics["epochs"],
        "test accuracy (%)": None if accuracy is None else round(100 * accuracy, 2),
        "test error (%)": None if accuracy is None else round(100 - 100 * accuracy, 2),
        "best validation accuracy (%)": None
        if metrics.get("best_val_accuracy") is None
        else round(100 * metrics["best_val_accuracy"], 2),
        "last validation accuracy (%)": None
        if metrics.get("final_val_accuracy") is None
        else round(100 * metrics["final_val_accuracy"], 2),
        "with flip test-time augmentation (%)": None if flip is None else f"{100 * flip:.2f} ({split})",
        "seconds per epoch": _timing(metrics.get("seconds_per_epoch"), "s"),
        "images per second": _timing(metrics.get("images_per_second"), "images/s"),
        "parameters": f"{metrics['parameters']['total']:,}",
        "multiply-adds per image": f"{metrics['multiply_adds']:,}",
    }
    table = pd.DataFrame({"this run": pd.Series(ours, dtype=object)})
    if reported:
        table["reported"] = pd.Series(reported, dtype=object).reindex(table.index)
    return table.fillna("-")


def _timing(value, unit):
    return None if value is None else f"{value:,.1f} {unit}"


def short_name(config):
    """A config's name without its dataset and details: seed2-cifar10-a56-... is seed2."""
    return config.split("-")[0] + ("-" + config.rsplit("-", 1)[1] if config.startswith("seed4") else "")


def _optimizer(config):
    recipe = RECIPES.get(config.get("recipe", "seed_adam"))
    return config.get("optimizer", recipe.optimizer if recipe else None)


def _get(row, key, default=math.nan):
    if row is None:
        return default
    value = row[key]
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else value
