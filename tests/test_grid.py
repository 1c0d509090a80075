"""The grid on a real Ray cluster of two nodes started on this machine: runs land on both nodes,
a node removed while a run trains leaves that run to finish on the other node from its last
checkpoint, every epoch once; an unreachable cluster, or a node that cannot see the results
folder, is refused before anything trains."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from ray.cluster_utils import Cluster
from tiny_grid import write_image_folder, write_params

from resattn.train.run_folder import read_json

ROOT = Path(__file__).resolve().parents[1]
LONG = "family: paper\ndepth: 56\nrecipe: seed_adam\nmax_epochs: 6\n"


def reproduce_command(tmp_path, *extra):
    return [
        sys.executable,
        "-m",
        "resattn.suite.reproduce",
        "--params",
        str(tmp_path / "params"),
        "--results",
        str(tmp_path / "results"),
        "--notebooks",
        str(ROOT / "notebooks"),
        "--profile",
        "tiny",
        "--gpus",
        "cpu",
        "--no-preflight",
        *extra,
    ]


def unshare_works():
    return shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def grid_with_a_node_that_cannot_see(hidden_folder, commands):
    """Runs each of `commands` (reproduce's arguments after its own) on one cluster whose second
    node runs in a mount namespace of its own with an empty tmpfs over `hidden_folder`: on this
    one machine it sees another folder at the same path, as a node without the shared filesystem
    would. Returns (the finished commands, the head node's id)."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    head = cluster.head_node.node_id[:8]
    hidden = subprocess.Popen(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount -t tmpfs none "$0" && exec "$@"',
            str(hidden_folder),
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--address",
            cluster.address,
            "--num-cpus",
            "1",
            "--block",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(cluster.global_state._live_node_ids()) < 2:
            assert hidden.poll() is None and time.monotonic() < deadline, "the second node did not join"
            time.sleep(0.5)
        done = [
            subprocess.run([*command, "--ray-address", cluster.address], capture_output=True, text=True, timeout=300)
            for command in commands
        ]
    finally:
        hidden.terminate()
        hidden.wait(timeout=60)
        cluster.shutdown()
    return done, head


@pytest.mark.skipif(not unshare_works(), reason="needs `unshare -m` (root) to hide a folder from one node")
def test_a_node_that_cannot_see_the_results_folder_or_the_data_is_named_and_nothing_trains(tmp_path):
    """Two grids on one cluster: the first writes its results into the folder the second node
    cannot see, the second reads its data from there."""
    hidden = tmp_path / "hidden"
    images, hidden_results = hidden / "images", hidden / "results"
    write_image_folder(images, per_class=4)
    hidden_results.mkdir()
    write_params(tmp_path, {"a": LONG})
    write_params(tmp_path / "reads-hidden-data", {"a": f"dataset: image_folder\ndata_dir: {images}\n" + LONG})
    (results_unseen, data_unseen), head = grid_with_a_node_that_cannot_see(
        hidden,
        [
            reproduce_command(tmp_path, "--results", str(hidden_results)),
            reproduce_command(tmp_path / "reads-hidden-data"),
        ],
    )
    for done, says in (
        (results_unseen, "cannot use the results folder"),
        (data_unseen, f"cannot see the data at {images}; every node must see it at the same path"),
    ):
        assert done.returncode == 2, done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, done.stderr
        # the node named is the one that cannot see it
        assert errors[0].startswith("error: node ") and head not in errors[0] and says in errors[0], errors[0]
        assert "start on node" not in done.stdout
    assert "a shared filesystem" in results_unseen.stderr
    assert not (hidden_results / "a").exists() and not (tmp_path / "reads-hidden-data" / "results" / "a").exists()


def test_a_node_offering_a_gpu_its_backend_cannot_see_is_named_before_the_grid(tmp_path):
    """A node that declares a GPU (as a node whose driver or CUDA build broke still does)."""
    write_params(tmp_path, {"a": LONG})
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1, "include_dashboard": False})
    try:
        done = subprocess.run(
            reproduce_command(tmp_path, "--ray-address", cluster.address), capture_output=True, text=True, timeout=600
        )
    finally:
        cluster.shutdown()
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: node ") and "sees no GPU" in errors[0], done.stderr
    assert "start on node" not in done.stdout and not (tmp_path / "results" / "a").exists()


@pytest.fixture
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    cluster.shutdown()


def test_runs_land_on_both_nodes_and_a_run_whose_node_dies_finishes_on_the_other(tmp_path, two_nodes):
    cluster, worker = two_nodes
    write_params(tmp_path, {"first": LONG, "second": LONG})
    results = tmp_path / "results"
    driver = subprocess.Popen(
        reproduce_command(tmp_path, "--ray-address", cluster.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker_id = worker.node_id[:8]
    deadline = time.monotonic() + 600
    on_worker = None
    while on_worker is None:  # the run on the worker node, once its epoch 1 is saved
        assert driver.poll() is None, driver.stdout.read()
        assert time.monotonic() < deadline, "no run reached epoch 2 on the worker node in time"
        for name in ("first", "second"):
            record = read_json(results / name / "config.json") or {}
            state = read_json(results / name / "state.json") or {}
            if record.get("node", "").endswith(worker_id) and state.get("epoch", 0) >= 1:
                on_worker = name
        time.sleep(0.2)
    killed_at = read_json(results / on_worker / "state.json")["epoch"]
    assert killed_at < 6
    cluster.remove_node(worker, allow_graceful=False)
    output, _ = driver.communicate(timeout=900)
    assert driver.returncode == 0, output

    nodes = set()
    for name in ("first", "second"):
        history = pd.read_csv(results / name / "history.csv")
        assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6], name  # every epoch once
        assert read_json(results / name / "metrics.json")["status"] == "completed"
        nodes.add(read_json(results / name / "config.json")["node"])
    log = (results / on_worker / "log.txt").read_text()
    assert worker_id in log.split("\n--- ")[0] or log.count("--- ") == 2  # a first try on the worker, then another
    assert f"[{on_worker}] resuming from epoch " in output
    assert not read_json(results / on_worker / "config.json")["node"].endswith(worker_id)  # finished elsewhere
    started = {
        line.split("] start on node ")[1].split(",")[0] for line in output.splitlines() if "] start on node " in line
    }
    assert any(node.endswith(worker_id) for node in started) and len(started) == 2  # runs landed on both nodes


def test_embedded_ray_gives_each_concurrent_task_its_own_device_at_the_drivers_priority():
    """Two GPU tasks at once on an embedded Ray given two MIG devices: each sees one, never the
    same (Ray hands the devices out; this machine has no GPU, so only the assignment is checked);
    and each runs at the driver's niceness, not Ray's default 15 (a run beside anything else
    then got a third of the CPU)."""
    script = """
import os, time, ray
from resattn.suite import grid
assert grid.start(None, ["MIG-aaaa", "MIG-bbbb"], 2)
driver = os.nice(0)
def device():
    time.sleep(3)  # both tasks hold their device at once
    return os.environ["CUDA_VISIBLE_DEVICES"], os.nice(0) - driver
task = ray.remote(num_gpus=1, num_cpus=0)(device)
print(sorted(ray.get([task.remote(), task.remote()])))
grid.stop()
"""
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[('MIG-aaaa', 0), ('MIG-bbbb', 0)]"


def test_runs_start_in_the_order_they_were_submitted(tmp_path):
    """One CPU slot, five runs of a one-cell notebook: they start in the order submitted (the
    grid submits the deepest networks first), through the grid's own submit and run_notebook."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "c1",
                "metadata": {},
                "outputs": [],
                "source": "print('trained')",
            }
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "train.ipynb").write_text(json.dumps(notebook))
    script = f"""
from pathlib import Path
import ray
from ray.util.queue import Empty
from resattn.suite import grid
from resattn.suite.reproduce import Job
grid.start(None, [], 1)
lines = grid.console_queue()
names = ["e", "b", "a", "d", "c"]
tasks = [grid.submit(Job(name, Path({str(tmp_path)!r}) / "runs" / name, {{}}, {{}}), {{}}, {str(tmp_path / "notebooks")!r},
                     False, lines) for name in names]
assert all(ray.get(tasks))
said = []
while True:
    try:
        said.append(lines.get_nowait())
    except Empty:
        break
print([line.split("]")[0][1:] for line in said if "] start on node " in line])
grid.stop()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['e', 'b', 'a', 'd', 'c']"


def test_auto_devices_are_those_a_scheduler_gave_else_every_gpu_or_mig_device_listed():
    from resattn.train.devices import devices_in_listing, find_gpus

    assert find_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]  # a scheduler's allocation, kept
    assert find_gpus({"CUDA_VISIBLE_DEVICES": "MIG-5d5ba0d6"}) == ["MIG-5d5ba0d6"]
    assert find_gpus({"CUDA_VISIBLE_DEVICES": ""}) == [] and find_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    listing = (  # nvidia-smi -L on a machine whose first GPU is split in two MIG devices
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-838f60d9-651f-9166-ea42-f9da674a6947)\n"
        "  MIG 3g.20gb     Device  0: (UUID: MIG-ffda444c-c706-57c6-98c9-67c441a0b109)\n"
        "  MIG 3g.20gb     Device  1: (UUID: MIG-fe9bc608-60f5-5479-8cc4-1827021d27a9)\n"
        "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-c92e2d5d-4a69-f1cd-4df0-305f8606705a)\n"
    )
    assert devices_in_listing(listing) == [
        "MIG-ffda444c-c706-57c6-98c9-67c441a0b109",
        "MIG-fe9bc608-60f5-5479-8cc4-1827021d27a9",
        "1",
    ]


def test_an_unreachable_cluster_is_refused_with_one_line_and_nothing_written(tmp_path):
    write_params(tmp_path, {"a": LONG})
    done = subprocess.run(
        reproduce_command(tmp_path, "--ray-address", "127.0.0.1:9"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and "RAY_ADDRESS=127.0.0.1:9: no Ray cluster answers there" in errors[0]
    assert "ray start --head" in errors[0]
    assert not (tmp_path / "results").exists()


def test_a_ray_client_address_is_refused_with_one_line():
    from resattn.suite import grid

    with pytest.raises(grid.Unreachable, match=r"RAY_ADDRESS='ray://10.0.0.1:10001' is a Ray Client address"):
        grid.check_address("ray://10.0.0.1:10001")
