"""Scoring a batch of simulated episodes and deciding which ones update the transformer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ast_robot.config import Config
from ast_robot.episode import Episode

logger = logging.getLogger(__name__)


@dataclass
class ScoredBatch:
    """Scores and gate decisions of one iteration's episodes.

    Attributes:
        scores: Significance in [0, 1], float (N,).
        open: True where the episode goes to the transformer, bool (N,).
        threshold: Gate threshold after this batch.
        physical: Physical feedback from real logs, float (N,), or None without real logs.
        components: Batch metrics of the score (``significance/...``) and the gate's running
            totals (``gate/...``).
        reasons: Gate reason per episode.
    """

    scores: np.ndarray
    open: np.ndarray
    threshold: float
    physical: np.ndarray | None
    components: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


class Scorer:
    """The significance model, the real-log feedback and the gate, used together."""

    def __init__(self, config: Config, real, *, seed: int):
        from ast_robot.gate import SundewGate
        from ast_robot.significance import SignificanceModel

        self.feedback = None if real is None else real.feedback
        self.model = SignificanceModel(
            config.significance, modality="robot", has_real_feedback=self.feedback is not None, seed=seed
        )
        self.gate = SundewGate(config.gate, seed=seed)

    def score_and_gate(self, episodes: list[Episode], *, progress: float) -> ScoredBatch:
        """Score `episodes` (training progress in [0, 1]) and let the gate decide on them.

        The admitted episodes are recorded as trained (familiarity and novelty memory).
        """
        if not episodes:
            return ScoredBatch(np.zeros(0), np.zeros(0, bool), float(self.gate.threshold), None)

        physical = None
        if self.feedback is not None:
            physical = np.asarray(self.feedback.feedback(episodes), np.float64)
        inputs = self.model.inputs_from_episodes(episodes, physical=physical)
        result = self.model.score(inputs, progress=min(max(progress, 0.0), 1.0))
        costs = np.array([len(ep) for ep in episodes], np.float64)  # control steps
        decision = self.gate.decide(result.score, costs=costs)

        opened = np.asarray(decision.open, bool)
        if opened.any():
            self.model.mark_trained(inputs.subset(opened))
        metrics = result.metrics()
        gate_metrics = self.gate.stats().as_metrics()
        metrics["gate/activation_rate_total"] = gate_metrics["gate/activation_rate"]
        for key in ("gate/compute_admitted", "gate/compute_skipped", "gate/compute_skipped_share", "gate/integral"):
            metrics[key] = gate_metrics[key]
        return ScoredBatch(
            scores=np.asarray(result.score, np.float64),
            open=opened,
            threshold=float(decision.final_threshold),
            physical=physical,
            components=metrics,
            reasons=list(decision.reasons),
        )

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "gate": self.gate.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.gate.load_state_dict(state["gate"])
