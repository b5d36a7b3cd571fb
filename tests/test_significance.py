"""Tests of the significance model: weights, normalization, novelty, familiarity, curriculum."""

import dataclasses
import json

import numpy as np
import pytest

from ast_robot.config import ComponentWeights, SignificanceConfig, config_from_dict
from ast_robot.episode import ACTION_DIM, OBS_GROUPS, Episode
from ast_robot.errors import ConfigError, SignificanceError
from ast_robot.significance import (
    COMPONENTS,
    SignificanceInputs,
    SignificanceModel,
    combine,
    curriculum_scale,
    effective_weights,
    episode_features,
    familiarity_factor,
    inputs_from_episodes,
    knn_distance,
    rank_normalize,
)

VISION_CASES = [
    ((0.1, 0.2, 0.0, 0.1), 0.105),
    ((0.9, 0.95, 0.8, 0.7), 0.8525),
    ((0.6, 0.7, 0.5, 0.6), 0.605),
    ((0.2, 0.3, 0.1, 0.2), 0.205),
    ((0.85, 0.95, 0.8, 0.9), 0.875),
]


def make_cfg(**changes) -> SignificanceConfig:
    return dataclasses.replace(SignificanceConfig(), **changes)


def random_inputs(rng, n, *, features=8, physical=False, context=True) -> SignificanceInputs:
    return SignificanceInputs(
        learning_value=rng.gamma(2.0, 1.0, n),
        difficulty=rng.random(n),
        uncertainty=rng.random(n),
        novelty_features=rng.normal(size=(n, features)),
        physical=rng.random(n) if physical else None,
        context=rng.uniform(-0.3, 0.3, (n, 6)) if context else None,
    )


def make_episode(steps=10, *, context=None, stats=None, success=None, domain=None) -> Episode:
    return Episode(
        obs={name: np.zeros((steps, width), np.float32) for name, width in OBS_GROUPS.items()},
        actions=np.zeros((steps, ACTION_DIM), np.float32),
        timestamps=np.arange(steps) * 0.05,
        context=np.zeros(6) if context is None else context,
        step_stats=stats or {},
        success=success,
        domain_params=domain or {},
    )


# -- weights ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "expected"), VISION_CASES)
def test_vision_weights_combine_exactly(values, expected):
    names = ("learning_value", "difficulty", "novelty", "uncertainty")
    components = {name: np.array([value]) for name, value in zip(names, values)}
    total = combine(components, SignificanceConfig().vision_weights)
    assert total[0] == pytest.approx(expected, abs=1e-12)


def test_vision_weights_through_model_without_normalization():
    values = np.array([case[0] for case in VISION_CASES])
    batch = SignificanceInputs(
        learning_value=values[:, 0], difficulty=values[:, 1], novelty=values[:, 2], uncertainty=values[:, 3]
    )
    model = SignificanceModel(SignificanceConfig(), modality="vision")
    # Progress 0.5 lies between the default breakpoints, where the difficulty scale is 1.0.
    result = model.score(batch, progress=0.5, normalize=False)
    np.testing.assert_allclose(result.score, [case[1] for case in VISION_CASES], rtol=0, atol=1e-12)
    assert result.components["physical"].tolist() == [0.0] * 5


def test_robot_default_weights():
    model = SignificanceModel(SignificanceConfig(), modality="robot", has_real_feedback=True)
    weights = model.weights(progress=0.5)
    expected = {"learning_value": 0.20, "difficulty": 0.25, "novelty": 0.15, "uncertainty": 0.10, "physical": 0.30}
    for name in COMPONENTS:
        assert weights[name] == pytest.approx(expected[name], abs=1e-12)


def test_physical_weight_redistributed_without_real_logs():
    model = SignificanceModel(SignificanceConfig(), modality="robot", has_real_feedback=False)
    weights = model.weights(progress=0.5)
    assert weights["physical"] == 0.0
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    # In proportion: each learning-signal weight is divided by 1 - 0.30.
    assert weights["learning_value"] == pytest.approx(0.20 / 0.70, abs=1e-12)
    assert weights["difficulty"] == pytest.approx(0.25 / 0.70, abs=1e-12)
    assert weights["novelty"] == pytest.approx(0.15 / 0.70, abs=1e-12)
    assert weights["uncertainty"] == pytest.approx(0.10 / 0.70, abs=1e-12)


