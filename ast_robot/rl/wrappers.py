"""Environment wrappers that turn our tasks into what SB3 and the transformer policy expect.

Per environment (gymnasium wrappers, innermost first):

- `EpisodeRecorder` keeps the raw observations, actions and rewards of the running episode and
  hands out a finished `Episode` in the final step's ``info["ast_episode"]``, so the gate can
  score it like a DAgger episode (context, domain parameters, success, wrench).
- `ObservationHistory` replaces each observation group (d,) by its last H steps (H, d), oldest
  first, left-padded with zeros at the start of an episode, and adds ``pad_mask`` (H,) with 1.0
  at padded steps. This is the layout `TransformerPolicy.act` builds from a history.

Around the vectorized env:

- `VecObservationNormalize` normalizes every group with running per-step statistics, the way
  SB3's VecNormalize does, using the policy's own `ObservationNormalizer` so that the exported
  policy normalizes with exactly the same arithmetic. In training mode the newest step of every
  environment updates the statistics; in evaluation mode they stay fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gymnasium
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper

from ast_robot.episode import OBS_GROUPS, Episode, new_episode_id
from ast_robot.policy import ObservationNormalizer

logger = logging.getLogger(__name__)

PAD_KEY = "pad_mask"
"""Observation key of the padding mask (H,), 1.0 at padded steps."""

EPISODE_INFO_KEY = "ast_episode"
"""``info`` key of the finished `Episode` at an episode's last step."""


