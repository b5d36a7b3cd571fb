"""Significance of episodes (or image samples): which ones are worth the large model's compute.

`SignificanceModel.score` maps per-item signals to a score in [0, 1]:

    score = familiarity * sum_c w_c * component_c

Definitions (N items per batch; "window" is the sliding window of the `window` most recent raw
values of a component, the current batch included):

| component / factor | raw signal | in [0, 1] by |
|---|---|---|
| `learning_value` | mean over steps of `pred_error_norm * hidden_norm`: the norm of the policy's action error times the norm of its last hidden features, an upper bound on the gradient norm of the output layer (for a linear layer the gradient is their outer product) | robust normalization over the window |
| `difficulty` | mean over steps of `imitation_loss`, the policy's loss against the action labels | robust normalization |
| `novelty` | Euclidean distance from the item's features (context, domain parameters, outcome summary; standardized by the memory's per-feature mean and standard deviation) to its k-th nearest neighbour among a uniform reservoir sample of items already trained on; 1 for every item while nothing was trained on | robust normalization |
| `uncertainty` | mean over steps of `action_std`, the policy's predicted action standard deviation | robust normalization |
| `physical` | `RealFeedbackIndex` feedback from nearby real-robot episodes, already in [0, 1] with an absolute meaning (0 = no evidence), so it is only clipped | clip to [0, 1]; 0 without real logs |
| familiarity factor | n = times a context was trained on, counting contexts in one grid cell of `familiarity_cell_m` as the same | floor + (1 - floor) / (1 + n / half_count): 1 for n = 0, falling monotonically to the floor |
| curriculum scale | training progress p in [0, 1] | `curriculum_scales[i]` where i = breakpoints passed by p (default 0.5x, 1.0x, 1.5x) |

Robust normalization: ``rank`` (default) gives the mid-rank percentile of the value in the window,
(less + (less_or_equal - 1)) / (2 * (n - 1)). The window minimum maps to 0 and its maximum to 1,
and an outlier cannot squash the other values. ``quantile`` maps the window's `quantile_low`
quantile to 0 and `quantile_high` to 1 linearly, clipped. A NaN raw value (a missing step statistic) gets the
neutral value 0.5 and does not enter the window.

Weights: the modality's weights from config (robot 0.20, 0.25, 0.15, 0.10, 0.30; vision 0.35,
0.25, 0.20, 0.20, 0). Without real logs the physical weight goes to the other four in proportion
to their weights. The curriculum then multiplies the difficulty weight by its scale and all
weights are divided by their new sum, so they still sum to 1 and the score stays in [0, 1]. The
scale is thus the factor by which difficulty's weight grows relative to every other weight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from threadpoolctl import ThreadpoolController

from ast_robot.config import ComponentWeights, SignificanceConfig
from ast_robot.episode import Episode
from ast_robot.errors import SignificanceError

logger = logging.getLogger(__name__)

COMPONENTS: tuple[str, ...] = ("learning_value", "difficulty", "novelty", "uncertainty", "physical")
"""Component names, in the order of the config weights."""

NORMALIZED_COMPONENTS: tuple[str, ...] = ("learning_value", "difficulty", "novelty", "uncertainty")
"""Components that are robustly normalized over the window (physical is absolute)."""

STEP_STAT_KEYS: tuple[str, ...] = ("pred_error_norm", "hidden_norm", "action_std", "imitation_loss")
"""`Episode.step_stats` keys the policy writes while acting."""

OUTCOME_FEATURES: tuple[str, ...] = ("success", "steps", "peak_force_n")
"""Outcome summary appended to the novelty features (success 1/0, NaN when unknown)."""

NEUTRAL = 0.5
_STATE_VERSION = 1


# ---------------------------------------------------------------------------------------------
# Inputs and results
# ---------------------------------------------------------------------------------------------


@dataclass
class SignificanceInputs:
    """Raw per-item signals of a batch of N items.

    Attributes:
        learning_value: Mean per-step `pred_error_norm * hidden_norm`, float (N,); NaN = missing.
        difficulty: Mean per-step imitation loss, float (N,); NaN = missing.
        uncertainty: Mean predicted action standard deviation, float (N,); NaN = missing.
        novelty_features: Feature vectors for the novelty search, float (N, F), or None. NaN
            entries count as the feature's mean.
        physical: Physical feedback in [0, 1], float (N,), or None without real logs.
        context: Object start and goal positions in metres, float (N, 6), or None (no familiarity
            discount, e.g. image samples).
        novelty: Precomputed raw novelty, float (N,), or None; when given it is used instead of
            the nearest-neighbour search on `novelty_features`.
    """

    learning_value: np.ndarray
    difficulty: np.ndarray
    uncertainty: np.ndarray
    novelty_features: np.ndarray | None = None
    physical: np.ndarray | None = None
    context: np.ndarray | None = None
    novelty: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.learning_value = _as_vector("learning_value", self.learning_value)
        n = len(self.learning_value)
        self.difficulty = _as_vector("difficulty", self.difficulty, n)
        self.uncertainty = _as_vector("uncertainty", self.uncertainty, n)
        if self.novelty is not None:
            self.novelty = _as_vector("novelty", self.novelty, n)
        if self.physical is not None:
            self.physical = _as_vector("physical", self.physical, n)
            if not np.isfinite(self.physical).all():
                raise SignificanceError("physical feedback contains NaN or Inf; use 0 for 'no evidence'")
        if self.novelty_features is not None:
            self.novelty_features = _as_matrix("novelty_features", self.novelty_features, n)
        if self.context is not None:
            self.context = _as_matrix("context", self.context, n)
            if not np.isfinite(self.context).all():
                raise SignificanceError("context contains NaN or Inf; contexts are positions in metres")

    def __len__(self) -> int:
        return len(self.learning_value)

    def subset(self, selection: np.ndarray) -> SignificanceInputs:
        """Select items by a boolean mask (N,) or an index array, e.g. the admitted ones."""

        def pick(values):
            return None if values is None else values[selection]

        return SignificanceInputs(
            learning_value=self.learning_value[selection],
            difficulty=self.difficulty[selection],
            uncertainty=self.uncertainty[selection],
            novelty_features=pick(self.novelty_features),
            physical=pick(self.physical),
            context=pick(self.context),
            novelty=pick(self.novelty),
        )

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[Episode],
        *,
        physical: np.ndarray | None = None,
        domain_keys: Sequence[str] | None = None,
    ) -> SignificanceInputs:
        """Build inputs from episodes whose `step_stats` the policy filled while acting.

        A missing step statistic gives NaN (scored neutral). `domain_keys` fixes the order of the
        domain parameters in the novelty features (default: the sorted union over `episodes`).
        """
        stats = episode_step_signals(episodes)
        return cls(
            learning_value=stats["learning_value"],
            difficulty=stats["difficulty"],
            uncertainty=stats["uncertainty"],
            novelty_features=episode_features(episodes, domain_keys),
            physical=physical,
            context=np.stack([ep.context for ep in episodes]) if episodes else np.zeros((0, 6)),
        )


@dataclass
class ScoreResult:
    """Scores of a batch of N items with everything that produced them.

    Attributes:
        score: Final score in [0, 1], float (N,).
        components: Component name -> value in [0, 1] after normalization, float (N,).
        raw: Component name -> raw signal before normalization, float (N,).
        weights: Effective weight per component (redistribution and curriculum applied).
        factors: ``familiarity`` (N,) and ``curriculum_scale`` (a float).
        weighted_sum: Weighted sum of the components before the familiarity factor, float (N,).
    """

    score: np.ndarray
    components: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    weights: dict[str, float]
    factors: dict[str, np.ndarray | float]
    weighted_sum: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    def explain(self, index: int) -> dict[str, float]:
        """Return one item's score, components and factors as plain floats (for logs)."""
        row = {"score": float(self.score[index]), "weighted_sum": float(self.weighted_sum[index])}
        for name, values in self.components.items():
            row[name] = float(values[index])
        row["familiarity"] = float(self.factors["familiarity"][index])
        row["curriculum_scale"] = float(self.factors["curriculum_scale"])
        return row

    def metrics(self) -> dict[str, float]:
        """Batch means under the ``significance/`` namespace."""
        if len(self) == 0:
            return {}
        out = {"significance/score_mean": float(self.score.mean())}
        for name, values in self.components.items():
            out[f"significance/{name}_mean"] = float(values.mean())
        out["significance/familiarity_mean"] = float(np.mean(self.factors["familiarity"]))
        out["significance/curriculum_scale"] = float(self.factors["curriculum_scale"])
        return out


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def weights_dict(weights: ComponentWeights | Mapping[str, float]) -> dict[str, float]:
    """Component name -> weight from a `ComponentWeights` or a mapping."""
    if isinstance(weights, ComponentWeights):
        return {f.name: float(getattr(weights, f.name)) for f in fields(weights)}
    unknown = sorted(set(weights) - set(COMPONENTS))
    if unknown:
        raise SignificanceError(f"unknown components {unknown}; expected names from {list(COMPONENTS)}")
    return {name: float(weights.get(name, 0.0)) for name in COMPONENTS}