def test_no_real_logs_scores_physical_zero():
    rng = np.random.default_rng(0)
    model = SignificanceModel(SignificanceConfig(), has_real_feedback=False)
    result = model.score(random_inputs(rng, 50, physical=True), progress=0.5)
    assert np.all(result.components["physical"] == 0.0)
    assert sum(result.weights.values()) == pytest.approx(1.0, abs=1e-12)


def test_real_feedback_required_when_declared():
    model = SignificanceModel(SignificanceConfig(), has_real_feedback=True)
    with pytest.raises(SignificanceError, match="needs physical feedback"):
        model.score(random_inputs(np.random.default_rng(0), 5), progress=0.5)


def test_combine_rejects_missing_weighted_component():
    with pytest.raises(SignificanceError, match="component 'physical' has weight 0.3 but no values"):
        combine({name: np.zeros(1) for name in COMPONENTS if name != "physical"}, ComponentWeights())


# -- curriculum -------------------------------------------------------------------------------


def test_curriculum_steps_through_default_scales():
    cfg = SignificanceConfig()
    assert curriculum_scale(cfg, 0.0) == 0.5
    assert curriculum_scale(cfg, 0.29) == 0.5
    assert curriculum_scale(cfg, 0.3) == 1.0
    assert curriculum_scale(cfg, 0.69) == 1.0
    assert curriculum_scale(cfg, 0.7) == 1.5
    assert curriculum_scale(cfg, 1.0) == 1.5


def test_curriculum_breakpoints_from_config():
    cfg = make_cfg(curriculum_breakpoints=[0.1, 0.2], curriculum_scales=[0.5, 1.0, 1.5])
    assert curriculum_scale(cfg, 0.05) == 0.5
    assert curriculum_scale(cfg, 0.15) == 1.0
    assert curriculum_scale(cfg, 0.25) == 1.5


@pytest.mark.parametrize(("progress", "scale"), [(0.0, 0.5), (0.5, 1.0), (0.9, 1.5)])
def test_curriculum_scales_difficulty_relative_to_others(progress, scale):
    model = SignificanceModel(SignificanceConfig(), has_real_feedback=True)
    weights = model.weights(progress)
    ratio = weights["difficulty"] / weights["learning_value"]
    assert ratio == pytest.approx(scale * 0.25 / 0.20, abs=1e-12)
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)


def test_progress_outside_unit_interval_rejected():
    with pytest.raises(SignificanceError, match="progress must be a fraction of training in \\[0, 1\\], got 1.5"):
        curriculum_scale(SignificanceConfig(), 1.5)


# -- familiarity ------------------------------------------------------------------------------


def test_familiarity_falls_from_one_to_floor():
    cfg = SignificanceConfig()
    counts = np.arange(0, 200)
    factor = familiarity_factor(counts, cfg)
    assert factor[0] == 1.0
    assert np.all(np.diff(factor) < 0)
    assert factor[-1] > cfg.familiarity_floor
    assert factor[-1] < cfg.familiarity_floor + 0.02
    halfway = familiarity_factor(np.array([cfg.familiarity_half_count]), cfg)[0]
    assert halfway == pytest.approx((1.0 + cfg.familiarity_floor) / 2)


def test_familiarity_counts_trainings_per_context_cell():
    cfg = SignificanceConfig()
    model = SignificanceModel(cfg)
    trained = np.array([0.101, 0.0, 0.05, 0.3, 0.2, 0.05])
    same_cell = trained + 0.001
    other = trained + 0.1
    for _ in range(3):
        model.mark_trained(trained[None, :])
    counts = model.times_trained(np.stack([trained, same_cell, other]))
    assert counts.tolist() == [3, 3, 0]

    batch = random_inputs(np.random.default_rng(0), 3)
    batch.context = np.stack([trained, same_cell, other])
    result = model.score(batch, progress=0.5)
    expected = familiarity_factor(np.array([3, 3, 0]), cfg)
    np.testing.assert_allclose(result.factors["familiarity"], expected)
    np.testing.assert_allclose(result.score, result.weighted_sum * expected)


def test_familiarity_is_one_without_context():
    model = SignificanceModel(SignificanceConfig(), modality="vision")
    model.mark_trained(np.zeros((4, 6)))
    result = model.score(random_inputs(np.random.default_rng(0), 4, context=False), progress=0.5)
    assert np.all(result.factors["familiarity"] == 1.0)


# -- robust normalization ---------------------------------------------------------------------


def plain_loop_rank(value, reference):
    less = sum(1 for r in reference if r < value)
    equal = sum(1 for r in reference if r == value)
    return (2 * less + equal - 1) / (2 * (len(reference) - 1))


