"""The grid on Ray: every (config, seed) run is one Ray task, on this machine or on a cluster.

With no address, Ray starts embedded on this machine with the GPUs (or CPU slots) the command
allows; with an address (`RAY_ADDRESS=host:port`) the same tasks go to a running cluster. A task
asks for one GPU where the cluster has GPUs, one CPU otherwise; Ray picks the node and sets the
task's CUDA_VISIBLE_DEVICES, so two tasks never share a GPU. A task runs notebooks/train.ipynb
with papermill into the run's folder, which every node must see at the same path:

- a worker or node that dies: Ray runs the task again elsewhere, and the run resumes from its
  last checkpoint (training resumes from state.json by itself);
- a kernel that dies (the host's out-of-memory killer, a segfault, a GPU fault) or fails to
  start (the port race of many kernels starting at once): retried, and the run resumes;
- a notebook that fails (a Python error in the config): recorded in notebook-error.txt, not
  retried.

A task holds its run folder's lock while its notebook runs (and lends it to the notebook's
kernel), so a second grid, a notebook opened beside the grid or an orphan beside its retry is
refused with one line instead of writing the same files.
"""

import functools
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

TRAIN_NOTEBOOK = "train.ipynb"
ERROR_FILE = "notebook-error.txt"
STORAGE_CHECK = ".storage-check"
# papermill's words when the kernel never came up: a start-up race, worth another try.
KERNEL_START_FAILURES = (
    "Kernel died before replying to kernel_info",
    "Kernel didn't respond",
    "ZMQError: Address already in use",
)
# papermill's words when the kernel died under a running notebook: the run resumes on a retry.
KERNEL_DEATHS = ("DeadKernelError", "Kernel died")
RETRIES = 3  # after a dead worker, node or kernel, or a kernel that did not start
LOCK_WAIT = 120  # seconds a retried task waits for its first try's process to let go of the run folder
# The lines of a run shown on the console (all of its output goes to its log.txt): the training's
# progress and any error.
PROGRESS = re.compile(
    r"^(data: |training |epoch \d|resuming |completed |early_stopped |diverged |early stopping|loss is )|Error\b"
)


class KernelStartFailed(RuntimeError):
    """The notebook's kernel did not start; Ray retries the task."""


class KernelDied(RuntimeError):
    """The notebook's kernel died mid-run; Ray retries the task, which resumes the run."""


class Unreachable(Exception):
    """No Ray cluster answers at the address given."""


class SharedStorageMissing(Exception):
    """A node cannot write and read the results folder."""


class DataMissing(Exception):
    """A node cannot see the runs' data."""


class DeviceMissing(Exception):
    """A node offers a GPU that its backend cannot see."""


