"""The three tasks: pick_place, reach and push.

Success follows the convention of the gymnasium-robotics Fetch tasks: the object (or, for reach,
the TCP) is within `EnvConfig.success_threshold_m` (default 0.05 m) of the goal. The reward is
the sum of dense terms in [0, 1], each reported in ``info["reward_<name>"]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import GripperEnv

OFF_TABLE_Z_M = -0.05
"""An object centre this far below the table top has fallen off: a true terminal state."""

DISTANCE_SCALE_1_M = 10.0
"""Slope of the distance terms ``1 - tanh(DISTANCE_SCALE_1_M * distance)``: 0.24 at 2.5 cm, 0.76
at 10 cm."""


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    # Faster than np.linalg.norm or math.dist on 3-element arrays.
    difference = a - b
    return math.sqrt(float(difference @ difference))


def _closeness(distance_m: float) -> float:
    return 1.0 - math.tanh(DISTANCE_SCALE_1_M * distance_m)


def _far_enough_goal(rng: np.random.Generator, object_pos: np.ndarray, sample, min_distance_m: float) -> np.ndarray:
    """Draw goals from `sample(rng)` until one is `min_distance_m` away from the object."""
    goal = sample(rng)
    for _ in range(100):
        if np.linalg.norm(goal - object_pos) >= min_distance_m:
            break
        goal = sample(rng)
    return goal


class PickPlaceEnv(GripperEnv):
    """Pick the cube up and place it at the goal, on the table or up to 15 cm above it.

    Half of the goals lie on the table, half in the air, as in the Fetch pick-and-place task.
    Reward terms: ``reach`` (TCP close to the cube), ``grasp`` (both pads touch the cube),
    ``lift`` (grasped and off the table, weight 0.5) and ``place`` (cube close to the goal, weight
    2). The episode terminates when the cube falls off the table.
    """

    task = "pick_place"

    def _sample_goal(self, rng, object_pos):
        half = object_pos[2]

        def sample(rng):
            height = rng.uniform(0.02, 0.15) if rng.random() < 0.5 else 0.0
            return np.array([*rng.uniform(-0.15, 0.15, size=2), half + height])

        return _far_enough_goal(rng, object_pos, sample, 2 * self.env_cfg.success_threshold_m)

    def _evaluate(self, state: dict[str, Any]):
        obj, tcp, goal = state["object_pos"], state["tcp_pos"], state["goal"]
        grasped = state["grasped"]
        to_goal = _distance(obj, goal)
        lifted = grasped and obj[2] > state["object_half_size_m"] + 0.01
        terms = {
            "reward_reach": _closeness(_distance(obj, tcp)),
            "reward_grasp": 1.0 if grasped else 0.0,
            "reward_lift": 0.5 if lifted else 0.0,
            "reward_place": 2.0 * _closeness(to_goal),
        }
        return sum(terms.values()), terms, to_goal < self.env_cfg.success_threshold_m

    def _is_terminal(self, state):
        return bool(state["object_pos"][2] < OFF_TABLE_Z_M)


class ReachEnv(GripperEnv):
    """Move the TCP to a goal in the space above the table; the cube is an obstacle.

    Reward term: ``reach`` (TCP close to the goal). No terminal state: only the step limit ends
    an episode.
    """

    task = "reach"

    def _sample_goal(self, rng, object_pos):
        def sample(rng):
            return np.array([*rng.uniform(-0.15, 0.15, size=2), rng.uniform(0.06, 0.25)])

        return _far_enough_goal(rng, object_pos, sample, 2 * self.env_cfg.success_threshold_m)

    def _evaluate(self, state):
        distance = _distance(state["tcp_pos"], state["goal"])
        terms = {"reward_reach": _closeness(distance)}
        return terms["reward_reach"], terms, distance < self.env_cfg.success_threshold_m


class PushEnv(GripperEnv):
    """Push the cube along the table to a goal on the table.

    Reward terms: ``reach`` (TCP close to the cube) and ``push`` (cube close to the goal, weight
    2). The episode terminates when the cube falls off the table.
    """

    task = "push"

    def _sample_object_xy(self, rng):
        return rng.uniform(-0.1, 0.1, size=2)

    def _sample_goal(self, rng, object_pos):
        def sample(rng):
            return np.array([*rng.uniform(-0.15, 0.15, size=2), object_pos[2]])

        return _far_enough_goal(rng, object_pos, sample, 2 * self.env_cfg.success_threshold_m)

    def _evaluate(self, state):
        obj = state["object_pos"]
        to_goal = _distance(obj, state["goal"])
        terms = {
            "reward_reach": _closeness(_distance(obj, state["tcp_pos"])),
            "reward_push": 2.0 * _closeness(to_goal),
        }
        return sum(terms.values()), terms, to_goal < self.env_cfg.success_threshold_m

    def _is_terminal(self, state):
        return bool(state["object_pos"][2] < OFF_TABLE_Z_M)


TASK_CLASSES: dict[str, type[GripperEnv]] = {
    "pick_place": PickPlaceEnv,
    "reach": ReachEnv,
    "push": PushEnv,
}
