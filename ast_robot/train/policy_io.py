"""Rebuilding the trained policy from a training checkpoint, and evaluating a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

from ast_robot.config import Config, config_from_dict
from ast_robot.errors import CheckpointError, EvalError

logger = logging.getLogger(__name__)


def config_from_checkpoint(state: dict) -> Config:
    """Return the resolved config a checkpoint was trained with."""
    return config_from_dict(state["config"], source_name="checkpoint")


def load_robot_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint that contains a config and policy weights.

    Raises:
        CheckpointError: The file is not such a checkpoint; the message names what it is.
    """
    from ast_robot.train.checkpoint import EXPECTED, load_checkpoint

    state = load_checkpoint(path)
    if "config" not in state or "policy" not in state:
        raise CheckpointError(f"checkpoint {path} is missing the config or the policy weights; expected {EXPECTED}")
    return state


def check_checkpoint_task(state: dict, task: str, checkpoint: str | Path) -> None:
    """Raise `CheckpointError` when the checkpoint was trained on a task other than `task`."""
    trained = config_from_checkpoint(state).env.task
    if trained != task:
        raise CheckpointError(
            f"checkpoint {checkpoint} was trained on task {trained!r}, but this run uses task {task!r}; "
            f"pass --env {trained} or a checkpoint trained on {task}"
        )


def policy_from_checkpoint(state: dict):
    """Return the checkpoint's transformer policy (CPU, eval mode) and its history length H."""
    from ast_robot.policy import TransformerPolicy

    config = config_from_checkpoint(state)
    policy = TransformerPolicy(config.policy)
    try:
        policy.load_state_dict(state["policy"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"the checkpoint's policy weights do not fit its policy config: {error}") from error
    policy.eval()
    return policy, config.policy.history


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    reality: str | Path | None = None,
    episodes: int | None = None,
    workers: int | None = None,
    task: str | None = None,
) -> dict:
    """Evaluate a checkpoint's policy alone on the fixed evaluation seeds.

    Args:
        checkpoint: A ``.pt`` file written by training (``checkpoints/best.pt`` or ``last.pt``).
        reality: Reality profile for the reality setting; the run's ``train.eval_reality`` when None.
        episodes: Episodes per setting; the run's ``train.eval_episodes`` when None.
        workers: Rollout processes; the run's ``train.workers`` when None.
        task: When given, the task the checkpoint must have been trained on.

    Raises:
        CheckpointError: The file is not a robot training checkpoint, or the checkpoint's task
            differs from `task`.
        EvalError: `episodes` is below 1.

    Returns:
        Success rates, mean returns and lengths per setting, plus the checkpoint's iteration.
    """
    from ast_robot.train.evaluate import evaluate
    from ast_robot.train.workers import LocalProcessPool, serialize_policy

    if episodes is not None and episodes < 1:
        raise EvalError(f"--episodes must be at least 1 episode per setting, got {episodes}")
    state = load_robot_checkpoint(checkpoint)
    config = config_from_checkpoint(state)
    if task is not None:
        check_checkpoint_task(state, task, checkpoint)
    policy, _history = policy_from_checkpoint(state)
    reality = reality if reality is not None else config.train.eval_reality
    episodes = episodes if episodes is not None else config.train.eval_episodes
    workers = workers if workers is not None else config.train.workers
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=workers) as pool:
        results = evaluate(pool, serialize_policy(policy), episodes=episodes, reality=reality)
    results.update(checkpoint=str(checkpoint), iteration=int(state["iteration"]), episodes=episodes)
    return results
