"""Where a grid stands: every config of a results folder, done, running, failed or not started.

    python -m resattn.suite.status [--results results] [--params params]     (or: make status)

Reads only the runs' files, so it works while the grid runs (on any node that sees the results
folder) and after. A run is `running` while its log grew within the last few epochs' time,
`interrupted` when it stopped without ending (the next `make reproduce-all` resumes it).
"""

import argparse
import math
import sys
import time
from pathlib import Path

from resattn.suite.grid import ERROR_FILE
from resattn.suite.params import ParamsError, list_params_files
from resattn.suite.results import config_runs
from resattn.train.run_files import ENDED, read_json

STALE_EPOCHS = 3  # a run whose log is quiet for this many epochs (10 minutes at least) is not running
STALE_SECONDS = 600


def run_folders(results_dir, params_dir):
    """(config, run folder) for every params file: its own folder and its seed repeats, or the
    folder it will have."""
    pairs = []
    for path in list_params_files(params_dir):
        runs = config_runs(results_dir, path.stem) or [Path(results_dir) / path.stem]
        pairs += [(path.stem, run) for run in runs]
    return pairs


def run_status(run_dir, now=None):
    """One run's state as a dict: status, epoch, epochs, node, seconds_per_epoch, remaining (s)."""
    now = time.time() if now is None else now
    state = read_json(run_dir / "state.json") or {}
    metrics = read_json(run_dir / "metrics.json") or {}
    record = read_json(run_dir / "config.json") or {}
    history = state.get("history", [])
    steady = [row["seconds"] for row in history if not row.get("warmup")] or [row["seconds"] for row in history]
    seconds = sum(steady) / len(steady) if steady else None
    epochs = record.get("epochs")
    row = {"run": run_dir.name, "epoch": state.get("epoch", 0), "epochs": epochs, "node": record.get("node"),
           "seconds_per_epoch": seconds, "remaining": None}
    if (run_dir / ERROR_FILE).exists() or metrics.get("status") == "failed":
        return {**row, "status": "failed"}
    if metrics.get("status") in ENDED:
        return {**row, "status": f"done ({metrics['status']})"}
    log = run_dir / "log.txt"
    if not log.exists():
        return {**row, "status": "not started"}
    quiet = now - log.stat().st_mtime
    if quiet > max(STALE_SECONDS, STALE_EPOCHS * (seconds or 0)):
        return {**row, "status": "interrupted"}
    if seconds and epochs:
        row["remaining"] = max(epochs - row["epoch"], 0) * seconds
    return {**row, "status": "running"}


def grid_status(results_dir, params_dir, now=None):
    return [{"config": config, **run_status(run, now)} for config, run in run_folders(results_dir, params_dir)]


def grid_estimate(rows):
    """Seconds until the grid ends, if every running run's slot then takes a waiting one: the
    running runs' remaining time plus the waiting runs' full length (the mean length of the done
    and running runs), shared by the running slots."""
    running = [row for row in rows if row["status"] == "running"]
    waiting = [row for row in rows if row["status"] in ("not started", "interrupted")]
    lengths = [row["seconds_per_epoch"] * row["epochs"] for row in rows
               if row["seconds_per_epoch"] and row["epochs"] and row["status"].startswith(("done", "running"))]
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
        ends = time.strftime("%Y-%m-%d %H:%M", time.localtime(now + row["remaining"])) if row["remaining"] is not None else "-"
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
    return f"{len(rows)} runs: {text}; the grid ends in about {_duration(remaining)} (around {end})"


def _duration(seconds):
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours >= 1 else f"{math.ceil(seconds / 60)} minutes"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m resattn.suite.status", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="the grid's results folder")
    parser.add_argument("--params", default="params", help="the configs' folder")
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"error: --results {args.results}: no such folder; give the folder a grid writes into "
              "(results/, results/quick/, results/smoke/)", file=sys.stderr)
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
