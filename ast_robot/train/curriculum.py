"""Choosing what to simulate next: the expert-share schedule and the curriculum sampler.

The sampler proposes the contexts (object start xyz, goal xyz in metres) of the next iteration.
It remembers the contexts of past episodes with their significance score and physical feedback,
and predicts both for a new context from its nearest remembered neighbours. Two things use the
prediction:

- the curriculum bias: candidates are drawn in proportion to (1 - s) + s * predicted physical
  feedback (relative to its mean), so contexts where the real robot struggled come up more
  often. Here `s` is `curriculum_strength`, used only when real logs are given;
- the pre-simulation gate: a candidate whose predicted significance is below a quantile of recent
  scores is not simulated at all, so low-value contexts cost no rollout compute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ast_robot.config import TrainConfig
from ast_robot.episode import CONTEXT_DIM

logger = logging.getLogger(__name__)

_CANDIDATE_FACTOR = 4
"""Candidates drawn per context kept when the curriculum bias is active."""

_NEIGHBOURS = 8
"""Remembered episodes that a prediction averages over."""


def expert_share(cfg: TrainConfig, iteration: int) -> float:
    """Return the probability that the expert acts at a step, at `iteration` (0-based)."""
    start, end = cfg.expert_share_start, cfg.expert_share_end
    progress = min(1.0, iteration / cfg.expert_share_decay_iterations)
    if cfg.expert_share_decay == "linear":
        return float(start + (end - start) * progress)
    # Exponential: geometric interpolation, with a floor so a zero end value is reachable.
    floor = 1e-3
    value = max(start, floor) * (max(end, floor) / max(start, floor)) ** progress
    return float(end if progress >= 1.0 else value)


def task_seed(run_seed: int, iteration: int, index: int, stream: int = 0) -> int:
    """Return a seed for episode `index` of `iteration`, independent of every other episode's seed."""
    return int(np.random.SeedSequence([run_seed, stream, iteration, index]).generate_state(1)[0])


@dataclass
class Candidate:
    """A context proposed for simulation."""

    context: np.ndarray  # float32 (CONTEXT_DIM,) in metres
    predicted_score: float
    predicted_physical: float


