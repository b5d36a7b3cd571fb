"""The Sundew gate: admit only high-significance items, at a target activation rate.

An item (an episode, or an image sample) with significance score s in [0, 1] is admitted ("the
gate opens") when s > threshold, or, when a temperature T > 0 is set, with probability
sigmoid((s - threshold) / T). Optional probes open a random share `probe_rate` of the items
the rule skipped, so the trainer keeps seeing unbiased samples of what it skips.

Every `update_every` decisions a PI controller moves the threshold. With r the share of those
decisions that opened (probes included, because they spend compute too) and t the target rate:

    error     = r - t                                   (above target -> positive)
    integral  = 0                                       (first, when error and integral have
                                                         opposite signs)
    integral  = clip(integral + error, -L, L)           (skipped while the threshold sits at a
                                                         bound and the error pushes past it)
    threshold = clip(threshold + kp * error + ki * integral, min_threshold, max_threshold)

so a rate above target RAISES the threshold. Errors with |error| < deadband change nothing.
The proportional term acts on the threshold increment, so it already integrates the error once
and drives the long-run rate to the target for a fixed score distribution. The integral term,
added to the increment as well, integrates twice: it speeds up a long one-sided approach from a
far initial threshold and reduces the lag while the score distribution drifts steadily. Summed
over the whole approach, that second integral would carry the threshold far past the target, and
the rate could then stay at 0 (or 1) for tens of updates. So the integral holds only the errors
since the error last changed sign, which resets it at each crossing of the target, and it is
clamped to [-L, L]. Right after a crossing the step is (kp + ki) * error.

The threshold starts at `initial_threshold`. When that is None (a warm start), the first batch
decided in mode ``on`` sets it to the score quantile that admits the target rate of that batch.
That is the (1 - t) quantile without probes. With probe rate p it is the (1 - (t - p) / (1 - p))
quantile, so rule openings plus probes make t. With temperature 0 and distinct scores the first batch then opens the target share
up to rounding to whole items. A quantile of one score carries no information about the distribution, so a
one-item first decision keeps the fallback threshold 0.5 instead; either way the warm start is
then done and the controller takes over. Without a warm start the controller starts from a fixed
guess and needs many updates to reach the scores' real range, admitting far from the target
meanwhile.

Modes give honest baselines: ``on`` gates by score, ``off`` opens everything, ``random`` opens
each item with probability `target_rate` whatever its score. The controller runs only in ``on``.

Every item consumes two uniform draws from the gate's generator whatever the mode, so deciding a
batch at once and deciding the same items one at a time (`decide_one`) give identical results.
The warm start is the exception, because it needs the whole first batch: with a None
`initial_threshold` the two agree from the second call on, given the same first call.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ast_robot.config import GateConfig
from ast_robot.errors import GateError

logger = logging.getLogger(__name__)

REASONS: tuple[str, ...] = (
    "above_threshold",  # score > threshold (temperature 0)
    "below_threshold",  # score <= threshold (temperature 0)
    "sampled_open",  # opened with probability sigmoid((score - threshold) / T)
    "sampled_skip",  # skipped by that draw
    "probe",  # skipped by the rule, opened as a random probe
    "gate_off",  # mode off: every item opens
    "random_open",  # mode random: opened with probability target_rate
    "random_skip",  # mode random: skipped
)
"""Reason names; `GateDecision.reason_codes` indexes this tuple."""

_CODE = {name: code for code, name in enumerate(REASONS)}
_REASON_ARRAY = np.array(REASONS, dtype=object)
_STATE_VERSION = 1
FALLBACK_THRESHOLD = 0.5
"""Threshold before a warm start, and after one that saw a single item."""


@dataclass
class GateDecision:
    """The gate's decision on a batch of N items.

    Attributes:
        open: True where the item is admitted, bool (N,).
        reason_codes: Index into `REASONS` per item, int8 (N,).
        thresholds: Threshold each item was compared with, float64 (N,); it changes inside a
            batch at controller updates.
        threshold: Threshold at the start of the batch.
        final_threshold: Threshold after the batch (what the next item will face).
    """

    open: np.ndarray
    reason_codes: np.ndarray
    thresholds: np.ndarray
    threshold: float
    final_threshold: float

    @property
    def reasons(self) -> list[str]:
        """Reason name per item (see `REASONS`)."""
        return _REASON_ARRAY[self.reason_codes].tolist()

    @property
    def n_open(self) -> int:
        return int(np.count_nonzero(self.open))

    def __len__(self) -> int:
        return len(self.open)


@dataclass
class GateStats:
    """Counts and history of the gate since it was created (or since the state it was restored from).

    Compute is in the caller's cost units (1 per item when no costs were given).
    """

    mode: str
    target_rate: float
    threshold: float
    integral: float
    decisions: int
    opened: int
    probes: int
    activation_rate: float
    recent_rate: float | None
    compute_admitted: float
    compute_skipped: float
    reason_counts: dict[str, int]
    threshold_history: list[dict[str, float]] = field(repr=False)
    recent_decisions: list[dict] = field(repr=False)

    def as_metrics(self) -> dict[str, float]:
        """Flat scalar metrics under the ``gate/`` namespace."""
        total = self.compute_admitted + self.compute_skipped
        return {
            "gate/activation_rate": self.activation_rate,
            "gate/recent_rate": float("nan") if self.recent_rate is None else self.recent_rate,
            "gate/target_rate": self.target_rate,
            "gate/threshold": self.threshold,
            "gate/integral": self.integral,
            "gate/decisions": float(self.decisions),
            "gate/opened": float(self.opened),
            "gate/probes": float(self.probes),
            "gate/compute_admitted": self.compute_admitted,
            "gate/compute_skipped": self.compute_skipped,
            "gate/compute_skipped_share": self.compute_skipped / total if total > 0 else 0.0,
        }


class SundewGate:
    """Threshold gate held at `cfg.target_rate` by a PI controller (see the module docstring).

    Args:
        cfg: Gate settings.
        seed: Seed of the generator behind temperature sampling, probes and random mode.
    """

    def __init__(self, cfg: GateConfig, *, seed: int):
        self.cfg = cfg
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        # A None initial threshold is set from the first decided batch (see `_warm_start`).
        self.warm_start_pending = cfg.initial_threshold is None and cfg.mode == "on"
        initial = FALLBACK_THRESHOLD if cfg.initial_threshold is None else cfg.initial_threshold
        self.threshold = min(max(float(initial), cfg.min_threshold), cfg.max_threshold)
        self.integral = 0.0
        self.last_error: float | None = None
        self.last_rate: float | None = None
        self.decisions = 0
        self.opened = 0
        self.probes = 0
        self.compute_admitted = 0.0
        self.compute_skipped = 0.0
        self.reason_counts = np.zeros(len(REASONS), dtype=np.int64)
        # Decisions and openings since the last controller update.
        self._pending = 0
        self._pending_open = 0
        self.history: deque[tuple[int, float, float, float, float]] = deque(maxlen=cfg.history_size)
        self._log = _empty_log()

    # -- deciding --------------------------------------------------------------------------

    def decide(self, scores: np.ndarray, costs: np.ndarray | None = None) -> GateDecision:
        """Decide which items to admit, updating the controller every `update_every` decisions.

        Args:
            scores: Significance scores, float (N,), finite.
            costs: Compute each item would take on the large model, float (N,) >= 0, in the
                caller's units (e.g. control steps); None counts 1 per item.

        Raises:
            GateError: If scores or costs have the wrong shape or contain NaN, Inf or negative costs.
        """
        scores, costs = self._check_inputs(scores, costs)
        n = len(scores)
        if self.warm_start_pending and n > 0:
            self._warm_start(scores)
        start_threshold = self.threshold
        # Two draws per item in every mode keep batch and one-at-a-time decisions identical.
        draws = self.rng.random((n, 2))
        u_open, u_probe = draws[:, 0], draws[:, 1]

        if self.cfg.mode == "off":
            is_open = np.ones(n, dtype=bool)
            codes = np.full(n, _CODE["gate_off"], dtype=np.int8)
            thresholds = np.full(n, self.threshold)
        elif self.cfg.mode == "random":
            is_open = u_open < self.cfg.target_rate
            codes = np.where(is_open, _CODE["random_open"], _CODE["random_skip"]).astype(np.int8)
            thresholds = np.full(n, self.threshold)
        else:
            is_open, codes, thresholds = self._decide_on(scores, u_open, u_probe)

        self._record(scores, costs, is_open, codes, thresholds)
        return GateDecision(
            open=is_open,
            reason_codes=codes,
            thresholds=thresholds,
            threshold=start_threshold,
            final_threshold=self.threshold,
        )

    def decide_one(self, score: float, cost: float = 1.0) -> tuple[bool, str]:
        """Decide one item for streaming callers; returns (open, reason).

        Gives exactly the result `decide` would give for this item inside a batch.
        """
        decision = self.decide(np.array([score], dtype=np.float64), np.array([cost], dtype=np.float64))
        return bool(decision.open[0]), REASONS[int(decision.reason_codes[0])]

    def _warm_start(self, scores: np.ndarray) -> None:
        """Set the threshold so the rule plus probes would admit the target share of `scores` (N,)."""
        cfg = self.cfg
        self.warm_start_pending = False
        if len(scores) < 2:
            logger.info("gate warm start saw one item; keeping threshold %.4f", self.threshold)
            return
        # Probes open a share probe_rate of the items the rule skips, so the rule itself must
        # open (t - p) / (1 - p) of them for the total to be t.
        rule_share = (cfg.target_rate - cfg.probe_rate) / (1.0 - cfg.probe_rate)
        quantile = float(np.quantile(scores, 1.0 - rule_share))
        self.threshold = min(max(quantile, cfg.min_threshold), cfg.max_threshold)
        logger.info(
            "gate warm start: threshold %.4f from the %.3f score quantile of %d items",
            self.threshold, 1.0 - rule_share, len(scores),
        )

    def _decide_on(
        self, scores: np.ndarray, u_open: np.ndarray, u_probe: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gate by score in segments that end at controller updates."""
        cfg = self.cfg
        n = len(scores)
        thresholds = np.empty(n)
        rule_open = np.empty(n, dtype=bool)
        probe_draw = u_probe < cfg.probe_rate

        position = 0
        while position < n:
            # Items up to the next controller update share one threshold.
            stop = min(n, position + cfg.update_every - self._pending)
            segment = slice(position, stop)
            thresholds[segment] = self.threshold
            if cfg.temperature > 0.0:
                z = (scores[segment] - self.threshold) / cfg.temperature
                rule_open[segment] = u_open[segment] < _sigmoid(z)
            else:
                rule_open[segment] = scores[segment] > self.threshold

            self._pending += stop - position
            self._pending_open += int(np.count_nonzero(rule_open[segment] | probe_draw[segment]))
            if self._pending == cfg.update_every:
                self._update_threshold(decision_index=self.decisions + stop)
            position = stop

        is_open = rule_open | probe_draw
        if cfg.temperature > 0.0:
            codes = np.where(rule_open, _CODE["sampled_open"], _CODE["sampled_skip"])
        else:
            codes = np.where(rule_open, _CODE["above_threshold"], _CODE["below_threshold"])
        codes = np.where(~rule_open & probe_draw, _CODE["probe"], codes).astype(np.int8)
        return is_open, codes, thresholds

    def _update_threshold(self, *, decision_index: int) -> None:
        """Move the threshold by one PI step on the rate of the last `update_every` decisions.

        `decision_index` is the number of decisions made when the update happens.
        """
        cfg = self.cfg
        rate = self._pending_open / self._pending
        error = rate - cfg.target_rate
        self._pending = 0
        self._pending_open = 0
        self.last_rate = rate
        self.last_error = error

        if abs(error) >= cfg.deadband:
            at_upper = self.threshold >= cfg.max_threshold and error > 0
            at_lower = self.threshold <= cfg.min_threshold and error < 0
            if error * self.integral < 0.0:
                # The error changed sign, so the rate crossed the target. Restart the integral,
                # because what it summed on the approach would carry the threshold far past it.
                self.integral = 0.0
            if not (at_upper or at_lower):
                limit = cfg.integral_limit
                self.integral = min(max(self.integral + error, -limit), limit)
            step = cfg.kp * error + cfg.ki * self.integral
            self.threshold = min(max(self.threshold + step, cfg.min_threshold), cfg.max_threshold)

        self.history.append((decision_index, self.threshold, rate, error, self.integral))

    # -- bookkeeping -----------------------------------------------------------------------

    def _check_inputs(
        self, scores: np.ndarray, costs: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 1:
            raise GateError(f"scores must have shape (N,), got {scores.shape}")
        bad = ~np.isfinite(scores)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise GateError(
                f"scores[{index}] is {scores[index]}; every score must be finite "
                f"({int(bad.sum())} of {len(scores)} are not)"
            )
        if costs is None:
            return scores, np.ones(len(scores))
        costs = np.asarray(costs, dtype=np.float64)
        if costs.shape != scores.shape:
            raise GateError(f"costs have shape {costs.shape}, expected {scores.shape} like scores")
        bad = ~np.isfinite(costs) | (costs < 0)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise GateError(f"costs[{index}] is {costs[index]}; costs must be finite and >= 0")
        return scores, costs

    def _record(
        self,
        scores: np.ndarray,
        costs: np.ndarray,
        is_open: np.ndarray,
        codes: np.ndarray,
        thresholds: np.ndarray,
    ) -> None:
        n = len(scores)
        first_index = self.decisions
        self.decisions += n
        self.opened += int(np.count_nonzero(is_open))
        self.probes += int(np.count_nonzero(codes == _CODE["probe"]))
        self.compute_admitted += float(costs[is_open].sum())
        self.compute_skipped += float(costs[~is_open].sum())
        self.reason_counts += np.bincount(codes, minlength=len(REASONS))

        keep = self.cfg.decision_log_size
        if keep > 0:
            tail = slice(max(0, n - keep), n)
            new = {
                "index": np.arange(first_index, first_index + n)[tail],
                "score": scores[tail],
                "threshold": thresholds[tail],
                "open": is_open[tail],
                "reason": codes[tail],
                "cost": costs[tail],
            }
            self._log = {key: np.concatenate([self._log[key], new[key]])[-keep:] for key in new}

    # -- statistics and state --------------------------------------------------------------

    def stats(self) -> GateStats:
        """Activation rate, threshold history, recent decisions with reasons, compute split."""
        reasons = {name: int(count) for name, count in zip(REASONS, self.reason_counts)}
        history = [
            {"decisions": d, "threshold": t, "rate": r, "error": e, "integral": i}
            for d, t, r, e, i in self.history
        ]
        log = self._log
        recent = [
            {
                "index": int(log["index"][j]),
                "score": float(log["score"][j]),
                "threshold": float(log["threshold"][j]),
                "open": bool(log["open"][j]),
                "reason": REASONS[int(log["reason"][j])],
                "cost": float(log["cost"][j]),
            }
            for j in range(len(log["index"]))
        ]
        return GateStats(
            mode=self.cfg.mode,
            target_rate=self.cfg.target_rate,
            threshold=self.threshold,
            integral=self.integral,
            decisions=self.decisions,
            opened=self.opened,
            probes=self.probes,
            activation_rate=self.opened / self.decisions if self.decisions else 0.0,
            recent_rate=self.last_rate,
            compute_admitted=self.compute_admitted,
            compute_skipped=self.compute_skipped,
            reason_counts=reasons,
            threshold_history=history,
            recent_decisions=recent,
        )

    def state_dict(self) -> dict:
        """Return the full gate state as plain Python values (JSON-serializable)."""
        return {
            "version": _STATE_VERSION,
            "threshold": self.threshold,
            "warm_start_pending": self.warm_start_pending,
            "integral": self.integral,
            "last_error": self.last_error,
            "last_rate": self.last_rate,
            "decisions": self.decisions,
            "opened": self.opened,
            "probes": self.probes,
            "compute_admitted": self.compute_admitted,
            "compute_skipped": self.compute_skipped,
            "reason_counts": self.reason_counts.tolist(),
            "pending": self._pending,
            "pending_open": self._pending_open,
            "history": [list(item) for item in self.history],
            "log": {key: value.tolist() for key, value in self._log.items()},
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by `state_dict`; the next decisions repeat the original's.

        Raises:
            GateError: If a key is missing or the version is unknown.
        """
        required = (
            "version", "threshold", "integral", "decisions", "opened", "probes", "compute_admitted",
            "compute_skipped", "reason_counts", "pending", "pending_open", "history", "log", "rng",
        )
        missing = [key for key in required if key not in state]
        if missing:
            raise GateError(f"gate state is missing keys {missing}; was it written by SundewGate.state_dict?")
        if state["version"] != _STATE_VERSION:
            raise GateError(f"gate state version {state['version']} is not supported (expected {_STATE_VERSION})")
        if state["pending"] >= self.cfg.update_every:
            raise GateError(
                f"gate state has {state['pending']} decisions pending an update, but update_every is "
                f"{self.cfg.update_every}; restore it with the update_every it was saved with"
            )

        self.threshold = float(state["threshold"])
        # States written before the warm start existed came from a numeric initial threshold.
        self.warm_start_pending = bool(state.get("warm_start_pending", False))
        self.integral = float(state["integral"])
        self.last_error = state.get("last_error")
        self.last_rate = state.get("last_rate")
        self.decisions = int(state["decisions"])
        self.opened = int(state["opened"])
        self.probes = int(state["probes"])
        self.compute_admitted = float(state["compute_admitted"])
        self.compute_skipped = float(state["compute_skipped"])
        self.reason_counts = np.asarray(state["reason_counts"], dtype=np.int64)
        self._pending = int(state["pending"])
        self._pending_open = int(state["pending_open"])
        self.history = deque((tuple(item) for item in state["history"]), maxlen=self.cfg.history_size)
        self._log = {key: np.asarray(state["log"][key], dtype=_LOG_DTYPES[key]) for key in _LOG_DTYPES}
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]


_LOG_DTYPES = {
    "index": np.int64,
    "score": np.float64,
    "threshold": np.float64,
    "open": bool,
    "reason": np.int8,
    "cost": np.float64,
}


def _empty_log() -> dict[str, np.ndarray]:
    return {key: np.zeros(0, dtype=dtype) for key, dtype in _LOG_DTYPES.items()}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
