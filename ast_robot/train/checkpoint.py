"""Checkpoint files: everything a run needs to continue exactly where it stopped.

A checkpoint is one ``torch.save`` file holding plain containers, tensors and numbers only, so it
loads with ``weights_only=True`` (no code runs when a checkpoint is opened). NumPy arrays inside
component state dicts are stored as tagged tensors and come back as NumPy arrays of the same dtype.
Files are written to a temporary name and renamed, so a run killed while saving keeps the previous
checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ast_robot.errors import CheckpointError

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout; bumped when keys change incompatibly."""

_NDARRAY_TAG = "__ndarray__"
_BIGINT_TAG = "__int__"
_TUPLE_TAG = "__tuple__"


def encode(value: Any) -> Any:
    """Convert NumPy arrays and scalars, very large integers and tuples into savable values."""
    import torch

    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise CheckpointError(f"cannot store an object array of shape {value.shape} in a checkpoint")
        return {_NDARRAY_TAG: torch.from_numpy(np.ascontiguousarray(value).copy()), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
        return value
    if isinstance(value, int):
        # Generator states hold 128-bit integers, which are stored as text.
        return value if -(2**63) <= value < 2**63 else {_BIGINT_TAG: str(value)}
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return {_TUPLE_TAG: [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    return value  # tensors and other torch-savable values


def decode(value: Any) -> Any:
    """Inverse of `encode`."""
    if isinstance(value, dict):
        if _NDARRAY_TAG in value:
            return value[_NDARRAY_TAG].numpy().astype(value["dtype"], copy=False)
        if _BIGINT_TAG in value:
            return int(value[_BIGINT_TAG])
        if _TUPLE_TAG in value:
            return tuple(decode(item) for item in value[_TUPLE_TAG])
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write `state` to `path` atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        torch.save(encode({"format": CHECKPOINT_FORMAT, **state}), temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise CheckpointError(f"could not write checkpoint {path}: {error}") from error


EXPECTED = "a robot checkpoint written by `ast-robot train` (RUN_DIR/checkpoints/last.pt or best.pt)"
"""Description of the files `load_checkpoint` reads, used in its error messages."""


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by `save_checkpoint`.

    Raises:
        CheckpointError: When the file is missing, a directory, empty, not a torch file, a vision
            or policy-only checkpoint, or of another format version. The one-line message
            names what the file is and what is expected instead.
    """
    import zipfile

    import torch

    path = Path(path)
    if path.is_dir():
        hint = ""
        for name in ("best.pt", "last.pt"):
            for candidate in (path / "checkpoints" / name, path / name):
                if candidate.is_file():
                    hint = f" such as {candidate}"
                    break
            if hint:
                break
        raise CheckpointError(f"checkpoint {path} is a directory; expected {EXPECTED}{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; expected {EXPECTED}")
    if path.suffix == ".safetensors":
        raise CheckpointError(
            f"checkpoint {path} is a policy-only safetensors file without the run's environment "
            f"settings; expected {EXPECTED}: pass best.pt from the same checkpoints folder"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); expected {EXPECTED}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is not a file written by torch.save; expected {EXPECTED}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for damaged files
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise CheckpointError(
            f"could not read checkpoint {path} ({reason}); expected {EXPECTED}"
        ) from error
    if isinstance(raw, dict) and raw.get("kind") == "vision":
        raise CheckpointError(
            f"checkpoint {path} is a vision model checkpoint from `ast-robot vision train`; expected {EXPECTED}"
        )
    state = decode(raw)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {path} has format {found!r}, expected {CHECKPOINT_FORMAT}; it was written "
            f"by another version of ast-robot or is not {EXPECTED}"
        )
    return state