def combine(
    components: Mapping[str, np.ndarray], weights: ComponentWeights | Mapping[str, float]
) -> np.ndarray:
    """Weighted sum of component values, with no normalization, float (N,).

    A component may be left out of `components` only when its weight is 0.
    """
    weights = weights_dict(weights)
    total = None
    for name, weight in weights.items():
        if name not in components:
            if weight != 0.0:
                raise SignificanceError(f"component '{name}' has weight {weight} but no values")
            continue
        term = weight * np.asarray(components[name], dtype=np.float64)
        total = term if total is None else total + term
    if total is None:
        raise SignificanceError("no components given")
    return total


def effective_weights(
    weights: ComponentWeights | Mapping[str, float], *, has_real_feedback: bool, curriculum_scale: float
) -> dict[str, float]:
    """Apply the physical-weight redistribution and the curriculum scale; the result sums to 1."""
    w = weights_dict(weights)
    if not has_real_feedback and w["physical"] > 0.0:
        rest = 1.0 - w["physical"]
        w = {name: (0.0 if name == "physical" else value / rest) for name, value in w.items()}
    w["difficulty"] *= curriculum_scale
    total = sum(w.values())
    if total <= 0.0:
        raise SignificanceError(f"all effective weights are 0 ({w}); give a learning-signal weight > 0")
    return {name: value / total for name, value in w.items()}