class EpisodeRecorder(gymnasium.Wrapper):
    """Record the running episode; put the finished `Episode` in the last step's info."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        self._clear()
        self._reset_info: dict = {}

    def _clear(self) -> None:
        self._obs: dict[str, list[np.ndarray]] = {name: [] for name in OBS_GROUPS}
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._flags = {"terminated": False, "truncated": False, "unstable": False, "nan_sensor": False}
        self._success = False
        self._pending: dict | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._clear()
        self._reset_info = info
        self._pending = obs
        return obs, info

    def step(self, action):
        for name in OBS_GROUPS:
            self._obs[name].append(np.asarray(self._pending[name], np.float32))
        self._actions.append(np.clip(np.asarray(action, np.float32), -1.0, 1.0))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._pending = obs
        self._rewards.append(float(reward))
        self._success = bool(info.get("is_success", False))
        self._flags["unstable"] |= bool(info.get("unstable", False))
        self._flags["nan_sensor"] |= bool(info.get("nan_sensor", False))
        if terminated or truncated:
            self._flags["terminated"], self._flags["truncated"] = bool(terminated), bool(truncated)
            info = dict(info)
            info[EPISODE_INFO_KEY] = self.current_episode()
        return obs, reward, terminated, truncated, info

    def current_episode(self) -> Episode | None:
        """Return the episode so far (all steps since the last reset), or None before the first step."""
        if not self._actions:
            return None
        length = len(self._actions)
        dt_s = float(getattr(self.env.unwrapped, "control_dt_s", 1.0))
        obs = {name: np.stack(steps) for name, steps in self._obs.items()}
        unstable = self._flags["unstable"] or self._flags["nan_sensor"]
        return Episode(
            obs=obs,
            actions=np.stack(self._actions),
            timestamps=np.arange(length, dtype=np.float64) * dt_s,
            source="sim",
            id=new_episode_id("sim"),
            wrench=obs["force"].copy(),
            rewards=np.asarray(self._rewards, np.float32),
            success=self._success and not unstable,
            context=np.asarray(self._reset_info.get("context", np.zeros(6)), np.float32),
            domain_params=dict(self._reset_info.get("domain_params", {})),
            flags=dict(self._flags),
            info={"task": getattr(self.env.unwrapped, "task", "")},
        )


class ObservationHistory(gymnasium.ObservationWrapper):
    """Observation groups (d,) become their last H steps (H, d), plus ``pad_mask`` (H,).

    The history is left-padded with zeros after a reset; ``pad_mask`` is 1.0 at padded steps
    and 0.0 at real ones. The newest step is always the last row.
    """

    def __init__(self, env: gymnasium.Env, history: int):
        super().__init__(env)
        if history < 1:
            raise ValueError(f"history must be at least 1 step, got {history}")
        self.history = history
        spaces = {
            name: gymnasium.spaces.Box(-np.inf, np.inf, (history, width), np.float32)
            for name, width in OBS_GROUPS.items()
        }
        spaces[PAD_KEY] = gymnasium.spaces.Box(0.0, 1.0, (history,), np.float32)
        self.observation_space = gymnasium.spaces.Dict(spaces)
        self._buffer = {name: np.zeros((history, width), np.float32) for name, width in OBS_GROUPS.items()}
        self._pad = np.ones(history, np.float32)

    def reset(self, **kwargs):
        for steps in self._buffer.values():
            steps[:] = 0.0
        self._pad[:] = 1.0
        return super().reset(**kwargs)

    def observation(self, observation):
        for name in OBS_GROUPS:
            steps = self._buffer[name]
            steps[:-1] = steps[1:]  # drop the oldest step
            steps[-1] = observation[name]
        self._pad[:-1] = self._pad[1:]
        self._pad[-1] = 0.0
        out = {name: steps.copy() for name, steps in self._buffer.items()}
        out[PAD_KEY] = self._pad.copy()
        return out


class VecObservationNormalize(VecEnvWrapper):
    """Normalize the observation groups of a history env with running per-step statistics.

    Statistics are kept per group over single control steps (not per history position), in an
    `ObservationNormalizer`, and applied to every step of the history. In training mode each
    vectorized step merges the newest step of every environment; `training = False` freezes
    them (evaluation). The padding mask passes through unchanged, and so does the content of
    padded steps after normalization, which the transformer masks out.

    Terminal observations in ``info["terminal_observation"]`` are normalized too, so SB3
    bootstraps time-limit endings from the same representation it trains on.
    """

    def __init__(self, venv: VecEnv, *, clip: float, training: bool = True):
        super().__init__(venv)
        self.normalizer = ObservationNormalizer(clip=clip)
        self.training = training
        self.raw_obs: dict[str, np.ndarray] | None = None

    def normalize(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Normalize a batch: groups (..., H, d) float32, ``pad_mask`` copied."""
        with torch.no_grad():
            normalized = self.normalizer({name: torch.as_tensor(obs[name]) for name in OBS_GROUPS})
        out = {name: value.numpy().astype(np.float32) for name, value in normalized.items()}
        out[PAD_KEY] = np.asarray(obs[PAD_KEY], np.float32).copy()
        return out

    def _update(self, obs: dict[str, np.ndarray]) -> None:
        if self.training:
            self.normalizer.update({name: obs[name][:, -1, :] for name in OBS_GROUPS})  # newest step, (n_envs, d)

    def reset(self):
        obs = self.venv.reset()
        self.raw_obs = obs
        self._update(obs)
        return self.normalize(obs)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.raw_obs = obs
        self._update(obs)
        for info in infos:
            terminal = info.get("terminal_observation")
            if terminal is not None:
                batch = {key: np.asarray(value)[None] for key, value in terminal.items()}
                info["terminal_observation"] = {key: value[0] for key, value in self.normalize(batch).items()}
        return self.normalize(obs), rewards, dones, infos

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: value.clone() for key, value in self.normalizer.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.normalizer.load_state_dict({key: torch.as_tensor(value) for key, value in state.items()})


def make_vec_env(
    env_fns: list[Callable[[], gymnasium.Env]],
    *,
    history: int,
    clip: float,
    subprocess: bool = False,
) -> VecObservationNormalize:
    """Wrap each env in `EpisodeRecorder` and `ObservationHistory`, vectorize, normalize.

    Args:
        env_fns: One factory per environment, each returning a task env (Dict observation of
            the groups in `OBS_GROUPS`).
        history: Steps of observation history H.
        clip: Clip of normalized observations in standard deviations.
        subprocess: One process per environment (`SubprocVecEnv`) instead of all in this one.
    """

    def wrapped(factory):
        def build():
            return ObservationHistory(EpisodeRecorder(factory()), history)

        return build

    fns = [wrapped(factory) for factory in env_fns]
    venv = SubprocVecEnv(fns, start_method="spawn") if subprocess else DummyVecEnv(fns)
    return VecObservationNormalize(venv, clip=clip)
