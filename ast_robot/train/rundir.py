"""The run directory: resolved config, metrics, summary, plots and checkpoints of one run.

Layout of ``runs/<name>/``:

    config.yaml          the resolved config, written when the run starts
    metrics.jsonl        one JSON object per iteration, namespaced keys (time/, rollout/, ...)
    metrics.csv          the same rows as CSV, rewritten after every iteration
    summary.json         final and best numbers of the run
    plots/success.png    evaluation success against wall-clock time
    plots/gate.png       activation rate and threshold over iterations
    checkpoints/last.pt  state after the latest finished iteration
    checkpoints/best.pt  state with the best nominal sim success so far
    checkpoints/best_policy.safetensors  that state's policy alone (`TransformerPolicy.load`)
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from ast_robot.config import Config, save_config

logger = logging.getLogger(__name__)


def default_run_dir(task: str, runs_root: str | Path = "runs") -> Path:
    """``runs/<task>-<UTC time>``, unique to the second."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path(runs_root) / f"{task}-{stamp}"


class RunDir:
    """Files of one training run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.plots = self.path / "plots"
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.jsonl"
        self.csv_path = self.path / "metrics.csv"
        self.summary_path = self.path / "summary.json"
        self.rows: list[dict] = []

    def create(self, config: Config) -> None:
        """Make the directories and save the resolved config."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.plots.mkdir(parents=True, exist_ok=True)
        save_config(config, self.config_path)
        self.metrics_path.touch()

    def reopen(self, completed_iterations: int) -> None:
        """Load the metrics of a resumed run, dropping rows of iterations after the checkpoint.

        A run killed mid-iteration may have written rows that the checkpoint does not cover;
        they are removed so the resumed run writes those iterations again.
        """
        rows = []
        if self.metrics_path.is_file():
            for line in self.metrics_path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("%s: dropping a truncated metrics line", self.metrics_path)
                    continue
                if row.get("iteration", math.inf) < completed_iterations:
                    rows.append(row)
        self.rows = rows
        self._rewrite_jsonl()
        self.write_csv()

    def append(self, row: dict) -> None:
        """Append one iteration's metrics to metrics.jsonl (flushed to disk) and metrics.csv."""
        self.rows.append(row)
        with self.metrics_path.open("a") as stream:
            stream.write(json.dumps(row, default=_json_default) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        self.write_csv()

    def _rewrite_jsonl(self) -> None:
        text = "".join(json.dumps(row, default=_json_default) + "\n" for row in self.rows)
        _atomic_write_text(self.metrics_path, text)

    def write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(key for key in row if key not in columns)
        temporary = self.csv_path.with_suffix(".csv.tmp")
        with temporary.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow(row)
        os.replace(temporary, self.csv_path)

    def write_summary(self, summary: dict) -> None:
        _atomic_write_text(self.summary_path, json.dumps(summary, indent=2, default=_json_default) + "\n")

    def write_plots(self) -> None:
        """Draw success against wall-clock time, and the gate's activation rate and threshold."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plots.mkdir(parents=True, exist_ok=True)
        evaluated = [row for row in self.rows if "eval/success_sim" in row]

        figure, axis = plt.subplots(figsize=(6, 4))
        for key, label in (
            ("eval/success_sim", "sim, nominal"),
            ("eval/success_randomized", "sim, randomized"),
            ("eval/success_reality", "reality profile"),
        ):
            points = [(row["time/wall_s"], row[key]) for row in evaluated if row.get(key) is not None]
            if points:
                axis.plot(*zip(*points), marker="o", label=label)
        axis.set_xlabel("wall-clock time [s]")
        axis.set_ylabel("success rate")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(self.plots / "success.png", dpi=100)
        plt.close(figure)

        figure, axis = plt.subplots(figsize=(6, 4))
        iterations = [row["iteration"] for row in self.rows]
        axis.plot(iterations, [row.get("gate/activation_rate") for row in self.rows], label="activation rate")
        axis.plot(iterations, [row.get("gate/threshold") for row in self.rows], label="threshold")
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
        axis.legend(loc="best")
        figure.tight_layout()
        figure.savefig(self.plots / "gate.png", dpi=100)
        plt.close(figure)


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to the metrics file")
