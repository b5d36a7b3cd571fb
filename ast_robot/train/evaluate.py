"""Evaluation of a policy acting alone on fixed seeds.

Three settings: the nominal simulation (no randomization), the training randomization, and a
reality profile (fixed physics that training never samples exactly). The seeds depend only on the
episode index, so every evaluation of every run starts from the same situations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ast_robot.config import resolve_config_path
from ast_robot.episode import Episode
from ast_robot.errors import EvalError
from ast_robot.train.curriculum import task_seed
from ast_robot.train.workers import RolloutBackend, RolloutTask

logger = logging.getLogger(__name__)

EVAL_SEED_STREAM = 7919
"""Seed stream of evaluation episodes, apart from the training streams."""


@dataclass(frozen=True)
class EvalSetting:
    """One evaluation condition."""

    name: str  # metric suffix: success_<name>
    randomize: bool
    reality: str | None


def eval_settings(reality: str | Path | None) -> list[EvalSetting]:
    """Nominal sim, training randomization and, when given, a reality profile."""
    settings = [EvalSetting("sim", False, None), EvalSetting("randomized", True, None)]
    if reality is not None:
        settings.append(EvalSetting("reality", False, str(resolve_config_path(reality))))
    return settings


def evaluate(
    backend: RolloutBackend,
    policy_state: bytes | None,
    *,
    episodes: int,
    reality: str | Path | None,
    expert_share: float = 0.0,
) -> dict[str, float]:
    """Roll out `episodes` fixed-seed episodes per setting and return success rates and lengths.

    Returns keys ``success_<setting>`` (share of successful episodes), ``return_<setting>``
    (mean summed reward) and ``length_<setting>`` (mean control steps) for the settings `sim`,
    `randomized` and, with `reality`, `reality`.
    """
    if episodes < 1:
        raise EvalError(f"evaluation needs at least 1 episode per setting, got {episodes}")
    settings = eval_settings(reality)
    tasks = []
    for setting_index, setting in enumerate(settings):
        for episode_index in range(episodes):
            tasks.append(
                RolloutTask(
                    index=setting_index * episodes + episode_index,
                    seed=task_seed(0, 0, episode_index, stream=EVAL_SEED_STREAM),
                    expert_share=expert_share,
                    context=None,
                    reality=setting.reality,
                    randomize=setting.randomize,
                )
            )

    by_index: dict[int, Episode] = {}
    for episode in backend.collect(tasks, policy_state):
        by_index[int(episode.info["task_index"])] = episode

    results: dict[str, float] = {}
    for setting_index, setting in enumerate(settings):
        group = [by_index[setting_index * episodes + i] for i in range(episodes)]
        results[f"success_{setting.name}"] = float(np.mean([bool(ep.success) for ep in group]))
        results[f"return_{setting.name}"] = float(
            np.mean([float(ep.rewards.sum()) if ep.rewards is not None else 0.0 for ep in group])
        )
        results[f"length_{setting.name}"] = float(np.mean([len(ep) for ep in group]))
    return results
