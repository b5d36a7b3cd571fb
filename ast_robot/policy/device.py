"""Device choice and mixed precision for the policies."""

from __future__ import annotations

import contextlib
import logging

import torch

logger = logging.getLogger(__name__)


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:i]``.

    Raises:
        ValueError: The name is not one of these, or CUDA was requested but is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:<index>'")


def autocast(device: torch.device, *, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Return a bfloat16 autocast context on CUDA, or a no-op context on other devices.

    CPU bfloat16 matmuls are slower than float32 on CPUs without AMX, so CPU runs stay float32.
    """
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
