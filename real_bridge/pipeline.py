"""The bridge's control step without ROS: messages in, observation history, policy, safe command out.

`ControlCore` is the one implementation of what the ROS2 node does at each control step. The
node (`ros2_node.py`) feeds it live messages and timer ticks; log replay (`replay.py`) feeds it
the messages of a recorded bag in log-time order and a tick at every logged command. Both run
exactly this code, so a replay with the checkpoint that drove the robot reproduces the logged
commands.

Time is the caller's: every call takes ``t_ns``, nanoseconds on one clock (the node's ROS clock
when live, the bag's log time in replay). A message counts as received at its ``t_ns``; the
watchdog compares that with the tick time, never with the sender's header stamp, so clock skew
between robot and bridge cannot hide a stale sensor.

A control step (`ControlCore.tick`):

1. Nothing happens while disarmed (and no stop is latched).
2. A latched stop, or a required role whose latest message is older than the watchdog timeout,
   gives a zero command; the observation history is left unchanged.
3. Otherwise the current observation joins the history, the policy acts on the history, and the
   action (or, during a human intervention, the teleoperation command) passes the safety layer.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ast_robot.config import BridgeConfig
from ast_robot.episode import OBS_GROUPS
from ast_robot.real_bridge.safety import SafeCommand, SafetyLayer
from ast_robot.real_bridge.topic_map import RobotMap

logger = logging.getLogger(__name__)

SENSOR_ROLES = ("joint_states", "ee_pose", "ee_twist", "object_pose", "goal_pose", "wrench")
"""Topic-map roles that carry observations."""


class ActingPolicy(Protocol):
    """What the bridge needs from a policy (`TransformerPolicy` and `ProxyPolicy` fit)."""

    def act(self, obs_history: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Return the normalized action (4,) and its standard deviation (4,) for a history of
        observation groups, each (h, d) with the newest step last."""


@dataclass
class TickResult:
    """What one control step produced.

    Attributes:
        command: The command after the safety layer; send it only if ``command.send``.
        action: The policy's normalized action (4,), or None when the policy did not run.
        action_std: The policy's action standard deviation (4,), or None.
        stale_roles: Required roles that were missing or older than the watchdog timeout.
        t_ns: Tick time in nanoseconds.
    """

    command: SafeCommand
    action: np.ndarray | None
    action_std: np.ndarray | None
    stale_roles: tuple[str, ...]
    t_ns: int


def _xyz(vector: Any) -> np.ndarray:
    return np.array([vector.x, vector.y, vector.z], dtype=np.float64)


