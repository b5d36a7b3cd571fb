"""Physics blow-ups and broken sensors end the episode with a flag and never raise."""

import logging

import numpy as np
import pytest

from ast_robot.envs import make_env, make_expert
from ast_robot.envs.rollout import run_episode


class _FaultAtStep:
    """Wraps an expert and breaks the env's model right before a given step.

    The faults are written into the real MuJoCo model: a NaN position of the force-torque site
    makes MuJoCo's own sensor computation return NaN torques without touching the dynamics, and a
    huge velocity makes MuJoCo detect instability and reset the state.
    """

    def __init__(self, env, expert, step, fault):
        self.env, self.expert, self.step, self.fault = env, expert, step, fault
        self.calls = 0

    def act(self, obs, info):
        self.calls += 1
        if self.calls == self.step:
            self.fault(self.env.unwrapped)
        return self.expert.act(obs, info)


def _nan_force_site(env):
    env.model.site_pos[env.scene.ft_site] = np.nan


def _huge_object_velocity(env):
    env.data.qvel[env.scene.object_dof] = 1e12


def test_nan_force_sensor_flags_episode(caplog):
    env = make_env("pick_place")
    actor = _FaultAtStep(env, make_expert("pick_place", env), 3, _nan_force_site)
    with caplog.at_level(logging.WARNING, logger="ast_robot.envs.base"):
        episode = run_episode(env, actor, seed=0)
    assert len(episode) == 3
    assert episode.flags["nan_sensor"] is True
    assert episode.flags["unstable"] is False
    assert episode.flags["truncated"] is True
    assert episode.flags["terminated"] is False
    assert episode.success is False
    assert "sensor returned NaN" in caplog.text


def test_nan_force_sensor_step_returns_finite_obs():
    env = make_env("pick_place")
    obs, _ = env.reset(seed=0)
    for _ in range(2):
        obs, *_ = env.step(np.zeros(4, np.float32))
    last_force = obs["force"].copy()
    _nan_force_site(env)
    obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert info["nan_sensor"] and not info["unstable"]
    assert truncated and not terminated
    for name, values in obs.items():
        assert np.isfinite(values).all(), name
    # Torques went bad and hold their last value; forces are still measured.
    np.testing.assert_array_equal(obs["force"][3:], last_force[3:])
    assert reward == 0.0


def test_unstable_physics_ends_episode_flagged():
    env = make_env("push")
    actor = _FaultAtStep(env, make_expert("push", env), 4, _huge_object_velocity)
    episode = run_episode(env, actor, seed=1)
    assert len(episode) == 4
    assert episode.flags["unstable"] is True
    assert episode.flags["truncated"] is True
    assert episode.flags["terminated"] is False
    assert np.isfinite(episode.stacked_obs()).all()


def test_env_recovers_after_blow_up():
    env = make_env("push")
    env.reset(seed=1)
    _huge_object_velocity(env)
    *_, info = env.step(np.zeros(4, np.float32))
    assert info["unstable"]
    obs, info = env.reset(seed=1)
    assert not info["unstable"]
    _, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert not (terminated or truncated or info["unstable"])


@pytest.mark.parametrize("speed", [60.0, 1e6])
def test_speed_above_limit_is_unstable(speed):
    env = make_env("reach")
    env.reset(seed=0)
    env.data.qvel[env.scene.object_dof + 2] = speed
    *_, info = env.step(np.zeros(4, np.float32))
    assert info["unstable"]
