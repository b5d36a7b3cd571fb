"""Physical feedback for simulated episodes from real-robot episodes in similar situations.

`RealFeedbackIndex` indexes real episodes by their context (object start and goal positions, 6-D,
metres). For a simulated episode it takes up to `max_neighbours` nearest real episodes within
`radius_m` and weights neighbour j at context distance d_j with the biweight kernel
w_j = (1 - (d_j / radius)^2)^2, so weight fades to 0 at the radius. No neighbour in range means
no evidence: every neighbour term is 0. A "weighted share" below is sum(w_j x_j) / sum(w_j) over
the neighbours where x_j is known.

| term | definition | default contribution |
|---|---|---|
| `failure` | failure_weight * weighted share of neighbours that failed (success unknown: left out) | up to +0.8 |
| `gap` | min(abs(sim success - weighted real success rate) / gap_scale, gap_cap); 0 when either is unknown | up to +0.7 |
| `unsafe` | unsafe_weight when the sim episode's peak force, or any in-range neighbour's, exceeds force_limit_n; a NaN force reading is missing data, never unsafe | +0.5 |
| `correction` | correction_weight * weighted share of neighbours where a human intervened | up to +0.6 |
| `discrepancy` | discrepancy_weight * min(weighted mean RMS action difference / discrepancy_scale, 1) over neighbours that logged commands | up to +0.3 |

The feedback is the sum of the terms, clipped to [0, 1]. Unsafe force is a yes/no term rather
than a share because one unsafe contact near a situation is reason enough to look at it.

Trajectory discrepancy: both action sequences (normalized to [-1, 1]) are resampled by linear
interpolation onto `discrepancy_points` points of normalized time (first step = 0, last = 1), and
the RMS over points and the 4 action dimensions of their difference is taken. A real episode
logged its commands unless ``info["commands_logged"]`` is False or every step is marked in
``missing["actions"]``; marked steps are left out of its resampling.

Peak force: the norm of the force part (first 3 columns) of `Episode.wrench`, or of
``obs["force"]`` when no wrench was recorded, over steps that are finite and not marked in
``missing["force"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ast_robot.config import FeedbackConfig, SignificanceConfig
from ast_robot.episode import ACTION_DIM, CONTEXT_DIM, Episode
from ast_robot.errors import SignificanceError

logger = logging.getLogger(__name__)

PARTS: tuple[str, ...] = ("failure", "gap", "unsafe", "correction", "discrepancy")
"""Names of the feedback terms, in the order they are summed."""

LABEL_MASK_KEY = "label_mask"
"""`Episode.info` key of the per-step list of bools marking human-corrected labels."""

_CHUNK_ELEMENTS = 4_000_000


@dataclass
class FeedbackResult:
    """Physical feedback for N simulated episodes with its parts.

    Attributes:
        total: Feedback in [0, 1], float (N,).
        parts: Term name (see `PARTS`) -> contribution before clipping, float (N,).
        neighbours: Real episodes within the radius used per episode, int (N,).
    """

    total: np.ndarray
    parts: dict[str, np.ndarray]
    neighbours: np.ndarray


def peak_force_n(episode: Episode) -> float:
    """Largest valid contact-force magnitude in newtons, or NaN when no valid reading exists."""
    if episode.wrench is not None:
        force = episode.wrench[:, :3]
    else:
        force = episode.obs["force"][:, :3]
    magnitude = np.linalg.norm(force.astype(np.float64), axis=1)
    valid = np.isfinite(magnitude)
    missing = episode.missing.get("force")
    if missing is not None:
        valid &= ~missing
    return float(magnitude[valid].max()) if valid.any() else float("nan")


def resample_actions(actions: np.ndarray, points: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Resample actions (T, A) onto `points` points of normalized time, float64 (points, A).

    Steps where `valid` (bool (T,)) is False are left out. Needs at least one valid step.
    """
    actions = np.asarray(actions, dtype=np.float64)
    steps = np.arange(len(actions), dtype=np.float64)
    if valid is not None:
        actions, steps = actions[valid], steps[valid]
    if len(actions) == 1:
        return np.repeat(actions, points, axis=0)
    # Positions on the step axis of the grid points.
    grid = np.linspace(0.0, float(len(valid) - 1 if valid is not None else len(steps) - 1), points)
    upper = np.clip(np.searchsorted(steps, grid, side="right"), 1, len(steps) - 1)
    lower = upper - 1
    span = steps[upper] - steps[lower]
    fraction = np.clip((grid - steps[lower]) / span, 0.0, 1.0)[:, None]
    return actions[lower] * (1.0 - fraction) + actions[upper] * fraction


def commands_mask(episode: Episode) -> np.ndarray | None:
    """Steps of a real episode with a logged command, bool (T,), or None when none were logged."""
    if episode.info.get("commands_logged", True) is False or len(episode) == 0:
        return None
    missing = episode.missing.get("actions")
    valid = np.ones(len(episode), dtype=bool) if missing is None else ~missing
    return valid if valid.any() else None