def check_address(address, timeout=5.0):
    """Fails within `timeout` seconds if nothing listens at host:port (Ray itself retries for minutes)."""
    if address.startswith("ray://"):
        raise Unreachable(
            f"RAY_ADDRESS={address!r} is a Ray Client address, which the grid does not use; run the "
            "command on a node of the cluster with the head's address, like 10.0.0.1:6379"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise Unreachable(
            f"RAY_ADDRESS={address!r} is not valid; give host:port of a Ray head node, like 10.0.0.1:6379"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise Unreachable(
            f"RAY_ADDRESS={address}: no Ray cluster answers there ({error.strerror or error}); start "
            "one with `ray start --head`, or leave RAY_ADDRESS unset to run on this machine"
        ) from None


def start(address, gpu_slots, cpu_slots):
    """Connects to the cluster at `address`, or starts Ray here with `gpu_slots` (GPU indices or UUIDs) or
    `cpu_slots` tasks at once. Returns whether tasks ask for GPUs."""
    import ray

    quiet = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
    if address:
        check_address(address)
        ray.init(address=address, **quiet)
    else:
        if gpu_slots:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_slots)  # Ray hands these out, one per task
        # Ray starts its workers at niceness 15, below anything else on the machine (a notebook, a
        # test suite, another grid): a run that takes hours got a third of the CPU beside them.
        os.environ.setdefault("RAY_worker_niceness", "0")
        # "local": a Ray of its own, never a cluster another process started on this machine.
        ray.init(
            address="local",
            num_cpus=max(len(gpu_slots), cpu_slots),
            num_gpus=len(gpu_slots),
            include_dashboard=False,
            **quiet,
        )
    return ray.cluster_resources().get("GPU", 0) > 0


def stop():
    import ray

    ray.shutdown()


def alive_nodes():
    import ray

    return [node for node in ray.nodes() if node["Alive"]]


def on_every_node(function, *args, gpu=False):
    """Runs `function(*args)` once on every live node (on one of its GPUs with `gpu`, on nodes
    that have one); returns {"address name id": its result}."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probes = {}
    for node in alive_nodes():
        if gpu and not node["Resources"].get("GPU"):
            continue
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        remote = ray.remote(num_cpus=0, num_gpus=1 if gpu else 0, max_retries=0)(function)
        where = f"{node['NodeManagerAddress']} {node['NodeName']} {node['NodeID'][:8]}"
        probes[where] = remote.options(scheduling_strategy=strategy).remote(*args)
    return {where: ray.get(reference, timeout=300) for where, reference in probes.items()}


def check_shared_storage(results_dir):
    """Every node writes a file in `results_dir` and reads the driver's; the driver reads theirs.
    Raises SharedStorageMissing naming the first node that cannot."""
    folder = Path(results_dir).resolve() / STORAGE_CHECK
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    (folder / f"driver-{token}").write_text(token)
    try:
        for where, (problem, node_id) in on_every_node(_storage_probe, str(folder), token).items():
            if not problem and not (folder / f"node-{token}-{node_id}").exists():
                raise SharedStorageMissing(
                    f"node {where} wrote into {folder.parent} but the driver cannot see it; "
                    "every node must see the results folder at the same path (a shared filesystem)"
                )
            if problem:
                raise SharedStorageMissing(
                    f"node {where} cannot use the results folder {folder.parent}: {problem}; "
                    "every node must see it at the same path (a shared filesystem)"
                )
    finally:
        for path in folder.glob(f"*-{token}*"):
            path.unlink(missing_ok=True)


def _storage_probe(folder, token):
    import ray

    folder = Path(folder)
    node_id = ray.get_runtime_context().get_node_id()
    try:
        if (folder / f"driver-{token}").read_text() != token:
            return f"it reads something else than the driver wrote in {folder}", node_id
        (folder / f"node-{token}-{node_id}").write_text(token)
    except OSError as error:
        return f"{type(error).__name__}: {error}", node_id
    return None, node_id


def check_data_on_nodes(paths, downloaded):
    """Every node looks for each of the runs' data `paths` (as the driver resolved them). Raises
    DataMissing naming the first node and path it cannot see; `downloaded`: the driver fetched
    them into its own cache (DATA=keras)."""
    for where, missing in on_every_node(_missing_paths, sorted(str(path) for path in paths)).items():
        if missing:
            how = (
                " (DATA=keras downloads the archives on this machine only: give DATA=<a folder of them that every "
                "node sees>)"
                if downloaded
                else ""
            )
            raise DataMissing(
                f"node {where} cannot see the data at {missing[0]}; every node must see it at the same "
                f"path (a shared filesystem){how}"
            )


def _missing_paths(paths):
    return [path for path in paths if not Path(path).exists()]


def check_gpus_on_nodes():
    """Every node that offers GPUs starts the backend on one of them, as a run there would
    (RESATTN_DEVICE=gpu): a node whose backend cannot see its GPU is named before the grid,
    instead of failing every run it is given. Raises DeviceMissing."""
    for where, problem in on_every_node(_device_probe, gpu=True).items():
        if problem:
            raise DeviceMissing(f"node {where}: {problem}")


def _device_probe():
    from resattn.suite.preflight import last_error

    command = [sys.executable, "-c", "from resattn.train.devices import check_device; check_device()"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "RESATTN_DEVICE": "gpu"}
    )
    return None if done.returncode == 0 else last_error(done.stdout + done.stderr)


def console_queue():
    """The queue the runs' console lines go through, on the driver's node (it lives as long as the driver)."""
    import ray
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})


def remote_preflight(jobs, uses_gpus):
    """The preflight (one training step of every distinct network) as one task on the cluster,
    on the kind of device a run gets; returns its failure lines, printing its progress."""
    import ray

    failures, lines = ray.get(
        ray.remote(max_retries=1)(_preflight).options(**_run_resources(uses_gpus)).remote(jobs, uses_gpus)
    )
    for line in lines:
        print(line, flush=True)
    return failures


def _run_resources(uses_gpus):
    """What one run asks of Ray: a GPU of its own where the cluster has GPUs, and a CPU."""
    return {"num_gpus": 1, "num_cpus": 1} if uses_gpus else {"num_cpus": 1}


def _preflight(jobs, uses_gpus):
    from resattn.suite.preflight import run_preflight

    lines = []
    # On a GPU, as a run there: stopped if the backend cannot see it (check_device).
    device = {"RESATTN_DEVICE": "gpu"} if uses_gpus else {}
    failures = run_preflight(jobs, [None], lambda slot: {**os.environ, **device}, echo=lines.append)
    return failures, lines


def submit(job, parameters, notebooks_dir, uses_gpus, lines):
    """Starts the job's task; `lines` is a ray.util.queue.Queue that gets its console lines.
    Tasks start in the order they are submitted."""
    return (
        _notebook_task()
        .options(**_run_resources(uses_gpus), name=job.name)
        .remote(job.name, str(job.run_dir.resolve()), parameters, str(Path(notebooks_dir).resolve()), uses_gpus, lines)
    )


@functools.cache
def _notebook_task():
    """One remote function for every run: Ray queues the tasks of one function first in, first
    out, while each `ray.remote(...)` call makes a function of its own, and Ray started those in
    no set order (the deepest networks, submitted first, started last in `make smoke`)."""
    import ray

    return ray.remote(max_retries=RETRIES, retry_exceptions=[KernelStartFailed, KernelDied])(run_notebook)


def run_notebook(name, run_dir, parameters, notebooks_dir, uses_gpus, lines):
    """The task: runs the train notebook into `run_dir`, holding the folder's lock; returns
    whether it completed (a failure's error is in the run's notebook-error.txt, its node in
    config.json)."""
    from resattn.train.run_folder import RunFolderBusy, hold_lock

    say = _sayer(lines)
    try:
        with hold_lock(run_dir, wait=LOCK_WAIT) as token:
            return _run_locked_notebook(name, Path(run_dir), parameters, notebooks_dir, uses_gpus, say, token)
    except RunFolderBusy as error:
        say(f"[{name}] FAILED: {error}")
        return False


def _run_locked_notebook(name, run_dir, parameters, notebooks_dir, uses_gpus, say, token):
    from resattn.suite.preflight import last_error
    from resattn.train.run_folder import lend_lock

    node = node_name()
    devices = os.environ.get("CUDA_VISIBLE_DEVICES", "") if uses_gpus else "-1"
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": devices,
        "RESATTN_DEVICE": "gpu" if uses_gpus else "cpu",
        "RESATTN_NODE": node,
        **lend_lock(run_dir, token),
    }
    (run_dir / "parameters.yaml").write_text(yaml.safe_dump(parameters, sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "papermill",
        str(Path(notebooks_dir) / TRAIN_NOTEBOOK),
        str(run_dir / TRAIN_NOTEBOOK),
        "-f",
        str(run_dir / "parameters.yaml"),
        "--cwd",
        notebooks_dir,
        "--log-output",
        "--no-progress-bar",
    ]
    where = f"GPU {devices}" if uses_gpus else "CPU"
    say(f"[{name}] start on node {node}, {where}")
    output = []
    with open(run_dir / "log.txt", "a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} on node {node}, {where}\n")
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=_die_with_parent
        )
        for line in process.stdout:
            log.write(line)
            log.flush()
            output.append(line)
            if PROGRESS.search(line.strip()):
                say(f"[{name}] {line.rstrip()}")
        process.wait()
    if process.returncode == 0:
        (run_dir / ERROR_FILE).unlink(missing_ok=True)
        say(f"[{name}] done")
        return True
    text = "".join(output)
    if any(words in text for words in KERNEL_START_FAILURES):
        say(f"[{name}] the kernel did not start; trying again")
        raise KernelStartFailed(last_error(text))
    if any(words in text for words in KERNEL_DEATHS):
        say(f"[{name}] the kernel died; trying again, from the run's last epoch")
        raise KernelDied(last_error(text))
    error = last_error(text)
    (run_dir / ERROR_FILE).write_text(f"the notebook stopped (exit {process.returncode}); see log.txt\n{error}\n")
    say(f"[{name}] FAILED: {error}")
    return False


def node_name():
    """This Ray node as runs record it: its address, host name and the start of its Ray id
    (several nodes may share one machine)."""
    import ray

    return f"{ray.util.get_node_ip_address()} {platform.node()} {ray.get_runtime_context().get_node_id()[:8]}"


def _sayer(lines):
    """Puts a line on the driver's console queue without waiting for it: a task blocked in a Ray
    call gives its CPU back to the scheduler, which would start a third run on two CPU slots.
    The console is a courtesy (log.txt has every line): a queue lost with its node is ignored."""

    def say(text):
        lines.actor.put_nowait.remote(text)

    return say


def _die_with_parent():
    """papermill dies with the Ray worker that started it (its kernel follows: it watches its
    parent), so a retried task never races an orphan of the first try over the run's files."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