def test_rank_normalize_matches_plain_loop():
    rng = np.random.default_rng(0)
    values = np.round(rng.random(200), 1)  # many ties
    reference = np.concatenate([np.round(rng.random(300), 1), values])
    expected = [plain_loop_rank(v, reference) for v in values]
    np.testing.assert_allclose(rank_normalize(values, reference), expected, atol=1e-12)


def test_rank_maps_window_extremes_to_zero_and_one():
    values = np.array([3.0, 1.0, 2.0, 1000.0])
    ranks = rank_normalize(values, values)
    assert ranks.tolist() == [2 / 3, 0.0, 1 / 3, 1.0]


def test_outlier_does_not_squash_other_components():
    rng = np.random.default_rng(1)
    model = SignificanceModel(SignificanceConfig())
    batch = random_inputs(rng, 100)
    batch.learning_value[0] = 1e9
    result = model.score(batch, progress=0.5)
    others = result.components["learning_value"][1:]
    assert others.max() - others.min() > 0.95


def test_score_reports_components_and_factors():
    rng = np.random.default_rng(2)
    model = SignificanceModel(SignificanceConfig(), has_real_feedback=True)
    model.mark_trained(random_inputs(rng, 40))
    result = model.score(random_inputs(rng, 300, physical=True), progress=0.8)
    assert set(result.components) == set(COMPONENTS)
    for name, values in result.components.items():
        assert values.shape == (300,)
        assert values.min() >= 0.0, name
        assert values.max() <= 1.0, name
    assert result.score.min() >= 0.0
    assert result.score.max() <= 1.0
    assert result.factors["curriculum_scale"] == 1.5
    np.testing.assert_allclose(result.weighted_sum, combine(result.components, result.weights))
    row = result.explain(7)
    assert row["score"] == pytest.approx(result.score[7])
    assert set(row) >= set(COMPONENTS) | {"familiarity", "curriculum_scale"}


def test_vectorized_score_matches_plain_loop():
    rng = np.random.default_rng(3)
    cfg = make_cfg(window=64)
    model = SignificanceModel(cfg, has_real_feedback=True)
    model.mark_trained(random_inputs(rng, 30))
    history = random_inputs(rng, 100, physical=True)
    model.score(history, progress=0.1)
    windows = {name: values.copy() for name, values in model.windows.items()}
    batch = random_inputs(rng, 40, physical=True)
    result = model.score(batch, progress=0.9)

    weights = effective_weights(cfg.robot_weights, has_real_feedback=True, curriculum_scale=1.5)
    memory = model.memory
    mean = memory.mean(axis=0)
    std = memory.std(axis=0)
    raw_novelty = []
    for row in batch.novelty_features:
        distances = sorted(float(np.linalg.norm((row - mean) / std - (m - mean) / std)) for m in memory)
        raw_novelty.append(distances[cfg.novelty_k - 1])
    raw = {
        "learning_value": batch.learning_value,
        "difficulty": batch.difficulty,
        "novelty": np.array(raw_novelty),
        "uncertainty": batch.uncertainty,
    }
    for i in range(len(batch)):
        total = weights["physical"] * batch.physical[i]
        for name, values in raw.items():
            reference = list(windows[name]) + list(values)
            total += weights[name] * plain_loop_rank(values[i], reference)
        count = int(model.times_trained(batch.context[i:i + 1])[0])
        expected = total * (cfg.familiarity_floor + (1 - cfg.familiarity_floor) / (1 + count / cfg.familiarity_half_count))
        assert result.score[i] == pytest.approx(expected, abs=1e-6), i


def test_window_keeps_most_recent_values():
    rng = np.random.default_rng(4)
    model = SignificanceModel(make_cfg(window=16))
    first = random_inputs(rng, 10)
    second = random_inputs(rng, 10)
    model.score(first, progress=0.5)
    model.score(second, progress=0.5)
    expected = np.concatenate([first.difficulty, second.difficulty])[-16:]
    np.testing.assert_array_equal(model.windows["difficulty"], expected)


def test_later_batch_normalized_against_window():
    model = SignificanceModel(make_cfg(window=100))
    low = np.linspace(0.0, 1.0, 100)
    model.score(SignificanceInputs(low, low, low), progress=0.5)
    # A lone value above every window value ranks 1, one below ranks 0.
    high = model.score(SignificanceInputs(np.array([5.0]), np.array([5.0]), np.array([5.0])), progress=0.5)
    assert high.components["difficulty"][0] == 1.0
    below = model.score(SignificanceInputs(np.array([-1.0]), np.array([-1.0]), np.array([-1.0])), progress=0.5)
    assert below.components["difficulty"][0] == 0.0


