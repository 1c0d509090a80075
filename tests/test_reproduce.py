"""reproduce-all with real papermill runs of notebooks/train.ipynb over a small params folder: a
failing config is recorded and the others go on, a kernel that did not start is tried again, a
finished config is skipped, a killed run resumes from its last epoch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from tiny_grid import write_image_folder, write_params

from resattn.train.run_folder import read_json

ROOT = Path(__file__).resolve().parents[1]
GOOD = "family: paper\ndepth: 56\nrecipe: seed_adam\nmax_epochs: 2\n"


def flaky_kernel(tmp_path):
    """An environment whose `python3` kernel (found first through JUPYTER_PATH) fails its first
    start, as a kernel that lost the port race to another does; later starts are the real kernel."""
    share = tmp_path / "jupyter"
    (share / "kernels" / "python3").mkdir(parents=True)
    launcher = share / "flaky-kernel"
    launcher.write_text(
        f'#!/bin/sh\nmkdir "{share}/started-once" 2>/dev/null && exit 1\n'
        f'exec "{sys.executable}" -m ipykernel_launcher -f "$1"\n'
    )
    launcher.chmod(0o755)
    spec = {"argv": [str(launcher), "{connection_file}"], "display_name": "Python 3", "language": "python"}
    (share / "kernels" / "python3" / "kernel.json").write_text(json.dumps(spec))
    return {**os.environ, "JUPYTER_PATH": str(share)}


def reproduce(tmp_path, *extra, env=None, cwd=None, **popen):
    command = [
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
        "--no-preflight",  # the preflight has tests of its own
        *extra,
    ]
    if popen:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=cwd)


def test_a_failing_config_is_recorded_the_others_go_on_finished_ones_are_skipped_changed_ones_retrained(tmp_path):
    """Also: the first kernel to start fails to; its run is tried again, a Python error is not.
    The failed config, fixed, reads a relative data_dir from the folder the command runs in
    (papermill starts each kernel in notebooks/, where it must not be read from). A changed
    config trains again, and --force retrains a finished one, each old run kept."""
    no_classes = tmp_path / "no-classes"
    (no_classes / "train").mkdir(parents=True)
    write_params(
        tmp_path,
        {
            "a-good": GOOD,
            "b-broken": f"dataset: image_folder\ndata_dir: {no_classes}\nfamily: paper\ndepth: 56\nmax_epochs: 2\n",
            "c-changed": GOOD,
        },
    )
    results = tmp_path / "results"

    first = reproduce(tmp_path, env=flaky_kernel(tmp_path))
    assert first.returncode == 1, first.stdout + first.stderr
    assert "3 runs under the tiny profile" in first.stdout and "0 finished already" in first.stdout
    assert "estimate: skipped: no run trains more than 16 images" in first.stdout  # the quick profile's test has one
    assert "[b-broken] FAILED: " in first.stdout and str(no_classes) in first.stdout
    assert "1 config(s) failed: b-broken" in first.stdout
    retried = "] the kernel did not start; trying again"
    assert first.stdout.count(retried) == 1, first.stdout
    for name in ("a-good", "b-broken"):  # one try, and one more only after the kernel did not start
        tries = [line for line in (results / name / "log.txt").read_text().splitlines() if line.startswith("--- ")]
        assert len(tries) == 1 + first.stdout.count(f"[{name}{retried}"), first.stdout
    running = 0  # one CPU slot (--jobs 1): a run starts only after the previous one ended
    for line in first.stdout.splitlines():
        running += ("] start on node " in line) - (line.endswith(("] done", retried)) or "] FAILED: " in line)
        assert running <= 1, first.stdout
    assert read_json(results / "a-good" / "metrics.json")["status"] == "completed"
    assert (results / "a-good" / "train.ipynb").exists() and (results / "a-good" / "curves.png").exists()
    assert (results / "b-broken" / "notebook-error.txt").exists()
    summary = (results / "summary.md").read_text()
    assert "2 completed, 1 failed" in summary or "1 failed, 2 completed" in summary
    runs = pd.read_csv(results / "summary.csv")
    assert set(runs["table"])  # the results notebook ran to the end

    notebook_written = (results / "a-good" / "train.ipynb").stat().st_mtime_ns
    first_changed = read_json(results / "c-changed" / "metrics.json")
    write_image_folder(tmp_path / "work" / "images")
    (tmp_path / "params" / "b-broken.yaml").write_text(  # fixed: it runs, the error file goes
        "dataset: image_folder\ndata_dir: images\nfamily: paper\ndepth: 56\nmax_epochs: 2\n"
    )
    (tmp_path / "params" / "c-changed.yaml").write_text(GOOD + "label_noise: 0.5\n")
    second = reproduce(tmp_path, cwd=tmp_path / "work")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 finished already (skipped), 2 to run" in second.stdout
    assert "[a-good] start" not in second.stdout
    assert (results / "a-good" / "train.ipynb").stat().st_mtime_ns == notebook_written
    assert "[b-broken] done" in second.stdout and not (results / "b-broken" / "notebook-error.txt").exists()
    record = read_json(results / "b-broken" / "config.json")
    assert record["data"]["data_dir"] == str(tmp_path / "work" / "images") and record["data"]["train_size"] == 12
    assert "3 completed" in (results / "summary.md").read_text()
    assert "data.label_noise: 0.0 -> 0.5" in (results / "c-changed" / "log.txt").read_text()
    assert read_json(results / "c-changed" / "state.json")["identity"]["data.label_noise"] == 0.5

    forced = reproduce(tmp_path, "--force", "--configs", "c-changed", cwd=tmp_path / "work")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "force: c-changed: its previous run is in " in forced.stdout
    assert "0 finished already (skipped), 1 to run" in forced.stdout and "[a-good] start" not in forced.stdout
    replaced = sorted((results / "c-changed" / "replaced").iterdir())
    assert len(replaced) == 2 and read_json(replaced[0] / "metrics.json") == first_changed
    assert read_json(results / "c-changed" / "metrics.json")["status"] == "completed"


def test_a_killed_kernel_is_retried_and_a_killed_grid_resumes_each_from_the_runs_last_epoch(tmp_path):
    """First SIGKILL to the kernel alone, the grid left running, as the host's out-of-memory killer
    would: the grid starts it again. Then SIGKILL to the whole grid: a second reproduce resumes."""
    write_params(tmp_path, {"long": GOOD.replace("max_epochs: 2", "max_epochs: 8")})
    run_dir = tmp_path / "results" / "long"

    def epoch():
        return (read_json(run_dir / "state.json") or {}).get("epoch", 0)

    def wait_for_epoch(least):
        deadline = time.monotonic() + 600
        while epoch() < least:
            assert driver.poll() is None, driver.stdout.read()
            assert time.monotonic() < deadline, f"epoch {least} not saved in time"
            time.sleep(0.1)

    driver = reproduce(tmp_path, start_new_session=True)
    wait_for_epoch(1)
    kernel = kernel_of(run_dir)
    assert kernel is not None
    os.kill(kernel, signal.SIGKILL)
    wait_for_epoch(epoch() + 1)  # a new kernel trains on
    os.killpg(driver.pid, signal.SIGKILL)
    output = driver.communicate()[0]
    time.sleep(3)  # the kernel, in a session of its own, notices its parent has gone and exits
    assert "[long] the kernel died; trying again, from the run's last epoch" in output
    assert "[long] resuming from epoch " in output
    killed_at = epoch()
    assert 2 <= killed_at < 8, "the run finished before the grid was killed"

    again = reproduce(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"[long] resuming from epoch {killed_at}" in again.stdout
    assert list(pd.read_csv(run_dir / "history.csv")["epoch"]) == list(range(1, 9))
    assert read_json(run_dir / "metrics.json")["status"] == "completed"
    assert not (run_dir / "notebook-error.txt").exists()


@pytest.mark.parametrize(
    "argument, message",
    [
        (["--gpus", "zero"], "gpus='zero' is not valid; give auto, cpu, GPU indices like 0,1 or device UUIDs"),
        (["--profile", "fast"], "profile='fast' is not valid; choose one of ('tiny',)"),
        (["--seeds", "a,b"], "seeds='a,b' is not valid; give integers >= 0 like 0,1,2"),
        (["--data", "/no/such/folder"], "data=/no/such/folder: no such folder"),
    ],
)
def test_bad_settings_stop_before_anything_runs(tmp_path, capsys, argument, message):
    """In this process: the command line's own process is the other tests'."""
    from resattn.suite.reproduce import main

    write_params(tmp_path, {"a-good": GOOD})
    arguments = ["--params", str(tmp_path / "params"), "--results", str(tmp_path / "results")]
    arguments += ["--notebooks", str(ROOT / "notebooks"), "--profile", "tiny"]
    assert main([*arguments, *argument]) == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_seeds_give_each_config_one_run_per_seed_named_after_it(tmp_path):
    from resattn.suite.reproduce import plan

    write_params(tmp_path, {"a-good": GOOD + "seed: 3\n"})
    jobs = plan(tmp_path / "params", ROOT / "notebooks", "all", "tiny", None, [3, 7])
    assert [(job.name, job.config["seed"]) for job in jobs] == [("a-good", 3), ("a-good-seed7", 7)]
    assert jobs[1].effective["dataset"] == "synthetic" and jobs[1].effective["max_steps_per_epoch"] == 1


def test_the_preflight_stops_the_grid_before_anything_trains_when_a_first_step_fails(tmp_path):
    """A network whose first step does not fit in memory (the likeliest failure on a GPU: a deep
    network on a small card) is stopped by the preflight, in its own process, before any
    config trains; the driver names the config. Memory is capped with `ulimit -v`, under which
    TensorFlow either reports the failed allocation or dies of it."""
    fits = "dataset: synthetic\nsynthetic_size: 16\nfamily: seed\ndepth: 56\nprecision: float32\nmax_epochs: 1\n"
    params = write_params(
        tmp_path,
        {
            "a-fits": fits + "image_size: 16\nbatch_size: 8\n",
            "b-too-big": fits + "image_size: 256\nbatch_size: 256\n",  # its first conv's output alone is 4 GiB
        },
    )
    (params / "profiles" / "as-is.yaml").write_text("{}\n")
    command = [
        sys.executable,
        "-m",
        "resattn.suite.reproduce",
        "--params",
        str(params),
        "--results",
        str(tmp_path / "results"),
        "--notebooks",
        str(ROOT / "notebooks"),
        "--profile",
        "as-is",
        "--gpus",
        "cpu",
        "--jobs",
        "2",
    ]
    done = subprocess.run(
        ["bash", "-c", 'ulimit -v 4000000 && exec "$@"', "-", *command], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "preflight: 2 distinct network(s) of 2 run(s)" in done.stdout
    assert "preflight: ok in" in done.stdout and "(a-fits)" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: preflight:")]
    assert len(errors) == 1, done.stderr[-3000:]
    # Which tensor fails first depends on the kernels the processor gets; any of batch 256 is b-too-big's.
    assert (
        "seed:56 failed: out of memory: tensor with shape[256," in errors[0]
        or "seed:56 failed: the process died of SIG" in errors[0]
    ), errors[0]
    assert errors[0].endswith("affects b-too-big")
    assert "nothing was trained" in done.stderr
    assert not list((tmp_path / "results").glob("*/state.json")) and "start on" not in done.stdout


def test_the_preflight_reads_an_out_of_memory_error_from_tensorflows_exception_and_xlas_status():
    """TensorFlow's exception (all CI sees: make test silences its log) ends with a hint that also
    says OOM; XLA's status is what JAX raises on a GPU."""
    from resattn.suite.preflight import out_of_memory

    tensorflow = (
        "Graph execution error:\n\nDetected at node stem_conv/BiasAdd defined at (most recent call last):\n"
        "OOM when allocating tensor with shape[256,256,256,64] and type float on "
        "/job:localhost/replica:0/task:0/device:CPU:0 by allocator cpu\n\t [[{{node stem_conv/BiasAdd}}]]\n"
        "Hint: If you want to see a list of allocated tensors when OOM happens, add "
        "report_tensor_allocations_upon_oom to RunOptions for current allocation info.\n"
    )
    assert out_of_memory(tensorflow) == "tensor with shape[256,256,256,64] and type float"
    xla = "XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4294967296 bytes.\n"
    assert out_of_memory(xla) == "Out of memory while trying to allocate 4294967296 bytes."
    assert out_of_memory("ValueError: Hint: when OOM happens, read this") is None


