"""Privileged scripted experts: closed-loop controllers on the true state in ``info["state"]``.

Each expert recomputes its plan from the current state at every step, with no phase memory, so it
recovers from whatever state a learning policy (or an injected mistake) leaves it in: a dropped
cube is picked up again, a cube pushed off the line is approached anew. That makes it usable as
the DAgger teacher that labels states visited by another policy.

Noise injection for diverse demonstrations:

- `noise_std`: Gaussian noise added to every action component (normalized units), then clipped.
- `mistake_prob`: at each step outside a mistake, the probability of starting an injected
  mistake that lasts `mistake_steps` control steps. While carrying the cube the mistake is a drop
  (the gripper opens); otherwise it is a mis-aim (the expert steers to a point 2 to 4 cm beside
  its real target). A stand-in robot uses this to produce realistic failures and recoveries.

`act` applies noise and mistakes; `label` returns the clean action for the same state without
touching the random state, so a noisy expert can still provide clean DAgger labels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ast_robot.episode import ACTION_DIM
from ast_robot.errors import EnvError

from .scene import PAD_HALF_HEIGHT_M

POSITION_GAIN_1_S = 7.0
"""Proportional gain from position error (m) to velocity command (m/s). With one control step
of 0.05 s the loop moves 35 % of the error per step, which stays well damped with up to two steps
of action latency."""

_EXPERT_SALT = 0x5EED_E4


class ScriptedExpert:
    """Base class: turns a (target TCP position, gripper command) plan into actions.

    Args:
        env: The env (or a wrapper of it) the expert acts in; its `EnvConfig` gives the speed scale.
        noise_std: Standard deviation of Gaussian action noise, normalized units.
        rng: Source of noise and mistakes; `reset(seed=...)` replaces it.
        mistake_prob: Per-step probability of starting an injected mistake.
        mistake_steps: Length of one injected mistake in control steps.
    """

    def __init__(
        self,
        env,
        *,
        noise_std: float = 0.0,
        rng: np.random.Generator | None = None,
        mistake_prob: float = 0.0,
        mistake_steps: int = 6,
    ):
        if noise_std < 0.0:
            raise EnvError(f"noise_std must be >= 0, got {noise_std}")
        if not 0.0 <= mistake_prob <= 1.0:
            raise EnvError(f"mistake_prob must be in [0, 1], got {mistake_prob}")
        if mistake_steps < 1:
            raise EnvError(f"mistake_steps must be >= 1, got {mistake_steps}")
        base = env.unwrapped
        self.max_speed_m_s = base.env_cfg.max_ee_speed_m_s
        self.noise_std = noise_std
        self.mistake_prob = mistake_prob
        self.mistake_steps = mistake_steps
        self.rng = rng if rng is not None else np.random.default_rng()
        self._mistake_left = 0
        self._mistake_kind = ""
        self._aim_offset = np.zeros(3)
        self._mistake_flags: list[float] = []

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; with `seed`, reseed the noise so the episode is reproducible."""
        if seed is not None:
            self.rng = np.random.default_rng([_EXPERT_SALT, seed])
        self._mistake_left = 0
        self._mistake_flags = []

    def plan(self, state: dict[str, Any]) -> tuple[np.ndarray, float, bool]:
        """Return the target TCP position (m, (3,)), the gripper command in [-1, 1] and whether
        the cube is being carried."""
        raise NotImplementedError

    def label(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The clean action for the current state, float32 (4,); no noise, no mistakes."""
        state = info["state"]
        target, gripper, _ = self.plan(state)
        return self._to_action(state["tcp_pos"], target, gripper)

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The action to execute, float32 (4,) in [-1, 1], with noise and mistakes if enabled."""
        if info.get("step") == 0:
            self._mistake_left = 0
            self._mistake_flags = []
        state = info["state"]
        target, gripper, carrying = self.plan(state)

        if self._mistake_left == 0 and self.mistake_prob > 0.0 and self.rng.random() < self.mistake_prob:
            self._start_mistake(carrying)
        in_mistake = self._mistake_left > 0
        if in_mistake:
            self._mistake_left -= 1
            if self._mistake_kind == "drop":
                gripper = -1.0
            else:
                target = target + self._aim_offset
        self._mistake_flags.append(1.0 if in_mistake else 0.0)

        action = self._to_action(state["tcp_pos"], target, gripper)
        if self.noise_std > 0.0:
            action = np.clip(action + self.noise_std * self.rng.standard_normal(ACTION_DIM), -1.0, 1.0)
        return action.astype(np.float32)

    def step_stats(self) -> dict[str, np.ndarray]:
        """Per-step ``expert_mistake`` (1 while an injected mistake acts), float32 (T,); empty when
        mistakes are off."""
        if self.mistake_prob == 0.0:
            return {}
        return {"expert_mistake": np.asarray(self._mistake_flags, np.float32)}

    def _start_mistake(self, carrying: bool) -> None:
        self._mistake_left = self.mistake_steps
        if carrying:
            self._mistake_kind = "drop"
            return
        self._mistake_kind = "misaim"
        angle = self.rng.uniform(-math.pi, math.pi)
        radius = self.rng.uniform(0.02, 0.04)
        self._aim_offset = np.array([radius * math.cos(angle), radius * math.sin(angle), 0.0])

    def _to_action(self, tcp: np.ndarray, target: np.ndarray, gripper: float) -> np.ndarray:
        velocity = POSITION_GAIN_1_S * (target - tcp) / self.max_speed_m_s
        largest = float(np.abs(velocity).max())
        if largest > 1.0:
            velocity = velocity / largest  # keep the direction when the speed saturates
        return np.array([*velocity, gripper], dtype=np.float32)


class PickPlaceExpert(ScriptedExpert):
    """Align above the cube, descend with the gripper open, close, carry the cube to the goal.

    Transit happens at least `CLEARANCE_M` above the cube top. The descent starts once the TCP is
    within `ALIGN_TOL_M` of the cube centre in the table plane.
    """

    CLEARANCE_M = 0.04
    ALIGN_TOL_M = 0.008
    GRASP_HEIGHT_TOL_M = 0.006

    def plan(self, state):
        tcp, obj, goal = state["tcp_pos"], state["object_pos"], state["goal"]
        half = state["object_half_size_m"]
        if state["grasped"]:
            return self._carry(tcp, obj, goal, half), 1.0, True

        xy_error = float(np.linalg.norm(obj[:2] - tcp[:2]))
        above = obj[2] + half + self.CLEARANCE_M
        low = tcp[2] < obj[2] + half + PAD_HALF_HEIGHT_M * 0.5
        # Close to the cube, a slightly larger error is tolerated so the descent does not stall.
        tolerance = 2.0 * self.ALIGN_TOL_M if tcp[2] < above - 0.01 else self.ALIGN_TOL_M

        if xy_error > tolerance:
            if low and xy_error > half:
                # Beside the cube and low: rise first so the open fingers do not shove it.
                return np.array([tcp[0], tcp[1], above]), -1.0, False
            # Far from the cube any extra height is kept, near it the approach height is used.
            height = max(above, tcp[2]) if xy_error > 0.05 else above
            return np.array([obj[0], obj[1], height]), -1.0, False

        grasp_height = max(obj[2], PAD_HALF_HEIGHT_M + 0.003)
        target = np.array([obj[0], obj[1], grasp_height])
        at_height = tcp[2] - grasp_height < self.GRASP_HEIGHT_TOL_M
        return target, (1.0 if at_height else -1.0), False

    def _carry(self, tcp, obj, goal, half):
        offset = obj - tcp  # where the cube hangs relative to the TCP
        target = goal - offset
        xy_error = float(np.linalg.norm(goal[:2] - obj[:2]))
        if xy_error > 0.03:
            # Travel with the cube lifted clear of the table.
            target[2] = max(target[2], half + 0.03 - offset[2])
        return target


class ReachExpert(ScriptedExpert):
    """Move the TCP straight to the goal with the gripper open."""

    def plan(self, state):
        return state["goal"].copy(), -1.0, False


class PushExpert(ScriptedExpert):
    """Place the closed fingers behind the cube on the goal line and push it to the goal.

    Repositioning happens `TRAVEL_HEIGHT_M` above the table, so the fingers never hit the cube
    from the wrong side; the push itself runs with the TCP `PUSH_HEIGHT_M` above the table.
    """

    TRAVEL_HEIGHT_M = 0.08
    PUSH_HEIGHT_M = 0.02
    PUSHER_HALF_M = 0.012
    PAD_CORNER_M = 0.016
    LATERAL_TOL_M = 0.012

    def plan(self, state):
        tcp, obj, goal = state["tcp_pos"], state["object_pos"], state["goal"]
        half = state["object_half_size_m"]
        to_goal = goal[:2] - obj[:2]
        distance = float(np.linalg.norm(to_goal))
        if distance < 0.005:
            return np.array([tcp[0], tcp[1], self.TRAVEL_HEIGHT_M]), 1.0, False
        direction = to_goal / distance

        contact = half + self.PUSHER_HALF_M  # TCP-to-cube-centre distance when pushing
        # Descend where neither a cube corner (sqrt(2) * half from its centre, at any yaw) nor a
        # pad corner (PAD_CORNER_M from the TCP) can be under the other.
        behind = obj[:2] - direction * (math.sqrt(2.0) * half + self.PAD_CORNER_M + 0.008)
        rel = tcp[:2] - obj[:2]
        along = float(rel @ direction)
        lateral = float(np.linalg.norm(rel - along * direction))
        in_position = along < -contact + 0.005 and lateral < self.LATERAL_TOL_M and tcp[2] < 0.04

        if in_position:
            # Drive the TCP along the line through the cube towards the spot that puts the cube on
            # the goal; the lateral term pulls it back onto the line as the cube turns.
            line_point = obj[:2] - direction * contact
            push_to = line_point + direction * min(distance, 0.05)
            return np.array([push_to[0], push_to[1], self.PUSH_HEIGHT_M]), 1.0, False

        near_cube = float(np.linalg.norm(rel)) < contact + 0.035
        if tcp[2] < 0.05 and near_cube and along > -contact:
            return np.array([tcp[0], tcp[1], self.TRAVEL_HEIGHT_M]), 1.0, False
        if float(np.linalg.norm(tcp[:2] - behind)) > 0.01:
            height = self.TRAVEL_HEIGHT_M if near_cube or tcp[2] > 0.04 else tcp[2]
            return np.array([behind[0], behind[1], height]), 1.0, False
        return np.array([behind[0], behind[1], self.PUSH_HEIGHT_M]), 1.0, False


EXPERT_CLASSES: dict[str, type[ScriptedExpert]] = {
    "pick_place": PickPlaceExpert,
    "reach": ReachExpert,
    "push": PushExpert,
}