def test_score_without_window_update_leaves_window():
    model = SignificanceModel(SignificanceConfig())
    batch = random_inputs(np.random.default_rng(5), 20)
    model.score(batch, progress=0.5, update_window=False)
    assert len(model.windows["difficulty"]) == 0


def test_quantile_normalization():
    model = SignificanceModel(make_cfg(normalization="quantile", quantile_low=0.0, quantile_high=1.0))
    values = np.array([0.0, 2.0, 4.0, 8.0])
    result = model.score(SignificanceInputs(values, values, values), progress=0.5)
    np.testing.assert_allclose(result.components["difficulty"], [0.0, 0.25, 0.5, 1.0])


def test_nan_signal_scores_neutral_and_skips_window():
    model = SignificanceModel(SignificanceConfig())
    values = np.array([0.1, np.nan, 0.3])
    result = model.score(SignificanceInputs(values, values, values), progress=0.5)
    assert result.components["difficulty"][1] == 0.5
    assert len(model.windows["difficulty"]) == 2


def test_unnormalized_components_must_lie_in_unit_interval():
    model = SignificanceModel(SignificanceConfig())
    batch = SignificanceInputs(np.array([1.5]), np.array([0.5]), np.array([0.5]), novelty=np.array([0.5]))
    with pytest.raises(SignificanceError, match=r"learning_value\[0\] = 1.5 is outside \[0, 1\]"):
        model.score(batch, progress=0.5, normalize=False)


def test_inputs_reject_mismatched_lengths():
    with pytest.raises(SignificanceError, match=r"difficulty has shape \(2,\), expected \(3,\)"):
        SignificanceInputs(np.zeros(3), np.zeros(2), np.zeros(3))


# -- novelty ----------------------------------------------------------------------------------


def test_novelty_is_one_before_anything_trained():
    model = SignificanceModel(SignificanceConfig())
    result = model.score(random_inputs(np.random.default_rng(0), 10), progress=0.5)
    assert np.all(result.components["novelty"] == 1.0)


def test_trained_neighbourhood_less_novel_than_far_point():
    rng = np.random.default_rng(6)
    model = SignificanceModel(make_cfg(novelty_k=3))
    trained = rng.normal(size=(50, 4))
    model.mark_trained(None, trained)
    batch = SignificanceInputs(
        np.ones(2), np.ones(2), np.ones(2), novelty_features=np.stack([trained[0] + 0.01, trained[0] + 20.0])
    )
    result = model.score(batch, progress=0.5)
    assert result.raw["novelty"][0] < result.raw["novelty"][1]
    assert result.components["novelty"][0] < result.components["novelty"][1]


def test_knn_distance_matches_brute_force():
    rng = np.random.default_rng(7)
    memory = rng.normal(size=(40, 5)) * [1.0, 10.0, 0.1, 1.0, 3.0]
    queries = rng.normal(size=(30, 5))
    mean, std = memory.mean(axis=0), memory.std(axis=0)
    for k in (1, 3, 40, 100):
        expected = []
        for q in queries:
            d = np.sort(np.linalg.norm((q - mean) / std - (memory - mean) / std, axis=1))
            expected.append(d[min(k, len(memory)) - 1])
        np.testing.assert_allclose(knn_distance(queries, memory, k), expected, rtol=1e-5, atol=1e-5)


def test_novelty_memory_is_bounded_reservoir():
    model = SignificanceModel(make_cfg(novelty_memory=32), seed=0)
    rng = np.random.default_rng(8)
    for _ in range(10):
        model.mark_trained(None, rng.normal(size=(20, 3)))
    assert model.memory.shape == (32, 3)
    assert model.memory_seen == 200


def test_novelty_feature_width_must_match_memory():
    model = SignificanceModel(SignificanceConfig())
    model.mark_trained(None, np.zeros((5, 3)))
    batch = SignificanceInputs(np.ones(1), np.ones(1), np.ones(1), novelty_features=np.zeros((1, 4)))
    with pytest.raises(SignificanceError, match="4 columns but the trained memory has 3"):
        model.score(batch, progress=0.5)


# -- episodes ---------------------------------------------------------------------------------


