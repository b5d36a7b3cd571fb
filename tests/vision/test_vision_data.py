"""CIFAR-10 loader: the real python-pickle format, written here byte for byte, and every bad file."""

import pickle

import numpy as np
import pytest
import torch

from ast_robot.errors import DatasetError
from ast_robot.vision.augment import to_float
from ast_robot.vision.data import TEST_FILE, TRAIN_FILES, Split, load_cifar10, write_cifar10

IMAGES_PER_BATCH = 4


def _write_batch(path, data, labels):
    """Write one batch as the official files are: a protocol-2 pickle of a dict with byte keys."""
    content = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": list(labels),
        b"data": data,
        b"filenames": [b"img_%d.png" % i for i in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(content, protocol=2))


@pytest.fixture
def cifar_dir(tmp_path):
    """A CIFAR-10 directory whose first training image is pure red; the rest are random."""
    rng = np.random.default_rng(0)
    for number, name in enumerate([*TRAIN_FILES, TEST_FILE]):
        data = rng.integers(0, 256, size=(IMAGES_PER_BATCH, 3072), dtype=np.uint8)
        if number == 0:
            data[0, :1024] = 255  # red channel, all 32x32 pixels
            data[0, 1024:] = 0  # green and blue
        labels = [(number + i) % 10 for i in range(IMAGES_PER_BATCH)]
        _write_batch(tmp_path / name, data, labels)
    return tmp_path


def test_loads_all_batches(cifar_dir):
    data = load_cifar10(cifar_dir)
    assert data.train.images.shape == (5 * IMAGES_PER_BATCH, 3, 32, 32)
    assert data.train.images.dtype == np.uint8
    assert data.test.images.shape == (IMAGES_PER_BATCH, 3, 32, 32)
    assert data.train.labels.tolist()[:4] == [0, 1, 2, 3]
    assert data.test.labels.tolist() == [5, 6, 7, 8]


def test_red_first_image_is_channel_first(cifar_dir):
    data = load_cifar10(cifar_dir)
    first = data.train.images[0]
    assert (first[0] == 255).all()
    assert (first[1] == 0).all()
    assert (first[2] == 0).all()

    floats = to_float(torch.from_numpy(data.train.images))
    assert floats.dtype == torch.float32
    assert float(floats.min()) >= 0.0
    assert float(floats.max()) <= 1.0
    assert torch.equal(floats[0, 0], torch.ones(32, 32))
    assert torch.equal(floats[0, 1:], torch.zeros(2, 32, 32))


def test_row_major_pixel_order(cifar_dir):
    # Byte 1024 * c + 32 * row + column of a row is pixel (row, column) of channel c.
    data = np.zeros((IMAGES_PER_BATCH, 3072), dtype=np.uint8)
    data[0, 1024 + 32 * 5 + 7] = 200
    _write_batch(cifar_dir / TRAIN_FILES[0], data, [0] * IMAGES_PER_BATCH)
    images = load_cifar10(cifar_dir).train.images
    assert images[0, 1, 5, 7] == 200
    assert images[0].sum() == 200


def test_truncated_file_names_file(cifar_dir):
    path = cifar_dir / TRAIN_FILES[2]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match=r"data_batch_3: not a readable CIFAR-10 batch.*truncated"):
        load_cifar10(cifar_dir)


def test_empty_file_names_file(cifar_dir):
    (cifar_dir / TEST_FILE).write_bytes(b"")
    with pytest.raises(DatasetError, match=r"test_batch: the file is empty"):
        load_cifar10(cifar_dir)


def test_missing_file_names_file(cifar_dir):
    (cifar_dir / TRAIN_FILES[4]).unlink()
    with pytest.raises(DatasetError, match=r"data_batch_5: file not found"):
        load_cifar10(cifar_dir)


def test_missing_directory_rejected(tmp_path):
    with pytest.raises(DatasetError, match=r"CIFAR-10 directory not found"):
        load_cifar10(tmp_path / "nowhere")


def test_wrong_row_width_names_file(cifar_dir):
    _write_batch(cifar_dir / TRAIN_FILES[1], np.zeros((IMAGES_PER_BATCH, 3000), dtype=np.uint8), [0] * 4)
    with pytest.raises(DatasetError, match=r"data_batch_2: b'data' has shape \(4, 3000\), expected \(N, 3072\)"):
        load_cifar10(cifar_dir)


def test_image_shaped_data_rejected(cifar_dir):
    _write_batch(cifar_dir / TRAIN_FILES[1], np.zeros((4, 3, 32, 32), dtype=np.uint8), [0] * 4)
    with pytest.raises(DatasetError, match=r"data_batch_2: b'data' has shape \(4, 3, 32, 32\)"):
        load_cifar10(cifar_dir)


def test_wrong_dtype_names_file(cifar_dir):
    _write_batch(cifar_dir / TEST_FILE, np.zeros((4, 3072), dtype=np.float32), [0] * 4)
    with pytest.raises(DatasetError, match=r"test_batch: b'data' has dtype float32, expected uint8"):
        load_cifar10(cifar_dir)


def test_label_count_mismatch_names_file(cifar_dir):
    _write_batch(cifar_dir / TRAIN_FILES[0], np.zeros((4, 3072), dtype=np.uint8), [0, 1, 2])
    with pytest.raises(DatasetError, match=r"data_batch_1: b'labels' has shape \(3,\) but b'data' contains 4"):
        load_cifar10(cifar_dir)


def test_label_out_of_range_names_file(cifar_dir):
    _write_batch(cifar_dir / TRAIN_FILES[0], np.zeros((4, 3072), dtype=np.uint8), [0, 1, 10, 2])
    with pytest.raises(DatasetError, match=r"data_batch_1: label 10 of image 2 is outside \[0, 10\)"):
        load_cifar10(cifar_dir)


def test_missing_labels_key_names_key(cifar_dir):
    content = {b"data": np.zeros((4, 3072), dtype=np.uint8), b"fine_labels": [0] * 4}
    (cifar_dir / TRAIN_FILES[0]).write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_1: the batch has no b'labels' key"):
        load_cifar10(cifar_dir)


def test_not_a_dict_rejected(cifar_dir):
    (cifar_dir / TRAIN_FILES[0]).write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_1: expected a pickled dict, got list"):
        load_cifar10(cifar_dir)


class _RunsCode:
    # Once Ray is imported in the same process it replaces builtins.print, so the pickled name
    # may be Ray's wrapper; the match below accepts either.
    def __reduce__(self):
        return (print, ("this must never run",))


def test_foreign_global_never_executed(cifar_dir, capsys):
    (cifar_dir / TRAIN_FILES[0]).write_bytes(pickle.dumps({b"data": _RunsCode()}, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_1: not loaded because the file references \S+print, which a CIFAR-10 batch never"):
        load_cifar10(cifar_dir)
    assert "must never run" not in capsys.readouterr().out


def test_writer_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    train = Split(rng.integers(0, 256, (23, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 23))
    test = Split(rng.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 7))
    data = load_cifar10(write_cifar10(tmp_path, train, test))
    np.testing.assert_array_equal(data.train.images, train.images)
    np.testing.assert_array_equal(data.train.labels, train.labels)
    np.testing.assert_array_equal(data.test.images, test.images)
    assert data.class_names[0] == "airplane"
