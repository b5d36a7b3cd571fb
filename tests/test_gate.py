"""Tests of the Sundew gate: controller arithmetic, convergence, anti-windup, modes and state."""

import dataclasses
import json
import math

import numpy as np
import pytest

from ast_robot.config import GateConfig, config_from_dict
from ast_robot.errors import ConfigError, GateError
from ast_robot.gate import REASONS, SundewGate


def make_cfg(**changes) -> GateConfig:
    """Default gate settings with a fixed initial threshold of 0.5 unless `changes` set one.

    Most tests follow the controller from a known threshold; the warm-start tests pass
    initial_threshold=None themselves.
    """
    return dataclasses.replace(GateConfig(), **{"initial_threshold": 0.5, **changes})


class PlainLoopGate:
    """Reference gate written as the textbook per-item loop, independent of the batch code.

    With `anti_windup=False` the integral is a plain sum: no clamp, no skip at a bound and no
    restart when the error changes sign.
    """

    def __init__(self, cfg: GateConfig, seed: int, *, anti_windup: bool = True):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.threshold = cfg.initial_threshold
        self.integral = 0.0
        self.anti_windup = anti_windup
        self.count = 0
        self.opened = 0
        self.history = []

    def decide_one(self, score: float) -> tuple[bool, float]:
        cfg = self.cfg
        u_open, u_probe = self.rng.random(2)
        threshold_used = self.threshold
        if cfg.temperature > 0:
            is_open = u_open < 1.0 / (1.0 + math.exp(-(score - self.threshold) / cfg.temperature))
        else:
            is_open = score > self.threshold
        if not is_open and u_probe < cfg.probe_rate:
            is_open = True
        self.count += 1
        self.opened += int(is_open)
        if self.count == cfg.update_every:
            error = self.opened / self.count - cfg.target_rate
            if abs(error) >= cfg.deadband:
                pushing_past_bound = (self.threshold >= cfg.max_threshold and error > 0) or (
                    self.threshold <= cfg.min_threshold and error < 0
                )
                if not self.anti_windup:
                    self.integral += error
                else:
                    if (error > 0 and self.integral < 0) or (error < 0 and self.integral > 0):
                        self.integral = 0.0
                    if not pushing_past_bound:
                        self.integral = min(max(self.integral + error, -cfg.integral_limit), cfg.integral_limit)
                self.threshold += cfg.kp * error + cfg.ki * self.integral
                self.threshold = min(max(self.threshold, cfg.min_threshold), cfg.max_threshold)
            self.history.append(self.threshold)
            self.count = 0
            self.opened = 0
        return is_open, threshold_used


# -- controller arithmetic -------------------------------------------------------------------


def test_one_p_step_matches_hand_arithmetic():
    # 1 of 8 decisions open: measured rate 0.125, error 0.125 - 0.06 = 0.065, step 0.08 * 0.065.
    cfg = make_cfg(target_rate=0.06, kp=0.08, ki=0.0, initial_threshold=0.40, update_every=8, deadband=0.0)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.array([0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]))
    assert gate.threshold == pytest.approx(0.4052, abs=1e-12)


def test_rate_above_target_raises_threshold():
    cfg = make_cfg(target_rate=0.25, update_every=10, deadband=0.0)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.full(10, 0.9))
    assert gate.threshold > cfg.initial_threshold


def test_rate_below_target_lowers_threshold():
    cfg = make_cfg(target_rate=0.25, update_every=10, deadband=0.0)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.full(10, 0.1))
    assert gate.threshold < cfg.initial_threshold


def test_pi_steps_match_hand_arithmetic():
    cfg = make_cfg(target_rate=0.5, kp=0.1, ki=0.05, initial_threshold=0.5, update_every=4, deadband=0.0)
    gate = SundewGate(cfg, seed=0)
    # Step 1: all 4 open -> error 0.5, integral 0.5, threshold 0.5 + 0.05 + 0.025 = 0.575.
    gate.decide(np.full(4, 0.9))
    assert gate.threshold == pytest.approx(0.575, abs=1e-12)
    assert gate.integral == pytest.approx(0.5, abs=1e-12)
    # Step 2: none open -> error -0.5 changes sign, so the integral restarts at -0.5:
    # threshold 0.575 - 0.05 - 0.025 = 0.5.
    gate.decide(np.full(4, 0.1))
    assert gate.threshold == pytest.approx(0.5, abs=1e-12)
    assert gate.integral == pytest.approx(-0.5, abs=1e-12)
    # Step 3: none open again -> integral -1.0, threshold 0.5 - 0.05 - 0.05 = 0.4.
    gate.decide(np.full(4, 0.1))
    assert gate.threshold == pytest.approx(0.4, abs=1e-12)
    assert gate.integral == pytest.approx(-1.0, abs=1e-12)


