"""Checks shared by the run directories of robot training and vision training."""

from __future__ import annotations

from pathlib import Path

from ast_robot.errors import RunDirError


def check_new_run_dir(path: str | Path, *, run_markers: tuple[str, ...]) -> None:
    """Check that a new run may start in `path`: a missing path or an empty directory.

    Args:
        path: The run directory the new run would write to.
        run_markers: Paths relative to `path` whose presence means a run of this kind was
            started there, e.g. ``("metrics.jsonl", "checkpoints/last.pt")``. They only select
            the message: a non-empty directory is rejected either way.

    Raises:
        RunDirError: `path` is a file, or a directory with any entry in it. The message names
            the folder and suggests ``--resume`` or another ``--run-dir``.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise RunDirError(f"run directory {path} is a file, not a directory; choose another --run-dir")
    if not any(path.iterdir()):
        return
    if any((path / marker).exists() for marker in run_markers):
        raise RunDirError(
            f"run directory {path} already contains a run; pass --resume {path} to continue it or "
            "choose another --run-dir"
        )
    raise RunDirError(
        f"run directory {path} is not empty and contains no run; choose an empty or new --run-dir, "
        "or pass --resume with the directory of an earlier run"
    )
