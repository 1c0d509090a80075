"""The loaders on files generated in the official CIFAR formats and in class-folder layout."""

import os
import pickle
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resattn.data.datasets import CIFAR, DataError, add_label_noise, load_cifar, load_dataset, make_synthetic

SHARED_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg-train.tar.gz"


def write_cifar(root, name, per_file=None, seed=0):
    """Writes a small dataset in the official python-pickle layout; returns the folder."""
    spec = CIFAR[name]
    rng = np.random.default_rng(seed)
    folder = root / spec.folder
    folder.mkdir(parents=True)
    classes = 10 if name == "cifar10" else 100
    per_file = per_file or spec.train_size // len(spec.train)
    for part in (*spec.train, *spec.test):
        n = per_file if part in spec.train else 50
        # A pattern rather than noise: distinct per row and column, and quick to gzip.
        pixels = ((np.arange(n)[:, None] * 7 + np.arange(3072)[None, :] * 3 + seed) % 256).astype(np.uint8)
        batch = {b"data": pixels, spec.label_key: rng.integers(0, classes, n).tolist()}
        if name == "cifar100":
            batch[b"coarse_labels"] = rng.integers(0, 20, n).tolist()
        (folder / part).write_bytes(pickle.dumps(batch, protocol=2))
    names = [f"name{i}".encode() for i in range(classes)]
    (folder / spec.meta).write_bytes(pickle.dumps({spec.names_key: names}, protocol=2))
    return folder


