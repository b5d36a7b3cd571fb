import numpy as np
import pytest

from ast_robot.episode import ACTION_DIM, OBS_GROUPS, Episode
from ast_robot.errors import EpisodeError


def make_episode(length=5, **changes):
    rng = np.random.default_rng(0)
    fields = dict(
        obs={name: rng.normal(size=(length, width)) for name, width in OBS_GROUPS.items()},
        actions=rng.uniform(-1, 1, size=(length, ACTION_DIM)),
        timestamps=np.arange(length) * 0.05,
        wrench=rng.normal(size=(length, 6)),
        success=True,
    )
    fields.update(changes)
    return Episode(**fields)


def test_dtypes_are_coerced():
    episode = make_episode()
    assert episode.obs["proprio"].dtype == np.float32
    assert episode.actions.dtype == np.float32
    assert episode.timestamps.dtype == np.float64
    assert episode.interventions.dtype == bool


def test_length_mismatch_names_field():
    with pytest.raises(EpisodeError, match=r"obs\['goal'\] has shape \(4, 3\), expected \(5, 3\)"):
        make_episode(obs={**make_episode().obs, "goal": np.zeros((4, 3))})


def test_missing_group_rejected():
    obs = dict(make_episode().obs)
    del obs["force"]
    with pytest.raises(EpisodeError, match="'force' is missing"):
        make_episode(obs=obs)


def test_non_increasing_time_rejected():
    with pytest.raises(EpisodeError, match="timestamps must increase strictly"):
        make_episode(timestamps=[0.0, 0.1, 0.1, 0.2, 0.3])


def test_nan_rejected_unless_marked():
    obs = dict(make_episode().obs)
    obs["force"] = obs["force"].copy()
    obs["force"][2, 0] = np.nan
    with pytest.raises(EpisodeError, match=r"obs\['force'\] contains NaN or Inf at step 2"):
        make_episode(obs=obs)
    marked = make_episode(obs=obs, missing={"force": np.arange(5) == 2})
    assert marked.missing["force"][2]
    flagged = make_episode(obs=obs, flags={"nan_sensor": True})
    assert flagged.flags["nan_sensor"]


def test_array_round_trip():
    episode = make_episode(step_stats={"action_std": np.ones(5)}, domain_params={"mass": 0.2})
    restored = Episode.from_arrays(episode.to_arrays())
    assert restored.id == episode.id
    assert restored.success is True
    assert restored.domain_params == {"mass": 0.2}
    np.testing.assert_array_equal(restored.obs["object"], episode.obs["object"])
    np.testing.assert_array_equal(restored.step_stats["action_std"], episode.step_stats["action_std"])
    np.testing.assert_array_equal(restored.wrench, episode.wrench)


def test_slice_keeps_fields():
    episode = make_episode(length=6)
    part = episode.slice(2, 5)
    assert len(part) == 3
    np.testing.assert_array_equal(part.timestamps, episode.timestamps[2:5])


def test_peak_force_ignores_nan():
    wrench = np.zeros((5, 6))
    wrench[1, 0] = 3.0
    wrench[2, 0] = np.nan
    episode = make_episode(wrench=wrench, missing={"force": np.arange(5) == 2})
    assert episode.peak_force_n == pytest.approx(3.0)
