"""Reinforcement learning with stable-baselines3 (PPO, SAC), steered by the significance gate.

Needs the `sb3` extra. Importing this package does not import stable-baselines3; the entry
points raise `MissingExtraError` naming the extra when it is missing.

- `train_rl(config, algo="ppo"|"sac", ...)`: the loop behind ``ast-robot train --algo ppo|sac``.
- `load_for_evaluation(checkpoint)`: the SB3 model and its env, statistics frozen.
"""

from __future__ import annotations


def train_rl(config, *, algo: str, **kwargs) -> dict:
    """See `ast_robot.rl.trainer.train_rl`."""
    from ast_robot.rl.sb3 import require_sb3

    require_sb3()
    from ast_robot.rl.trainer import train_rl as _train_rl

    return _train_rl(config, algo=algo, **kwargs)


def load_for_evaluation(checkpoint, **kwargs):
    """See `ast_robot.rl.trainer.load_for_evaluation`."""
    from ast_robot.rl.sb3 import require_sb3

    require_sb3()
    from ast_robot.rl.trainer import load_for_evaluation as _load

    return _load(checkpoint, **kwargs)


__all__ = ["load_for_evaluation", "train_rl"]
