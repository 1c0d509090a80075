"""The grid on a real Ray cluster of two nodes started on this machine: runs land on both nodes,
a node removed while a run trains leaves that run to finish on the other node from its last
checkpoint, every epoch once; an unreachable cluster, or a node that cannot see the results
folder, is refused before anything trains."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from ray.cluster_utils import Cluster

from resattn.train.run_files import read_json
from tiny_grid import write_params

ROOT = Path(__file__).resolve().parents[1]
LONG = "family: paper\ndepth: 56\nrecipe: seed_adam\nmax_epochs: 6\n"


def reproduce_command(tmp_path, *extra):
    return [sys.executable, "-m", "resattn.suite.reproduce", "--params", str(tmp_path / "params"), "--results",
            str(tmp_path / "results"), "--notebooks", str(ROOT / "notebooks"), "--profile", "tiny", "--gpus", "cpu",
            "--no-preflight", *extra]


def test_an_unreachable_cluster_is_refused_with_one_line_and_nothing_written(tmp_path):
    write_params(tmp_path, {"a": LONG})
    done = subprocess.run(reproduce_command(tmp_path, "--ray-address", "127.0.0.1:9"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and "RAY_ADDRESS=127.0.0.1:9: no Ray cluster answers there" in errors[0]
    assert "ray start --head" in errors[0]
    assert not (tmp_path / "results").exists()


def unshare_works():
    return shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not unshare_works(), reason="needs `unshare -m` (root) to hide a folder from one node")
def test_a_node_that_cannot_see_the_results_folder_is_named_and_nothing_trains(tmp_path):
    """The second node runs in a mount namespace of its own with an empty tmpfs over the results
    folder: on this one machine it sees another folder at the same path, as a node without the
    shared filesystem would."""
    write_params(tmp_path, {"a": LONG})
    results = tmp_path / "results"
    results.mkdir()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    head = cluster.head_node.node_id[:8]
    hidden = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"',
         str(results), str(Path(sys.executable).parent / "ray"), "start", "--address", cluster.address,
         "--num-cpus", "1", "--block"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(cluster.global_state._live_node_ids()) < 2:
            assert hidden.poll() is None and time.monotonic() < deadline, "the second node did not join"
            time.sleep(0.5)
        done = subprocess.run(reproduce_command(tmp_path, "--ray-address", cluster.address), capture_output=True,
                              text=True, timeout=300)
    finally:
        hidden.terminate()
        hidden.wait(timeout=60)
        cluster.shutdown()
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "cannot use the results folder" in errors[0] and "a shared filesystem" in errors[0]
    print(errors[0])
    assert errors[0].startswith("error: node ") and head not in errors[0]  # the node named is the one that cannot see it
    assert "start on node" not in done.stdout and not (results / "a").exists()


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
    driver = subprocess.Popen(reproduce_command(tmp_path, "--ray-address", cluster.address), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
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
    started = {line.split("] start on node ")[1].split(",")[0] for line in output.splitlines() if "] start on node " in line}
    assert any(node.endswith(worker_id) for node in started) and len(started) == 2  # runs landed on both nodes
