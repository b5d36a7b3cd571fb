"""Checkpoint encoding round trip and error messages."""

import numpy as np
import pytest
import torch

from ast_robot.errors import CheckpointError
from ast_robot.train.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_keeps_types(tmp_path):
    rng = np.random.default_rng(5)
    rng.random(3)
    state = {
        "rng": rng.bit_generator.state,
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "tuple": (1, 2.5),
        "tensor": torch.ones(3),
        "nothing": None,
    }
    save_checkpoint(state, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["array"].dtype == np.int16
    np.testing.assert_array_equal(loaded["array"], state["array"])
    assert loaded["tuple"] == (1, 2.5)
    assert torch.equal(loaded["tensor"], state["tensor"])
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded["rng"]
    assert restored.random() == rng.random()


def test_missing_checkpoint_named(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pt not found"):
        load_checkpoint(tmp_path / "nowhere.pt")


def test_damaged_checkpoint_rejected(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a file written by torch.save"):
        load_checkpoint(path)


def test_zip_that_is_no_checkpoint_rejected_in_one_line(tmp_path):
    import zipfile

    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="could not read checkpoint") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_other_format_rejected(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": 0}, path)
    with pytest.raises(CheckpointError, match="format 0"):
        load_checkpoint(path)
