"""The run directory of a vision training run: config, metrics, checkpoints and summary.

Layout::

    <run_dir>/config.yaml           resolved config, written at the start
    <run_dir>/metrics.jsonl         one JSON row per epoch
    <run_dir>/checkpoints/last.pt   state after the latest epoch (models, optimizers, gate, RNG)
    <run_dir>/checkpoints/best.pt   state after the epoch with the best validation accuracy
    <run_dir>/summary.json          final numbers, written at the end
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from ast_robot.errors import CheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
# Stored as "kind" in every vision checkpoint, so other loaders can tell it from a robot policy checkpoint.
CHECKPOINT_KIND = "vision"
# Files that a vision run writes after its first epoch. A folder with any of them contains a run.
RUN_MARKERS = ("metrics.jsonl", "checkpoints/last.pt")


class RunDirectory:
    """Files of one run under `root`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    def checkpoint_path(self, name: str) -> Path:
        return self.root / "checkpoints" / f"{name}.pt"

    def create(self) -> None:
        (self.root / "checkpoints").mkdir(parents=True, exist_ok=True)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one row to ``metrics.jsonl``; non-finite numbers are written as null."""
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(_finite(row)) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, epochs_done: int) -> None:
        """Drop metric rows of epochs after `epochs_done`, written after the checkpoint a resume starts from."""
        rows = [row for row in self.read_metrics() if row.get("epoch", 0) <= epochs_done]
        self.metrics_path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.summary_path.write_text(json.dumps(_finite(summary), indent=2) + "\n")

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        """Write `state` atomically (temporary file, then rename) to ``checkpoints/<name>.pt``."""
        path = self.checkpoint_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".pt.tmp")
        try:
            torch.save({"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, **state}, temporary)
            os.replace(temporary, path)
        except OSError as error:
            raise CheckpointError(f"{path}: cannot write the checkpoint: {error}") from error
        return path

    def load_checkpoint(self, name: str) -> dict[str, Any]:
        """Read ``checkpoints/<name>.pt``.

        Raises:
            CheckpointError: The file is missing, unreadable, not a vision checkpoint or from another
                checkpoint version.
        """
        path = self.checkpoint_path(name)
        if not path.exists():
            raise CheckpointError(
                f"{path}: not found, so {self.root} has no finished epoch to resume from; start a new "
                "run without --resume in another --run-dir"
            )
        try:
            # The checkpoint holds only tensors, numbers, strings and containers of them.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError) as error:
            raise CheckpointError(f"{path}: cannot read the checkpoint: {error}") from error
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: not a vision checkpoint (contains a {type(state).__name__})")
        # Checkpoints written before the kind marker existed have "version" but no "kind".
        kind = state.get("kind", CHECKPOINT_KIND if "version" in state else None)
        if kind != CHECKPOINT_KIND:
            raise CheckpointError(
                f"{path}: not a vision checkpoint; `ast-robot vision --resume` continues only runs "
                "started by `ast-robot vision`"
            )
        version = state.get("version")
        if version != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint version {version} is not supported (expected {CHECKPOINT_VERSION})"
            )
        return state


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