class ObservationPipeline:
    """Latest message per sensor role, the observation groups built from them, and the history.

    Messages may be rclpy messages or rosbags messages: only field names are used, and both
    follow the ROS2 message definitions.

    Args:
        robot_map: Topic map (gripper joints, which roles exist).
        history_steps: Steps of history the policy takes (H).
        required_roles: Roles the watchdog checks; roles the map does not name are skipped.
        timeout_s: Watchdog timeout in seconds.
    """

    def __init__(
        self, robot_map: RobotMap, *, history_steps: int, required_roles: list[str], timeout_s: float
    ):
        self.robot_map = robot_map
        self.history_steps = int(history_steps)
        self.required_roles = tuple(role for role in required_roles if role in robot_map.topics)
        skipped = sorted(set(required_roles) - set(self.required_roles))
        if skipped:
            logger.info("watchdog skips roles the robot map %s does not name: %s", robot_map.name, skipped)
        self.timeout_ns = round(timeout_s * 1e9)
        self._latest: dict[str, tuple[Any, int]] = {}
        self._previous_ee: tuple[np.ndarray, int] | None = None
        self._ee_velocity = np.zeros(3)
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.history_steps)

    def on_message(self, role: str, msg: Any, t_ns: int) -> None:
        """Store the latest message of a sensor role, received at `t_ns`."""
        if role == "ee_pose":
            self._update_velocity(msg, t_ns)
        self._latest[role] = (msg, int(t_ns))

    def _update_velocity(self, msg: Any, t_ns: int) -> None:
        """Differentiate end-effector positions when no measured twist is mapped."""
        position = _xyz(msg.pose.position)
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        # Header stamps say when the pose was measured; the receive time only stands in when
        # the driver leaves them at zero.
        stamp_ns = stamp_ns or int(t_ns)
        if self._previous_ee is not None and stamp_ns > self._previous_ee[1]:
            dt_s = (stamp_ns - self._previous_ee[1]) / 1e9
            self._ee_velocity = (position - self._previous_ee[0]) / dt_s
        self._previous_ee = (position, stamp_ns)

    def stale_roles(self, t_ns: int) -> tuple[str, ...]:
        """Required roles never received, or older than the timeout at `t_ns`.

        A role the topic map marks ``hold`` (published on change, such as a goal pose) only has
        to have arrived once.
        """
        stale = []
        for role in self.required_roles:
            entry = self._latest.get(role)
            if entry is None:
                stale.append(role)
            elif not self.robot_map.topics[role].holds and t_ns - entry[1] > self.timeout_ns:
                stale.append(role)
        return tuple(stale)

    def age_s(self, role: str, t_ns: int) -> float:
        """Age in seconds of the latest message of `role` at `t_ns`; inf if none arrived."""
        entry = self._latest.get(role)
        return float("inf") if entry is None else (t_ns - entry[1]) / 1e9

    def latest(self, role: str) -> Any | None:
        entry = self._latest.get(role)
        return None if entry is None else entry[0]

    def wrench(self) -> np.ndarray | None:
        """Latest wrist wrench: force xyz (N), torque xyz (N*m), float64 (6,); None if none."""
        msg = self.latest("wrench")
        if msg is None:
            return None
        return np.concatenate([_xyz(msg.wrench.force), _xyz(msg.wrench.torque)])

    def ee_position(self) -> np.ndarray | None:
        """Latest end-effector position xyz in metres, or None."""
        msg = self.latest("ee_pose")
        return None if msg is None else _xyz(msg.pose.position)

    def observation(self) -> dict[str, np.ndarray]:
        """Build the observation groups of `OBS_GROUPS` from the latest messages (float32 (d,)).

        A group part whose topic never arrived is zero; the watchdog keeps the policy from
        acting on such a step whenever that role is required.
        """
        ee = self.ee_position()
        ee = np.zeros(3) if ee is None else ee
        twist = self.latest("ee_twist")
        velocity = _xyz(twist.twist.linear) if twist is not None else self._ee_velocity
        opening, opening_velocity = self._gripper_state()
        wrench = self.wrench()
        obj_msg = self.latest("object_pose")
        obj = _xyz(obj_msg.pose.position) if obj_msg is not None else np.zeros(3)
        goal_msg = self.latest("goal_pose")
        goal = _xyz(goal_msg.pose.position) if goal_msg is not None else np.zeros(3)
        groups = {
            "proprio": np.concatenate([ee, velocity, [opening, opening_velocity]]),
            "force": np.zeros(6) if wrench is None else wrench,
            "object": np.concatenate([obj, obj - ee]),
            "goal": goal,
        }
        return {name: groups[name].astype(np.float32) for name in OBS_GROUPS}

    def _gripper_state(self) -> tuple[float, float]:
        """Gripper opening (m) and its velocity (m/s): sums over the mapped finger joints."""
        msg = self.latest("joint_states")
        if msg is None:
            return 0.0, 0.0
        names = list(msg.name)
        indices = [names.index(joint) for joint in self.robot_map.gripper_joints if joint in names]
        if len(indices) != len(self.robot_map.gripper_joints):
            indices = list(self.robot_map.gripper_joint_indices)
        positions = np.asarray(msg.position, dtype=np.float64)
        velocities = np.asarray(msg.velocity, dtype=np.float64)
        opening = float(sum(positions[i] for i in indices if i < len(positions)))
        speed = float(sum(velocities[i] for i in indices if i < len(velocities)))
        return opening, speed

    def push(self, observation: dict[str, np.ndarray]) -> None:
        self._history.append(observation)

    def history(self) -> dict[str, np.ndarray]:
        """The stored steps per group, float32 (h, d) with h <= H, newest last."""
        return {name: np.stack([step[name] for step in self._history]) for name in OBS_GROUPS}

    def reset_history(self) -> None:
        self._history.clear()


