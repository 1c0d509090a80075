"""Runs every config in params/ through notebooks/train.ipynb with papermill, then results.ipynb.

    python -m resattn.suite.reproduce [--subset all|seed|paper] [--configs NAMES] [--profile full|quick|fast|smoke]
        [--data keras|DIR|IMAGE_FOLDER] [--gpus auto|cpu|0,1,...|MIG-...] [--jobs N] [--seeds 0,1,2] [--results DIR]

Every config is checked first (its keys against the notebook's parameters, its values against
the library), so a misspelt key stops everything before any training. Each config then runs into
`<results>/<config>/`: the executed notebook, its log and the run's files. A finished config is
skipped, an interrupted one resumes from its last epoch, a failing one is recorded in
`notebook-error.txt` and the others go on. The command ends with the summary table, and exits 1
if any config failed.
"""

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from resattn.data.datasets import CIFAR, DataError, fetch_cifar
from resattn.suite import grid
from resattn.suite.estimate import duration, estimate, training_images
from resattn.suite.grid import ERROR_FILE, TRAIN_NOTEBOOK
from resattn.suite.params import (
    SUBSETS,
    ParamsError,
    check_params_file,
    is_image_folder,
    list_params_files,
    params_keys,
    read_profile,
)
from resattn.suite.preflight import last_error, run_preflight
from resattn.train.devices import device_slots, slot_environment
from resattn.train.run_config import RunConfig
from resattn.train.run_folder import RunFolder, RunFolderBusy, plan_run

RESULTS_NOTEBOOK = "results.ipynb"


class PreflightFailed(Exception):
    """A network's first training step failed before the grid (the lines are printed)."""


class Refused(Exception):
    """The grid must not start as asked (the reason is printed)."""


LONG_PROFILES = ("full", "quick")
FEW_IMAGES = 1_000  # a run that trains no more is starting and building, which the estimate does not measure


def _estimate_or_refuse(pending, slots, args):
    """Prints how long the grid will take; on a machine with no GPU, refuses the long profiles
    unless --allow-cpu (months of CPU time, found out hours in)."""
    most = max(training_images(job.effective) for job in pending)
    if most <= FEW_IMAGES and args.profile not in LONG_PROFILES:
        print(
            f"estimate: skipped: no run trains more than {most} images; such a run's time is starting "
            "its kernel and building and saving its network, which the estimate does not measure",
            flush=True,
        )
        return
    try:
        seconds, how = estimate(pending, slots, slot_environment)
        print(f"estimate: at most {duration(seconds)} for {len(pending)} run(s): {how}", flush=True)
        length = f"about {duration(seconds)}"
    except RuntimeError as error:
        print(f"estimate: could not measure the training rate ({error})", flush=True)
        length = "far longer than on a GPU"
    on_cpu = all(slot in (None, "-1") for slot in slots)
    if on_cpu and args.profile in LONG_PROFILES and not args.allow_cpu:
        print(
            f"error: the {args.profile} profile on this machine's CPU would take {length}: it is a job for a GPU."
            " `make smoke` checks every config in minutes; --allow-cpu (make ... ALLOW_CPU=1) starts it anyway",
            file=sys.stderr,
            flush=True,
        )
        raise Refused()


@dataclass
class Job:
    name: str
    run_dir: Path
    config: dict  # what the notebook is given (its profile not yet applied)
    effective: dict  # what it will train, profile applied: compared with a run's saved config


def results_root(results, profile):
    """Where a profile's runs go: results/ for the published recipe, results/<profile>/ otherwise."""
    if results is not None:
        return Path(results)
    return Path("results") if profile == "full" else Path("results") / profile


def plan(params_dir, notebooks_dir, subset, profile_name, data_dir, seeds, configs=None):
    """Checks every config of the subset and returns the runs to make; raises ParamsError on the
    first bad file, before anything runs."""
    notebook = Path(notebooks_dir) / TRAIN_NOTEBOOK
    params_keys(notebook)  # the notebook and the library agree on the keys
    profile = read_profile(params_dir, profile_name)
    if data_dir is not None and not (Path(data_dir).is_dir() or is_image_folder(data_dir)):
        raise ParamsError(
            f"data={data_dir}: no such folder; give a folder holding cifar-10-python.tar.gz"
            " and/or cifar-100-python.tar.gz, an image folder of CIFAR-10 (train/<class>/*) or a"
            " .tar.gz of one, or 'keras' to download them once into the cache"
        )
    paths = list_params_files(params_dir, subset, configs)
    if not paths:
        raise ParamsError(f"{params_dir}: no {'' if subset == 'all' else subset + ' '}configs (*.yaml) to run")
    jobs = []
    for path in paths:
        config, effective = check_params_file(path, notebook, profile, data_dir)
        for seed in seeds or [effective["seed"]]:
            name = path.stem if seed == effective["seed"] else f"{path.stem}-seed{seed}"
            jobs.append(Job(name, None, {**config, "seed": seed}, {**effective, "seed": seed}))
    return jobs


