"""The shared check that a new run starts only in a missing or empty run directory."""

import pytest

from ast_robot.errors import RunDirError
from ast_robot.run_directory import check_new_run_dir

MARKERS = ("metrics.jsonl", "checkpoints/last.pt")


def test_missing_folder_accepted(tmp_path):
    check_new_run_dir(tmp_path / "new", run_markers=MARKERS)


def test_empty_folder_accepted(tmp_path):
    check_new_run_dir(tmp_path, run_markers=MARKERS)


def test_file_rejected(tmp_path):
    path = tmp_path / "run"
    path.write_text("")
    with pytest.raises(RunDirError, match=f"run directory {path} is a file"):
        check_new_run_dir(path, run_markers=MARKERS)


def test_other_files_rejected(tmp_path):
    (tmp_path / "config.yaml").write_text("keep: 1\n")
    with pytest.raises(RunDirError, match="is not empty and contains no run") as raised:
        check_new_run_dir(tmp_path, run_markers=MARKERS)
    assert str(tmp_path) in str(raised.value)
    assert "--run-dir" in str(raised.value)


def test_existing_run_suggests_resume(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(RunDirError, match=f"already contains a run; pass --resume {tmp_path}"):
        check_new_run_dir(tmp_path, run_markers=MARKERS)
