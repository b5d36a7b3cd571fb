"""Simulated tasks: MJCF assets, gymnasium envs, domain randomization and scripted experts.

`make_env` builds a task env by short name (``pick_place``, ``reach``, ``push``). Importing this
package also registers the envs with gymnasium as ``ast_robot/PickPlace-v0``,
``ast_robot/Reach-v0`` and ``ast_robot/Push-v0``; without the import, write
``gymnasium.make("ast_robot.envs:ast_robot/PickPlace-v0")``. Keyword arguments of
`gymnasium.make` go to the env (``env_cfg``, ``rand_cfg``, ``reality``, ``render_mode``).
`make_expert` builds the privileged scripted expert of a task, and `ast_robot.envs.rollout` rolls
episodes out.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np

from ast_robot.config import TASKS, EnvConfig, RandomizationConfig
from ast_robot.errors import ConfigError, EnvError

from .base import GripperEnv
from .experts import EXPERT_CLASSES, PickPlaceExpert, PushExpert, ReachExpert, ScriptedExpert
from .randomization import (
    PARAM_NAMES,
    DomainRandomizer,
    apply_domain_params,
    load_randomization_spec,
    load_reality_profile,
)
from .tasks import TASK_CLASSES, PickPlaceEnv, PushEnv, ReachEnv

__all__ = [
    "GYM_IDS",
    "PARAM_NAMES",
    "DomainRandomizer",
    "GripperEnv",
    "PickPlaceEnv",
    "PickPlaceExpert",
    "PushEnv",
    "PushExpert",
    "ReachEnv",
    "ReachExpert",
    "ScriptedExpert",
    "apply_domain_params",
    "load_randomization_spec",
    "load_reality_profile",
    "make_env",
    "make_expert",
]

GYM_IDS = {
    "pick_place": "ast_robot/PickPlace-v0",
    "reach": "ast_robot/Reach-v0",
    "push": "ast_robot/Push-v0",
}
"""Gymnasium id of each task."""


def _check_task(task: str) -> None:
    if task not in TASK_CLASSES:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def make_env(
    task: str,
    env_cfg: EnvConfig | None = None,
    rand_cfg: RandomizationConfig | None = None,
    *,
    reality: str | Path | None = None,
    render_mode: str | None = None,
) -> GripperEnv:
    """Build the env of a task.

    Args:
        task: ``pick_place``, ``reach`` or ``push``.
        env_cfg: Timing, speed scale and step limit; defaults to `EnvConfig()` for the task.
        rand_cfg: Domain randomization ranges; None (or ``enabled: false``) gives nominal physics.
        reality: A reality profile YAML (fixed parameters, e.g. ``configs/reality/standin.yaml``)
            used instead of sampling.
        render_mode: None or ``"rgb_array"``.

    Raises:
        ConfigError: On an unknown task, invalid settings or an invalid reality profile.
        EnvError: When the model cannot be compiled or rendering cannot start.
    """
    _check_task(task)
    if env_cfg is not None and env_cfg.task != task:
        env_cfg = _with_task(env_cfg, task)
    return TASK_CLASSES[task](env_cfg, rand_cfg, reality=reality, render_mode=render_mode)


def _with_task(env_cfg: EnvConfig, task: str) -> EnvConfig:
    import dataclasses

    return dataclasses.replace(env_cfg, task=task)


def make_expert(
    task: str,
    env,
    *,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
    mistake_prob: float = 0.0,
    mistake_steps: int = 6,
) -> ScriptedExpert:
    """Build the scripted expert of a task (see `ast_robot.envs.experts` for noise and mistakes).

    The expert acts on ``info["state"]``; `run_episode` reseeds it from the episode seed.
    """
    _check_task(task)
    if not isinstance(env.unwrapped, GripperEnv):
        raise EnvError(f"the expert needs an ast_robot task env, got {type(env.unwrapped).__name__}")
    return EXPERT_CLASSES[task](
        env, noise_std=noise_std, rng=rng, mistake_prob=mistake_prob, mistake_steps=mistake_steps
    )


def _register() -> None:
    for task, gym_id in GYM_IDS.items():
        if gym_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=gym_id,
            entry_point=f"ast_robot.envs.tasks:{TASK_CLASSES[task].__name__}",
            kwargs={},
            # The env ends episodes itself at EnvConfig.max_steps, so no TimeLimit wrapper.
            max_episode_steps=None,
        )


_register()
