"""Pretrained weights: a run's model.keras or a named file loads into the network it was made
for and gives its predictions; another network, a corrupt file or an unknown name is refused."""

import json

import numpy as np
import pytest

import resattn
from resattn.models.pretrained import load_weights, pretrained, read_weights, sha256, write_weights
from resattn.train.loop import train

TINY = {
    "dataset": "synthetic",
    "synthetic_size": 40,
    "image_size": 16,
    "family": "seed",
    "depth": 56,
    "recipe": "fast",
    "batch_size": 16,
    "max_epochs": 1,
    "max_steps_per_epoch": 2,
    "run_eagerly": True,
    "precision": "float32",
    "seed": 3,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train(TINY, run_dir, log=lambda line: None)
    return run_dir


def images(count=4, side=16):
    return np.random.default_rng(0).integers(0, 256, (count, side, side, 3), dtype=np.uint8)


def test_a_runs_model_keras_loads_into_the_network_it_trained_and_gives_its_predictions(run):
    model = resattn.load_pretrained(run / "model.keras")
    network = resattn.build_model("seed", 56, input_shape=(16, 16, 3), weights=run / "model.keras")
    scaled = model.layers[1](images().astype("float32"))  # the run's own scaling, then the bare network
    for layer in model.layers[2:-1]:
        scaled = layer(scaled, training=False)
    np.testing.assert_allclose(network.predict(scaled, verbose=0), model.predict(images(), verbose=0), atol=1e-5)


def test_weights_made_for_another_network_are_refused_with_one_line_naming_both(run):
    with pytest.raises(
        ValueError,
        match=r"are for network 'seed_attention56' \(\d+ weights\), not for "
        r"'seed_attention56_nal'",
    ):
        resattn.build_model("seed", 56, mechanism="nal", input_shape=(16, 16, 3), weights=run / "model.keras")
    with pytest.raises(ValueError, match=r"weights='cifar10' is not valid; choose one of \("):
        resattn.build_model("seed", 56, weights="cifar10")


def test_named_weights_load_after_their_hash_is_checked_and_a_corrupt_file_is_refused(tmp_path, run):
    trained = resattn.build_model("seed", 56, input_shape=(16, 16, 3), weights=run / "model.keras")
    write_weights(trained, tmp_path / "tiny.weights.npz")
    entry = {
        "name": "tiny.test",
        "config": "seed2-cifar10-a56-mixed-arl-adam",
        "network": {"family": "seed", "depth": 56, "input_shape": [16, 16, 3]},
        "preprocessing": "crop_flip",
        "recipe": "fast",
        "data": "synthetic",
        "split": "-",
        "epochs": 1,
        "val_accuracy": 0.1,
        "stored_val_accuracy": 0.1,
        "file": "tiny.weights.npz",
        "sha256": sha256(tmp_path / "tiny.weights.npz"),
    }
    (tmp_path / "manifest.json").write_text(json.dumps([entry]))
    network = load_weights(resattn.build_model("seed", 56, input_shape=(16, 16, 3)), "tiny.test", tmp_path)
    for loaded, original in zip(network.get_weights(), trained.get_weights()):
        np.testing.assert_allclose(loaded, original, rtol=1e-3, atol=1e-4)  # stored as float16
    data = bytearray((tmp_path / "tiny.weights.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "tiny.weights.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"weights='tiny.test': .*tiny.weights.npz is corrupt \(sha256 "):
        read_weights(pretrained("tiny.test", tmp_path))