def test_with_no_network_the_grid_stops_on_the_download_before_any_config_starts(tmp_path):
    params = write_params(
        tmp_path,
        {
            "a-cifar": "dataset: cifar10\nfamily: seed\ndepth: 56\n",
            "b-cifar": "dataset: cifar10\nfamily: paper\ndepth: 56\n",
        },
    )
    (params / "profiles" / "as-is.yaml").write_text("{}\n")
    env = {
        **os.environ,
        "RESATTN_CACHE": str(tmp_path / "cache"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }  # a proxy that refuses: no network, whatever this machine has
    command = [
        sys.executable,
        "-m",
        "resattn.suite.reproduce",
        "--params",
        str(params),
        "--results",
        str(tmp_path / "results"),
        "--notebooks",
        str(ROOT / "notebooks"),
        "--profile",
        "as-is",
        "--gpus",
        "cpu",
        "--data",
        "keras",
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: could not download cifar10 from https://"), done.stderr[
        -2000:
    ]
    assert "start on" not in done.stdout and not (tmp_path / "results").exists()
    assert time.monotonic() - started < 120


def test_the_quick_profile_on_a_machine_with_no_gpu_is_refused_with_an_estimate(tmp_path):
    """The seed's configs under the real quick profile: on this CPU, hours of training. It stops
    before anything trains, saying how long and how to go on."""
    command = [
        sys.executable,
        "-m",
        "resattn.suite.reproduce",
        "--params",
        str(ROOT / "params"),
        "--results",
        str(tmp_path / "results"),
        "--notebooks",
        str(ROOT / "notebooks"),
        "--profile",
        "quick",
        "--subset",
        "seed",
        "--gpus",
        "cpu",
        "--data",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 2, done.stdout + done.stderr
    estimate = [line for line in done.stdout.splitlines() if line.startswith("estimate: at most ")]
    assert len(estimate) == 1 and "for 7 run(s)" in estimate[0] and "G/s measured here (seed_attention56" in estimate[0]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: the quick profile on this machine's CPU would take about ")
    assert "make smoke" in errors[0] and "--allow-cpu" in errors[0]
    assert not (tmp_path / "results").exists() and "preflight" not in done.stdout


def test_a_grid_given_a_gpu_the_backend_cannot_see_stops_before_training(tmp_path):
    """GPUS=0 where the backend sees no GPU (this machine; or a CPU-only build on a GPU machine)."""
    params = write_params(tmp_path, {"a-good": GOOD})
    command = [
        sys.executable,
        "-m",
        "resattn.suite.reproduce",
        "--params",
        str(params),
        "--results",
        str(tmp_path / "results"),
        "--notebooks",
        str(ROOT / "notebooks"),
        "--profile",
        "tiny",
        "--gpus",
        "0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: preflight: ")]
    assert len(errors) == 1 and "this run was given GPU 0 but " in errors[0] and errors[0].endswith("affects a-good")
    assert "start on GPU" not in done.stdout and not list((tmp_path / "results").glob("*/state.json"))


def test_a_relative_data_dir_that_does_not_exist_is_refused_naming_the_folder_the_command_runs_in(tmp_path):
    """Before anything starts (the failing-config test trains from a relative data_dir that exists)."""
    config = "dataset: image_folder\ndata_dir: nowhere\nfamily: paper\ndepth: 56\nmax_epochs: 1\n"
    write_params(tmp_path, {"b-missing": config})
    (tmp_path / "work").mkdir()
    refused = reproduce(tmp_path, cwd=tmp_path / "work")
    assert refused.returncode == 2 and not (tmp_path / "results").exists()
    assert (
        f"b-missing.yaml: data_dir={tmp_path / 'work' / 'nowhere'} does not exist (a relative data_dir is read "
        f"from the folder the command runs in, {tmp_path / 'work'})" in refused.stderr
    )


def kernel_of(run_dir):
    """The pid of the notebook kernel writing `run_dir` (the grid lends it the folder's lock)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"ipykernel_launcher" in command and f"RESATTN_RUN_LOCK={run_dir.resolve()} ".encode() in environment:
            return int(entry.name)
    return None
