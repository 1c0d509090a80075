"""The run folder (issue 23): a run is what it trains, not where its data lies; another run never
serves old figures and never mixes its files with the old run's; one writer per folder; files
reach the disk before an older checkpoint goes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resattn.train.loop import train
from resattn.train.run_config import RunConfig
from resattn.train.run_folder import RunFolder, RunFolderBusy, hold_lock, lend_lock

TINY = {
    "dataset": "synthetic",
    "synthetic_size": 48,
    "image_size": 16,
    "validation_split": 0.25,
    "family": "seed",
    "depth": 56,
    "recipe": "seed_adam",
    "batch_size": 12,
    "max_epochs": 2,
    "seed": 3,
    "run_eagerly": True,  # the subject is the run folder; tracing the step costs more than training it
}


class Crash(RuntimeError):
    pass


def crash_in_epoch(epoch):
    def log(line):
        if line.startswith(f"epoch {epoch}/"):
            raise Crash("the machine went away")

    return log


def image_folder(root, per_class=6, classes=3):
    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def test_a_resumed_run_keeps_its_precision_and_kernels_records_every_start_and_clears_dead_writers_files(tmp_path):
    """Precision and kernels are how a run computes: it resumes with those it started with,
    whatever this machine's `auto` or the recipe's default kernels say now; neither is part of
    its identity (a state written before the kernels left the identity holds them there)."""
    run = tmp_path / "run"
    assert "recipe.kernels" not in RunConfig.from_mapping(TINY).identity()
    with pytest.raises(Crash):
        train({**TINY, "precision": "auto", "kernels": "keras"}, run, log=crash_in_epoch(2))
    state = json.loads((run / "state.json").read_text())
    assert state["execution"]["kernels"] == "keras"
    first = state["execution"]["precision"]
    other = "bfloat16" if first == "float32" else "float32"  # as if it started on another kind of machine
    state["execution"]["precision"] = other
    del state["execution"]["kernels"]
    state["identity"]["recipe.kernels"] = "keras"
    (run / "state.json").write_text(json.dumps(state))
    (run / ".history.csv.gone-host-99.partial").write_text("half")
    lines = []
    metrics = train({**TINY, "precision": "auto"}, run, log=lines.append)  # the default kernels: fused
    assert any(
        line.startswith("resuming from epoch 1 (checkpoint-0001.npz): Adam at")
        and line.endswith(f"{other}, keras kernels")
        for line in lines
    ), lines
    assert metrics["status"] == "completed" and not (run / "replaced").exists()
    record = json.loads((run / "config.json").read_text())
    assert [start["first_epoch"] for start in record["starts"]] == [0, 1]
    assert record["starts"][1]["execution"]["precision"] == other
    assert [start["execution"]["kernels"] for start in record["starts"]] == ["keras", "keras"]
    assert not list(run.glob(".*.partial"))


def test_moved_data_resumes_the_run_and_keeps_its_checkpoint(tmp_path):
    data = image_folder(tmp_path / "images")
    config = {**TINY, "dataset": "image_folder", "data_dir": str(data), "batch_size": 6}
    run = tmp_path / "run"
    with pytest.raises(Crash):
        train(config, run, log=crash_in_epoch(2))
    assert [path.name for path in run.glob("checkpoint-*")] == ["checkpoint-0001.npz"]
    moved = data.rename(tmp_path / "elsewhere")
    lines = []
    metrics = train({**config, "data_dir": str(moved)}, run, log=lines.append)
    assert any(line.startswith("resuming from epoch 1") for line in lines), lines
    assert metrics["status"] == "completed" and not (run / "replaced").exists()
    assert json.loads((run / "state.json").read_text())["config"]["data_dir"] == str(moved)


def test_a_changed_config_moves_the_finished_run_aside_and_trains_again(tmp_path):
    run = tmp_path / "run"
    first = train(TINY, run, log=lambda line: None)
    lines = []
    second = train({**TINY, "label_noise": 0.5}, run, log=lines.append)
    assert "data.label_noise: 0.0 -> 0.5" in lines[0] and "moving it aside" in lines[0]
    replaced = list((run / "replaced").iterdir())
    assert len(replaced) == 1 and json.loads((replaced[0] / "metrics.json").read_text()) == first
    assert second["status"] == "completed" and second != first
    assert json.loads((run / "state.json").read_text())["identity"]["data.label_noise"] == 0.5
    # Served as done only when it is the same run.
    lines = []
    assert train({**TINY, "label_noise": 0.5}, run, log=lines.append) == second
    assert "already completed" in lines[0]


def test_a_forced_retrain_killed_in_its_second_epoch_leaves_none_of_the_old_runs_files(tmp_path):
    run = tmp_path / "run"
    train(TINY, run, log=lambda line: None)
    old_events = sorted(path.name for path in (run / "tensorboard").iterdir())
    with pytest.raises(Crash):
        train(TINY, run, force=True, log=crash_in_epoch(2))
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"  # not the old "completed"
    assert not (run / "model.keras").exists()
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    new_events = sorted(path.name for path in (run / "tensorboard").iterdir())
    assert len(new_events) == 1 and not set(new_events) & set(old_events)
    replaced = next((run / "replaced").iterdir())
    assert {"metrics.json", "model.keras", "state.json", "history.csv", "tensorboard"} <= {
        p.name for p in replaced.iterdir()
    }
    assert RunFolder(run).status() == "failed"


def test_a_second_writer_is_refused_with_one_line_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    with hold_lock(run) as token:
        with pytest.raises(
            RunFolderBusy, match=rf"{run} is being written by pid {os.getpid()} on .*one run folder takes one writer"
        ):
            train(TINY, run, log=lambda line: None)
        assert not (run / "state.json").exists()
        assert RunFolder(run).is_locked() and RunFolder(run).status() == "running"
        done = subprocess.run(
            [sys.executable, "-m", "resattn.train", *(f"{k}={v}" for k, v in TINY.items()), "--run-dir", str(run)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert (
            done.returncode == 2
            and len(errors) == 1
            and f"{run} is being written by pid {os.getpid()} on " in errors[0]
        )
        # A child the holder lends the lock to (the grid's notebook) writes the folder.
        lent = subprocess.run(
            [sys.executable, "-m", "resattn.train", *(f"{k}={v}" for k, v in TINY.items()), "--run-dir", str(run)],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **lend_lock(run, token)},
        )
        assert lent.returncode == 0, lent.stdout + lent.stderr
    assert not RunFolder(run).is_locked()
    assert train(TINY, run, log=lambda line: None)["status"] == "completed"  # released


def test_a_checkpoint_and_the_state_naming_it_reach_the_disk_before_the_older_checkpoint_goes(tmp_path, monkeypatch):
    """Records the order of fsync, rename and unlink calls (each still done) across a run."""
    events = []
    real_fsync, real_replace, real_unlink = os.fsync, os.replace, Path.unlink

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        return real_fsync(descriptor)

    def replace(source, target):
        events.append(("rename", str(target)))
        return real_replace(source, target)

    def unlink(path, missing_ok=False):
        events.append(("unlink", str(path)))
        return real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    run = tmp_path / "run"
    train(TINY, run, log=lambda line: None)
    gone = events.index(("unlink", str(run / "checkpoint-0001.npz")))
    before = events[:gone]
    second, state = str(run / "checkpoint-0002.npz"), str(run / "state.json")
    renamed = before.index(("rename", second))
    assert any(kind == "fsync" and ".checkpoint-0002.npz." in path for kind, path in before[:renamed])
    assert ("fsync", str(run)) in before[renamed:]  # the folder, after the rename
    last_state = max(index for index, event in enumerate(before) if event == ("rename", state))
    assert any(kind == "fsync" and ".state.json." in path for kind, path in before[:last_state])
    assert ("fsync", str(run)) in before[last_state:]


def test_the_datas_location_is_not_part_of_a_runs_identity_but_its_content_is(tmp_path):
    cifar = {**TINY, "dataset": "cifar10", "image_size": 32}
    assert (
        RunConfig.from_mapping(cifar).identity()
        == RunConfig.from_mapping({**cifar, "data_dir": "/any/copy"}).identity()
    )
    first = image_folder(tmp_path / "a")
    second = image_folder(tmp_path / "b", per_class=7)
    identities = [
        RunConfig.from_mapping({**TINY, "dataset": "image_folder", "data_dir": str(folder)}).identity()
        for folder in (first, second)
    ]
    assert identities[0]["data.content"] != identities[1]["data.content"]
    # Defaults filled in: naming a default is the same run.
    assert RunConfig.from_mapping(TINY).identity() == RunConfig.from_mapping({**TINY, "label_noise": 0.0}).identity()
