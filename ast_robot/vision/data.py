"""CIFAR-10 in its python-pickle format: reading, validating and writing batch files.

The python version of CIFAR-10 is a directory of six pickled batches: ``data_batch_1`` to
``data_batch_5`` for training and ``test_batch``. Each is a dict with byte keys. ``b'data'`` is a
uint8 array of shape (N, 3072) whose rows contain 1024 red, then 1024 green, then 1024 blue
values of a 32x32 image in row-major order. ``b'labels'`` is a list of N class indices in
[0, 10). ``batches.meta`` contains the class names and is optional here.

`load_cifar10` reads and checks every file before it returns, so a truncated, empty or
wrong-shaped file stops the run with a `DatasetError` naming the file, and training never starts
on part of the data. Files are unpickled with an allow-list of the classes the format needs
(numpy arrays and byte strings), so a crafted file cannot run code while it is read.
"""

from __future__ import annotations

import io
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ast_robot.errors import DatasetError

logger = logging.getLogger(__name__)

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
"""Channels, height and width of one image, channel-first."""
ROW_BYTES = 3 * 32 * 32
DEFAULT_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# (module, name) pairs a CIFAR-10 batch may reference. numpy 2 pickles arrays through
# numpy._core, numpy 1 through numpy.core, and Python 3 pickles bytes at protocol 2 through
# _codecs.encode.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


@dataclass
class Split:
    """Images and labels of one split.

    Attributes:
        images: uint8 array (N, 3, 32, 32), channel-first, values 0..255.
        labels: int64 array (N,), class indices in [0, 10).
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, count: int) -> Split:
        """Return the first `count` images, or all of them when `count` is 0 or exceeds the split."""
        if count <= 0 or count >= len(self):
            return self
        return Split(self.images[:count], self.labels[:count])


@dataclass
class Cifar10:
    """The training and test splits of a CIFAR-10 directory and its class names."""

    train: Split
    test: Split
    class_names: tuple[str, ...]
    root: Path


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle references a class or function outside the CIFAR-10 allow-list."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR-10 batch file needs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _ForbiddenGlobal(f"the file references {module}.{name}, which a CIFAR-10 batch never contains")
        return super().find_class(module, name)


def read_batch_file(path: str | Path) -> dict[bytes, Any]:
    """Unpickle one batch file with byte keys, as the format was written by Python 2.

    Raises:
        DatasetError: The file is missing, empty, truncated or not a pickled dict.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise DatasetError(
            f"{path}: file not found; a CIFAR-10 directory needs {', '.join(TRAIN_FILES)} and {TEST_FILE} "
            "(the python version of the dataset)"
        ) from error
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the file: {error.strerror}") from error
    if not raw:
        raise DatasetError(f"{path}: the file is empty; copy the batch file again")

    try:
        content = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _ForbiddenGlobal as error:
        raise DatasetError(f"{path}: not loaded because {error}; is this a CIFAR-10 batch?") from error
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError) as error:
        raise DatasetError(
            f"{path}: not a readable CIFAR-10 batch ({type(error).__name__}: {error}); the file may be "
            "truncated or corrupt, so copy it again"
        ) from error
    if not isinstance(content, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    return content


def parse_batch(content: dict, path: str | Path) -> Split:
    """Check one batch dict and convert it to channel-first images and labels.

    Raises:
        DatasetError: ``b'data'`` or ``b'labels'`` is missing, the data is not uint8 of shape
            (N, 3072), the label count differs from N, or a label is outside [0, 10).
    """
    data = _get_key(content, "data", path)
    labels = _get_key(content, "labels", path)

    if not isinstance(data, np.ndarray):
        raise DatasetError(f"{path}: b'data' is a {type(data).__name__}, expected a numpy uint8 array")
    if data.dtype != np.uint8:
        raise DatasetError(f"{path}: b'data' has dtype {data.dtype}, expected uint8")
    if data.ndim != 2 or data.shape[1] != ROW_BYTES:
        raise DatasetError(
            f"{path}: b'data' has shape {tuple(data.shape)}, expected (N, {ROW_BYTES}): one row of "
            "1024 red, 1024 green and 1024 blue values per 32x32 image"
        )
    if data.shape[0] == 0:
        raise DatasetError(f"{path}: the batch contains no images")

    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{path}: b'labels' is not a list of integers: {error}") from error
    if labels.ndim != 1 or len(labels) != data.shape[0]:
        raise DatasetError(
            f"{path}: b'labels' has shape {tuple(labels.shape)} but b'data' contains {data.shape[0]} images"
        )
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{path}: label {int(labels[first])} of image {first} is outside [0, {NUM_CLASSES})"
        )

    # Row layout is (channel, row, column), so a plain reshape gives channel-first images.
    images = data.reshape(-1, *IMAGE_SHAPE)  # (N, 3072) -> (N, 3, 32, 32)
    return Split(np.ascontiguousarray(images), labels)


