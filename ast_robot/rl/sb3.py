"""Importing stable-baselines3, the optional dependency of the `sb3` extra."""

from __future__ import annotations

from ast_robot.errors import MissingExtraError


def require_sb3(feature: str = "reinforcement learning (--algo ppo|sac)"):
    """Return the `stable_baselines3` module, or raise `MissingExtraError` naming the `sb3` extra."""
    try:
        import stable_baselines3
    except ImportError as error:
        raise MissingExtraError("sb3", "stable_baselines3", feature) from error
    return stable_baselines3