def correction_mask(episode: Episode) -> np.ndarray:
    """Steps whose action label is a human correction, bool (T,).

    Uses ``info["label_mask"]`` when `RealFeedbackIndex.corrections` set it, else the
    intervention flags.
    """
    mask = episode.info.get(LABEL_MASK_KEY)
    if mask is not None:
        return np.asarray(mask, dtype=bool)
    return np.asarray(episode.interventions, dtype=bool)


class RealFeedbackIndex:
    """Nearest-neighbour index of real episodes by context (see the module docstring).

    Build it with `from_episodes`.
    """

    def __init__(self, episodes: Sequence[Episode], cfg: FeedbackConfig):
        self.cfg = cfg
        self.episodes = list(episodes)
        for episode in self.episodes:
            if episode.source != "real":
                raise SignificanceError(
                    f"episode {episode.id} has source {episode.source!r}; RealFeedbackIndex is built "
                    f"from real-robot episodes only"
                )
        m = len(self.episodes)
        self.contexts = (
            np.stack([ep.context for ep in self.episodes]).astype(np.float64)
            if m else np.zeros((0, CONTEXT_DIM))
        )
        # success: 1.0, 0.0, or NaN when unknown.
        self.success = np.array(
            [np.nan if ep.success is None else float(ep.success) for ep in self.episodes], dtype=np.float64
        )
        self.peak_force = np.array([peak_force_n(ep) for ep in self.episodes], dtype=np.float64)
        # unsafe: True only for a valid reading above the limit; NaN forces compare False.
        self.unsafe = self.peak_force > cfg.force_limit_n
        self.corrected = np.array([bool(np.any(ep.interventions)) for ep in self.episodes], dtype=bool)

        self.has_commands = np.zeros(m, dtype=bool)
        self.command_grids = np.zeros((m, cfg.discrepancy_points, ACTION_DIM))
        for j, episode in enumerate(self.episodes):
            valid = commands_mask(episode)
            if valid is not None:
                self.has_commands[j] = True
                self.command_grids[j] = resample_actions(episode.actions, cfg.discrepancy_points, valid)

        missing_force = int(np.isnan(self.peak_force).sum())
        logger.info(
            "real feedback index: %d episodes (%d failed, %d with human corrections, %d unsafe, "
            "%d without valid force readings, %d with logged commands)",
            m, int(np.sum(self.success == 0.0)), int(self.corrected.sum()), int(self.unsafe.sum()),
            missing_force, int(self.has_commands.sum()),
        )

    @classmethod
    def from_episodes(
        cls, real_episodes: Sequence[Episode], cfg: SignificanceConfig | FeedbackConfig
    ) -> RealFeedbackIndex:
        """Build the index from real episodes; `cfg` is the significance section or its feedback part."""
        feedback_cfg = cfg.feedback if isinstance(cfg, SignificanceConfig) else cfg
        if not real_episodes:
            logger.warning("real feedback index built from 0 real episodes: no simulated episode has neighbours")
        return cls(real_episodes, feedback_cfg)

    def __len__(self) -> int:
        return len(self.episodes)

    # -- feedback --------------------------------------------------------------------------

    def feedback(self, sim_episodes: Sequence[Episode]) -> np.ndarray:
        """Physical feedback in [0, 1] for each simulated episode, float (N,)."""
        return self.explain(sim_episodes).total

    def explain(self, sim_episodes: Sequence[Episode]) -> FeedbackResult:
        """Physical feedback with every term and the neighbour counts."""
        n = len(sim_episodes)
        contexts = (
            np.stack([ep.context for ep in sim_episodes]).astype(np.float64) if n else np.zeros((0, CONTEXT_DIM))
        )
        success = np.array(
            [np.nan if ep.success is None else float(ep.success) for ep in sim_episodes], dtype=np.float64
        )
        peak_forces = np.array([peak_force_n(ep) for ep in sim_episodes], dtype=np.float64)
        action_grids = None
        if self._uses_discrepancy():
            action_grids = np.zeros((n, self.cfg.discrepancy_points, ACTION_DIM))
            for i, episode in enumerate(sim_episodes):
                if len(episode):
                    action_grids[i] = resample_actions(episode.actions, self.cfg.discrepancy_points)
        return self.feedback_arrays(contexts, success, peak_forces, action_grids)

    def feedback_arrays(
        self,
        contexts: np.ndarray,
        success: np.ndarray,
        peak_forces_n: np.ndarray,
        action_grids: np.ndarray | None = None,
    ) -> FeedbackResult:
        """Vectorized feedback from per-episode arrays.

        Args:
            contexts: Sim contexts in metres, float (N, 6).
            success: Sim success 1/0, NaN when unknown, float (N,).
            peak_forces_n: Sim peak contact force in newtons, NaN when unknown, float (N,).
            action_grids: Sim actions resampled with `resample_actions`, float (N, P, 4), or None
                to leave out the discrepancy term.
        """
        cfg = self.cfg
        contexts = np.asarray(contexts, dtype=np.float64)
        n = len(contexts)
        if contexts.shape != (n, CONTEXT_DIM):
            raise SignificanceError(f"contexts have shape {contexts.shape}, expected ({n}, {CONTEXT_DIM})")
        index, weight = self._neighbours(contexts)  # each (N, K); weight 0 = no neighbour

        failed = np.where(np.isnan(self.success), np.nan, 1.0 - self.success)
        failure_share = _weighted_share(weight, failed, index)
        real_success = _weighted_share(weight, self.success, index)
        correction_share = _weighted_share(weight, self.corrected.astype(np.float64), index)

        parts = {name: np.zeros(n) for name in PARTS}
        parts["failure"] = cfg.failure_weight * np.nan_to_num(failure_share, nan=0.0)
        gap = np.abs(np.asarray(success, dtype=np.float64) - real_success)
        parts["gap"] = np.nan_to_num(np.minimum(gap / cfg.gap_scale, cfg.gap_cap), nan=0.0)
        parts["correction"] = cfg.correction_weight * np.nan_to_num(correction_share, nan=0.0)

        sim_unsafe = np.asarray(peak_forces_n, dtype=np.float64) > cfg.force_limit_n
        real_unsafe = ((weight > 0) & self.unsafe[index]).any(axis=1) if len(self) else np.zeros(n, bool)
        parts["unsafe"] = cfg.unsafe_weight * (sim_unsafe | real_unsafe)

        if action_grids is not None and self._uses_discrepancy():
            parts["discrepancy"] = cfg.discrepancy_weight * self._discrepancy(action_grids, index, weight)

        total = np.clip(sum(parts[name] for name in PARTS), 0.0, 1.0)
        return FeedbackResult(total=total, parts=parts, neighbours=(weight > 0).sum(axis=1))

    def _uses_discrepancy(self) -> bool:
        return self.cfg.discrepancy_weight > 0.0 and bool(self.has_commands.any())

    def _neighbours(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices (N, K) of the K nearest real episodes and their kernel weights (N, K)."""
        n, m = len(contexts), len(self)
        k = min(self.cfg.max_neighbours, m)
        if k == 0:
            return np.zeros((n, 1), dtype=np.int64), np.zeros((n, 1))
        index = np.empty((n, k), dtype=np.int64)
        distance = np.empty((n, k))
        rows = max(1, _CHUNK_ELEMENTS // m)
        for start in range(0, n, rows):
            chunk = contexts[start:start + rows]
            # (rows, M) Euclidean context distances in metres.
            d = np.sqrt(((chunk[:, None, :] - self.contexts[None, :, :]) ** 2).sum(axis=2))
            nearest = np.argpartition(d, k - 1, axis=1)[:, :k] if k < m else np.broadcast_to(np.arange(m), d.shape)
            index[start:start + rows] = nearest
            distance[start:start + rows] = np.take_along_axis(d, nearest, axis=1)
        ratio = distance / self.cfg.radius_m
        weight = np.where(ratio < 1.0, (1.0 - ratio**2) ** 2, 0.0)
        return index, weight

    def _discrepancy(self, action_grids: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Weighted mean RMS action difference to neighbours with commands, scaled to [0, 1], (N,)."""
        action_grids = np.asarray(action_grids, dtype=np.float64)
        # (N, K, P, A) differences between each sim grid and its neighbours' command grids.
        difference = action_grids[:, None] - self.command_grids[index]
        rms = np.sqrt((difference**2).mean(axis=(2, 3)))
        usable = weight * self.has_commands[index]
        total_weight = usable.sum(axis=1)
        mean_rms = np.divide(
            (usable * rms).sum(axis=1), total_weight, out=np.zeros(len(index)), where=total_weight > 0
        )
        return np.minimum(mean_rms / self.cfg.discrepancy_scale, 1.0)

    # -- human corrections as training data ------------------------------------------------

    def corrections(self) -> list[Episode]:
        """Return the real episodes where a human intervened, labelled for the corrected steps.

        Each returned episode keeps all its steps, so the policy gets the history before a
        correction as input. `action_labels` are the episode's own labels where it has them,
        else its executed actions (the human's commands while the human is in control).
        ``info["label_mask"]`` (see `correction_mask`) marks the corrected steps, and only those
        should be trained on.
        """
        out = []
        for episode, corrected in zip(self.episodes, self.corrected):
            if not corrected:
                continue
            labels = episode.action_labels if episode.action_labels is not None else episode.actions
            info = dict(episode.info)
            info[LABEL_MASK_KEY] = np.asarray(episode.interventions, dtype=bool).tolist()
            info["label_source"] = "human_correction"
            out.append(episode.replace(action_labels=labels.copy(), info=info))
        return out


def _weighted_share(weight: np.ndarray, values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """sum(w * x) / sum(w) over neighbours with known (non-NaN) x, NaN without any, (N,)."""
    if len(values) == 0:
        return np.full(len(weight), np.nan)
    x = values[index]
    known = ~np.isnan(x)
    w = np.where(known, weight, 0.0)
    total = w.sum(axis=1)
    weighted = (w * np.where(known, x, 0.0)).sum(axis=1)
    return np.divide(weighted, total, out=np.full(len(weight), np.nan), where=total > 0)