class CurriculumSampler:
    """Proposes contexts biased toward high physical feedback and gates them before simulation.

    Args:
        cfg: The train section.
        seed: Seed of the sampler's own random stream.
        has_real_feedback: Whether physical feedback from real logs exists; without it the
            curriculum bias is off.
        memory: Remembered episodes (oldest dropped first).
    """

    def __init__(self, cfg: TrainConfig, *, seed: int, has_real_feedback: bool, memory: int = 4096):
        self.cfg = cfg
        self.has_real_feedback = has_real_feedback
        self.memory = memory
        self.rng = np.random.default_rng([seed, 0xC0])
        self.contexts = np.zeros((0, CONTEXT_DIM), np.float32)
        self.scores = np.zeros(0, np.float32)
        self.physical = np.zeros(0, np.float32)
        self.low: np.ndarray | None = None  # (CONTEXT_DIM,) bounds of the contexts seen so far
        self.high: np.ndarray | None = None

    @property
    def strength(self) -> float:
        return self.cfg.curriculum_strength if self.has_real_feedback else 0.0

    def remember(self, contexts: np.ndarray, scores: np.ndarray, physical: np.ndarray | None) -> None:
        """Store episode contexts (N, 6) with their scores (N,) and physical feedback (N,) or None."""
        contexts = np.asarray(contexts, np.float32).reshape(-1, CONTEXT_DIM)
        physical = np.zeros(len(contexts), np.float32) if physical is None else np.asarray(physical, np.float32)
        self.contexts = np.concatenate([self.contexts, contexts])[-self.memory:]
        self.scores = np.concatenate([self.scores, np.asarray(scores, np.float32)])[-self.memory:]
        self.physical = np.concatenate([self.physical, physical])[-self.memory:]
        if len(contexts):
            low, high = contexts.min(axis=0), contexts.max(axis=0)
            self.low = low if self.low is None else np.minimum(self.low, low)
            self.high = high if self.high is None else np.maximum(self.high, high)

    def propose(
        self, count: int, *, iteration: int, draw: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[list[np.ndarray], int]:
        """Choose the contexts of the next iteration.

        Args:
            count: Candidates to propose before the pre-simulation gate.
            iteration: The iteration about to run (0-based); the pre-simulation gate waits for
                `pregate_warmup_iterations`.
            draw: Maps seeds (M,) to contexts (M, 6) from the task's own context distribution.

        Returns:
            The contexts to simulate, float32 (6,) each, and the number of candidates skipped by
            the pre-simulation gate.
        """
        if len(self.contexts) < _NEIGHBOURS:
            pool = self._draw_pool(count, draw)
            return list(pool), 0
        candidates = self._choose(count, draw)
        if not (self.cfg.pregate and iteration >= self.cfg.pregate_warmup_iterations):
            return [c.context for c in candidates], 0
        return self._pregate(candidates)

    def _draw_pool(self, size: int, draw: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        seeds = self.rng.integers(0, 2**31 - 1, size=size)
        return np.asarray(draw(seeds), np.float32).reshape(size, CONTEXT_DIM)

    def _choose(self, count: int, draw: Callable[[np.ndarray], np.ndarray]) -> list[Candidate]:
        pool_size = count * (_CANDIDATE_FACTOR if self.strength > 0 else 1)
        pool = self._draw_pool(pool_size, draw)
        predicted_score, predicted_physical = self.predict(pool)
        if self.strength > 0:
            relative = predicted_physical / max(float(predicted_physical.mean()), 1e-6)
            weights = (1.0 - self.strength) + self.strength * relative
            chosen = self.rng.choice(pool_size, size=count, replace=False, p=weights / weights.sum())
        else:
            chosen = np.arange(count)
        return [Candidate(pool[i], float(predicted_score[i]), float(predicted_physical[i])) for i in chosen]

    def _pregate(self, candidates: list[Candidate]) -> tuple[list[np.ndarray], int]:
        recent = self.scores[-512:]
        threshold = float(np.quantile(recent, self.cfg.pregate_quantile))
        below = [i for i, c in enumerate(candidates) if c.predicted_score < threshold]
        max_skip = int(np.floor(self.cfg.pregate_max_skip * len(candidates)))
        # Skip the lowest predictions first, up to the cap.
        below.sort(key=lambda i: candidates[i].predicted_score)
        skipped = set(below[:max_skip])
        kept = [c.context for i, c in enumerate(candidates) if i not in skipped]
        return kept, len(skipped)

    def predict(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predict significance and physical feedback for contexts (M, 6) from remembered ones.

        Returns two float arrays (M,): inverse-distance weighted means over the nearest
        remembered contexts, with each context coordinate scaled by the spread seen so far.
        """
        scale = np.maximum(self.high - self.low, 1e-3)
        diff = (contexts[:, None, :] - self.contexts[None, :, :]) / scale  # (M, N, 6)
        distance = np.sqrt((diff**2).sum(axis=-1))  # (M, N)
        k = min(_NEIGHBOURS, distance.shape[1])
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]  # (M, k)
        weights = 1.0 / (np.take_along_axis(distance, nearest, axis=1) + 0.05)  # (M, k)
        weights /= weights.sum(axis=1, keepdims=True)
        score = (weights * self.scores[nearest]).sum(axis=1)
        physical = (weights * self.physical[nearest]).sum(axis=1)
        return score, physical

    def state_dict(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "contexts": self.contexts.copy(),
            "scores": self.scores.copy(),
            "physical": self.physical.copy(),
            "low": None if self.low is None else self.low.copy(),
            "high": None if self.high is None else self.high.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.contexts = np.asarray(state["contexts"], np.float32)
        self.scores = np.asarray(state["scores"], np.float32)
        self.physical = np.asarray(state["physical"], np.float32)
        self.low = None if state["low"] is None else np.asarray(state["low"], np.float32)
        self.high = None if state["high"] is None else np.asarray(state["high"], np.float32)
