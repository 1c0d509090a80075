"""Datasets as uint8 NHWC arrays: CIFAR-10/100, a user's image folder, and a synthetic set.

`load_dataset` returns a `Dataset` with the training split already divided into training and
validation (fixed by seed), and optional label noise applied to the training part only.
"""

import fcntl
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("cifar10", "cifar100", "image_folder", "synthetic")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class CifarFormat:
    """Where the official python-pickle release keeps what."""

    archive: str
    url: str
    md5: str
    folder: str
    train: tuple
    test: tuple
    label_key: bytes
    meta: str
    names_key: bytes
    train_size: int
    classes: int


CIFAR = {
    "cifar10": CifarFormat(
        archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        label_key=b"labels",
        meta="batches.meta",
        names_key=b"label_names",
        train_size=50_000,
        classes=10,
    ),
    "cifar100": CifarFormat(
        archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        label_key=b"fine_labels",
        meta="meta",
        names_key=b"fine_label_names",
        train_size=50_000,
        classes=100,
    ),
}


class DataError(ValueError):
    """A dataset that is missing, damaged or not in the expected layout."""


@dataclass
class Dataset:
    name: str
    class_names: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    noisy_labels: int = 0

    @property
    def num_classes(self):
        return len(self.class_names)

    def summary(self):
        return (
            f"{self.name}, {len(self.x_train):,} training / {len(self.x_val):,} validation"
            f" / {0 if self.x_test is None else len(self.x_test):,} test images, {self.num_classes} classes"
            + (f", {self.noisy_labels:,} noisy labels" if self.noisy_labels else "")
        )


def load_dataset(
    dataset,
    data_dir=None,
    validation_split=0.2,
    label_noise=0.0,
    seed=0,
    image_size=32,
    limit=None,
    synthetic_size=2000,
    synthetic_classes=10,
):
    """Loads `dataset` (one of DATASETS) and splits off a validation set.

    data_dir: for CIFAR, a folder holding the official `*-python.tar.gz` or its extracted
    folder (None: downloaded once into the cache, `fetch_cifar`); for image_folder, a `train/<class>/*`
    folder (optional `test/<class>/*`) or a .tar.gz of one. limit: keep at most this many
    training images, the same number from each class, chosen by seed.
    """
    name = dataset
    check_data_options(name, data_dir, validation_split, label_noise, image_size, limit, synthetic_classes)
    rng = np.random.default_rng(seed)
    if name in CIFAR:
        (x, y), test, class_names = load_cifar(name, data_dir)
    elif name == "image_folder":
        (x, y), test, class_names = load_image_folder(data_dir, image_size, limit, rng)
    else:
        (x, y), test, class_names = make_synthetic(synthetic_size, image_size, seed, synthetic_classes)
    if limit is not None and len(x) > limit:
        keep = _balanced_subset(y, limit, rng)
        x, y = x[keep], y[keep]
    order = rng.permutation(len(x))
    n_val = int(round(len(x) * validation_split))
    val, train = order[:n_val], order[n_val:]
    y_train = y[train]
    y_train, noisy = add_label_noise(y_train, label_noise, len(class_names), rng)
    x_test, y_test = test if test is not None else (None, None)
    return Dataset(name, class_names, x[train], y_train, x[val], y[val], x_test, y_test, noisy)


