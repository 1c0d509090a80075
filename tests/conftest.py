import os

# One TensorFlow op at a time in every test process from its start, as a run sets it
# (resattn.train.devices.run_ops_one_at_a_time), which it can only do before the process's first
# op: tests run ops before they train. Subprocesses inherit it.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# TensorFlow's log as quiet as `make test` (so CI) has it: what a test reads from a failing
# process must not depend on log lines that only show outside make.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The Ray clusters that tests start give their workers the niceness the grid gives its own
# (resattn.suite.grid.start): at Ray's 15 they starve beside the other test workers.
os.environ.setdefault("RAY_worker_niceness", "0")

import pytest

from resattn import build_model


@pytest.fixture(scope="session")
def built():
    """build_model with a cache, so each network is built once per test session."""
    cache = {}

    def get(**options):
        key = tuple(sorted(options.items()))
        if key not in cache:
            cache[key] = build_model(**options)
        return cache[key]

    return get


# Files in the order of their time (`pytest --durations` summed per file, three workers: 8 to 14
# minutes each for the first five): with `--dist loadfile --no-loadscope-reorder` a worker takes
# whole files in this order, so the longest start first and the short ones fill in at the end
# (alphabetical order left a 4-minute file running alone for the suite's last minutes). xdist
# hands a worker its next file once two tests of its current one are left, and that file waits
# behind them: so each long file ends with quick tests.
LONGEST_FIRST = (
    "test_training.py",
    "test_reproduce.py",
    "test_backends.py",
    "test_grid.py",
    "test_learns_like_keras.py",
    "test_run_folder.py",
    "test_networks.py",
    "test_data.py",
    "test_pretrained.py",
    "test_notebooks.py",
    "test_batch_norm.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept
