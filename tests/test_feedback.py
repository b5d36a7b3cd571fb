"""Tests of physical feedback from real-robot episodes and of human corrections as training data."""

import dataclasses

import numpy as np
import pytest

from ast_robot.config import FeedbackConfig, SignificanceConfig
from ast_robot.episode import ACTION_DIM, OBS_GROUPS, Episode
from ast_robot.errors import SignificanceError
from ast_robot.feedback import (
    PARTS,
    RealFeedbackIndex,
    correction_mask,
    peak_force_n,
    resample_actions,
)
from ast_robot.significance import SignificanceInputs, SignificanceModel

HERE = np.array([0.1, 0.0, 0.05, 0.3, 0.2, 0.05])
FAR = HERE + np.array([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])


def make_episode(
    *,
    source="real",
    context=HERE,
    success=None,
    steps=10,
    force_n=5.0,
    wrench=None,
    actions=None,
    interventions=None,
    **kwargs,
) -> Episode:
    obs = {name: np.zeros((steps, width), np.float32) for name, width in OBS_GROUPS.items()}
    obs["force"][:, 2] = force_n
    return Episode(
        obs=obs,
        actions=np.zeros((steps, ACTION_DIM), np.float32) if actions is None else actions,
        timestamps=np.arange(steps) * 0.05,
        source=source,
        context=context,
        success=success,
        wrench=wrench,
        interventions=interventions,
        **kwargs,
    )


def feedback_cfg(**changes) -> FeedbackConfig:
    return dataclasses.replace(FeedbackConfig(), **changes)


def index_of(real, **changes) -> RealFeedbackIndex:
    return RealFeedbackIndex.from_episodes(real, feedback_cfg(**changes))


# -- failure and gap --------------------------------------------------------------------------


def test_failed_neighbours_score_higher_than_successful_ones():
    real = [make_episode(context=HERE + 0.001 * i, success=False) for i in range(4)]
    real += [make_episode(context=FAR + 0.001 * i, success=True) for i in range(4)]
    index = index_of(real)
    sims = [make_episode(source="sim", context=HERE, success=False), make_episode(source="sim", context=FAR, success=False)]
    near_failures, near_successes = index.feedback(sims)
    assert near_failures > near_successes


def test_failure_and_gap_arithmetic():
    # Equal distances: 3 successes and 1 failure give failure share 0.25 and success rate 0.75.
    offsets = [np.eye(6)[i] * 0.01 for i in range(4)]
    real = [make_episode(context=HERE + offsets[i], success=i > 0) for i in range(4)]
    sim = make_episode(source="sim", context=HERE, success=True)
    result = index_of(real).explain([sim])
    assert result.parts["failure"][0] == pytest.approx(0.8 * 0.25)
    # gap = |1 - 0.75| / 0.5 = 0.5, below the 0.7 cap
    assert result.parts["gap"][0] == pytest.approx(0.5)
    assert result.total[0] == pytest.approx(0.7)
    assert result.neighbours[0] == 4


def test_gap_capped():
    real = [make_episode(context=HERE, success=False)]
    sim = make_episode(source="sim", context=HERE, success=True)
    result = index_of(real).explain([sim])
    assert result.parts["gap"][0] == pytest.approx(0.7)
    # 0.8 + 0.7 clipped to 1
    assert result.total[0] == 1.0


def test_unknown_success_counts_for_neither_failure_nor_gap():
    real = [make_episode(context=HERE, success=None)]
    result = index_of(real).explain([make_episode(source="sim", context=HERE, success=True)])
    assert result.parts["failure"][0] == 0.0
    assert result.parts["gap"][0] == 0.0


def test_closer_neighbour_weighs_more():
    near_failure = make_episode(context=HERE + np.array([0.005, 0, 0, 0, 0, 0]), success=False)
    far_success = make_episode(context=HERE + np.array([0.04, 0, 0, 0, 0, 0]), success=True)
    result = index_of([near_failure, far_success]).explain([make_episode(source="sim", context=HERE)])
    # Biweight kernel: w = (1 - (d / 0.05)^2)^2.
    w_near = (1 - (0.005 / 0.05) ** 2) ** 2
    w_far = (1 - (0.04 / 0.05) ** 2) ** 2
    assert result.parts["failure"][0] == pytest.approx(0.8 * w_near / (w_near + w_far), rel=1e-5)
    assert result.parts["failure"][0] > 0.4