def tar_folder(folder, archive):
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname=folder.name)
    return archive


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_from_extracted_folder(tmp_path, name, classes):
    folder = write_cifar(tmp_path, name)
    (x_train, y_train), (x_test, y_test), class_names = load_cifar(name, tmp_path)
    assert x_train.shape == (50_000, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (50, 32, 32, 3) and len(class_names) == classes
    # Channel-major rows become HWC images: pixel (0, 0) of channel c is column c * 1024.
    first = pickle.loads((folder / CIFAR[name].train[0]).read_bytes())[b"data"][0]
    np.testing.assert_array_equal(x_train[0, 0, 0], first[[0, 1024, 2048]])
    assert y_train.max() < classes and y_test.dtype == np.int64


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_archive_is_read_without_extraction_and_checked_by_md5(tmp_path, name):
    folder = write_cifar(tmp_path / "src", name)
    archive = tar_folder(folder, tmp_path / CIFAR[name].archive)
    with pytest.raises(
        DataError, match=f"MD5 .* is not the official {CIFAR[name].md5}; the file is truncated or altered"
    ):
        load_cifar(name, tmp_path)
    (x_train, _), (x_test, _), _ = load_cifar(name, archive.parent, verify=False)
    assert len(x_train) == 50_000 and len(x_test) == 50


def test_truncated_archive_says_so(tmp_path):
    folder = write_cifar(tmp_path / "src", "cifar10")
    archive = tar_folder(folder, tmp_path / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated"):
        load_cifar("cifar10", tmp_path, verify=False)


def test_missing_files_are_named(tmp_path):
    folder = write_cifar(tmp_path, "cifar10")
    (folder / "data_batch_3").unlink()
    with pytest.raises(
        DataError, match=r"expected cifar-10-python.tar.gz or the folder cifar-10-batches-py/ \(missing: data_batch_3\)"
    ):
        load_cifar("cifar10", tmp_path)


def test_short_batch_is_reported(tmp_path):
    write_cifar(tmp_path, "cifar10", per_file=100)
    with pytest.raises(DataError, match="found 500 training images, expected 50,000"):
        load_cifar("cifar10", tmp_path)


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_without_running_code(tmp_path):
    folder = write_cifar(tmp_path, "cifar10")
    marker = tmp_path / "pwned"
    payload = RunsCode()
    payload.marker = marker
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": payload, b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="refusing to load (posix|os).system"):
        load_cifar("cifar10", tmp_path)
    assert not marker.exists()


def write_image_folder(root, classes=("cat", "dog"), per_class=6, size=(40, 30), test=True):
    rng = np.random.default_rng(0)
    for split in ("train", "test") if test else ("train",):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_image_folder_resizes_and_labels_alphabetically(tmp_path):
    write_image_folder(tmp_path / "pets")
    data = load_dataset("image_folder", tmp_path / "pets", validation_split=0.25, image_size=16)
    assert data.class_names == ["cat", "dog"]
    assert data.x_train.shape == (9, 16, 16, 3) and data.x_val.shape == (3, 16, 16, 3)
    assert data.x_test.shape == (12, 16, 16, 3) and sorted(set(data.y_test)) == [0, 1]


def test_image_folder_names_an_unreadable_file(tmp_path):
    root = write_image_folder(tmp_path / "pets", test=False)
    bad = root / "train" / "dog" / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=f"{bad}: not a readable image"):
        load_dataset("image_folder", root)


def test_image_folder_skips_macos_metadata_files_and_turns_images_upright(tmp_path):
    root = write_image_folder(tmp_path / "pets", per_class=1, test=False)
    (root / "train" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    wide = np.zeros((2, 4, 3), np.uint8)
    wide[:, :2] = 255  # left half white: after a quarter turn, the top half
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: shown turned 90 degrees clockwise
    Image.fromarray(wide).save(root / "train" / "dog" / "0.jpg", exif=exif, quality=100)
    (root / "train" / "dog" / "0.png").unlink()
    data = load_dataset("image_folder", root, validation_split=0.0, image_size=4)
    assert len(data.x_train) == 2  # the ._ file is not an image
    dog = data.x_train[list(data.y_train).index(1)].mean(axis=2)
    assert dog[:2].mean() > 200 and dog[2:].mean() < 50  # upright: the white half on top


def test_image_folder_from_archive_with_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("RESATTN_CACHE", str(tmp_path / "cache"))
    root = write_image_folder(tmp_path / "pets", test=False)
    archive = tar_folder(root, tmp_path / "pets.tar.gz")
    data = load_dataset("image_folder", archive, validation_split=0.0, limit=4)
    assert len(data.x_train) == 4 and sorted(data.y_train.tolist()) == [0, 0, 1, 1]


@pytest.mark.skipif(not SHARED_ARCHIVE.exists(), reason="../shared/data is not on this machine")
def test_real_cifar10_images_from_shared_data(tmp_path, monkeypatch):
    monkeypatch.setenv("RESATTN_CACHE", str(tmp_path / "cache"))
    data = load_dataset("image_folder", SHARED_ARCHIVE, limit=500, validation_split=0.2, seed=3)
    assert data.class_names[:3] == ["airplane", "automobile", "bird"] and data.num_classes == 10
    assert data.x_train.shape == (400, 32, 32, 3) and data.x_test is None
    assert np.bincount(np.concatenate([data.y_train, data.y_val])).tolist() == [50] * 10


def test_split_is_fixed_by_seed_and_disjoint():
    first, again, other = (load_dataset("synthetic", seed=s, synthetic_size=500) for s in (1, 1, 2))
    np.testing.assert_array_equal(first.x_val, again.x_val)
    assert not np.array_equal(first.x_val, other.x_val)
    assert len(first.x_train) == 400 and len(first.x_val) == 100


def test_label_noise_changes_exactly_the_fraction_to_other_classes():
    labels = np.repeat(np.arange(10), 100)
    noisy, count = add_label_noise(labels, 0.3, 10, np.random.default_rng(0))
    assert count == 300 and (noisy != labels).sum() == 300
    again, _ = add_label_noise(labels, 0.3, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy, again)
    data = load_dataset("synthetic", label_noise=0.5, synthetic_size=500, seed=4)
    assert data.noisy_labels == 200


def test_synthetic_is_deterministic_and_balanced_enough():
    (x, y), (x_test, _), names = make_synthetic(1000, 32, seed=0)
    (x2, _), _, _ = make_synthetic(1000, 32, seed=0)
    np.testing.assert_array_equal(x, x2)
    assert x.dtype == np.uint8 and x_test.shape[0] == 200 and len(names) == 10
    assert np.bincount(y, minlength=10).min() > 50


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"dataset": "mnist"}, r"dataset='mnist' .*'cifar10', 'cifar100', 'image_folder', 'synthetic'"),
        ({"dataset": "image_folder"}, r"needs data_dir"),
        ({"dataset": "synthetic", "validation_split": 1.5}, r"validation_split=1.5 .*\[0, 1\)"),
        ({"dataset": "synthetic", "label_noise": -0.1}, r"label_noise=-0.1 .*fraction in \[0, 1\]"),
        ({"dataset": "synthetic", "limit": 0}, r"limit=0 .*positive integer"),
    ],
)
def test_bad_data_options_name_the_value(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_dataset(**options)


def test_a_data_error_at_the_command_line_is_one_error_line(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", per_file=10)
    marker = tmp_path / "pwned"
    payload = RunsCode()
    payload.marker = marker
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": payload, b"labels": []}, protocol=2))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resattn.train",
            "dataset=cifar10",
            f"data_dir={tmp_path}",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert re.fullmatch(r"error: cifar10/data_batch_1: refusing to load (posix|os)\.system: .*", errors[0])
    assert not marker.exists()


def test_several_processes_fetch_and_load_one_cifar_copy_at_once(tmp_path):
    """What every config of a grid did at the same moment with keras.datasets (9 of 12 loads
    failed in a 4-process trial): here from a local copy through a file:// URL, no network."""
    from resattn.data.datasets import md5sum

    archive = tar_folder(write_cifar(tmp_path / "source", "cifar10"), tmp_path / "cifar-10-python.tar.gz")
    cache = tmp_path / "cache"
    script = (
        "import sys; from resattn.data.datasets import fetch_cifar, load_cifar; "
        f"folder = fetch_cifar('cifar10', {str(cache)!r}, url={archive.as_uri()!r}, md5={md5sum(archive)!r}); "
        "(x, y), (xt, yt), names = load_cifar('cifar10', folder, verify=False); print(len(x), len(xt), len(names))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, [err[-1500:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["50000 50 10"] * 4
    assert sorted(path.name for path in cache.iterdir() if not path.name.endswith(".lock")) == [
        "cifar-10-python.tar.gz"
    ]


def test_a_download_that_cannot_be_had_is_one_clear_error(tmp_path):
    from resattn.data.datasets import fetch_cifar

    with pytest.raises(
        DataError, match=r"could not download cifar10 from file:.*no-such.tar.gz .*DATA=/path/to/folder"
    ):
        fetch_cifar("cifar10", tmp_path, url=(tmp_path / "no-such.tar.gz").as_uri())
    assert list(tmp_path.iterdir()) == [tmp_path / ".cifar-10-python.tar.gz.lock"]
