"""The bridge's control step without ROS: messages in, observation history, policy, safe command out.

`ControlCore` is the one implementation of what the ROS2 node does at each control step. The
node (`ros2_node.py`) feeds it live messages and timer ticks. Log replay (`replay.py`) feeds it
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

import contextlib
import logging
import math
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ast_robot.config import BridgeConfig
from ast_robot.episode import OBS_GROUPS
from ast_robot.real_bridge.safety import SafeCommand, SafetyLayer
from ast_robot.real_bridge.topic_map import RobotMap

logger = logging.getLogger(__name__)

CONTROL_EVENTS_TOPIC = "/ast_robot/bridge_events"
"""std_msgs/String JSON the bridge node publishes and records on every arm, disarm, reset and stop
change (``{"event": "arm"}``), kept off the episode events topic that log readers segment by."""

SENSOR_ROLES = ("joint_states", "ee_pose", "ee_twist", "object_pose", "goal_pose", "wrench")
"""Topic-map roles that carry observations."""


@contextlib.contextmanager
def single_thread_inference():
    """Run torch on one CPU thread inside the block, then restore the previous thread count.

    Batch-1 inference gains nothing from more threads, and on a busy machine their
    synchronization made one action take 28 ms of CPU instead of 0.9 ms (tiny transformer,
    2-core machine shared with other jobs), long enough to trip the watchdog. The node and
    replay both act on one thread, so replay also sums in the same order and reproduces the
    node's commands bit for bit. Does nothing when torch was never imported.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ActingPolicy(Protocol):
    """The interface the bridge needs from a policy (`TransformerPolicy` and `ProxyPolicy` fit)."""

    def act(self, obs_history: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Return the normalized action (4,) and its standard deviation (4,) for a history of
        observation groups, each (h, d) with the newest step last."""


@dataclass
class TickResult:
    """The outcome of one control step.

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


def _xyz(vector: Any) -> tuple[float, float, float]:
    return (float(vector.x), float(vector.y), float(vector.z))


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def extract_values(role: str, msg: Any, robot_map: RobotMap) -> tuple[int, tuple[float, ...]]:
    """Return ``(header stamp in ns, numbers)`` of one message, as the log reader extracts them.

    The numbers per role follow `real_bridge.decode.ROLE_WIDTHS`: joint states give the gripper
    opening (m) and its velocity (m/s, NaN when the message carries no velocities), poses and
    twists xyz, the wrench force and torque, the intervention flag 1.0 or 0.0. Works on rclpy
    and rosbags messages alike, because only field names are used.
    """
    if role in ("ee_pose", "object_pose", "goal_pose"):
        return _stamp_ns(msg), _xyz(msg.pose.position)
    if role in ("ee_twist", "cmd_twist"):
        return _stamp_ns(msg), _xyz(msg.twist.linear)
    if role == "wrench":
        return _stamp_ns(msg), _xyz(msg.wrench.force) + _xyz(msg.wrench.torque)
    if role == "joint_states":
        return _stamp_ns(msg), _gripper_values(msg, robot_map)
    if role in ("intervention", "gripper_cmd"):
        return 0, (float(msg.data),)
    raise ValueError(f"role '{role}' carries no numbers")


def _gripper_values(msg: Any, robot_map: RobotMap) -> tuple[float, float]:
    """Gripper opening and its velocity: sums over the finger joints the robot map names."""
    names = list(msg.name)
    positions = list(msg.position)
    velocities = list(msg.velocity)
    if names:
        if not all(joint in names for joint in robot_map.gripper_joints):
            return math.nan, math.nan
        indices = [names.index(joint) for joint in robot_map.gripper_joints]
    else:
        indices = list(robot_map.gripper_joint_indices)
        if not indices or max(indices) >= len(positions):
            return math.nan, math.nan
    opening = float(sum(positions[i] for i in indices))
    velocity = float(sum(velocities[i] for i in indices)) if len(velocities) == len(positions) else math.nan
    return opening, velocity


class ObservationPipeline:
    """Latest values per sensor role, the observation groups built from them, and the history.

    Args:
        robot_map: Topic map (which roles exist, which ones hold their last value).
        history_steps: Steps of history the policy takes (H).
        required_roles: Roles the watchdog checks; roles the map does not name are skipped.
        timeout_s: Watchdog timeout in seconds.
        check_period_s: Time between watchdog checks in seconds. A role counts as stale once
            its age plus one check period exceeds the timeout, so the check that stops the robot
            runs before the newest message is `timeout_s` old, not up to one period after.
    """

    def __init__(
        self,
        robot_map: RobotMap,
        *,
        history_steps: int,
        required_roles: list[str],
        timeout_s: float,
        check_period_s: float = 0.0,
    ):
        self.robot_map = robot_map
        self.history_steps = int(history_steps)
        self.required_roles = tuple(role for role in required_roles if role in robot_map.topics)
        skipped = sorted(set(required_roles) - set(self.required_roles))
        if skipped:
            logger.info("watchdog skips roles the robot map %s does not name: %s", robot_map.name, skipped)
        self.timeout_ns = round(timeout_s * 1e9)
        self.stale_after_ns = self.timeout_ns - round(check_period_s * 1e9)
        self._latest: dict[str, tuple[np.ndarray, int]] = {}
        self._previous_ee: tuple[np.ndarray, int] | None = None
        self._ee_velocity = np.zeros(3)
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.history_steps)

    def on_values(self, role: str, stamp_ns: int, values, t_ns: int) -> None:
        """Store the latest numbers of a sensor role (see `extract_values`), received at `t_ns`."""
        values = np.asarray(values, dtype=np.float64)
        if role == "ee_pose":
            self._update_velocity(values, stamp_ns or int(t_ns))
        self._latest[role] = (values, int(t_ns))

    def _update_velocity(self, position: np.ndarray, stamp_ns: int) -> None:
        """Differentiate end-effector positions by header stamp, for maps without ``ee_twist``."""
        if self._previous_ee is not None and stamp_ns > self._previous_ee[1]:
            dt_s = (stamp_ns - self._previous_ee[1]) / 1e9
            self._ee_velocity = (position - self._previous_ee[0]) / dt_s
        self._previous_ee = (position, stamp_ns)

    def stale_roles(self, t_ns: int) -> tuple[str, ...]:
        """Required roles never received, or too old at `t_ns` (see `check_period_s`).

        A role the topic map marks ``hold`` (published on change, such as a goal pose) only has
        to have arrived once.
        """
        stale = []
        for role in self.required_roles:
            entry = self._latest.get(role)
            if entry is None:
                stale.append(role)
            elif not self.robot_map.topics[role].holds and t_ns - entry[1] > self.stale_after_ns:
                stale.append(role)
        return tuple(stale)

    def age_s(self, role: str, t_ns: int) -> float:
        """Age in seconds of the latest message of `role` at `t_ns`; inf if none arrived."""
        entry = self._latest.get(role)
        return float("inf") if entry is None else (t_ns - entry[1]) / 1e9

    def latest(self, role: str) -> np.ndarray | None:
        entry = self._latest.get(role)
        return None if entry is None else entry[0]

    def wrench(self) -> np.ndarray | None:
        """Latest wrist wrench: force xyz (N), torque xyz (N*m), float64 (6,); None if none."""
        return self.latest("wrench")

    def ee_position(self) -> np.ndarray | None:
        """Latest end-effector position xyz in metres, or None."""
        return self.latest("ee_pose")

    def observation(self) -> dict[str, np.ndarray]:
        """Build the observation groups of `OBS_GROUPS` from the latest values (float32 (d,)).

        A part whose topic never arrived is zero; the watchdog keeps the policy from acting on
        such a step whenever that role is required.
        """
        zeros = np.zeros(3)
        ee = self._or(self.latest("ee_pose"), zeros)
        velocity = self._or(self.latest("ee_twist"), self._ee_velocity)
        gripper = self._or(self.latest("joint_states"), np.zeros(2))
        obj = self._or(self.latest("object_pose"), zeros)
        groups = {
            "proprio": np.concatenate([ee, velocity, gripper]),
            "force": self._or(self.wrench(), np.zeros(6)),
            "object": np.concatenate([obj, obj - ee]),
            "goal": self._or(self.latest("goal_pose"), zeros),
        }
        return {name: groups[name].astype(np.float32) for name in OBS_GROUPS}

    @staticmethod
    def _or(value: np.ndarray | None, default: np.ndarray) -> np.ndarray:
        return default if value is None else value

    def push(self, observation: dict[str, np.ndarray]) -> None:
        self._history.append(observation)

    def history(self) -> dict[str, np.ndarray]:
        """Return the stored steps per group, float32 (h, d) with h <= H, newest last."""
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
            check_period_s=1.0 / cfg.watchdog_check_hz,
        )
        self.timeout_ns = self.pipeline.timeout_ns
        self.intervention = False
        self._teleop_linear: tuple[np.ndarray, int] | None = None
        self._teleop_gripper: float | None = None
        self.last_command: SafeCommand | None = None

    # -- inputs ---------------------------------------------------------------------------------

    def on_message(self, role: str, msg: Any, t_ns: int) -> bool:
        """Take one message of a mapped role; return True when it latched a stop just now."""
        if role not in SENSOR_ROLES and role != "intervention":
            return False
        stamp_ns, values = extract_values(role, msg, self.robot_map)
        return self.on_values(role, stamp_ns, values, t_ns)

    def on_values(self, role: str, stamp_ns: int, values, t_ns: int) -> bool:
        """Take the numbers of one message (see `extract_values`); True when a stop latched now."""
        if role == "intervention":
            active = bool(values[0])
            if active != self.intervention:
                logger.info("human intervention %s", "started" if active else "ended")
            self.intervention = active
            return False
        if role not in SENSOR_ROLES:
            return False
        self.pipeline.on_values(role, stamp_ns, values, t_ns)
        if role == "wrench":
            was_latched = self.safety.force_latched
            return self.safety.check_wrench(self.pipeline.wrench()) and not was_latched
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
        if not all(np.isfinite(part).all() for part in observation.values()):
            # A sensor sent NaN (a joint state without velocities, say): stop rather than act on it.
            command = self.safety.filter(np.zeros(3), 0.0, position_m=position, stale=True)
            return self._finish(command, None, None, ("non_finite",), t_ns)
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
        """Return the teleoperation command, which is stale (so zero) when older than the watchdog timeout."""
        gripper = self._teleop_gripper
        if gripper is None:
            gripper = self.last_command.gripper if self.last_command is not None else 0.0
        if self._teleop_linear is None or t_ns - self._teleop_linear[1] > self.timeout_ns:
            return np.zeros(3), gripper, True
        return self._teleop_linear[0], gripper, False

    def watchdog_check(self, t_ns: int) -> TickResult | None:
        """Return a control step at `t_ns` (a zero command) when observations went stale while
        the last command moved the robot, else None.

        Runs between control steps so a stale sensor stops the robot within the watchdog
        timeout plus one check period, not one control period later.
        """
        if not self.safety.armed or self.last_command is None:
            return None
        if not self.pipeline.stale_roles(t_ns):
            return None
        if not np.any(self.last_command.linear_m_s):
            return None
        return self.tick(t_ns)

    def _finish(self, command, action, action_std, stale, t_ns) -> TickResult:
        if command.send:
            self.last_command = command
        return TickResult(command, action, action_std, tuple(stale), int(t_ns))
