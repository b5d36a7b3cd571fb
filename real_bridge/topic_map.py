"""Robot topic maps: which rosbag2 / ROS2 topic carries which part of an episode.

A topic map is a YAML file in ``configs/robots/`` (see ``standin.yaml`` for a commented example).
It names one topic per role and the control rate that logs are resampled to. It sets how old the
latest message may be at a control step (the tolerance) and which finger joints make up the
gripper opening. Its command scales convert between logged commands in SI units and the
normalized actions in [-1, 1] that policies emit.

Roles and their standard message types:

| role           | type                            | meaning                                            |
|----------------|---------------------------------|----------------------------------------------------|
| `joint_states` | `sensor_msgs/msg/JointState`    | finger joint positions (m) and velocities (m/s)    |
| `ee_pose`      | `geometry_msgs/msg/PoseStamped` | end-effector position (m)                          |
| `ee_twist`     | `geometry_msgs/msg/TwistStamped`| measured end-effector velocity (m/s), optional     |
| `object_pose`  | `geometry_msgs/msg/PoseStamped` | object position estimate (m)                       |
| `goal_pose`    | `geometry_msgs/msg/PoseStamped` | goal position (m)                                  |
| `wrench`       | `geometry_msgs/msg/WrenchStamped`| wrist force (N) and torque (N*m)                  |
| `cmd_twist`    | `geometry_msgs/msg/TwistStamped`| commanded end-effector velocity (m/s)              |
| `gripper_cmd`  | `std_msgs/msg/Float64`          | gripper command (robot units, see `gripper_scale`) |
| `intervention` | `std_msgs/msg/Bool`             | True while a human is in control                   |
| `events`       | `std_msgs/msg/String`           | JSON episode events (`start`, `end` with success)  |

A role's ``type`` may name another message type with the same fields (a robot's own copy of
``WrenchStamped``, say); its definition must then be stored in the bag or listed under ``types``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ast_robot.errors import ConfigError

ROLE_TYPES: dict[str, str] = {
    "joint_states": "sensor_msgs/msg/JointState",
    "ee_pose": "geometry_msgs/msg/PoseStamped",
    "ee_twist": "geometry_msgs/msg/TwistStamped",
    "object_pose": "geometry_msgs/msg/PoseStamped",
    "goal_pose": "geometry_msgs/msg/PoseStamped",
    "wrench": "geometry_msgs/msg/WrenchStamped",
    "cmd_twist": "geometry_msgs/msg/TwistStamped",
    "gripper_cmd": "std_msgs/msg/Float64",
    "intervention": "std_msgs/msg/Bool",
    "events": "std_msgs/msg/String",
}
"""Role name -> the standard ROS2 message type that carries it."""

REQUIRED_ROLES = ("ee_pose", "cmd_twist", "events")
"""Roles every topic map must name. `ee_pose` is the reference stream that sets the steps of an
episode; without commands there are no actions; `events` is where episode boundaries go."""

HOLD_BY_DEFAULT = ("goal_pose", "gripper_cmd", "intervention")
"""Roles that are often published only on change, so their latest message is used at any age."""

TYPESTORES = (
    "ros2_foxy", "ros2_galactic", "ros2_humble", "ros2_iron", "ros2_jazzy", "ros2_kilted", "latest",
)


@dataclass(frozen=True)
class TopicSpec:
    """One mapped topic.

    Attributes:
        role: Role name, a key of `ROLE_TYPES`.
        topic: Topic name, e.g. ``/franka/ee_pose``.
        msgtype: Message type expected in the bag, e.g. ``geometry_msgs/msg/PoseStamped``.
        tolerance_ns: Maximum age in nanoseconds of the latest message at a control step, or
            None to hold the latest message at any age.
        frame_id: ``header.frame_id`` the writer puts on stamped messages.
    """

    role: str
    topic: str
    msgtype: str
    tolerance_ns: int | None
    frame_id: str = ""

    @property
    def holds(self) -> bool:
        return self.tolerance_ns is None


@dataclass(frozen=True)
class RobotMap:
    """A loaded topic map.

    Attributes:
        name: Robot name.
        topics: Role -> `TopicSpec` for every mapped role.
        control_hz: Control rate in Hz; logs are resampled to a grid with this rate.
        gripper_joints: Names of the finger joints whose positions (m) add up to the opening.
        gripper_joint_indices: Positions of those joints in `JointState.position`, used when a
            message carries an empty `name` list.
        linear_scale_m_s: End-effector speed in m/s of a normalized command of 1.
        gripper_scale: Gripper command (robot units) of a normalized command of 1.
        typestore: rosbags typestore that decodes bags without stored message definitions.
        extra_types: Message type -> path of its ``.msg`` file, for custom types.
        path: File the map was loaded from, or None.
    """

    name: str
    topics: dict[str, TopicSpec]
    control_hz: float
    gripper_joints: tuple[str, ...] = ()
    gripper_joint_indices: tuple[int, ...] = ()
    linear_scale_m_s: float = 0.25
    gripper_scale: float = 1.0
    typestore: str = "ros2_humble"
    extra_types: dict[str, Path] = field(default_factory=dict)
    path: Path | None = None

    @property
    def period_ns(self) -> int:
        """Control period in nanoseconds."""
        return round(1e9 / self.control_hz)

    def role_of(self, topic: str) -> str | None:
        """Return the role mapped to `topic`, or None for an unmapped topic."""
        for spec in self.topics.values():
            if spec.topic == topic:
                return spec.role
        return None

    def spec(self, role_or_topic: str) -> TopicSpec:
        """Return the `TopicSpec` of a role name or a mapped topic name."""
        if role_or_topic in self.topics:
            return self.topics[role_or_topic]
        role = self.role_of(role_or_topic)
        if role is None:
            raise KeyError(
                f"'{role_or_topic}' is neither a role nor a topic of robot map '{self.name}'; "
                f"mapped topics: {', '.join(s.topic for s in self.topics.values())}"
            )
        return self.topics[role]

    @classmethod
    def load(cls, path: str | Path) -> RobotMap:
        """Load a topic map from YAML; a relative path may also name a packaged map.

        Raises:
            ConfigError: The file is missing or invalid; the message names the key and value.
        """
        from ast_robot.config import resolve_config_path

        resolved = resolve_config_path(path)
        try:
            data = yaml.safe_load(resolved.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read robot map {resolved}: {error}") from error
        return cls.from_dict(data, path=resolved)

    @classmethod
    def from_dict(cls, data: Any, *, path: Path | None = None) -> RobotMap:
        """Build a map from plain data as read from YAML; see `load`."""
        where = str(path) if path else "<robot map>"
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: the top level must be a mapping, got {type(data).__name__}")
        known = {"name", "control_hz", "tolerance_s", "typestore", "topics", "gripper", "command", "types"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; valid keys: {sorted(known)}")

        control_hz = _number(data, "control_hz", where, low=0.0)
        default_tolerance_s = _number(data, "tolerance_s", where, low=0.0, default=0.75 / control_hz)
        topics = _parse_topics(data.get("topics"), where, default_tolerance_s)

        gripper = data.get("gripper") or {}
        if not isinstance(gripper, dict):
            raise ConfigError(f"{where}: 'gripper' must be a mapping with 'joints' and 'indices'")
        joints = tuple(str(name) for name in gripper.get("joints", ()))
        indices = tuple(int(index) for index in gripper.get("indices", ()))
        if indices and joints and len(indices) != len(joints):
            raise ConfigError(
                f"{where}: gripper.joints has {len(joints)} names but gripper.indices has "
                f"{len(indices)} entries; give one index per joint"
            )
        if "joint_states" in topics and not joints:
            raise ConfigError(f"{where}: 'joint_states' is mapped, so gripper.joints must name the finger joints")

        command = data.get("command") or {}
        if not isinstance(command, dict):
            raise ConfigError(f"{where}: 'command' must be a mapping")
        linear_scale = _number(command, "linear_scale_m_s", f"{where}: command", low=0.0, default=0.25)
        gripper_scale = _number(command, "gripper_scale", f"{where}: command", low=0.0, default=1.0)

        typestore = str(data.get("typestore", "ros2_humble"))
        if typestore not in TYPESTORES:
            raise ConfigError(f"{where}: typestore '{typestore}' is unknown; choose one of {', '.join(TYPESTORES)}")

        extra_types = {}
        for msgtype, msg_path in (data.get("types") or {}).items():
            resolved = Path(msg_path)
            if not resolved.is_absolute() and path is not None:
                resolved = path.parent / resolved
            if not resolved.is_file():
                raise ConfigError(f"{where}: types.{msgtype}: message definition file {resolved} not found")
            extra_types[str(msgtype)] = resolved

        return cls(
            name=str(data.get("name", path.stem if path else "robot")),
            topics=topics,
            control_hz=control_hz,
            gripper_joints=joints,
            gripper_joint_indices=indices,
            linear_scale_m_s=linear_scale,
            gripper_scale=gripper_scale,
            typestore=typestore,
            extra_types=extra_types,
            path=path,
        )

    def with_topics(self, **changes: dict[str, Any] | None) -> RobotMap:
        """Return a copy with some roles remapped (a dict of `TopicSpec` fields) or removed (None)."""
        topics = dict(self.topics)
        for role, change in changes.items():
            if change is None:
                topics.pop(role, None)
            else:
                base = topics.get(role) or TopicSpec(role, f"/{role}", ROLE_TYPES[role], None)
                topics[role] = dataclasses.replace(base, **change)
        return dataclasses.replace(self, topics=topics)


def _number(data: dict, key: str, where: str, *, low: float, default: float | None = None) -> float:
    if key not in data:
        if default is None:
            raise ConfigError(f"{where}: the key '{key}' is missing")
        return float(default)
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low:
        raise ConfigError(f"{where}: {key}={value!r} is invalid; expected a number > {low:g}")
    return float(value)


def _parse_topics(raw: Any, where: str, default_tolerance_s: float) -> dict[str, TopicSpec]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'topics' must map role names to {{topic, type}} entries")
    topics: dict[str, TopicSpec] = {}
    for role, entry in raw.items():
        if role not in ROLE_TYPES:
            raise ConfigError(f"{where}: topics.{role} is not a known role; roles: {', '.join(ROLE_TYPES)}")
        if isinstance(entry, str):
            entry = {"topic": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str):
            raise ConfigError(f"{where}: topics.{role} needs a 'topic' name, got {entry!r}")
        allowed = {"topic", "type", "tolerance_s", "hold", "frame_id"}
        if set(entry) - allowed:
            raise ConfigError(
                f"{where}: topics.{role} has unknown keys {sorted(set(entry) - allowed)}; valid: {sorted(allowed)}"
            )
        hold = bool(entry.get("hold", role in HOLD_BY_DEFAULT and "tolerance_s" not in entry))
        tolerance_ns = None
        if not hold:
            tolerance_s = _number(entry, "tolerance_s", f"{where}: topics.{role}", low=0.0, default=default_tolerance_s)
            tolerance_ns = round(tolerance_s * 1e9)
        topics[role] = TopicSpec(
            role=role,
            topic=entry["topic"],
            msgtype=str(entry.get("type", ROLE_TYPES[role])),
            tolerance_ns=tolerance_ns,
            frame_id=str(entry.get("frame_id", "")),
        )
    missing = [role for role in REQUIRED_ROLES if role not in topics]
    if missing:
        raise ConfigError(f"{where}: topics must map the roles {missing}")
    return topics