def check_data_options(name, data_dir, validation_split, label_noise, image_size, limit, synthetic_classes=10):
    """Refuses bad data options before anything is read."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not valid; choose one of {DATASETS}")
    if name == "image_folder" and data_dir is None:
        raise ValueError(
            "dataset='image_folder' needs data_dir: a folder with train/<class>/ images or a .tar.gz of one"
        )
    if not (isinstance(validation_split, (int, float)) and 0 <= validation_split < 1):
        raise ValueError(f"validation_split={validation_split!r} is not valid; it must be a number in [0, 1)")
    if not (isinstance(label_noise, (int, float)) and 0 <= label_noise <= 1):
        raise ValueError(f"label_noise={label_noise!r} is not valid; it must be a fraction in [0, 1]")
    if not (isinstance(image_size, int) and image_size > 0):
        raise ValueError(f"image_size={image_size!r} is not valid; it must be a positive integer")
    if limit is not None and not (isinstance(limit, int) and limit > 0):
        raise ValueError(f"limit={limit!r} is not valid; it must be a positive integer or null")
    if not (isinstance(synthetic_classes, int) and synthetic_classes >= 2):
        raise ValueError(f"synthetic_classes={synthetic_classes!r} is not valid; it must be an integer >= 2")


def add_label_noise(labels, fraction, num_classes, rng):
    """Replaces `fraction` of the labels, chosen at random, by a different class drawn uniformly.

    This is the paper's Table 5 noise: a label is kept with probability r = 1 - fraction and
    otherwise moved to each other class with probability (1 - r) / (classes - 1).
    """
    if fraction == 0:
        return labels, 0
    labels = labels.copy()
    chosen = rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False)
    shift = rng.integers(1, num_classes, size=len(chosen))
    labels[chosen] = (labels[chosen] + shift) % num_classes
    return labels, len(chosen)


def _balanced_subset(labels, limit, rng):
    classes = np.unique(labels)
    per_class = limit // len(classes)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(keep))


# --- CIFAR -----------------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays, and refuses everything else.

    The official CIFAR files are pickles; a crafted pickle can name any callable and run it on
    load, so only the three globals an ndarray needs are let through.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol 2; it only converts text
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR file holds only arrays and lists")


def safe_unpickle(data, source):
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        raise DataError(f"{source}: {error}") from None
    except Exception as error:  # a truncated or garbled stream fails in many ways
        raise DataError(f"{source}: not a readable CIFAR pickle ({type(error).__name__}: {error})") from None


def md5sum(path):
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def load_cifar(name, data_dir=None, verify=True):
    """Returns ((x_train, y_train), (x_test, y_test), class_names) for cifar10 or cifar100."""
    spec = CIFAR[name]
    if data_dir is None:
        return _download_cifar(name)
    data_dir = Path(data_dir)
    archive = data_dir / spec.archive if data_dir.is_dir() else data_dir
    folder = data_dir / spec.folder if (data_dir / spec.folder).is_dir() else data_dir
    if archive.is_file():
        if verify:
            found = md5sum(archive)
            if found != spec.md5:
                raise DataError(
                    f"{archive}: MD5 {found} is not the official {spec.md5}; the file is truncated or altered"
                    f" ({archive.stat().st_size:,} bytes). Download it again."
                )
        read = _archive_reader(archive, spec.folder)
    elif all((folder / part).is_file() for part in (*spec.train, *spec.test, spec.meta)):
        read = lambda part: (folder / part).read_bytes()  # noqa: E731
    else:
        missing = [part for part in (*spec.train, *spec.test, spec.meta) if not (folder / part).is_file()]
        raise DataError(
            f"no {name} data in {data_dir}: expected {spec.archive} or the folder {spec.folder}/"
            f" (missing: {', '.join(missing)})"
        )
    train = _read_batches(read, spec.train, spec, name)
    test = _read_batches(read, spec.test, spec, name)
    if len(train[0]) != spec.train_size:
        raise DataError(f"{name}: found {len(train[0]):,} training images, expected {spec.train_size:,}")
    meta = safe_unpickle(read(spec.meta), f"{name}/{spec.meta}")
    class_names = [label.decode() for label in meta[spec.names_key]]
    return train, test, class_names


def _archive_reader(archive, folder):
    try:
        tar = tarfile.open(archive, "r:gz")
        members = {member.name: member for member in tar.getmembers()}
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{archive}: not a readable .tar.gz, truncated or corrupt ({error})") from None

    def read(part):
        member = members.get(f"{folder}/{part}")
        if member is None:
            raise DataError(f"{archive}: has no {folder}/{part}")
        try:
            return tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"{archive}: {folder}/{part} is truncated or corrupt ({error})") from None

    return read


def _read_batches(read, parts, spec, name):
    images, labels = [], []
    for part in parts:
        batch = safe_unpickle(read(part), f"{name}/{part}")
        if not isinstance(batch, dict) or b"data" not in batch or spec.label_key not in batch:
            raise DataError(f"{name}/{part}: not a CIFAR batch (needs b'data' and {spec.label_key!r})")
        data = np.asarray(batch[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{name}/{part}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
        if len(batch[spec.label_key]) != len(data):
            raise DataError(f"{name}/{part}: {len(data)} images but {len(batch[spec.label_key])} labels")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[spec.label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _download_cifar(name):
    folder = fetch_cifar(name)
    return load_cifar(name, folder, verify=False)  # fetch_cifar checked it


def fetch_cifar(name, folder=None, url=None, md5=None):
    """The official archive of `name` in `folder` (default: the cache's cifar/), downloaded once
    and checked by MD5; returns the folder. Safe from many processes at once: one downloads
    (into a file of its own, renamed into place when whole and checked), the others wait for it
    and read the same file. keras.datasets, which this replaces, downloads straight to the
    target and re-extracts into one shared folder on every call, so concurrent loads read files
    that others are overwriting."""
    spec = CIFAR[name]
    folder = Path(folder or cache_dir() / "cifar")
    url, md5 = url or spec.url, md5 or spec.md5
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / spec.archive
    with open(folder / f".{spec.archive}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file() and md5sum(archive) == md5:
            return folder
        partial = folder / f".{spec.archive}.{os.getpid()}.partial"
        try:
            urllib.request.urlretrieve(url, partial)
        except (OSError, ValueError) as error:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"could not download {name} from {url} ({error}); on a machine with no network, give a folder"
                f" holding {spec.archive} (DATA=/path/to/folder, or data_dir)"
            ) from None
        found = md5sum(partial)
        if found != md5:
            partial.unlink()
            raise DataError(f"{url}: MD5 {found} is not the official {md5}; the download is truncated or altered")
        os.replace(partial, archive)
    return folder


# --- image folders ---------------------------------------------------------------------------


def load_image_folder(data_dir, image_size=32, limit=None, rng=None):
    """Reads `train/<class>/*` (and `test/<class>/*` if present) into arrays, resized to
    image_size x image_size RGB. Class order is alphabetical."""
    root = _image_folder_root(Path(data_dir))
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not class_names:
        raise DataError(f"{root / 'train'} has no class folders")
    train_files = _class_files(root / "train", class_names)
    if limit is not None and len(train_files) > limit:
        labels = np.array([label for _, label in train_files])
        keep = _balanced_subset(labels, limit, rng or np.random.default_rng(0))
        train_files = [train_files[i] for i in keep]
    train = _read_images(train_files, image_size)
    test = None
    if (root / "test").is_dir():
        test = _read_images(_class_files(root / "test", class_names), image_size)
    return train, test, class_names


def data_fingerprint(dataset, data_dir=None):
    """The content of a dataset, as a short string that does not depend on where it lies: the
    official archive's MD5 for CIFAR (which loading checks), a hash of an image folder's file
    names and sizes (an archive of one: of what it extracts to), "synthetic" for synthetic data
    (its options are the rest of a run's identity). Reads no image."""
    if dataset in CIFAR:
        return f"{CIFAR[dataset].archive} md5 {CIFAR[dataset].md5}"
    if dataset != "image_folder":
        return dataset
    root = _image_folder_root(Path(data_dir))
    listing = hashlib.sha256()
    for part in ("train", "test"):
        if (root / part).is_dir():
            class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
            for path, _ in _class_files(root / part, class_names):
                listing.update(f"{path.relative_to(root)} {path.stat().st_size}\n".encode())
    return f"image folder {listing.hexdigest()[:16]}"


def _image_folder_root(path):
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        path = _extract_once(path)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist")
    candidates = [path, *sorted(p for p in path.iterdir() if p.is_dir())]
    for candidate in candidates:
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"{path} has no train/<class>/ folder (nor one level down)")


def cache_dir():
    """Where extracted archives go: $RESATTN_CACHE, else ~/.cache/resattn."""
    return Path(os.environ.get("RESATTN_CACHE", Path.home() / ".cache" / "resattn"))


def _extract_once(archive):
    """Extracts an image-folder archive into the cache, once; an interrupted extraction is redone."""
    stat = archive.stat()
    # By name, size and time, not path: an archive moved elsewhere is not extracted again.
    digest = hashlib.sha256(f"{archive.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "extracted" / f"{archive.name.split('.')[0]}-{digest}"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process extracts; the others wait and find it done
        if (target / ".complete").exists():
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        partial.mkdir()
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(partial, filter="data")
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"{archive}: not a readable archive, truncated or corrupt ({error})") from None
        partial.rename(target)
        (target / ".complete").touch()
    return target


def _class_files(folder, class_names):
    files = []
    for label, name in enumerate(class_names):
        class_folder = folder / name
        if not class_folder.is_dir():
            raise DataError(f"{folder} has no folder for class {name!r} (classes come from train/)")
        # macOS leaves "._name.jpg" files of metadata beside the images it copies: not images.
        files += [
            (path, label)
            for path in sorted(class_folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("._")
        ]
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _read_images(files, image_size):
    from PIL import Image, ImageOps, UnidentifiedImageError

    images = np.empty((len(files), image_size, image_size, 3), np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")  # upright, as a viewer shows it
                if image.size != (image_size, image_size):
                    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
                images[i] = np.asarray(image)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"{path}: not a readable image ({error})") from None
    return images, np.array([label for _, label in files], np.int64)


# --- synthetic -------------------------------------------------------------------------------


def make_synthetic(size=2000, image_size=32, seed=0, num_classes=10):
    """A small dataset a network learns in an epoch or two: each class is a colour and a stripe
    orientation, drawn under noise. Returns a training and a test split (a fifth of `size`)."""
    rng = np.random.default_rng(seed + 12345)
    colours = rng.uniform(40, 215, size=(num_classes, 3))
    angles = np.linspace(0, np.pi, num_classes, endpoint=False)
    grid = np.stack(np.meshgrid(np.arange(image_size), np.arange(image_size), indexing="ij"), -1)

    def draw(n):
        labels = rng.integers(0, num_classes, size=n)
        direction = np.stack([np.cos(angles[labels]), np.sin(angles[labels])], -1)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        stripes = np.sin(np.einsum("hwk,nk->nhw", grid, direction) * 0.8 + phase)
        images = colours[labels][:, None, None, :] + 35 * stripes[..., None]
        images += rng.normal(0, 20, size=images.shape)
        return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)

    return draw(size), draw(max(size // 5, num_classes)), [f"class{i}" for i in range(num_classes)]