def is_finished(job):
    """A run that needs nothing more: its folder's run is this one (`plan_run`, the rule the run
    itself follows) and done, its notebook executed. Data that cannot be read is the run's to
    report: it is not finished."""
    try:
        plan = plan_run(RunFolder(job.run_dir), RunConfig.from_mapping(job.effective))
    except DataError:
        return False
    return (
        plan.action == "serve" and (job.run_dir / TRAIN_NOTEBOOK).exists() and not (job.run_dir / ERROR_FILE).exists()
    )


def move_aside(jobs):
    """FORCE: every job's run folder emptied into its replaced/ before the grid, so each trains
    from scratch (a retried task then resumes its own run, not a forced restart)."""
    for job in jobs:
        folder = RunFolder(job.run_dir)
        with folder.lock():
            moved = folder.move_aside()
        if moved:
            print(f"force: {job.name}: its previous run is in {moved}", flush=True)


def run_results(notebooks_dir, results_dir, params_dir, echo=print):
    """Executes results.ipynb over `results_dir`; its output notebook goes there too."""
    notebooks_dir = Path(notebooks_dir).resolve()
    command = [
        sys.executable,
        "-m",
        "papermill",
        str(notebooks_dir / RESULTS_NOTEBOOK),
        str(Path(results_dir) / RESULTS_NOTEBOOK),
        "-p",
        "results_dir",
        str(Path(results_dir).resolve()),
        "-p",
        "params_dir",
        str(Path(params_dir).resolve()),
        "--cwd",
        str(notebooks_dir),
        "--no-progress-bar",
    ]
    echo(f"results: executing {RESULTS_NOTEBOOK} over {results_dir}/")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        echo(f"results: FAILED: {last_error(done.stdout + done.stderr)}")
        return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m resattn.suite.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--subset", default="all", help=f"which configs: {', '.join(SUBSETS)}")
    parser.add_argument(
        "--configs", default=None, help="only these configs of the subset: names or patterns, e.g. seed1-*,seed2-*"
    )
    parser.add_argument("--profile", default="full", help="full, quick, fast, smoke or any params/profiles/*.yaml")
    parser.add_argument(
        "--data",
        default="keras",
        help="'keras' (download CIFAR once, before any config), a folder of the official "
        "archives, or an image folder of CIFAR-10 (train/<class>/*) or a .tar.gz of one, for CIFAR-10 configs",
    )
    parser.add_argument(
        "--gpus",
        default="auto",
        help="auto (the GPUs CUDA_VISIBLE_DEVICES names, else every GPU or MIG device nvidia-smi lists), "
        "cpu, or devices: 0,1 or MIG-... UUIDs",
    )
    parser.add_argument("--jobs", type=int, default=1, help="configs at once when running on the CPU")
    parser.add_argument("--seeds", default=None, help="run every config once per seed, e.g. 0,1,2")
    parser.add_argument("--results", default=None, help="results folder (default results/, or results/<profile>/)")
    parser.add_argument("--params", default="params", help="the configs' folder")
    parser.add_argument("--notebooks", default="notebooks", help="the notebooks' folder")
    parser.add_argument("--results-only", action="store_true", help="only rebuild the results notebook and summary")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="start the full or quick profile on a machine with no GPU (it prints how long it would take)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="train every selected run again from scratch (each old run is moved into its folder's replaced/)",
    )
    parser.add_argument(
        "--no-preflight",
        dest="preflight",
        action="store_false",
        help="skip the first training step of every network before the grid",
    )
    parser.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="host:port of a running Ray cluster (default: $RAY_ADDRESS; unset: Ray on this machine)",
    )
    args = parser.parse_args(argv)
    results_dir = results_root(args.results, args.profile)
    data_dir = None if args.data in ("", "keras") else Path(args.data).resolve()  # runs start in notebooks/
    try:
        if args.jobs < 1:
            raise ParamsError(f"jobs={args.jobs} is not valid; it must be an integer >= 1")
        seeds = _parse_seeds(args.seeds)
        jobs = plan(args.params, args.notebooks, args.subset, args.profile, data_dir, seeds, args.configs)
        slots = device_slots(args.gpus, args.jobs)
        if args.ray_address and not args.results_only:
            grid.check_address(args.ray_address)  # before anything is downloaded or written
        downloads = sorted({job.effective.get("dataset") for job in jobs} & set(CIFAR))
        if data_dir is None and downloads and not args.results_only:
            # Once, here: every config then reads this copy (concurrent downloads raced).
            for name in downloads:
                data_dir = fetch_cifar(name)
                print(
                    f"data: {name} in {data_dir / CIFAR[name].archive} (MD5 checked), read by every config", flush=True
                )
            jobs = plan(args.params, args.notebooks, args.subset, args.profile, data_dir, seeds, args.configs)
    except (ParamsError, DataError, grid.Unreachable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = []
    if not args.results_only:
        try:
            failed = _run_all(jobs, results_dir, args, slots)
        except PreflightFailed:
            print(
                "error: nothing was trained: fix the failing step, or skip this check with --no-preflight",
                file=sys.stderr,
            )
            return 1
        except (Refused, grid.SharedStorageMissing, grid.DataMissing, grid.DeviceMissing, RunFolderBusy) as error:
            if str(error):
                print(f"error: {error}", file=sys.stderr)
            return 2
        if failed is None:
            return 130
    if not run_results(args.notebooks, results_dir, args.params):
        return 1
    print((results_dir / "summary.md").read_text(), flush=True)
    if failed:
        print(f"{len(failed)} config(s) failed: {', '.join(failed)} (each has {ERROR_FILE} and log.txt)")
        return 1
    return 0


def _run_all(jobs, results_dir, args, slots):
    for job in jobs:
        job.run_dir = results_dir / job.name
    if args.force:
        move_aside(jobs)
    # Deepest first: the longest runs start early instead of finishing last on one slot.
    pending = sorted((job for job in jobs if not is_finished(job)), key=lambda job: -job.effective.get("depth", 0))
    print(
        f"{len(jobs)} runs under the {args.profile} profile into {results_dir}/: {len(jobs) - len(pending)} finished"
        f" already (skipped), {len(pending)} to run on {len(slots)} slot(s)",
        flush=True,
    )
    if not pending:
        return []
    gpu_slots = [slot for slot in slots if slot not in (None, "-1")]
    if args.ray_address:
        uses_gpus = grid.start(args.ray_address, gpu_slots, len(slots))
        try:
            grid.check_shared_storage(results_dir)
            grid.check_data_on_nodes(
                {job.effective["data_dir"] for job in pending if job.effective.get("data_dir")},
                downloaded=args.data in ("", "keras"),
            )
            if uses_gpus:
                grid.check_gpus_on_nodes()
            print(
                f"ray: {len(grid.alive_nodes())} node(s) at {args.ray_address}; the estimate is skipped (the "
                "cluster's devices are not this machine's): `make status` estimates the end as runs go",
                flush=True,
            )
            if args.preflight:
                # On one of the cluster's devices, as a run would get it.
                _stop_on_preflight_failures(grid.remote_preflight(pending, uses_gpus))
            return _run_tasks(pending, args, uses_gpus)
        finally:
            grid.stop()
    _estimate_or_refuse(pending, slots, args)
    if args.preflight:
        _stop_on_preflight_failures(
            run_preflight(pending, slots, slot_environment, echo=lambda line: print(line, flush=True))
        )
    uses_gpus = grid.start(None, gpu_slots, len(slots))
    try:  # an embedded Ray is this machine alone: no storage to check
        return _run_tasks(pending, args, uses_gpus)
    finally:
        grid.stop()


def _stop_on_preflight_failures(failures):
    for failure in failures:
        print(f"error: preflight: {failure}", file=sys.stderr, flush=True)
    if failures:
        raise PreflightFailed()


def _run_tasks(pending, args, uses_gpus):
    """Every pending run as a Ray task; the runs' console lines printed as they come. Returns the
    names of the runs that failed, or None if interrupted."""
    import ray
    from ray.util.queue import Empty

    lines = grid.console_queue()
    notebooks_dir, params_dir = Path(args.notebooks).resolve(), Path(args.params).resolve()
    tasks = {}
    for job in pending:
        parameters = {
            **job.config,
            "profile": args.profile,
            "params_dir": str(params_dir),
            "run_dir": str(job.run_dir.resolve()),
            "force": False,
        }
        tasks[grid.submit(job, parameters, notebooks_dir, uses_gpus, lines)] = job
    failed, waiting = set(), list(tasks)
    try:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1, timeout=0.5)
            _print_lines(lines, Empty)
            for reference in done:
                job = tasks[reference]
                try:
                    ok = ray.get(reference)
                except ray.exceptions.RayError as error:  # retries spent: a kernel or node that kept failing
                    message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                    (job.run_dir / ERROR_FILE).write_text(f"the run's task failed after its retries\n{message}\n")
                    print(f"[{job.name}] FAILED: {message}", flush=True)
                    ok = False
                if not ok:
                    failed.add(job.name)
        _print_lines(lines, Empty)
    except KeyboardInterrupt:
        for reference in waiting:
            ray.cancel(reference, force=True)
        print("interrupted: run the same command again to resume", flush=True)
        return None
    return [job.name for job in pending if job.name in failed]


def _print_lines(lines, empty):
    while True:
        try:
            print(lines.get_nowait(), flush=True)
        except empty:
            return


def _parse_seeds(text):
    if text in (None, ""):
        return None
    try:
        seeds = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise ParamsError(f"seeds={text!r} is not valid; give integers >= 0 like 0,1,2") from None
    if not seeds or any(seed < 0 for seed in seeds):
        raise ParamsError(f"seeds={text!r} is not valid; give integers >= 0 like 0,1,2")
    return seeds


if __name__ == "__main__":
    sys.exit(main())
