"""bench/bench.py's baseline is the same network with Keras's stock layers, and its options are
checked before anything runs. (Its figures are measured by running it, not here.)"""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from resattn import build_model
from resattn.batch_norm import BatchNormalization

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"
sys.path.insert(0, str(BENCH.parent))
import bench  # noqa: E402


def test_baseline_network_is_ours_with_stock_batch_norm():
    ours = build_model("seed", 56, input_shape=(16, 16, 3))
    stock = bench.stock_keras(ours)
    kinds = [type(layer) for layer in stock.layers]
    assert BatchNormalization not in kinds and keras.layers.BatchNormalization in kinds
    assert len(stock.layers) == len(ours.layers)
    stock.set_weights(ours.get_weights())
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(stock(images, training=False), ours(images, training=False), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "argument, message",
    [
        ("--networks=seed57", "--networks 'seed57' is not valid; choose from seed56, seed92, paper56, paper92"),
        ("--precision=fp8", "--precision 'fp8' is not valid; choose from auto, float32, bfloat16"),
        ("--batch-sizes=64,x", "--batch-sizes '64,x' is not valid"),
        ("--images=0", "--images 0 is not valid"),
    ],
)
def test_bad_options_stop_with_one_line(argument, message):
    result = subprocess.run([sys.executable, str(BENCH), argument], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in result.stderr