def _get_key(content: dict, name: str, path: str | Path) -> Any:
    key = name.encode()
    if key in content:
        return content[key]
    if name in content:  # re-pickled under Python 3 with str keys
        return content[name]
    keys = ", ".join(repr(k) for k in content)
    raise DatasetError(f"{path}: the batch has no {key!r} key (keys: {keys})")


def load_cifar10(root: str | Path) -> Cifar10:
    """Read and check every batch of a CIFAR-10 python directory.

    Args:
        root: Directory holding ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
            (``cifar-10-batches-py`` after unpacking the official archive).

    Returns:
        Both splits with uint8 images (N, 3, 32, 32) and int64 labels (N,).

    Raises:
        DatasetError: The directory or a batch file is missing, or any file is empty, truncated
            or has the wrong shape; the message names the file. Nothing is returned unless every
            file is valid.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"{root}: CIFAR-10 directory not found; pass the unpacked cifar-10-batches-py directory"
        )

    train_parts = [parse_batch(read_batch_file(root / name), root / name) for name in TRAIN_FILES]
    test = parse_batch(read_batch_file(root / TEST_FILE), root / TEST_FILE)
    train = Split(
        np.concatenate([part.images for part in train_parts]),
        np.concatenate([part.labels for part in train_parts]),
    )
    class_names = _read_class_names(root / META_FILE)
    logger.info("loaded CIFAR-10 from %s: %d training and %d test images", root, len(train), len(test))
    return Cifar10(train=train, test=test, class_names=class_names, root=root)


def _read_class_names(path: Path) -> tuple[str, ...]:
    if not path.exists():
        return DEFAULT_CLASS_NAMES
    content = read_batch_file(path)
    names = content.get(b"label_names", content.get("label_names"))
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise DatasetError(f"{path}: expected b'label_names' with {NUM_CLASSES} names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def write_batch_file(path: str | Path, images: np.ndarray, labels: np.ndarray, *, batch_label: str) -> None:
    """Write one batch in the CIFAR-10 python format (pickle protocol 2, byte keys).

    Args:
        path: Output file.
        images: uint8 array (N, 3, 32, 32), channel-first.
        labels: integer array (N,) of class indices in [0, 10).
        batch_label: Text stored under ``b'batch_label'``.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise DatasetError(
            f"{path}: images must be uint8 of shape (N, 3, 32, 32), got {images.dtype} {images.shape}"
        )
    content = {
        b"batch_label": batch_label.encode(),
        b"labels": [int(label) for label in labels],
        b"data": images.reshape(len(images), ROW_BYTES),  # (N, 3, 32, 32) -> (N, 3072)
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(images))],
    }
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def write_cifar10(root: str | Path, train: Split, test: Split) -> Path:
    """Write a complete CIFAR-10 python directory: five training batches, the test batch, the meta file.

    The training split is divided into five nearly equal batches, as in the official files.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    chunks = np.array_split(np.arange(len(train)), len(TRAIN_FILES))
    for number, (name, index) in enumerate(zip(TRAIN_FILES, chunks), start=1):
        write_batch_file(
            root / name, train.images[index], train.labels[index],
            batch_label=f"training batch {number} of {len(TRAIN_FILES)}",
        )
    write_batch_file(root / TEST_FILE, test.images, test.labels, batch_label="testing batch 1 of 1")
    meta = {
        b"label_names": [name.encode() for name in DEFAULT_CLASS_NAMES],
        b"num_cases_per_batch": int(len(chunks[0])),
        b"num_vis": ROW_BYTES,
    }
    with open(root / META_FILE, "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return root