class ControlCore:
    """The bridge's state and control step, shared by the ROS2 node and log replay.

    Args:
        policy: Anything with `act` (see `ActingPolicy`).
        robot_map: Topic map; its `linear_scale_m_s` converts normalized actions to m/s.
        cfg: Bridge settings (safety limits, watchdog).
        history_steps: Steps of observation history the policy takes.
    """

    def __init__(self, policy: ActingPolicy, robot_map: RobotMap, cfg: BridgeConfig, *, history_steps: int):
        self.policy = policy
        self.robot_map = robot_map
        self.cfg = cfg
        self.period_s = 1.0 / robot_map.control_hz
        self.safety = SafetyLayer(cfg.safety, control_period_s=self.period_s)
        self.pipeline = ObservationPipeline(
            robot_map,
            history_steps=history_steps,
            required_roles=list(cfg.safety.required_roles),
            timeout_s=cfg.safety.watchdog_timeout_s,
        )
        self.timeout_ns = self.pipeline.timeout_ns
        self.intervention = False
        self._teleop_linear: tuple[np.ndarray, int] | None = None
        self._teleop_gripper: float | None = None
        self.last_command: SafeCommand | None = None

    # -- inputs ---------------------------------------------------------------------------------

    def on_message(self, role: str, msg: Any, t_ns: int) -> bool:
        """Take one message of a mapped role; return True when it latched a stop just now."""
        if role in SENSOR_ROLES:
            self.pipeline.on_message(role, msg, t_ns)
            if role == "wrench":
                was_latched = self.safety.force_latched
                return self.safety.check_wrench(self.pipeline.wrench()) and not was_latched
        elif role == "intervention":
            if bool(msg.data) != self.intervention:
                logger.info("human intervention %s", "started" if msg.data else "ended")
            self.intervention = bool(msg.data)
        return False

    def on_estop(self, active: bool) -> bool:
        """Take the e-stop input; return True when it latched a stop just now."""
        was_latched = self.safety.estop_latched
        self.safety.set_estop(active)
        return self.safety.estop_latched and not was_latched

    def on_teleop(self, linear_m_s: np.ndarray, t_ns: int) -> None:
        """Take a teleoperation velocity xyz in m/s."""
        self._teleop_linear = (np.asarray(linear_m_s, dtype=np.float64), int(t_ns))

    def on_teleop_gripper(self, gripper: float) -> None:
        """Take a normalized teleoperation gripper command."""
        self._teleop_gripper = float(gripper)

    def start_episode(self) -> None:
        """Clear the observation history so the policy starts a new episode fresh."""
        self.pipeline.reset_history()

    # -- control --------------------------------------------------------------------------------

    def tick(self, t_ns: int) -> TickResult:
        """Run one control step at time `t_ns` (see the module docstring)."""
        stale = self.pipeline.stale_roles(t_ns)
        position = self.pipeline.ee_position()
        if not self.safety.armed or self.safety.stopped or stale:
            command = self.safety.filter(np.zeros(3), 0.0, position_m=position, stale=bool(stale))
            return self._finish(command, None, None, stale, t_ns)

        observation = self.pipeline.observation()
        self.pipeline.push(observation)
        action, action_std = self.policy.act(self.pipeline.history())
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        action_std = np.asarray(action_std, dtype=np.float32).reshape(-1)

        if self.intervention:
            linear, gripper, teleop_stale = self._teleop_request(t_ns)
            command = self.safety.filter(
                linear, gripper, position_m=position, stale=teleop_stale, intervention=True
            )
        else:
            linear = action[:3].astype(np.float64) * self.robot_map.linear_scale_m_s
            command = self.safety.filter(linear, float(action[3]), position_m=position, stale=False)
        return self._finish(command, action, action_std, stale, t_ns)

    def _teleop_request(self, t_ns: int) -> tuple[np.ndarray, float, bool]:
        """The teleoperation command; stale (so zero) when older than the watchdog timeout."""
        gripper = self._teleop_gripper
        if gripper is None:
            gripper = self.last_command.gripper if self.last_command is not None else 0.0
        if self._teleop_linear is None or t_ns - self._teleop_linear[1] > self.timeout_ns:
            return np.zeros(3), gripper, True
        return self._teleop_linear[0], gripper, False

    def watchdog_check(self, t_ns: int) -> SafeCommand | None:
        """Return a zero command when observations went stale since the last command, else None.

        Runs between control steps so a stale sensor stops the robot within the watchdog
        timeout plus one check period, not one control period later.
        """
        if not self.safety.armed or self.last_command is None:
            return None
        if not self.pipeline.stale_roles(t_ns):
            return None
        if not np.any(self.last_command.linear_m_s):
            return None
        return self.tick(t_ns).command

    def _finish(self, command, action, action_std, stale, t_ns) -> TickResult:
        if command.send:
            self.last_command = command
        return TickResult(command, action, action_std, tuple(stale), int(t_ns))
