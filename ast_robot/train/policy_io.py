"""Rebuilding the trained policy from a training checkpoint, and evaluating a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

from ast_robot.config import Config, config_from_dict
from ast_robot.errors import CheckpointError

logger = logging.getLogger(__name__)


def config_from_checkpoint(state: dict) -> Config:
    """Return the resolved config a checkpoint was trained with."""
    return config_from_dict(state["config"], source_name="checkpoint")


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
) -> dict:
    """Evaluate a checkpoint's policy alone on the fixed evaluation seeds.

    Args:
        checkpoint: A ``.pt`` file written by training (``checkpoints/best.pt`` or ``last.pt``).
        reality: Reality profile for the reality setting; the run's ``train.eval_reality`` when None.
        episodes: Episodes per setting; the run's ``train.eval_episodes`` when None.
        workers: Rollout processes; the run's ``train.workers`` when None.

    Returns:
        Success rates, mean returns and lengths per setting, plus the checkpoint's iteration.
    """
    from ast_robot.train.checkpoint import load_checkpoint
    from ast_robot.train.evaluate import evaluate
    from ast_robot.train.workers import LocalProcessPool, serialize_policy

    state = load_checkpoint(checkpoint)
    config = config_from_checkpoint(state)
    policy, _history = policy_from_checkpoint(state)
    reality = reality if reality is not None else config.train.eval_reality
    episodes = episodes if episodes is not None else config.train.eval_episodes
    workers = workers if workers is not None else config.train.workers
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=workers) as pool:
        results = evaluate(pool, serialize_policy(policy), episodes=episodes, reality=reality)
    results.update(checkpoint=str(checkpoint), iteration=int(state["iteration"]), episodes=episodes)
    return results
