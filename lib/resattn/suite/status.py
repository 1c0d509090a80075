"""Where a grid stands: every config of a results folder, done, running, failed or not started.

    python -m resattn.suite.status [--results results] [--params params]     (or: make status)

Reads only the runs' files, so it works while the grid runs (on any node that sees the results
folder) and after. A run is `running` while a process holds its folder's lock or its log grew within the last few
epochs' time, `interrupted` when it stopped without ending (the next `make reproduce-all`
resumes it): `RunFolder.status`.
"""

import argparse
import sys
import time
from pathlib import Path

from resattn.suite.estimate import duration
from resattn.suite.params import ParamsError, list_params_files
from resattn.suite.results import config_runs
from resattn.train.run_folder import ENDED, RunFolder, seconds_per_epoch


def run_folders(results_dir, params_dir):
    """(config, run folder) for every params file: its own folder and its seed repeats, or the
    folder it will have."""
    pairs = []
    for path in list_params_files(params_dir):
        runs = config_runs(results_dir, path.stem) or [Path(results_dir) / path.stem]
        pairs += [(path.stem, run) for run in runs]
    return pairs


def run_status(run_dir, now=None):
    """One run's state as a dict: status (RunFolder.status; an ended run as "done (...)"), epoch,
    epochs, node, seconds_per_epoch, remaining (s)."""
    folder = RunFolder(run_dir)
    state, record = folder.state() or {}, folder.record() or {}
    seconds = seconds_per_epoch(state.get("history", []))
    epochs = record.get("epochs")
    row = {
        "run": run_dir.name,
        "epoch": state.get("epoch", 0),
        "epochs": epochs,
        "node": record.get("node"),
        "seconds_per_epoch": seconds,
        "remaining": None,
    }
    status = folder.status(now)
    if status in ENDED:
        return {**row, "status": f"done ({status})"}
    if status == "running" and seconds and epochs:
        row["remaining"] = max(epochs - row["epoch"], 0) * seconds
    return {**row, "status": status}


def grid_status(results_dir, params_dir, now=None):
    return [{"config": config, **run_status(run, now)} for config, run in run_folders(results_dir, params_dir)]


def grid_estimate(rows):
    """Seconds until the grid ends, if every running run's slot then takes a waiting one: the
    running runs' remaining time plus the waiting runs' full length (the mean length of the done
    and running runs), shared by the running slots."""
    running = [row for row in rows if row["status"] == "running"]
    waiting = [row for row in rows if row["status"] in ("not started", "interrupted")]
    lengths = [
        row["seconds_per_epoch"] * row["epochs"]
        for row in rows
        if row["seconds_per_epoch"] and row["epochs"] and row["status"].startswith(("done", "running"))
    ]
    if not running or not lengths:
        return None
    typical = sum(lengths) / len(lengths)
    work = sum(row["remaining"] or 0 for row in running) + typical * len(waiting)
    return work / len(running)


def format_table(rows, now=None):
    now = time.time() if now is None else now
    lines = ["| config / run | status | epoch | node | s/epoch | ends |", "|---|---|---:|---|---:|---|"]
    for row in rows:
        epoch = f"{row['epoch']} of {row['epochs']}" if row["epochs"] else "-"
        seconds = f"{row['seconds_per_epoch']:,.1f}" if row["seconds_per_epoch"] else "-"
        ends = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(now + row["remaining"]))
            if row["remaining"] is not None
            else "-"
        )
        lines.append(f"| {row['run']} | {row['status']} | {epoch} | {row['node'] or '-'} | {seconds} | {ends} |")
    return "\n".join(lines)


def summary_line(rows, now=None):
    now = time.time() if now is None else now
    counts = {}
    for row in rows:
        key = row["status"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    text = ", ".join(f"{count} {status}" for status, count in counts.items())
    remaining = grid_estimate(rows)
    if remaining is None:
        return f"{len(rows)} runs: {text}"
    end = time.strftime("%Y-%m-%d %H:%M", time.localtime(now + remaining))
    return f"{len(rows)} runs: {text}; the grid ends in about {duration(remaining)} (around {end})"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m resattn.suite.status", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="the grid's results folder")
    parser.add_argument("--params", default="params", help="the configs' folder")
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        print(
            f"error: --results {args.results}: no such folder; give the folder a grid writes into "
            "(results/, results/quick/, results/smoke/)",
            file=sys.stderr,
        )
        return 2
    try:
        rows = grid_status(args.results, args.params)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(summary_line(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