def test_no_neighbour_in_radius_means_no_evidence():
    real = [make_episode(context=FAR, success=False, interventions=np.ones(10, bool))]
    result = index_of(real).explain([make_episode(source="sim", context=HERE, success=True)])
    assert result.neighbours[0] == 0
    assert result.total[0] == 0.0
    for name in PARTS:
        assert result.parts[name][0] == 0.0


def test_empty_index_gives_zero_feedback():
    index = RealFeedbackIndex.from_episodes([], SignificanceConfig())
    result = index.explain([make_episode(source="sim", success=True), make_episode(source="sim", success=False)])
    assert result.total.tolist() == [0.0, 0.0]


def test_max_neighbours_limits_the_neighbourhood():
    real = [make_episode(context=HERE + 0.001 * i, success=False) for i in range(10)]
    result = index_of(real, max_neighbours=3).explain([make_episode(source="sim", context=HERE)])
    assert result.neighbours[0] == 3


# -- unsafe force -----------------------------------------------------------------------------


def test_unsafe_sim_force_adds_half():
    result = index_of([]).explain([make_episode(source="sim", force_n=45.0), make_episode(source="sim", force_n=10.0)])
    assert result.parts["unsafe"].tolist() == [0.5, 0.0]


def test_unsafe_real_neighbour_adds_half():
    real = [make_episode(context=HERE, success=True, force_n=80.0)]
    result = index_of(real).explain([make_episode(source="sim", context=HERE, success=True)])
    assert result.parts["unsafe"][0] == 0.5
    assert result.total[0] == pytest.approx(0.5)


def test_nan_real_force_is_not_unsafe():
    wrench = np.full((10, 6), np.nan, np.float32)
    real = make_episode(context=HERE, success=True, wrench=wrench, flags={"nan_sensor": True})
    real.obs["force"][:] = np.nan
    assert np.isnan(peak_force_n(real))
    result = index_of([real]).explain([make_episode(source="sim", context=HERE, success=True)])
    assert result.parts["unsafe"][0] == 0.0
    assert result.total[0] == 0.0


def test_force_on_missing_steps_is_ignored():
    wrench = np.zeros((10, 6), np.float32)
    wrench[3, :3] = [np.nan, np.nan, np.nan]
    wrench[5, 2] = 500.0  # a spike on a step the reader marked missing
    missing = np.zeros(10, bool)
    missing[[3, 5]] = True
    wrench[5, 2] = 500.0
    real = make_episode(context=HERE, success=True, wrench=wrench, missing={"force": missing})
    assert peak_force_n(real) == 0.0
    result = index_of([real]).explain([make_episode(source="sim", context=HERE, success=True)])
    assert result.parts["unsafe"][0] == 0.0


def test_force_limit_from_config():
    real = [make_episode(context=HERE, success=True, force_n=20.0)]
    sim = [make_episode(source="sim", context=HERE, success=True)]
    assert index_of(real, force_limit_n=30.0).explain(sim).parts["unsafe"][0] == 0.0
    assert index_of(real, force_limit_n=15.0).explain(sim).parts["unsafe"][0] == 0.5


# -- human correction and trajectory discrepancy ----------------------------------------------


def test_human_correction_share():
    corrected = np.zeros(10, bool)
    corrected[4:7] = True
    offsets = [np.eye(6)[i] * 0.01 for i in range(2)]
    real = [
        make_episode(context=HERE + offsets[0], success=True, interventions=corrected),
        make_episode(context=HERE + offsets[1], success=True),
    ]
    result = index_of(real).explain([make_episode(source="sim", context=HERE, success=True)])
    assert result.parts["correction"][0] == pytest.approx(0.6 * 0.5)


def test_discrepancy_arithmetic():
    real_actions = np.full((10, ACTION_DIM), 0.25, np.float32)
    real = [make_episode(context=HERE, success=True, actions=real_actions)]
    sim = make_episode(source="sim", context=HERE, success=True, steps=17)
    # RMS difference 0.25, scale 0.5 -> 0.5 of the weight 0.3.
    result = index_of(real).explain([sim])
    assert result.parts["discrepancy"][0] == pytest.approx(0.15)


def test_discrepancy_zero_for_same_trajectory_at_other_rate():
    ramp_real = np.linspace(-1, 1, 11)[:, None] * np.ones((1, ACTION_DIM))
    ramp_sim = np.linspace(-1, 1, 21)[:, None] * np.ones((1, ACTION_DIM))
    real = [make_episode(context=HERE, success=True, steps=11, actions=ramp_real.astype(np.float32))]
    sim = make_episode(source="sim", context=HERE, success=True, steps=21, actions=ramp_sim.astype(np.float32))
    assert index_of(real).explain([sim]).parts["discrepancy"][0] == pytest.approx(0.0, abs=1e-6)


def test_discrepancy_needs_logged_commands():
    real_actions = np.ones((10, ACTION_DIM), np.float32)
    not_logged = make_episode(context=HERE, success=True, actions=real_actions, info={"commands_logged": False})
    all_missing = make_episode(context=HERE, success=True, actions=real_actions, missing={"actions": np.ones(10, bool)})
    sim = [make_episode(source="sim", context=HERE, success=True)]
    assert index_of([not_logged]).explain(sim).parts["discrepancy"][0] == 0.0
    assert index_of([all_missing]).explain(sim).parts["discrepancy"][0] == 0.0


def test_discrepancy_weight_from_config():
    real = [make_episode(context=HERE, success=True, actions=np.ones((10, ACTION_DIM), np.float32))]
    sim = [make_episode(source="sim", context=HERE, success=True)]
    assert index_of(real, discrepancy_weight=0.0).explain(sim).parts["discrepancy"][0] == 0.0
    assert index_of(real, discrepancy_weight=0.2).explain(sim).parts["discrepancy"][0] == pytest.approx(0.2)


def test_resample_skips_missing_steps():
    actions = np.array([[0.0], [9.0], [2.0]])
    valid = np.array([True, False, True])
    np.testing.assert_allclose(resample_actions(actions, 3, valid)[:, 0], [0.0, 1.0, 2.0])


def test_feedback_clipped_to_unit_interval():
    corrected = np.ones(10, bool)
    real = [make_episode(context=HERE, success=False, force_n=100.0, interventions=corrected,
                         actions=np.ones((10, ACTION_DIM), np.float32))]
    result = index_of(real).explain([make_episode(source="sim", context=HERE, success=True, force_n=100.0)])
    assert sum(result.parts[name][0] for name in PARTS) > 1.0
    assert result.total[0] == 1.0


# -- corrections as training data -------------------------------------------------------------


def test_corrections_expose_labelled_real_episodes():
    corrected = np.zeros(10, bool)
    corrected[2:5] = True
    human_actions = np.zeros((10, ACTION_DIM), np.float32)
    human_actions[2:5] = 0.7
    with_correction = make_episode(success=True, interventions=corrected, actions=human_actions)
    without = make_episode(success=False)
    corrections = index_of([with_correction, without]).corrections()
    assert [ep.id for ep in corrections] == [with_correction.id]
    episode = corrections[0]
    assert len(episode) == 10
    np.testing.assert_array_equal(correction_mask(episode), corrected)
    np.testing.assert_allclose(episode.action_labels[2:5], 0.7)
    assert episode.info["label_source"] == "human_correction"


def test_corrections_keep_existing_labels():
    corrected = np.ones(10, bool)
    labels = np.full((10, ACTION_DIM), -0.3, np.float32)
    real = make_episode(success=True, interventions=corrected, action_labels=labels)
    (episode,) = index_of([real]).corrections()
    np.testing.assert_allclose(episode.action_labels, labels)


def test_index_rejects_sim_episodes():
    with pytest.raises(SignificanceError, match="has source 'sim'; RealFeedbackIndex is built from real-robot episodes only"):
        RealFeedbackIndex.from_episodes([make_episode(source="sim")], SignificanceConfig())


# -- with the significance model --------------------------------------------------------------


def test_physical_feedback_raises_significance():
    real = [make_episode(context=HERE + 0.001 * i, success=False) for i in range(3)]
    index = RealFeedbackIndex.from_episodes(real, SignificanceConfig())
    sims = [make_episode(source="sim", context=HERE, success=True), make_episode(source="sim", context=FAR, success=True)]
    physical = index.feedback(sims)
    model = SignificanceModel(SignificanceConfig(), has_real_feedback=True)
    same = np.array([0.5, 0.5])
    result = model.score(SignificanceInputs(same, same, same, physical=physical), progress=0.5)
    assert result.components["physical"][0] == 1.0
    assert result.components["physical"][1] == 0.0
    assert result.score[0] - result.score[1] == pytest.approx(0.30)