def test_deadband_ignores_small_errors():
    # 3 of 10 open against target 0.28: error 0.02 < deadband 0.05.
    cfg = make_cfg(target_rate=0.28, update_every=10, deadband=0.05, kp=0.5, ki=0.5)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.array([0.9] * 3 + [0.1] * 7))
    assert gate.threshold == cfg.initial_threshold
    assert gate.integral == 0.0


def test_threshold_clipped_to_bounds():
    cfg = make_cfg(target_rate=0.1, update_every=5, kp=5.0, ki=0.0, deadband=0.0, max_threshold=0.8)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.full(5, 0.99))
    assert gate.threshold == 0.8


def test_integral_clamped():
    cfg = make_cfg(target_rate=0.1, update_every=5, kp=0.0, ki=0.001, deadband=0.0, integral_limit=1.5)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.full(5 * 10, 0.99))
    assert gate.integral == pytest.approx(1.5)


def test_update_every_counts_across_batches():
    cfg = make_cfg(update_every=10, deadband=0.0)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.full(6, 0.9))
    assert gate.threshold == cfg.initial_threshold
    gate.decide(np.full(4, 0.9))
    assert gate.threshold != cfg.initial_threshold


# -- reference and streaming ------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"temperature": 0.05},
        {"probe_rate": 0.03, "target_rate": 0.1},
        {"temperature": 0.02, "probe_rate": 0.02, "deadband": 0.0, "update_every": 7, "ki": 0.05},
        {"min_threshold": 0.3, "max_threshold": 0.6, "kp": 0.5, "ki": 0.1},
    ],
)
def test_batch_gate_matches_plain_loop_reference(changes):
    cfg = make_cfg(**changes)
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.random(3000), rng.beta(2, 8, 3000), np.full(500, 0.95)])
    gate = SundewGate(cfg, seed=11)
    reference = PlainLoopGate(cfg, seed=11)

    # Uneven batch sizes cross controller updates in the middle of batches.
    sizes = rng.integers(1, 400, size=200)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    bounds = bounds[bounds < len(scores)].tolist() + [len(scores)]
    opened, thresholds = [], []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        decision = gate.decide(scores[start:stop])
        opened.append(decision.open)
        thresholds.append(decision.thresholds)

    expected = [reference.decide_one(float(s)) for s in scores]
    assert np.array_equal(np.concatenate(opened), np.array([o for o, _ in expected]))
    np.testing.assert_allclose(np.concatenate(thresholds), [t for _, t in expected], rtol=0, atol=1e-12)
    np.testing.assert_allclose([h["threshold"] for h in gate.stats().threshold_history], reference.history, atol=1e-12)


@pytest.mark.parametrize("mode", ["on", "off", "random"])
def test_one_at_a_time_matches_batch(mode):
    cfg = make_cfg(mode=mode, temperature=0.03, probe_rate=0.02, update_every=9)
    scores = np.random.default_rng(2).random(700)
    batch_gate = SundewGate(cfg, seed=4)
    stream_gate = SundewGate(cfg, seed=4)
    decision = batch_gate.decide(scores)
    streamed = [stream_gate.decide_one(float(s)) for s in scores]
    assert np.array_equal(decision.open, [o for o, _ in streamed])
    assert decision.reasons == [r for _, r in streamed]
    assert batch_gate.threshold == stream_gate.threshold


# -- convergence ------------------------------------------------------------------------------


def _uniform(rng, n):
    return rng.random(n)


def _skewed(rng, n):
    return rng.beta(2.0, 8.0, n)


def _shifting(rng, n):
    # Three regimes: low and narrow, uniform, high and skewed toward 1.
    third = n // 3
    return np.concatenate([0.2 + 0.2 * rng.random(third), rng.random(third), rng.beta(8.0, 2.0, n - 2 * third)])


STREAMS = {"uniform": _uniform, "skewed": _skewed, "shifting": _shifting}


