"""Builders for the rosbag2 recordings the log tests read.

Recordings are written with the plain `rosbags` writer (not the package's own writer), so the
reader is tested against bags it did not produce. Times are nanoseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_typestore

from ast_robot.episode import Episode
from ast_robot.real_bridge.topic_map import RobotMap

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
T = TYPESTORE.types
SECOND = 1_000_000_000
PERIOD = 50_000_000  # 20 Hz, the stand-in map's control rate
BASE = 1_700_000_000 * SECOND  # a realistic wall-clock start time


def standin_map() -> RobotMap:
    return RobotMap.load("configs/robots/standin.yaml")


def header(stamp_ns: int, frame: str = "base"):
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // SECOND, nanosec=stamp_ns % SECOND), frame_id=frame
    )


def pose(stamp_ns: int, xyz) -> object:
    return T["geometry_msgs/msg/PoseStamped"](
        header=header(stamp_ns),
        pose=T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](*map(float, xyz)),
            orientation=T["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0),
        ),
    )


def twist(stamp_ns: int, xyz) -> object:
    vector = T["geometry_msgs/msg/Vector3"]
    return T["geometry_msgs/msg/TwistStamped"](
        header=header(stamp_ns),
        twist=T["geometry_msgs/msg/Twist"](linear=vector(*map(float, xyz)), angular=vector(0.0, 0.0, 0.0)),
    )


def wrench(stamp_ns: int, values) -> object:
    vector = T["geometry_msgs/msg/Vector3"]
    values = [float(v) for v in values]
    return T["geometry_msgs/msg/WrenchStamped"](
        header=header(stamp_ns, "wrist"),
        wrench=T["geometry_msgs/msg/Wrench"](force=vector(*values[:3]), torque=vector(*values[3:])),
    )


def joint_state(stamp_ns: int, positions, velocities=None, names=("finger_left", "finger_right")) -> object:
    return T["sensor_msgs/msg/JointState"](
        header=header(stamp_ns),
        name=list(names),
        position=np.asarray(positions, dtype=np.float64),
        velocity=np.asarray(velocities if velocities is not None else [], dtype=np.float64),
        effort=np.zeros(0),
    )


def float64(value: float) -> object:
    return T["std_msgs/msg/Float64"](data=float(value))


def boolean(value: bool) -> object:
    return T["std_msgs/msg/Bool"](data=bool(value))


def event(kind: str, **fields) -> object:
    return T["std_msgs/msg/String"](data=json.dumps({"event": kind, **fields}))


TOPIC_TYPES = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/ee_pose": "geometry_msgs/msg/PoseStamped",
    "/ee_twist": "geometry_msgs/msg/TwistStamped",
    "/object_pose": "geometry_msgs/msg/PoseStamped",
    "/goal_pose": "geometry_msgs/msg/PoseStamped",
    "/wrist_wrench": "geometry_msgs/msg/WrenchStamped",
    "/cmd_twist": "geometry_msgs/msg/TwistStamped",
    "/gripper_cmd": "std_msgs/msg/Float64",
    "/intervention": "std_msgs/msg/Bool",
    "/episode_events": "std_msgs/msg/String",
}


@dataclass
class Recording:
    """Messages to write, in write (file) order: (topic, message, log time ns)."""

    messages: list[tuple[str, object, int]] = field(default_factory=list)
    declared: dict[str, str] = field(default_factory=dict)

    def add(self, topic: str, message: object, log_ns: int) -> None:
        self.messages.append((topic, message, int(log_ns)))

    def declare(self, topic: str, msgtype: str | None = None) -> None:
        self.declared[topic] = msgtype or TOPIC_TYPES[topic]

    def write(self, path: Path, *, storage: str = "mcap", version: int = 9, typestore=TYPESTORE) -> Path:
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        with Writer(path, version=version, storage_plugin=plugin) as writer:
            connections = {}
            topics = dict(self.declared)
            for topic, message, _ in self.messages:
                topics.setdefault(topic, TOPIC_TYPES.get(topic) or message.__msgtype__)
            for topic, msgtype in topics.items():
                connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
            for topic, message, log_ns in self.messages:
                msgtype = connections[topic].msgtype
                writer.write(connections[topic], log_ns, typestore.serialize_cdr(message, msgtype))
        return path


def steady_recording(
    steps: int,
    *,
    start_ns: int = BASE,
    period_ns: int = PERIOD,
    events: bool = True,
    success: bool | None = True,
    stamp_offset_ns: int = 0,
) -> Recording:
    """One episode at the control rate on every stand-in topic, events around it.

    The ee moves along x at 0.1 m/s; the commanded velocity is 0.05 m/s along x.
    `stamp_offset_ns` is added to header stamps (a robot clock that differs from the log clock).
    """
    recording = Recording()
    if events:
        recording.add("/episode_events", event("start"), start_ns)
    for k in range(steps):
        log_ns = start_ns + k * period_ns
        stamp = log_ns + stamp_offset_ns
        x = 0.1 * k * period_ns / SECOND
        recording.add("/joint_states", joint_state(stamp, [0.02, 0.02], [0.0, 0.0]), log_ns)
        recording.add("/ee_pose", pose(stamp, [x, 0.0, 0.3]), log_ns)
        recording.add("/object_pose", pose(stamp, [0.5, 0.0, 0.02]), log_ns)
        recording.add("/goal_pose", pose(stamp, [0.6, 0.1, 0.02]), log_ns)
        recording.add("/wrist_wrench", wrench(stamp, [1.0, 0.0, -2.0, 0.0, 0.0, 0.0]), log_ns)
        recording.add("/cmd_twist", twist(stamp, [0.05, 0.0, 0.0]), log_ns)
        recording.add("/gripper_cmd", float64(-1.0), log_ns)
        recording.add("/intervention", boolean(False), log_ns)
    if events:
        fields = {} if success is None else {"success": success}
        recording.add("/episode_events", event("end", **fields), start_ns + (steps - 1) * period_ns)
    return recording


def make_episode(steps: int, *, seed: int = 0, t0: float = 0.0, interventions=(), success=True, wrench_nan=()) -> Episode:
    """A synthetic episode whose fields follow the mapping (object relative = object - ee)."""
    rng = np.random.default_rng(seed)

    ee = rng.uniform(-0.5, 0.5, (steps, 3)).astype(np.float32)
    obj = rng.uniform(-0.5, 0.5, (steps, 3)).astype(np.float32)
    goal = np.tile(rng.uniform(-0.5, 0.5, 3).astype(np.float32), (steps, 1))
    force = rng.normal(0, 3, (steps, 6)).astype(np.float32)
    proprio = np.concatenate(
        [ee, rng.normal(0, 0.1, (steps, 3)), rng.uniform(0, 0.08, (steps, 1)), rng.normal(0, 0.01, (steps, 1))], axis=1
    )

    mask = np.zeros(steps, bool)
    mask[list(interventions)] = True
    actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    missing = {}
    wrench_values = force.copy()
    obs_force = force.copy()
    if len(wrench_nan):
        wrench_values[list(wrench_nan)] = np.nan
        obs_force[list(wrench_nan)] = 0.0
        missing["force"] = np.zeros(steps, bool)
        missing["force"][list(wrench_nan)] = True

    return Episode(
        obs={"proprio": proprio, "force": obs_force, "object": np.concatenate([obj, obj - ee], axis=1), "goal": goal},
        actions=actions,
        timestamps=t0 + np.arange(steps) * PERIOD / SECOND,
        interventions=mask,
        action_labels=actions.copy() if mask.any() else None,
        wrench=wrench_values,
        success=success,
        context=np.concatenate([obj[0], goal[0]]),
        domain_params={"friction": 0.8, "object_mass_kg": 0.1 + seed * 0.01},
        flags={"terminated": bool(success), "truncated": not success},
        missing=missing,
    )
