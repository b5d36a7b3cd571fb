"""Time-limit endings bootstrap from the true final observation; terminal endings do not.

The toy env pays a reward of 1 at every step and ends after T steps, either by the time limit
(truncated) or at a terminal state. With the value function fixed to c = 1 / (1 - gamma), the
value of an endless stream of rewards of 1, and GAE lambda = 1, the returns are known in closed
form: a truncated episode's return at step t bootstraps to (1 - g^(T-t)) / (1 - g) + g^(T-t) c = c
at every step, while a terminal one's is (1 - g^(T-t)) / (1 - g).
"""

import gymnasium
import numpy as np
import pytest
import torch

from ast_robot.episode import OBS_GROUPS

GAMMA = 0.9
T = 5


class ConstantRewardEnv(gymnasium.Env):
    """Reward 1 per step; ends after T steps by truncation or termination. proprio[0] = step / T."""

    def __init__(self, terminal: bool):
        self.terminal = terminal
        self.observation_space = gymnasium.spaces.Dict(
            {name: gymnasium.spaces.Box(-np.inf, np.inf, (width,), np.float32) for name, width in OBS_GROUPS.items()}
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.t = 0

    def _obs(self):
        obs = {name: np.zeros(width, np.float32) for name, width in OBS_GROUPS.items()}
        obs["proprio"][0] = self.t / T
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"context": np.zeros(6, np.float32), "domain_params": {}, "is_success": False}

    def step(self, action):
        self.t += 1
        done = self.t >= T
        return self._obs(), 1.0, done and self.terminal, done and not self.terminal, {"is_success": False}


def _venv(terminal: bool, n_envs: int = 2):
    from ast_robot.rl.wrappers import make_vec_env

    venv = make_vec_env([lambda: ConstantRewardEnv(terminal)] * n_envs, history=2, clip=5.0)
    venv.training = False  # statistics stay at mean 0, variance 1: observations pass nearly unchanged
    return venv


def _scorer(tiny_config):
    from ast_robot.rl.gated import EpisodeScorer

    return EpisodeScorer(tiny_config("gate.mode=off"), seed=0)


@pytest.mark.parametrize("terminal", [False, True])
def test_ppo_returns_match_the_closed_form(tiny_config, terminal):
    from ast_robot.rl.extractor import extractor_kwargs
    from ast_robot.rl.gated import GatedPPO

    config = tiny_config()
    kwargs = extractor_kwargs(config.policy)
    kwargs.update(net_arch=dict(pi=[], vf=[8]))
    model = GatedPPO("MultiInputPolicy", _venv(terminal), scorer=_scorer(tiny_config), n_steps=3 * T, batch_size=15,
                     gamma=GAMMA, gae_lambda=1.0, policy_kwargs=kwargs, seed=0, device="cpu")
    value = 1.0 / (1.0 - GAMMA)
    with torch.no_grad():
        model.policy.value_net.weight.zero_()
        model.policy.value_net.bias.fill_(value)

    _total, callback = model._setup_learn(3 * T * 2)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=3 * T)

    returns = model.rollout_buffer.returns  # (n_steps, n_envs)
    steps_left = T - np.arange(3 * T) % T  # (n_steps,)
    if terminal:
        expected = (1.0 - GAMMA**steps_left) / (1.0 - GAMMA)
    else:
        expected = np.full(3 * T, value)
    np.testing.assert_allclose(returns, np.repeat(expected[:, None], 2, axis=1), rtol=1e-5)


@pytest.mark.parametrize("terminal", [False, True])
def test_sac_replay_bootstraps_time_limits(tiny_config, terminal):
    from ast_robot.rl.extractor import extractor_kwargs
    from ast_robot.rl.gated import GatedSAC

    config = tiny_config()
    kwargs = extractor_kwargs(config.policy)
    kwargs.update(net_arch=dict(pi=[], qf=[8]))
    model = GatedSAC("MultiInputPolicy", _venv(terminal), scorer=_scorer(tiny_config), updates_per_step=0.5,
                     learning_starts=1000, policy_kwargs=kwargs, seed=0, device="cpu", gamma=GAMMA)
    model.learn(total_timesteps=2 * T * 2, log_interval=None)

    buffer = model.replay_buffer
    assert buffer.size() == 2 * T * 2
    samples = buffer._get_samples(np.arange(buffer.size()))
    step = np.round(samples.observations["proprio"][:, -1, 0].numpy() * T).astype(int)  # 0 .. T-1
    next_step = np.round(samples.next_observations["proprio"][:, -1, 0].numpy() * T).astype(int)
    # The last transition's next observation is the true final one (step T), not the reset.
    np.testing.assert_array_equal(next_step, step + 1)
    last = step == T - 1
    # SB3 computes the target as r + (1 - done) * gamma * V(s'): done must be 0 at time limits.
    dones = samples.dones.numpy().reshape(-1)
    np.testing.assert_array_equal(dones, (last & terminal).astype(np.float32))

    # The gate's advantage estimates follow the same rule.
    transitions = [
        ({k: v[i] for k, v in samples.observations.items()}, {k: v[i] for k, v in samples.next_observations.items()},
         samples.actions[i].numpy(), 1.0, bool(last[i]), {"TimeLimit.truncated": bool(last[i] and not terminal)})
        for i in range(T)
    ]
    transitions = [({k: v.numpy() for k, v in o.items()}, {k: v.numpy() for k, v in n.items()}, *rest)
                   for o, n, *rest in transitions]
    advantages, _std = model._td_errors(transitions)
    with torch.no_grad():
        from stable_baselines3.common.utils import obs_as_tensor

        next_obs = obs_as_tensor({k: np.stack([t[1][k] for t in transitions]) for k in transitions[0][1]}, "cpu")
        obs = obs_as_tensor({k: np.stack([t[0][k] for t in transitions]) for k in transitions[0][0]}, "cpu")
        actions = torch.as_tensor(np.stack([t[2] for t in transitions]))
        q = torch.min(torch.cat(model.critic(obs, actions), 1), 1).values
    # For the final transition: with bootstrapping the target exceeds the reward alone.
    target_last = advantages[-1] + float(q[-1])
    if terminal:
        assert target_last == pytest.approx(1.0, abs=1e-5)
    else:
        assert abs(target_last - 1.0) > 1e-4