def curriculum_scale(cfg: SignificanceConfig, progress: float) -> float:
    """Difficulty-weight multiplier at training progress `progress` in [0, 1]."""
    if not 0.0 <= progress <= 1.0 or not np.isfinite(progress):
        raise SignificanceError(f"progress must be a fraction of training in [0, 1], got {progress}")
    index = int(np.searchsorted(np.asarray(cfg.curriculum_breakpoints), progress, side="right"))
    return float(cfg.curriculum_scales[index])


def familiarity_factor(counts: np.ndarray, cfg: SignificanceConfig) -> np.ndarray:
    """Familiarity factor for times-trained counts, float (N,); 1 at 0, down to the floor."""
    floor = cfg.familiarity_floor
    return floor + (1.0 - floor) / (1.0 + np.asarray(counts, dtype=np.float64) / cfg.familiarity_half_count)


def rank_normalize(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of each value among `reference`, float (N,).

    `reference` must end with `values` (the window followed by the batch). Ties share their mean
    rank; the reference minimum maps to 0 and its maximum to 1; a single-value reference gives 0.5.
    """
    n_ref, n = len(reference), len(values)
    if n_ref < 2:
        return np.full(n, NEUTRAL)
    # Any sort order works: tied values get their group's mean rank below.
    order = np.argsort(reference)
    ordered = reference[order]
    # Tie groups in sorted order: each starts where the value changes.
    starts_group = np.empty(n_ref, dtype=bool)
    starts_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
    group = np.cumsum(starts_group) - 1
    first = np.flatnonzero(starts_group)  # values below the group
    after = np.append(first[1:], n_ref)  # values at or below the group
    ranks = np.empty(n_ref)
    ranks[order] = (first[group] + after[group] - 1) / (2.0 * (n_ref - 1))
    return ranks[n_ref - n:]


def quantile_normalize(values: np.ndarray, reference: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map the reference's `low` quantile to 0 and its `high` quantile to 1, clipped, float (N,)."""
    q_low, q_high = np.quantile(reference, [low, high])
    spread = q_high - q_low
    if not spread > 1e-12:
        return np.full(len(values), NEUTRAL)
    return np.clip((values - q_low) / spread, 0.0, 1.0)


def inputs_from_episodes(
    episodes: Sequence[Episode],
    *,
    physical: np.ndarray | None = None,
    domain_keys: Sequence[str] | None = None,
) -> SignificanceInputs:
    """Same as `SignificanceInputs.from_episodes`."""
    return SignificanceInputs.from_episodes(episodes, physical=physical, domain_keys=domain_keys)


def episode_step_signals(episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
    """Per-episode raw learning value, difficulty and uncertainty from `Episode.step_stats`.

    Returns float64 (N,) arrays; NaN where an episode lacks the statistic or has no finite step.
    """
    n = len(episodes)
    out = {name: np.full(n, np.nan) for name in ("learning_value", "difficulty", "uncertainty")}
    for i, ep in enumerate(episodes):
        stats = ep.step_stats
        if "pred_error_norm" in stats and "hidden_norm" in stats:
            out["learning_value"][i] = _finite_mean(
                stats["pred_error_norm"].astype(np.float64) * stats["hidden_norm"]
            )
        if "imitation_loss" in stats:
            out["difficulty"][i] = _finite_mean(stats["imitation_loss"])
        if "action_std" in stats:
            out["uncertainty"][i] = _finite_mean(stats["action_std"])
    return out


def episode_features(episodes: Sequence[Episode], domain_keys: Sequence[str] | None = None) -> np.ndarray:
    """Novelty features: context (6), domain parameters, outcome summary, float64 (N, F).

    The outcome summary is `OUTCOME_FEATURES`: success as 1/0 (NaN when unknown), the number of
    steps, and the peak contact force in newtons (NaN without force data). A domain parameter an
    episode lacks is NaN, which the novelty search treats as the feature's mean.
    """
    if domain_keys is None:
        domain_keys = sorted({key for ep in episodes for key in ep.domain_params})
    width = 6 + len(domain_keys) + len(OUTCOME_FEATURES)
    features = np.full((len(episodes), width), np.nan)
    for i, ep in enumerate(episodes):
        features[i, :6] = ep.context
        for j, key in enumerate(domain_keys):
            if key in ep.domain_params:
                features[i, 6 + j] = ep.domain_params[key]
        offset = 6 + len(domain_keys)
        if ep.success is not None:
            features[i, offset] = float(ep.success)
        features[i, offset + 1] = len(ep)
        peak = ep.peak_force_n
        if peak is not None:
            features[i, offset + 2] = peak
    return features


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class SignificanceModel:
    """Scores batches of items; keeps the normalization window, novelty memory and familiarity.

    Args:
        cfg: Significance settings.
        modality: ``"robot"`` (episodes) or ``"vision"`` (image samples); picks the weights.
        has_real_feedback: Whether real-robot logs back the physical component. Without them
            the physical component is 0 and its weight goes to the others.
        seed: Seed of the reservoir sampling of the novelty memory.
    """

    def __init__(
        self,
        cfg: SignificanceConfig,
        *,
        modality: str = "robot",
        has_real_feedback: bool = False,
        seed: int = 0,
    ):
        if modality not in ("robot", "vision"):
            raise SignificanceError(f"modality must be 'robot' or 'vision', got {modality!r}")
        self.cfg = cfg
        self.modality = modality
        self.has_real_feedback = bool(has_real_feedback)
        self.base_weights = weights_dict(cfg.robot_weights if modality == "robot" else cfg.vision_weights)
        self.rng = np.random.default_rng(seed)
        self.windows = {name: np.zeros(0) for name in NORMALIZED_COMPONENTS}
        self.memory = np.zeros((0, 0))
        self._memory_scale: tuple[np.ndarray, np.ndarray] | None = None
        self.memory_seen = 0
        self.cell_keys = np.zeros(0, dtype=np.uint64)
        self.cell_counts = np.zeros(0, dtype=np.int64)
        self.domain_keys: list[str] | None = None
        self._warned_no_features = False
        self._warned_no_memory = False
        self._scored_features = False

    # -- building inputs -------------------------------------------------------------------

    def inputs_from_episodes(
        self, episodes: Sequence[Episode], *, physical: np.ndarray | None = None
    ) -> SignificanceInputs:
        """`SignificanceInputs.from_episodes` with this model's fixed domain-parameter order."""
        if self.domain_keys is None:
            self.domain_keys = sorted({key for ep in episodes for key in ep.domain_params})
        return SignificanceInputs.from_episodes(episodes, physical=physical, domain_keys=self.domain_keys)

    # -- scoring ---------------------------------------------------------------------------

    def weights(self, progress: float) -> dict[str, float]:
        """Effective component weights at training progress `progress`."""
        return effective_weights(
            self.base_weights,
            has_real_feedback=self.has_real_feedback,
            curriculum_scale=curriculum_scale(self.cfg, progress),
        )

    def score(
        self,
        batch: SignificanceInputs,
        *,
        progress: float,
        normalize: bool = True,
        update_window: bool = True,
    ) -> ScoreResult:
        """Score a batch of N items.

        Args:
            batch: Raw signals of the items.
            progress: Fraction of training done, in [0, 1] (drives the curriculum scale).
            normalize: False uses the raw learning value, difficulty, novelty and uncertainty as
                the components directly; they must then already lie in [0, 1].
            update_window: False scores without adding the batch to the normalization window
                (for candidates that may never be run).

        Raises:
            SignificanceError: If real feedback is expected but missing, or raw values lie
                outside [0, 1] with ``normalize=False``.
        """
        scale = curriculum_scale(self.cfg, progress)
        weights = self.weights(progress)
        raw = {
            "learning_value": batch.learning_value,
            "difficulty": batch.difficulty,
            "novelty": self._raw_novelty(batch),
            "uncertainty": batch.uncertainty,
        }

        components: dict[str, np.ndarray] = {}
        for name in NORMALIZED_COMPONENTS:
            if name == "novelty" and raw["novelty"] is None:
                # Nothing trained on yet: every item is maximally novel.
                raw["novelty"] = np.full(len(batch), np.inf)
                components["novelty"] = np.ones(len(batch))
            elif normalize:
                components[name] = self._normalize(name, raw[name], update_window)
            else:
                components[name] = _checked_unit_interval(name, raw[name])
        components["physical"] = self._physical(batch)
        raw["physical"] = components["physical"]

        weighted_sum = combine(components, weights)
        familiarity = self._familiarity(batch)
        score = np.clip(weighted_sum * familiarity, 0.0, 1.0)
        return ScoreResult(
            score=score,
            components=components,
            raw=raw,
            weights=weights,
            factors={"familiarity": familiarity, "curriculum_scale": scale},
            weighted_sum=weighted_sum,
        )

    def _normalize(self, name: str, values: np.ndarray, update_window: bool) -> np.ndarray:
        """Robust normalization of one component against its window plus this batch."""
        finite = np.isfinite(values)
        reference = np.concatenate([self.windows[name], values[finite]])
        out = np.full(len(values), NEUTRAL)
        if finite.any():
            if self.cfg.normalization == "rank":
                out[finite] = rank_normalize(values[finite], reference)
            else:
                out[finite] = quantile_normalize(
                    values[finite], reference, self.cfg.quantile_low, self.cfg.quantile_high
                )
        if update_window:
            self.windows[name] = reference[-self.cfg.window:]
        return out

    def _physical(self, batch: SignificanceInputs) -> np.ndarray:
        n = len(batch)
        if not self.has_real_feedback:
            return np.zeros(n)
        if batch.physical is None:
            raise SignificanceError(
                "this model was built with has_real_feedback=True, so every batch needs physical "
                "feedback; compute it with RealFeedbackIndex.feedback"
            )
        return np.clip(batch.physical, 0.0, 1.0)

    def _familiarity(self, batch: SignificanceInputs) -> np.ndarray:
        if batch.context is None or len(self.cell_keys) == 0:
            return np.ones(len(batch))
        return familiarity_factor(self.times_trained(batch.context), self.cfg)

    def times_trained(self, contexts: np.ndarray) -> np.ndarray:
        """Count how often each context's grid cell was trained on, int64 (N,)."""
        keys = _cell_keys(np.asarray(contexts, dtype=np.float64), self.cfg.familiarity_cell_m)
        if len(self.cell_keys) == 0:
            return np.zeros(len(keys), dtype=np.int64)
        position = np.minimum(np.searchsorted(self.cell_keys, keys), len(self.cell_keys) - 1)
        found = self.cell_keys[position] == keys
        return np.where(found, self.cell_counts[position], 0)

    def _raw_novelty(self, batch: SignificanceInputs) -> np.ndarray | None:
        """Raw novelty (N,): k-th nearest neighbour distance in the trained-feature memory.

        Returns None while the memory is empty.
        """
        n = len(batch)
        if batch.novelty is not None:
            return batch.novelty
        if batch.novelty_features is not None:
            self._scored_features = True
        if batch.novelty_features is None:
            if not self._warned_no_features:
                logger.warning("significance inputs carry no novelty features; novelty is scored neutral (0.5)")
                self._warned_no_features = True
            return np.full(n, np.nan)
        if len(self.memory) == 0:
            return None
        features = batch.novelty_features
        if features.shape[1] != self.memory.shape[1]:
            raise SignificanceError(
                f"novelty features have {features.shape[1]} columns but the trained memory has "
                f"{self.memory.shape[1]}; build every batch with the same feature layout"
            )
        return knn_distance(features, self.memory, self.cfg.novelty_k, scale=self._memory_scale)

    # -- memory of trained items -----------------------------------------------------------

    def mark_trained(
        self,
        contexts: SignificanceInputs | np.ndarray | None,
        features: np.ndarray | None = None,
    ) -> None:
        """Record items that updated the policy: familiarity counts and the novelty memory.

        Args:
            contexts: Contexts in metres, float (N, 6), or None; or a `SignificanceInputs`,
                whose `context` and `novelty_features` are used.
            features: Novelty features, float (N, F), or None.
        """
        if isinstance(contexts, SignificanceInputs):
            features = contexts.novelty_features if features is None else features
            contexts = contexts.context
        if features is None and self._scored_features and not self._warned_no_memory:
            logger.warning(
                "mark_trained got no novelty features, so the novelty memory stays empty and "
                "novelty scores 1 for every item; pass the admitted SignificanceInputs instead"
            )
            self._warned_no_memory = True
        if contexts is not None:
            self._count_contexts(np.asarray(contexts, dtype=np.float64))
        if features is not None:
            self._add_to_memory(np.asarray(features, dtype=np.float64))

    def _count_contexts(self, contexts: np.ndarray) -> None:
        if contexts.ndim != 2:
            raise SignificanceError(f"contexts must have shape (N, 6), got {contexts.shape}")
        keys = _cell_keys(contexts, self.cfg.familiarity_cell_m)
        all_keys = np.concatenate([self.cell_keys, keys])
        all_counts = np.concatenate([self.cell_counts, np.ones(len(keys), dtype=np.int64)])
        self.cell_keys, inverse = np.unique(all_keys, return_inverse=True)
        self.cell_counts = np.bincount(inverse.ravel(), weights=all_counts).astype(np.int64)

    def _add_to_memory(self, features: np.ndarray) -> None:
        """Reservoir sampling: the memory stays a uniform sample of every trained item."""
        if features.ndim != 2:
            raise SignificanceError(f"novelty features must have shape (N, F), got {features.shape}")
        if len(self.memory) and features.shape[1] != self.memory.shape[1]:
            raise SignificanceError(
                f"novelty features have {features.shape[1]} columns but the memory has "
                f"{self.memory.shape[1]}"
            )
        capacity = self.cfg.novelty_memory
        memory = list(self.memory) if len(self.memory) else []
        for row in features:
            if len(memory) < capacity:
                memory.append(row)
            else:
                slot = int(self.rng.integers(0, self.memory_seen + 1))
                if slot < capacity:
                    memory[slot] = row
            self.memory_seen += 1
        self.memory = np.array(memory, dtype=np.float64).reshape(len(memory), features.shape[1])
        self._memory_scale = column_scale(self.memory)

    # -- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Window, memory, familiarity counts and generator state as plain Python values."""
        return {
            "version": _STATE_VERSION,
            "windows": {name: values.tolist() for name, values in self.windows.items()},
            "memory": self.memory.tolist(),
            "memory_width": int(self.memory.shape[1]) if self.memory.ndim == 2 else 0,
            "memory_seen": self.memory_seen,
            "cell_keys": [int(key) for key in self.cell_keys],
            "cell_counts": self.cell_counts.tolist(),
            "domain_keys": self.domain_keys,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by `state_dict`."""
        missing = [key for key in ("version", "windows", "memory", "memory_seen", "cell_keys", "cell_counts", "rng")
                   if key not in state]
        if missing:
            raise SignificanceError(f"significance state is missing keys {missing}")
        if state["version"] != _STATE_VERSION:
            raise SignificanceError(
                f"significance state version {state['version']} is not supported (expected {_STATE_VERSION})"
            )
        self.windows = {name: np.asarray(state["windows"][name], dtype=np.float64) for name in NORMALIZED_COMPONENTS}
        width = int(state.get("memory_width", 0))
        self.memory = np.asarray(state["memory"], dtype=np.float64).reshape(-1, width) if state["memory"] else np.zeros((0, 0))
        self._memory_scale = column_scale(self.memory) if len(self.memory) else None
        self.memory_seen = int(state["memory_seen"])
        self.cell_keys = np.asarray(state["cell_keys"], dtype=np.uint64)
        self.cell_counts = np.asarray(state["cell_counts"], dtype=np.int64)
        self.domain_keys = state.get("domain_keys")
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def column_scale(memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of the finite entries, each float (F,).

    A column without finite entries gets mean 0; a constant column gets standard deviation 1.
    """
    finite = np.isfinite(memory)
    count = finite.sum(axis=0)
    values = np.where(finite, memory, 0.0)
    mean = values.sum(axis=0) / np.maximum(count, 1)
    variance = (np.where(finite, memory - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1)
    std = np.sqrt(variance)
    return mean, np.where(std > 1e-9, std, 1.0)


def knn_distance(
    queries: np.ndarray,
    memory: np.ndarray,
    k: int,
    *,
    scale: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Distance from each query to its k-th nearest memory row, after standardization, (N,).

    Features are standardized by the memory's per-column mean and standard deviation (`scale`,
    computed with `column_scale` when not given), so units (metres, kilograms, step counts) do
    not dominate; NaN entries become the column mean. With fewer than k rows in memory the
    farthest row is used.
    """
    mean, std = column_scale(memory) if scale is None else scale
    a = np.nan_to_num((queries - mean) / std, nan=0.0).astype(np.float32)
    b = np.nan_to_num((memory - mean) / std, nan=0.0).astype(np.float32)

    kth = min(k, len(b)) - 1
    # |a - b|^2 = |a|^2 + (|b|^2 - 2 a.b); |a|^2 is constant along a row, so it is added after
    # the selection. Row chunks keep the (rows, M) float32 block in cache.
    minus_two_bt = -2.0 * b.T
    b_squared = (b * b).sum(axis=1)
    selected = np.empty(len(a))
    with _single_thread_blas():
        for start in range(0, len(a), _KNN_CHUNK_ROWS):
            partial = a[start:start + _KNN_CHUNK_ROWS] @ minus_two_bt
            partial += b_squared
            selected[start:start + _KNN_CHUNK_ROWS] = np.partition(partial, kth, axis=1)[:, kth]
    squared = selected + (a.astype(np.float64) ** 2).sum(axis=1)
    return np.sqrt(np.maximum(squared, 0.0))


_KNN_CHUNK_ROWS = 1024
_blas_controller: ThreadpoolController | None = None


def _single_thread_blas():
    """Context that limits BLAS libraries to one thread.

    These products are small (rows x memory x features). On 2 cores busy with other work, a
    (1000 x 12) @ (12 x 256) float32 product took 9-14 ms with OpenBLAS 0.3.31 on 2 threads and
    0.3-0.4 ms on 1 thread. NOTE: the limit is process-wide while it lasts, so BLAS calls in
    other threads run single-threaded during it too.
    """
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


def _cell_keys(contexts: np.ndarray, cell_m: float) -> np.ndarray:
    """Hash each context's grid cell to one uint64 key, (N,).

    Each cell coordinate is folded in with the splitmix64 mixing steps, so distinct cells
    collide about as often as random 64-bit keys would (an estimate: about C^2 / 2^65 for C
    distinct cells).
    """
    cells = np.floor(contexts / cell_m).astype(np.int64).view(np.uint64)
    keys = np.full(len(cells), 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in cells.T:
            keys ^= column
            keys *= np.uint64(0xBF58476D1CE4E5B9)
            keys ^= keys >> np.uint64(31)
        keys *= np.uint64(0x94D049BB133111EB)
        keys ^= keys >> np.uint64(29)
    return keys


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _as_vector(name: str, values, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or (n is not None and len(array) != n):
        expected = "(N,)" if n is None else f"({n},)"
        raise SignificanceError(f"{name} has shape {array.shape}, expected {expected}")
    return array


def _as_matrix(name: str, values, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or len(array) != n:
        raise SignificanceError(f"{name} has shape {array.shape}, expected ({n}, F)")
    return array


def _checked_unit_interval(name: str, values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    outside = finite & ((values < 0.0) | (values > 1.0))
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise SignificanceError(
            f"{name}[{index}] = {values[index]} is outside [0, 1]; with normalize=False the raw "
            f"component values must already be in [0, 1]"
        )
    return np.where(finite, values, NEUTRAL)
