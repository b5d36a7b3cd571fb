"""The safety layer between a policy (or a human teleoperator) and the robot.

Pure Python and numpy, with no ROS import, so the ROS2 node, log replay and the tests run the
same code. Every command passes `SafetyLayer.filter` before it is sent:

1. Not armed: nothing is sent.
2. E-stop latched: zero velocity, gripper holds. Only `reset()` clears the latch, and only
   while the e-stop input reads false.
3. Wrench above `max_force_n` or `max_torque_nm`: zero velocity and the gripper opens. This
   latches like the e-stop, because a contact that hard needs an operator to look.
4. A required observation older than `watchdog_timeout_s` (or never received): zero velocity,
   gripper holds its last command.
5. Otherwise the linear velocity is clamped to `max_speed_m_s` (norm, direction kept), then
   its change from the previous command to `max_accel_m_s2 * dt`, then per axis so that one
   control period of motion cannot leave the workspace box. The gripper command is clipped to
   [-1, 1] (normalized: -1 open, +1 closed).

Stops (2-4) zero the velocity at once without the acceleration limit: a stop must never wait.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ast_robot.config import SafetyConfig

logger = logging.getLogger(__name__)

GRIPPER_OPEN = -1.0
"""Normalized gripper command that opens the gripper fully."""

CLAMP_NAMES = ("speed", "accel", "workspace", "gripper", "force_stop", "watchdog", "estop")
"""Flags `SafetyLayer.filter` reports: which limit changed the requested command."""


@dataclass
class SafeCommand:
    """A command after the safety layer.

    Attributes:
        send: False while disarmed; the command must not be sent.
        linear_m_s: End-effector linear velocity xyz in m/s, float64 (3,).
        gripper: Normalized gripper command in [-1, 1] (-1 open, +1 closed).
        clamps: Limit name (see `CLAMP_NAMES`) -> True where that limit changed the request.
        intervention: True when the request came from a human teleoperator.
    """

    send: bool
    linear_m_s: np.ndarray
    gripper: float
    clamps: dict[str, bool] = field(default_factory=dict)
    intervention: bool = False

    @property
    def clamped(self) -> bool:
        """True when any limit changed the requested command."""
        return any(self.clamps.values())


class SafetyLayer:
    """Arm state, latches and command limits of one robot.

    Args:
        cfg: The limits.
        control_period_s: Nominal time between commands, used by the workspace check (how far
            one command can move the end effector) and as the fallback `dt_s` of the
            acceleration limit.
    """

    def __init__(self, cfg: SafetyConfig, *, control_period_s: float):
        self.cfg = cfg
        self.control_period_s = float(control_period_s)
        self._low = np.asarray(cfg.workspace_low_m, dtype=np.float64)
        self._high = np.asarray(cfg.workspace_high_m, dtype=np.float64)
        self.armed = False
        self.estop_latched = False
        self.force_latched = False
        self._estop_input = False
        self._last_linear = np.zeros(3)
        self._last_gripper = GRIPPER_OPEN

    # -- state transitions -------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True while the e-stop or the force stop is latched."""
        return self.estop_latched or self.force_latched

    @property
    def held_gripper(self) -> float:
        """The last gripper command sent; stops hold it (the force stop sets it to open)."""
        return self._last_gripper

    @property
    def state(self) -> str:
        """One word for operators: estop, force_stop, armed or disarmed."""
        if self.estop_latched:
            return "estop"
        if self.force_latched:
            return "force_stop"
        return "armed" if self.armed else "disarmed"

    def arm(self) -> tuple[bool, str]:
        """Allow commands to be sent; rejected while a stop is latched."""
        if self.stopped:
            return False, f"cannot arm in state '{self.state}'; reset first"
        if not self.armed:
            logger.info("armed")
        self.armed = True
        self._last_linear = np.zeros(3)
        return True, "armed"

    def disarm(self) -> tuple[bool, str]:
        """Stop sending commands."""
        if self.armed:
            logger.info("disarmed")
        self.armed = False
        self._last_linear = np.zeros(3)
        return True, "disarmed"

    def set_estop(self, active: bool) -> None:
        """Feed the e-stop input; true latches the stop and disarms."""
        self._estop_input = bool(active)
        if active and not self.estop_latched:
            logger.warning("e-stop received: motion stopped and latched until reset")
            self.estop_latched = True
            self.armed = False

    def reset(self) -> tuple[bool, str]:
        """Clear the e-stop and force latches; the node stays disarmed until armed again."""
        if self._estop_input:
            return False, "e-stop input is still true; release it before the reset"
        if self.stopped:
            logger.info("reset from state '%s'", self.state)
        self.estop_latched = False
        self.force_latched = False
        self.armed = False
        self._last_linear = np.zeros(3)
        return True, "reset; arm to move again"

    def check_wrench(self, wrench: np.ndarray | None) -> bool:
        """Latch the force stop when the wrench exceeds a limit; return True if latched now.

        Args:
            wrench: Force xyz in N and torque xyz in N*m, (6,), or None when not measured.
        """
        if wrench is None or self.force_latched:
            return self.force_latched
        wrench = np.asarray(wrench, dtype=np.float64)
        force_n = float(np.linalg.norm(wrench[:3]))
        torque_nm = float(np.linalg.norm(wrench[3:6]))
        if force_n > self.cfg.max_force_n or torque_nm > self.cfg.max_torque_nm:
            logger.warning(
                "force stop: |F| = %.1f N (limit %.1f), |tau| = %.2f N*m (limit %.2f); "
                "gripper opens, motion latched until reset",
                force_n, self.cfg.max_force_n, torque_nm, self.cfg.max_torque_nm,
            )
            self.force_latched = True
            self.armed = False
        return self.force_latched

    # -- the command filter ------------------------------------------------------------------

    def filter(
        self,
        linear_m_s: np.ndarray,
        gripper: float,
        *,
        position_m: np.ndarray | None,
        stale: bool,
        dt_s: float | None = None,
        intervention: bool = False,
    ) -> SafeCommand:
        """Apply every limit to one requested command.

        Args:
            linear_m_s: Requested end-effector linear velocity xyz in m/s, (3,).
            gripper: Requested normalized gripper command.
            position_m: Current end-effector position xyz in m, (3,); None when unknown, which
                counts as stale.
            stale: True when a required observation is older than the watchdog timeout.
            dt_s: Time since the previous command in seconds; the control period when None.
            intervention: The request came from a human teleoperator.
        """
        clamps = dict.fromkeys(CLAMP_NAMES, False)
        requested = np.asarray(linear_m_s, dtype=np.float64).reshape(3)
        if not np.isfinite(requested).all():
            requested = np.zeros(3)
            stale = True
        if not self.armed and not self.stopped:
            return SafeCommand(False, np.zeros(3), self._last_gripper, clamps, intervention)

        stop_reason = None
        if self.estop_latched:
            stop_reason = "estop"
        elif self.force_latched:
            stop_reason = "force_stop"
            self._last_gripper = GRIPPER_OPEN
        elif stale or position_m is None:
            stop_reason = "watchdog"
        if stop_reason is not None:
            clamps[stop_reason] = True
            self._last_linear = np.zeros(3)
            # A latched stop still sends the zero command, so a controller that keeps executing the
            # last command comes to rest. The armed flag only gates motion.
            return SafeCommand(True, np.zeros(3), self._last_gripper, clamps, intervention)

        linear = requested.copy()
        speed = float(np.linalg.norm(linear))
        if speed > self.cfg.max_speed_m_s:
            linear *= self.cfg.max_speed_m_s / speed
            clamps["speed"] = True

        dt = self.control_period_s if dt_s is None or dt_s <= 0 else float(dt_s)
        change = linear - self._last_linear
        max_change = self.cfg.max_accel_m_s2 * dt
        change_norm = float(np.linalg.norm(change))
        if change_norm > max_change:
            linear = self._last_linear + change * (max_change / change_norm)
            clamps["accel"] = True

        position = np.asarray(position_m, dtype=np.float64).reshape(3)
        # Per axis, one control period of motion may reach the box face but not pass it. Outside
        # the box, only motion back toward it is allowed.
        upper = np.maximum(0.0, (self._high - position) / self.control_period_s)
        lower = np.minimum(0.0, (self._low - position) / self.control_period_s)
        bounded = np.clip(linear, lower, upper)
        if not np.array_equal(bounded, linear):
            clamps["workspace"] = True
            linear = bounded

        gripper_value = float(gripper) if np.isfinite(gripper) else self._last_gripper
        clipped = float(np.clip(gripper_value, -1.0, 1.0))
        clamps["gripper"] = clipped != gripper_value
        self._last_linear = linear
        self._last_gripper = clipped
        return SafeCommand(True, linear, clipped, clamps, intervention)