@pytest.mark.parametrize("stream", list(STREAMS))
@pytest.mark.parametrize("target", [0.06, 0.1, 0.25, 0.5])
def test_rate_converges_to_target(stream, target):
    n = 60_000
    scores = STREAMS[stream](np.random.default_rng(123), n)
    gate = SundewGate(make_cfg(target_rate=target), seed=0)
    opened = gate.decide(scores).open

    # The settled part of every regime: the second half of each third of the stream.
    third = n // 3
    for start in (0, third, 2 * third):
        settled = opened[start + third // 2:start + third]
        assert abs(settled.mean() - target) < 0.01, (stream, target, start, settled.mean())


@pytest.mark.parametrize(
    "stream, initial_threshold, target",
    [("uniform", 0.5, 0.1), ("skewed", 0.0, 0.1), ("skewed", 0.9, 0.06)],
)
def test_no_overshoot_after_long_approach(stream, initial_threshold, target):
    # Default gains, and an initial threshold far from the quantile that gives the target, so the
    # integral fills up on the way there.
    cfg = make_cfg(target_rate=target, initial_threshold=initial_threshold)
    scores = STREAMS[stream](np.random.default_rng(123), 16_000)
    population = np.sort(STREAMS[stream](np.random.default_rng(7), 400_000))
    settled_threshold = np.quantile(population, 1.0 - target)
    gate = SundewGate(cfg, seed=0)
    opened = gate.decide(scores).open

    history = gate.stats().threshold_history
    # Threshold faced during each update's measurement window, and the rate measured over it.
    faced = np.array([cfg.initial_threshold] + [h["threshold"] for h in history[:-1]])
    rates = np.array([h["rate"] for h in history])
    integrals = np.array([h["integral"] for h in history])
    rising = initial_threshold < settled_threshold
    crossed = faced >= settled_threshold if rising else faced <= settled_threshold
    assert crossed.any()
    cross = int(np.argmax(crossed))
    assert np.abs(integrals[:cross + 1]).max() >= 1.0  # the approach was long enough to fill the integral

    # Updates in a row that admitted nothing (rising) or everything (falling) after the crossing.
    stuck_rate = 0.0 if rising else 1.0
    longest = run = 0
    for rate in rates[cross:]:
        run = run + 1 if rate == stuck_rate else 0
        longest = max(longest, run)
    assert longest <= 8

    update = cfg.update_every
    after_crossing = opened[cross * update:(cross + 30) * update].mean()
    assert abs(after_crossing - target) < 0.03

    # True admission rate at the farthest threshold past the target within 100 updates. An
    # integral summed over the whole approach pushes it to about 0 (rising) or 2-4x the target.
    window = faced[cross:cross + 100]
    farthest = window.max() if rising else window.min()
    farthest_rate = 1.0 - np.searchsorted(population, farthest) / len(population)
    if rising:
        assert farthest_rate >= 0.4 * target
    else:
        assert farthest_rate <= 2.0 * target


def test_drifting_scores_keep_rate_near_target():
    rng = np.random.default_rng(9)
    n = 60_000
    drift = np.linspace(0.0, 0.4, n)
    scores = np.clip(0.3 * rng.random(n) + drift, 0.0, 1.0)
    gate = SundewGate(make_cfg(target_rate=0.1), seed=0)
    opened = gate.decide(scores).open
    assert abs(opened[10_000:].mean() - 0.1) < 0.01


# -- anti-windup ------------------------------------------------------------------------------


def _recovery_updates(gate, target, rng, limit=400):
    """Controller updates until the threshold reaches within 0.05 of 1 - target on uniform scores."""
    for update in range(1, limit + 1):
        scores = rng.random(gate.cfg.update_every)
        if isinstance(gate, SundewGate):
            gate.decide(scores)
        else:
            for score in scores:
                gate.decide_one(float(score))
        if abs(gate.threshold - (1.0 - target)) < 0.05:
            return update
    return limit


def test_threshold_recovers_after_forced_low_saturation():
    target = 0.1
    cfg = make_cfg(target_rate=target, kp=0.08, ki=0.02)
    gate = SundewGate(cfg, seed=0)
    windup = PlainLoopGate(cfg, seed=0, anti_windup=False)

    # Scores of 0 never exceed the threshold: the rate is 0 until the threshold sits at its floor.
    zeros = np.zeros(20_000)
    gate.decide(zeros)
    for s in zeros:
        windup.decide_one(float(s))
    assert gate.threshold == cfg.min_threshold
    assert abs(gate.integral) <= cfg.integral_limit
    assert windup.integral < -20  # what the integral does without anti-windup

    recovered = _recovery_updates(gate, target, np.random.default_rng(1))
    recovered_windup = _recovery_updates(windup, target, np.random.default_rng(1))
    assert recovered <= 30
    assert recovered_windup > 3 * recovered


def test_threshold_recovers_after_forced_high_saturation():
    target = 0.25
    cfg = make_cfg(target_rate=target, kp=0.08, ki=0.02, max_threshold=0.9)
    gate = SundewGate(cfg, seed=0)
    # Scores of 1 always exceed the capped threshold: the rate stays 1 with the threshold at 0.9.
    gate.decide(np.ones(20_000))
    assert gate.threshold == 0.9
    assert abs(gate.integral) <= cfg.integral_limit

    recovered = _recovery_updates(gate, target, np.random.default_rng(2))
    assert recovered <= 30
    tail = gate.decide(np.random.default_rng(3).random(20_000)).open
    assert abs(tail[5_000:].mean() - target) < 0.01


# -- modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("score_value", [0.0, 0.5, 1.0])
def test_random_mode_ignores_score_values(score_value):
    gate = SundewGate(make_cfg(mode="random", target_rate=0.1), seed=3)
    decision = gate.decide(np.full(40_000, score_value))
    # 5 standard deviations of a binomial share at n = 40000.
    assert abs(decision.open.mean() - 0.1) < 5 * math.sqrt(0.1 * 0.9 / 40_000)
    assert set(decision.reasons) == {"random_open", "random_skip"}
    assert gate.threshold == 0.5


def test_random_mode_ignores_score_order():
    high = SundewGate(make_cfg(mode="random"), seed=3).decide(np.ones(1000)).open
    low = SundewGate(make_cfg(mode="random"), seed=3).decide(np.zeros(1000)).open
    assert np.array_equal(high, low)


def test_off_mode_opens_everything():
    gate = SundewGate(make_cfg(mode="off"), seed=0)
    decision = gate.decide(np.random.default_rng(0).random(5000))
    assert decision.open.all()
    assert set(decision.reasons) == {"gate_off"}
    assert gate.stats().activation_rate == 1.0


def test_temperature_opens_by_sigmoid_probability():
    cfg = make_cfg(temperature=0.1, kp=0.0, ki=0.0, initial_threshold=0.5)
    gate = SundewGate(cfg, seed=0)
    at_threshold = gate.decide(np.full(20_000, 0.5)).open.mean()
    above = gate.decide(np.full(20_000, 0.6)).open.mean()
    assert abs(at_threshold - 0.5) < 0.02
    assert abs(above - 1.0 / (1.0 + math.exp(-1.0))) < 0.02


def test_probes_open_share_of_skipped_items():
    cfg = make_cfg(probe_rate=0.05, target_rate=0.25, kp=0.0, ki=0.0)
    gate = SundewGate(cfg, seed=0)
    decision = gate.decide(np.zeros(40_000))
    assert abs(decision.open.mean() - 0.05) < 0.005
    assert set(np.array(decision.reasons)[decision.open]) == {"probe"}
    assert gate.stats().probes == decision.n_open


# -- statistics and state ---------------------------------------------------------------------


def test_stats_report_compute_and_reasons():
    cfg = make_cfg(update_every=10, decision_log_size=5)
    gate = SundewGate(cfg, seed=0)
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    costs = np.array([100.0, 50.0, 10.0, 1.0])
    gate.decide(scores, costs)
    stats = gate.stats()
    assert stats.compute_admitted == 110.0
    assert stats.compute_skipped == 51.0
    assert stats.reason_counts["above_threshold"] == 2
    assert stats.reason_counts["below_threshold"] == 2
    assert stats.activation_rate == 0.5
    assert [d["reason"] for d in stats.recent_decisions] == [
        "above_threshold", "below_threshold", "above_threshold", "below_threshold"
    ]
    metrics = stats.as_metrics()
    assert metrics["gate/compute_skipped_share"] == pytest.approx(51.0 / 161.0)
    assert all(key.startswith("gate/") for key in metrics)


def test_stats_keep_threshold_history_and_recent_log():
    cfg = make_cfg(update_every=10, decision_log_size=25)
    gate = SundewGate(cfg, seed=0)
    gate.decide(np.random.default_rng(0).random(105))
    stats = gate.stats()
    assert len(stats.threshold_history) == 10
    assert stats.threshold_history[-1]["decisions"] == 100
    assert stats.threshold_history[-1]["threshold"] == gate.threshold
    assert [d["index"] for d in stats.recent_decisions] == list(range(80, 105))
    assert set(REASONS) >= set(stats.reason_counts)


def test_state_round_trip_repeats_next_decisions():
    cfg = make_cfg(temperature=0.02, probe_rate=0.02, update_every=13)
    rng = np.random.default_rng(0)
    gate = SundewGate(cfg, seed=7)
    gate.decide(rng.random(1234))  # leaves decisions pending mid-update
    state = json.loads(json.dumps(gate.state_dict()))

    restored = SundewGate(cfg, seed=999)
    restored.load_state_dict(state)
    scores = rng.random(2000)
    original = gate.decide(scores)
    again = restored.decide(scores)
    assert np.array_equal(original.open, again.open)
    assert original.reasons == again.reasons
    assert gate.threshold == restored.threshold
    assert gate.stats().as_metrics() == restored.stats().as_metrics()


def test_load_state_dict_rejects_incomplete_state():
    gate = SundewGate(GateConfig(), seed=0)
    state = gate.state_dict()
    del state["rng"]
    with pytest.raises(GateError, match=r"missing keys \['rng'\]"):
        gate.load_state_dict(state)


# -- warm start -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("n", [10, 64, 500])
@pytest.mark.parametrize("low, high", [(0.0, 1.0), (0.02, 0.2), (0.7, 0.75)])
def test_warm_start_opens_target_share_of_first_batch(target, n, low, high):
    # No controller update inside the batch, so every item faces the warm-start threshold.
    cfg = make_cfg(initial_threshold=None, target_rate=target, update_every=n + 1)
    scores = np.random.default_rng(n).uniform(low, high, n)
    decision = SundewGate(cfg, seed=0).decide(scores)
    assert decision.threshold == pytest.approx(np.quantile(scores, 1.0 - target))
    # Distinct scores: the share is off by at most one item's rounding.
    assert abs(decision.n_open - target * n) <= 1.0


def test_warm_start_on_narrow_scores():
    scores = np.random.default_rng(3).uniform(0.02, 0.2, 64)
    fixed = SundewGate(make_cfg(), seed=0).decide(scores)
    warm = SundewGate(make_cfg(initial_threshold=None), seed=0).decide(scores)
    assert fixed.n_open == 0  # 0.5 is above every score; the controller needs many updates
    assert abs(warm.n_open / 64 - 0.25) <= 0.1  # controller updates inside the batch move it a little


def test_warm_start_counts_probes_toward_target():
    cfg = make_cfg(initial_threshold=None, target_rate=0.25, probe_rate=0.1, update_every=30_001)
    scores = np.random.default_rng(4).random(30_000)
    decision = SundewGate(cfg, seed=5).decide(scores)
    # Rule share (0.25 - 0.1) / 0.9; probes fill the rest. 5 binomial standard deviations.
    assert decision.threshold == pytest.approx(np.quantile(scores, 1.0 - 0.15 / 0.9))
    assert abs(decision.open.mean() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 30_000)


@pytest.mark.parametrize("initial", [0.5, 0.3])
def test_numeric_initial_threshold_is_used_as_given(initial):
    cfg = make_cfg(initial_threshold=initial, update_every=50)
    scores = np.random.default_rng(6).uniform(0.0, 0.2, 200)
    gate = SundewGate(cfg, seed=0)
    assert gate.threshold == initial
    decision = gate.decide(scores)
    assert decision.threshold == initial
    assert np.all(decision.thresholds[:50] == initial)
    assert not gate.warm_start_pending


def test_single_item_first_decision_keeps_fallback_threshold():
    gate = SundewGate(make_cfg(initial_threshold=None), seed=0)
    assert gate.decide_one(0.05) == (False, "below_threshold")
    assert not gate.warm_start_pending
    decision = gate.decide(np.random.default_rng(0).uniform(0.0, 0.1, 8))
    assert decision.threshold == 0.5  # no second warm start


def test_empty_batch_does_not_use_up_warm_start():
    gate = SundewGate(make_cfg(initial_threshold=None, update_every=101), seed=0)
    gate.decide(np.zeros(0))
    assert gate.warm_start_pending
    scores = np.linspace(0.0, 0.1, 100)
    assert gate.decide(scores).threshold == pytest.approx(np.quantile(scores, 0.75))


@pytest.mark.parametrize("mode", ["off", "random"])
def test_warm_start_only_in_mode_on(mode):
    gate = SundewGate(make_cfg(initial_threshold=None, mode=mode), seed=0)
    gate.decide(np.random.default_rng(0).uniform(0.0, 0.1, 100))
    assert gate.threshold == 0.5


def test_streaming_matches_batch_after_warm_start():
    cfg = make_cfg(initial_threshold=None, temperature=0.03, probe_rate=0.02, update_every=9)
    rng = np.random.default_rng(2)
    first, rest = rng.random(40), rng.random(500)
    batch_gate, stream_gate = SundewGate(cfg, seed=4), SundewGate(cfg, seed=4)
    batch_gate.decide(first)
    stream_gate.decide(first)
    decision = batch_gate.decide(rest)
    streamed = [stream_gate.decide_one(float(s)) for s in rest]
    assert np.array_equal(decision.open, [o for o, _ in streamed])
    assert batch_gate.threshold == stream_gate.threshold


@pytest.mark.parametrize("warm_started", [False, True])
def test_state_round_trip_keeps_warm_start_flag(warm_started):
    cfg = make_cfg(initial_threshold=None, update_every=13)
    rng = np.random.default_rng(1)
    gate = SundewGate(cfg, seed=7)
    if warm_started:
        gate.decide(rng.uniform(0.0, 0.2, 100))
    state = json.loads(json.dumps(gate.state_dict()))
    assert state["warm_start_pending"] is not warm_started

    restored = SundewGate(cfg, seed=999)
    restored.load_state_dict(state)
    assert restored.warm_start_pending is not warm_started
    # Scores far from the first batch's: a second warm start would show in the threshold.
    scores = rng.uniform(0.6, 0.9, 300)
    original = gate.decide(scores)
    again = restored.decide(scores)
    assert original.threshold == again.threshold
    assert np.array_equal(original.open, again.open)
    assert gate.stats().as_metrics() == restored.stats().as_metrics()


def test_state_without_warm_start_key_loads_as_done():
    gate = SundewGate(make_cfg(initial_threshold=None), seed=0)
    gate.decide(np.random.default_rng(0).random(50))
    state = gate.state_dict()
    del state["warm_start_pending"]
    restored = SundewGate(make_cfg(initial_threshold=None), seed=0)
    restored.load_state_dict(state)
    assert not restored.warm_start_pending


def test_config_default_is_warm_start():
    assert GateConfig().initial_threshold is None
    assert config_from_dict({"gate": {"initial_threshold": None}}).gate.initial_threshold is None
    assert config_from_dict({"gate": {"initial_threshold": 0.4}}).gate.initial_threshold == 0.4


# -- bad input --------------------------------------------------------------------------------


def test_nan_score_rejected():
    gate = SundewGate(GateConfig(), seed=0)
    with pytest.raises(GateError, match=r"scores\[1\] is nan"):
        gate.decide(np.array([0.2, np.nan]))


def test_scores_must_be_one_dimensional():
    gate = SundewGate(GateConfig(), seed=0)
    with pytest.raises(GateError, match=r"shape \(N,\), got \(2, 2\)"):
        gate.decide(np.zeros((2, 2)))


def test_costs_shape_must_match_scores():
    gate = SundewGate(GateConfig(), seed=0)
    with pytest.raises(GateError, match=r"costs have shape \(2,\), expected \(3,\)"):
        gate.decide(np.zeros(3), np.ones(2))


def test_negative_cost_rejected():
    gate = SundewGate(GateConfig(), seed=0)
    with pytest.raises(GateError, match=r"costs\[0\] is -1.0"):
        gate.decide(np.zeros(2), np.array([-1.0, 1.0]))


def test_empty_batch_is_fine():
    gate = SundewGate(GateConfig(), seed=0)
    decision = gate.decide(np.zeros(0))
    assert len(decision) == 0
    assert gate.stats().decisions == 0


def test_config_rejects_inverted_bounds():
    with pytest.raises(ConfigError, match="min_threshold=0.8 must be below max_threshold=0.2"):
        config_from_dict({"gate": {"min_threshold": 0.8, "max_threshold": 0.2, "initial_threshold": 0.5}})


def test_config_rejects_probe_rate_at_target():
    with pytest.raises(ConfigError, match="probe_rate=0.3 must be below target_rate=0.25"):
        config_from_dict({"gate": {"probe_rate": 0.3}})


def test_config_rejects_initial_threshold_outside_bounds():
    with pytest.raises(ConfigError, match="initial_threshold=0.9 is outside"):
        config_from_dict({"gate": {"max_threshold": 0.8, "initial_threshold": 0.9}})
