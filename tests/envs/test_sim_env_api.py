"""The gymnasium contract of the task envs."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from ast_robot.config import EnvConfig, load_config
from ast_robot.envs import GYM_IDS, make_env
from ast_robot.episode import OBS_GROUPS
from ast_robot.errors import ConfigError, EnvError

STANDIN = "configs/reality/standin.yaml"


def test_check_env_passes(task, task_config):
    env = make_env(task, task_config.env, task_config.randomization)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The observation bounds are infinite on purpose (forces and blow-ups are unbounded).
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value")
        check_env(env, skip_render_check=True)


def test_obs_dtypes_match_space_with_noise(task, task_config):
    # The stand-in profile adds noise and bias to every noisy group.
    env = make_env(task, task_config.env, task_config.randomization, reality=STANDIN)
    obs, info = env.reset(seed=3)
    assert info["domain_params"]["force_noise_std_n"] > 0
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert set(obs) == set(OBS_GROUPS)
        for name, space in env.observation_space.spaces.items():
            assert obs[name].dtype == np.float32, name
            assert obs[name].shape == (OBS_GROUPS[name],), name
            assert space.contains(obs[name]), name
        obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        assert not (terminated or truncated)


def test_reset_info_holds_params_and_context(task, task_config):
    env = make_env(task, task_config.env, task_config.randomization)
    obs, info = env.reset(seed=0)
    assert info["context"].dtype == np.float32
    assert info["context"].shape == (6,)
    np.testing.assert_allclose(info["context"][3:], obs["goal"], atol=1e-6)
    assert all(isinstance(v, float) for v in info["domain_params"].values())
    for key in ("state", "is_success", "unstable", "nan_sensor"):
        assert key in info


def test_step_info_holds_reward_terms(task, task_config):
    env = make_env(task, task_config.env, None)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(4, np.float32))
    terms = {k: v for k, v in info.items() if k.startswith("reward_")}
    assert terms
    assert reward == pytest.approx(sum(terms.values()))
    assert "tcp_pos" in info["state"]


def test_reach_truncates_at_step_limit():
    env_cfg = EnvConfig(task="reach", max_steps=5)
    env = make_env("reach", env_cfg)
    # The TCP starts near (0, 0, 0.15); a goal in the far corner is out of reach in 5 still steps.
    env.reset(seed=0, options={"context": [0.1, 0.1, 0.02, -0.15, -0.15, 0.06]})
    for step in range(1, 6):
        _, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert not info["is_success"]
        assert terminated is False
        assert truncated is (step == 5), step


def test_step_after_end_raises():
    env = make_env("reach", EnvConfig(task="reach", max_steps=1))
    env.reset(seed=0)
    env.step(np.zeros(4, np.float32))
    with pytest.raises(EnvError, match="reset"):
        env.step(np.zeros(4, np.float32))


def test_nan_action_rejected():
    env = make_env("reach")
    env.reset(seed=0)
    with pytest.raises(EnvError, match="NaN"):
        env.step(np.array([np.nan, 0, 0, 0], np.float32))


def test_wrong_action_shape_rejected():
    env = make_env("reach")
    env.reset(seed=0)
    with pytest.raises(EnvError, match=r"shape \(4,\)"):
        env.step(np.zeros(3, np.float32))


def test_context_option_places_object_and_goal():
    env = make_env("pick_place")
    obs, info = env.reset(seed=0, options={"context": [0.05, -0.07, 0.5, 0.1, 0.1, 0.08]})
    np.testing.assert_allclose(obs["object"][:2], [0.05, -0.07], atol=1e-6)
    assert obs["object"][2] == pytest.approx(info["domain_params"]["object_half_size_m"], abs=1e-6)
    np.testing.assert_allclose(obs["goal"], [0.1, 0.1, 0.08], atol=1e-6)


def test_bad_context_option_rejected():
    env = make_env("pick_place")
    with pytest.raises(EnvError, match="context"):
        env.reset(seed=0, options={"context": [0.0, 0.0]})


def test_unknown_reset_option_rejected():
    env = make_env("pick_place")
    with pytest.raises(EnvError, match="unknown reset options"):
        env.reset(seed=0, options={"contxt": [0.0] * 6})


def test_unknown_task_rejected():
    with pytest.raises(ConfigError, match="unknown task 'pick'"):
        make_env("pick")


@pytest.mark.parametrize("task_name", sorted(GYM_IDS))
def test_gymnasium_id_makes_env(task_name):
    env = gymnasium.make(GYM_IDS[task_name], env_cfg=load_config(env=task_name).env)
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.task == task_name
    assert set(obs) == set(OBS_GROUPS)
    env.close()


def test_velocity_matches_finite_difference():
    env = make_env("reach")
    obs, _ = env.reset(seed=0)
    dt = env.unwrapped.control_dt_s
    positions, velocities = [obs["proprio"][:3]], [obs["proprio"][3:6]]
    for _ in range(6):
        obs, *_ = env.step(np.array([1.0, 0.0, 0.0, -1.0], np.float32))
        positions.append(obs["proprio"][:3])
        velocities.append(obs["proprio"][3:6])
    # Once the servo has caught up, the TCP moves at the commanded speed on average.
    displacement = (positions[-1][0] - positions[-3][0]) / (2 * dt)
    assert displacement == pytest.approx(env.env_cfg.max_ee_speed_m_s, rel=0.15)
    assert velocities[-1][0] == pytest.approx(displacement, rel=0.2)


def test_gymnasium_module_prefix_id():
    env = gymnasium.make("ast_robot.envs:ast_robot/Reach-v0")
    assert env.unwrapped.task == "reach"
    env.close()


def test_pick_place_reward_stages_follow_expert():
    from ast_robot.envs import make_expert

    env = make_env("pick_place")
    expert = make_expert("pick_place", env)
    obs, info = env.reset(seed=2)
    history = []
    for _ in range(env.max_steps):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))
        history.append({k: v for k, v in info.items() if k.startswith("reward_")})
        if terminated or truncated:
            break
    grasp_steps = [i for i, terms in enumerate(history) if terms["reward_grasp"] == 1.0]
    assert grasp_steps, "the expert never grasped"
    first_grasp = grasp_steps[0]
    assert history[first_grasp]["reward_reach"] > 0.7  # the TCP is at the cube when it grasps
    assert history[-1]["reward_place"] > history[0]["reward_place"]
    assert history[-1]["reward_place"] > 1.5  # within about 2.5 cm of the goal at the end
    assert info["is_success"]
