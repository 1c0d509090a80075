"""`make status` over a results folder of fabricated runs in every state, as training writes them."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from resattn.suite import status

ROOT = Path(__file__).resolve().parents[1]


def fabricate(run_dir, epoch, epochs=10, seconds=60.0, metrics=None, log_age=0.0, node="10.0.0.2 gpu-b 1a2b3c4d"):
    run_dir.mkdir(parents=True)
    history = [
        {"epoch": e, "seconds": seconds * (3 if e == 1 else 1), "warmup": int(e == 1)} for e in range(1, epoch + 1)
    ]
    (run_dir / "state.json").write_text(json.dumps({"status": "running", "epoch": epoch, "history": history}))
    (run_dir / "config.json").write_text(json.dumps({"epochs": epochs, "node": node}))
    if metrics:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    log = run_dir / "log.txt"
    log.write_text("epoch ...\n")
    os.utime(log, (time.time() - log_age, time.time() - log_age))


def params(tmp_path, names):
    folder = tmp_path / "params"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.yaml").write_text("family: seed\n")
    return folder


def test_every_run_gets_its_state_and_the_grid_an_end(tmp_path):
    folder = params(tmp_path, ["a-done", "b-running", "c-stale", "d-failed", "e-waiting"])
    results = tmp_path / "results"
    fabricate(results / "a-done", 10, metrics={"status": "completed"})
    fabricate(results / "b-running", 4, seconds=60.0)
    fabricate(results / "c-stale", 2, log_age=3600)
    fabricate(results / "d-failed", 1)
    (results / "d-failed" / "notebook-error.txt").write_text("the notebook stopped\nValueError: x\n")
    now = time.time()
    rows = {row["config"]: row for row in status.grid_status(results, folder, now)}

    assert rows["a-done"]["status"] == "done (completed)"
    running = rows["b-running"]
    assert running["status"] == "running" and (running["epoch"], running["epochs"]) == (4, 10)
    assert running["seconds_per_epoch"] == 60.0  # the first epoch (warm-up) left out
    assert running["remaining"] == 6 * 60.0 and running["node"] == "10.0.0.2 gpu-b 1a2b3c4d"
    assert rows["c-stale"]["status"] == "interrupted"
    assert rows["d-failed"]["status"] == "failed"
    assert rows["e-waiting"]["status"] == "not started"
    # One running slot: its own 6 epochs left, then the interrupted and waiting runs at the mean
    # measured length of a run (10 epochs x 60 s).
    assert status.grid_estimate(list(rows.values())) == 6 * 60 + 2 * 600

    table = status.format_table(list(rows.values()), now)
    assert "| b-running | running | 4 of 10 | 10.0.0.2 gpu-b 1a2b3c4d | 60.0 |" in table
    line = status.summary_line(list(rows.values()), now)
    assert line.startswith(
        "5 runs: 1 done, 1 running, 1 interrupted, 1 failed, 1 not started; the grid ends in about 26 minutes"
    )


def test_the_command_prints_the_table_and_refuses_a_missing_folder(tmp_path):
    folder = params(tmp_path, ["a-done"])
    fabricate(tmp_path / "results" / "a-done", 10, metrics={"status": "completed"})
    done = subprocess.run(
        [sys.executable, "-m", "resattn.suite.status", "--results", str(tmp_path / "results"), "--params", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "| a-done | done (completed) | 10 of 10 |" in done.stdout and "1 runs: 1 done" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "resattn.suite.status", "--results", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in missing.stderr.splitlines() if line.startswith("error: ")]
    assert missing.returncode == 2 and errors[0].startswith(f"error: --results {tmp_path / 'nothing'}: no such folder")
