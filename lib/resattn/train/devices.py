"""Devices: which this machine has, which a run may use, and what they compute natively.

The grid's slots (GPUs or MIG devices from a scheduler's CUDA_VISIBLE_DEVICES or `nvidia-smi
-L`), a run's check that it sees the GPU it was given, whether the backend computes on a GPU,
whether it computes bfloat16 natively (what `precision: auto` picks), the processor's name
that every figure is recorded beside, and where JAX keeps what it compiled.
"""

import os
import platform
import subprocess

import keras


def find_gpus(environ=os.environ):
    """The devices a grid may use, one slot each: those a scheduler already gave this process
    (CUDA_VISIBLE_DEVICES: indices or UUIDs, kept as given), else what `nvidia-smi -L` lists."""
    given = environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        devices = [device.strip() for device in given.split(",") if device.strip()]
        return [] if devices in ([], ["-1"], ["NoDevFiles"]) else devices
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return devices_in_listing(listing.stdout)


def devices_in_listing(text):
    """The slots of an `nvidia-smi -L` listing: each GPU by its index, except that a GPU split
    into MIG devices gives one slot per MIG device, by its UUID (a CUDA process sees only one)."""
    gpus = []  # [index, [MIG UUIDs]]
    for line in text.splitlines():
        if line.startswith("GPU "):
            gpus.append([line.split(":")[0].removeprefix("GPU ").strip(), []])
        elif line.strip().startswith("MIG ") and gpus and "(UUID: " in line:
            gpus[-1][1].append(line.split("(UUID: ")[1].rstrip(")").strip())
    return [device for index, migs in gpus for device in (migs or [index])]


def device_slots(gpus, jobs):
    """One slot per GPU or MIG device (CUDA_VISIBLE_DEVICES for its run), or `jobs` CPU slots."""
    from resattn.train.run_config import ParamsError  # run_config needs recipes, which need this module

    if gpus == "auto":
        found = find_gpus()
        return found or [None] * jobs
    if gpus == "cpu":
        return ["-1"] * jobs
    slots = [gpu.strip() for gpu in gpus.split(",") if gpu.strip()]
    if not slots or not all(slot.isdigit() or slot.startswith(("GPU-", "MIG-")) for slot in slots):
        raise ParamsError(
            f"gpus={gpus!r} is not valid; give auto, cpu, GPU indices like 0,1 or device UUIDs "
            "(GPU-..., MIG-... as nvidia-smi -L lists them)"
        )
    return slots


def slot_environment(slot):
    """The environment of a process that runs on `slot` (a GPU index, "-1" for the CPU, None: as is)."""
    env = dict(os.environ)
    if slot is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot
        env["RESATTN_DEVICE"] = "cpu" if slot == "-1" else "gpu"  # a GPU run stops if it cannot see one
    return env


def has_gpu():
    """Whether this backend computes on a GPU."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].platform == "gpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def check_device():
    """Stops a process that was given a GPU (RESATTN_DEVICE=gpu: the grid sets it with
    CUDA_VISIBLE_DEVICES) when this backend sees none: it would train on the CPU instead, for
    weeks, while the console said GPU."""
    if os.environ.get("RESATTN_DEVICE") == "gpu" and not has_gpu():
        raise DeviceError(
            f"this run was given GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '?')} but {keras.backend.backend()} sees no"
            " GPU (a CPU-only build, or no driver): run `make setup` on a machine where nvidia-smi works, or GPUS=cpu"
        )


def keep_compiled_steps(folder):
    """On JAX, keeps what XLA compiles in `folder` (unless JAX_COMPILATION_CACHE_DIR names
    another): on an H200 a run's first epoch spent 3.5 to 4.5 minutes compiling and autotuning
    against 6 s for each later one (BENCHMARKS.md), which a resumed run, another seed of the same
    config or a second run of the grid would otherwise spend again."""
    if keras.backend.backend() != "jax":
        return
    import jax

    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(folder))


def run_ops_one_at_a_time(log=print):
    """On TensorFlow on a CPU, one op at a time (inter-op parallelism 1) unless
    TF_NUM_INTEROP_THREADS says otherwise (0: TensorFlow's own choice). With independent ops
    at once, an op's threads and so its rounding depend on what runs beside it, and the same seed
    gave another run in another process (config 4: BENCHMARKS.md); one at a time repeats it to
    the last digit, for 6-25% of the CPU step. Only before TensorFlow's first op of the process."""
    if keras.backend.backend() != "tensorflow" or "TF_NUM_INTEROP_THREADS" in os.environ or has_gpu():
        return
    import tensorflow as tf

    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        log(
            "TensorFlow ran ops in this process before this run, with independent ops at once: the run may "
            "not repeat to the last digit (set TF_NUM_INTEROP_THREADS=1 before Python starts to make sure)"
        )


class DeviceError(RuntimeError):
    """A run asked for a device that the backend cannot see."""


def native_bfloat16():
    """Whether this backend's device computes bfloat16 natively (see Recipe.compute_precision)."""
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return device.platform == "gpu" and float(getattr(device, "compute_capability", 0)) >= 8.0
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0)) >= (8, 0)
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((set(line.split(":", 1)[1].split()) for line in cpuinfo if line.startswith("flags")), set())
    except OSError:  # not Linux
        return set()


def processor():
    """The CPU's model name (/proc/cpuinfo; the platform's word elsewhere): figures differ between
    processors of one machine kind (an AMD EPYC with AVX-512, an Intel Xeon with AMX)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def backend_devices():
    """The devices this backend computes on, by name."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices()]
    return [platform.processor() or platform.machine()]