def test_inputs_from_episodes_use_step_stats():
    stats = {
        "pred_error_norm": np.array([1.0, 2.0, 3.0]),
        "hidden_norm": np.array([2.0, 2.0, 2.0]),
        "imitation_loss": np.array([0.1, 0.2, 0.3]),
        "action_std": np.array([0.5, 0.5, 0.2]),
    }
    with_stats = make_episode(3, stats=stats, success=True, domain={"friction": 0.8})
    without = make_episode(3, success=False, domain={"friction": 1.2, "mass_kg": 0.3})
    inputs = inputs_from_episodes([with_stats, without])
    assert inputs.learning_value[0] == pytest.approx(4.0)
    assert inputs.difficulty[0] == pytest.approx(0.2)
    assert inputs.uncertainty[0] == pytest.approx(0.4)
    assert np.isnan(inputs.learning_value[1])
    assert inputs.context.shape == (2, 6)

    features = episode_features([with_stats, without])
    # context (6) + friction, mass_kg + success, steps, peak force
    assert features.shape == (2, 11)
    assert features[0, 6] == pytest.approx(0.8)
    assert np.isnan(features[0, 7])
    assert features[:, 8].tolist() == [1.0, 0.0]

    result = SignificanceModel(SignificanceConfig()).score(inputs, progress=0.5)
    assert result.components["learning_value"][1] == 0.5


def test_model_keeps_domain_key_order_across_batches():
    model = SignificanceModel(SignificanceConfig())
    first = model.inputs_from_episodes([make_episode(domain={"b": 1.0, "a": 2.0})])
    second = model.inputs_from_episodes([make_episode(domain={"a": 3.0, "c": 4.0})])
    assert model.domain_keys == ["a", "b"]
    assert first.novelty_features.shape == second.novelty_features.shape
    assert second.novelty_features[0, 6] == 3.0


# -- state ------------------------------------------------------------------------------------


def test_state_round_trip_gives_same_scores():
    rng = np.random.default_rng(9)
    model = SignificanceModel(SignificanceConfig(), has_real_feedback=True, seed=1)
    for _ in range(3):
        batch = random_inputs(rng, 100, physical=True)
        model.score(batch, progress=0.4)
        model.mark_trained(batch.subset(batch.difficulty > 0.5))
    state = json.loads(json.dumps(model.state_dict()))
    restored = SignificanceModel(SignificanceConfig(), has_real_feedback=True, seed=2)
    restored.load_state_dict(state)

    batch = random_inputs(rng, 64, physical=True)
    np.testing.assert_array_equal(model.score(batch, progress=0.6).score, restored.score(batch, progress=0.6).score)
    more = rng.normal(size=(400, 8))
    model.mark_trained(None, more)
    restored.mark_trained(None, more)
    np.testing.assert_array_equal(model.memory, restored.memory)


def test_load_state_rejects_missing_keys():
    model = SignificanceModel(SignificanceConfig())
    with pytest.raises(SignificanceError, match="missing keys"):
        model.load_state_dict({"version": 1})


# -- config -----------------------------------------------------------------------------------


def test_config_rejects_weights_not_summing_to_one():
    with pytest.raises(ConfigError, match=r"significance.robot_weights: the weights sum to 1.1"):
        config_from_dict({"significance": {"robot_weights": {"novelty": 0.25}}})


def test_config_rejects_wrong_number_of_curriculum_scales():
    with pytest.raises(ConfigError, match="2 breakpoints need 3 scales, got 2"):
        config_from_dict({"significance": {"curriculum_scales": [0.5, 1.0]}})


def test_config_rejects_unordered_breakpoints():
    with pytest.raises(ConfigError, match="must increase strictly"):
        config_from_dict({"significance": {"curriculum_breakpoints": [0.7, 0.3]}})


def test_unknown_modality_rejected():
    with pytest.raises(SignificanceError, match="modality must be 'robot' or 'vision'"):
        SignificanceModel(SignificanceConfig(), modality="audio")


def test_mark_trained_without_features_warns(caplog):
    model = SignificanceModel(SignificanceConfig())
    model.score(random_inputs(np.random.default_rng(0), 5), progress=0.5)
    with caplog.at_level("WARNING", logger="ast_robot.significance"):
        model.mark_trained(np.zeros((2, 6)))
    assert "novelty memory stays empty" in caplog.text


def test_benchmark_script_runs():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_significance.py"
    completed = subprocess.run(
        [sys.executable, str(script), "--sizes", "50", "--repeats", "1", "--real-episodes", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| score + gate, robot, F=12 | 50 |" in completed.stdout
