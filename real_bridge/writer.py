"""Recording episodes to rosbag2 (MCAP by default, sqlite3 on request) with the robot map's topics.

`EpisodeWriter.write(episode)` records one episode so that `load_episodes` reads it back with
every field equal to float32 precision, the same timestamps, success, flags and intervention
steps. What it writes per control step (all at the step's time, header stamp = log time):

| topic role     | content                                                                       |
|----------------|-------------------------------------------------------------------------------|
| `ee_pose`      | proprio[0:3] as the position, identity orientation                            |
| `ee_twist`     | proprio[3:6] as the linear velocity                                           |
| `joint_states` | each finger joint at opening / n and opening velocity / n (n finger joints)   |
| `object_pose`  | object[0:3]; the relative part object[3:6] is recomputed on reading as        |
|                | object - ee, which is how the tasks define it                                 |
| `goal_pose`    | goal                                                                          |
| `wrench`       | `Episode.wrench` (NaN readings stay NaN), or obs force when it is None        |
| `cmd_twist`    | actions[0:3] * linear_scale_m_s                                               |
| `gripper_cmd`  | actions[3] * gripper_scale                                                    |
| `intervention` | `Episode.interventions`                                                       |
| `events`       | JSON start event (``episode_id``, ``context``, ``domain_params``, ``source``,  |
|                | ``time_offset_ns``) at the first step, end event (``success`` and flags) at    |
|                | the last                                                                      |

Steps marked in `Episode.missing` get no message on that topic, so they read back as missing.
Episodes in one bag must not overlap in time. An episode that starts at or before the end of the
previous one is shifted to start one control period after it. The shift goes into the start
event as ``time_offset_ns``, so reading restores the original timestamps.

NOTE: `Episode.rewards`, `step_stats`, `info` and action labels that differ from the executed
actions are not recorded, because a robot logs what it executed. Labels read back as the commands
of the intervention steps, `source` reads back as ``"real"`` (the recorded one goes to
``info["recorded_source"]``) and `info` describes the bag.

The streaming API (`open_stream`, `write_message`, `write_event`) is for the ROS2 node, which
records messages as they arrive. Timestamps are in nanoseconds.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from ast_robot.episode import Episode
from ast_robot.errors import LogWriteError
from ast_robot.real_bridge.decode import default_typestore
from ast_robot.real_bridge.topic_map import RobotMap

logger = logging.getLogger(__name__)

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
COMPRESSIONS = {
    "none": CompressionMode.NONE,
    "message": CompressionMode.MESSAGE,
    "file": CompressionMode.FILE,
    "storage": CompressionMode.STORAGE,
}
NUMPY_DTYPES = {
    "float64": np.float64, "float32": np.float32, "double": np.float64, "float": np.float32,
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
    "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64, "byte": np.uint8, "char": np.uint8,
    "octet": np.uint8, "bool": np.bool_,
}


class EpisodeWriter:
    """Write episodes or single messages to a new rosbag2 bag directory.

    Use it as a context manager. The bag is closed (metadata written) on normal exit and on
    exceptions, so what was recorded before an error stays readable.

    Args:
        path: Bag directory to create; it must not exist.
        robot_map: Topics, types, frames and command scales to write with (or a path to a map).
        storage: ``"mcap"`` (default) or ``"sqlite3"``.
        compression: ``"none"``, ``"message"`` / ``"file"`` (zstd per message or per storage
            file, rosbag2 style) or ``"storage"`` (zstd MCAP chunks; MCAP only).
        version: rosbag2 metadata version, 8 or 9.
    """

    def __init__(
        self,
        path: str | Path,
        robot_map: RobotMap | str | Path,
        *,
        storage: str = "mcap",
        compression: str = "none",
        version: int = 9,
    ):
        if storage not in STORAGES:
            raise LogWriteError(f"storage {storage!r} is not supported; choose one of {', '.join(STORAGES)}")
        if compression not in COMPRESSIONS:
            raise LogWriteError(f"compression {compression!r} is not supported; choose one of {', '.join(COMPRESSIONS)}")
        if compression == "storage" and storage != "mcap":
            raise LogWriteError("compression 'storage' compresses MCAP chunks; use 'message' or 'file' with sqlite3")
        self.path = Path(path)
        if self.path.exists():
            raise LogWriteError(f"cannot record to {self.path}: it exists already; choose a new bag directory")
        self.robot_map = robot_map if isinstance(robot_map, RobotMap) else RobotMap.load(robot_map)
        self.storage = storage
        self.compression = compression
        self.version = version
        self.typestore = default_typestore(self.robot_map)
        self.episodes_written = 0
        self.messages_written = 0
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self._last_ns = -1

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> EpisodeWriter:
        """Create the bag and declare every mapped topic (a topic never written gets count 0)."""
        if self._writer is not None:
            return self
        try:
            writer = Writer(self.path, version=self.version, storage_plugin=STORAGES[self.storage])
            if self.compression != "none":
                writer.set_compression(COMPRESSIONS[self.compression], CompressionFormat.ZSTD)
            writer.open()
        except Exception as error:  # rosbags raises WriterError and OS errors
            raise LogWriteError(f"cannot create bag {self.path}: {error}") from error
        self._writer = writer
        for spec in self.robot_map.topics.values():
            self._connection(spec.topic, spec.msgtype)
        logger.info("recording to %s (%s)", self.path, self.storage)
        return self

    open_stream = open

    def close(self) -> None:
        """Write the index and metadata.yaml; safe to call twice."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as error:  # rosbags raises WriterError and OS errors
            writer.abort()
            raise LogWriteError(f"cannot finish bag {self.path}: {error}") from error
        logger.info("closed %s: %d episodes, %d messages", self.path, self.episodes_written, self.messages_written)

    def __enter__(self) -> EpisodeWriter:
        return self.open()

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is not None:
            logger.error("closing %s after an error (%s: %s); what was written so far is kept", self.path, exc_type.__name__, exc)
        self.close()
        return False

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # -- streaming -------------------------------------------------------------------------

    def write_message(self, topic: str, msgtype: str | None, msg_or_fields: Any, t_ns: int) -> None:
        """Record one message.

        Args:
            topic: A role name (``ee_pose``) or a topic name; an unmapped topic is declared on
                its first message.
            msgtype: Message type, e.g. ``geometry_msgs/msg/PoseStamped``; None takes the
                mapped type.
            msg_or_fields: A rosbags message, CDR bytes (as from ``rclpy.serialization``), a
                nested dict of fields, or any object with the fields as attributes (an rclpy
                message). Fields left out are zero or empty.
            t_ns: Log time in nanoseconds.
        """
        writer = self._require_open()
        if topic in self.robot_map.topics:
            spec = self.robot_map.topics[topic]
            topic, expected = spec.topic, spec.msgtype
        else:
            role = self.robot_map.role_of(topic)
            expected = self.robot_map.topics[role].msgtype if role else None
        msgtype = msgtype or expected
        if msgtype is None:
            raise LogWriteError(f"topic {topic} is not in robot map '{self.robot_map.name}'; pass its msgtype")
        if expected is not None and msgtype != expected:
            raise LogWriteError(f"topic {topic} is mapped as {expected}, but a {msgtype} message was given")
        connection = self._connection(topic, msgtype)

        if isinstance(msg_or_fields, (bytes, bytearray, memoryview)):
            raw = msg_or_fields
        else:
            message = build_message(self.typestore, msgtype, msg_or_fields)
            raw = self.typestore.serialize_cdr(message, msgtype)
        writer.write(connection, int(t_ns), raw)
        self.messages_written += 1

    def write_event(self, kind: str, t_ns: int, success: bool | None = None, **fields: Any) -> None:
        """Record a JSON episode event (``start`` or ``end``) on the events topic at `t_ns`."""
        if kind not in ("start", "end"):
            raise LogWriteError(f"episode event must be 'start' or 'end', got {kind!r}")
        event: dict[str, Any] = {"event": kind}
        if kind == "end":
            event["success"] = success
        event.update(fields)
        text = json.dumps(event, default=_json_default)
        self.write_message("events", None, {"data": text}, t_ns)

    # -- episodes --------------------------------------------------------------------------

    def write(self, episode: Episode) -> None:
        """Record one episode with its start and end events; see the module docstring."""
        self._require_open()
        if not len(episode):
            raise LogWriteError(f"episode {episode.id} has no steps; nothing to record")
        t_ns = np.round(episode.timestamps * 1e9).astype(np.int64)
        offset = 0
        if t_ns[0] <= self._last_ns:
            offset = int(self._last_ns + self.robot_map.period_ns - t_ns[0])
            t_ns = t_ns + offset
        _warn_off_grid(episode, t_ns, self.robot_map)

        self.write_event(
            "start", int(t_ns[0]), episode_id=episode.id, context=episode.context.tolist(),
            domain_params=episode.domain_params, source=episode.source, time_offset_ns=offset,
        )
        for step, stamp in enumerate(t_ns.tolist()):
            self._write_step(episode, step, stamp)
        end_flags = {name: value for name, value in episode.flags.items() if name != "split_at_gap"}
        self.write_event("end", int(t_ns[-1]), success=episode.success, **end_flags)
        self._last_ns = int(t_ns[-1])
        self.episodes_written += 1

    def _write_step(self, episode: Episode, step: int, t_ns: int) -> None:
        topics = self.robot_map.topics
        missing = {name: bool(mask[step]) for name, mask in episode.missing.items()}
        proprio = episode.obs["proprio"][step].astype(np.float64)
        types = self.typestore.types

        header = self._header(t_ns)
        if "ee_pose" in topics and not missing.get("proprio"):
            self._write_pose("ee_pose", proprio[0:3], t_ns)
        if "ee_twist" in topics and not missing.get("proprio"):
            self._write_typed("ee_twist", self._twist(header("ee_twist"), proprio[3:6]), t_ns)
        if "joint_states" in topics and not missing.get("gripper"):
            joints = self.robot_map.gripper_joints
            count = len(joints)
            message = types["sensor_msgs/msg/JointState"](
                header=header("joint_states"),
                name=list(joints),
                position=np.full(count, proprio[6] / count),
                velocity=np.full(count, proprio[7] / count),
                effort=np.zeros(0),
            )
            self._write_typed("joint_states", message, t_ns)
        if "object_pose" in topics and not missing.get("object"):
            self._write_pose("object_pose", episode.obs["object"][step, 0:3].astype(np.float64), t_ns)
        if "goal_pose" in topics and not missing.get("goal"):
            self._write_pose("goal_pose", episode.obs["goal"][step].astype(np.float64), t_ns)
        if "wrench" in topics:
            self._write_wrench(episode, step, missing.get("force", False), t_ns)

        if "cmd_twist" in topics and not missing.get("actions"):
            linear = episode.actions[step, 0:3].astype(np.float64) * self.robot_map.linear_scale_m_s
            self._write_typed("cmd_twist", self._twist(header("cmd_twist"), linear), t_ns)
        if "gripper_cmd" in topics and not missing.get("actions"):
            value = float(episode.actions[step, 3]) * self.robot_map.gripper_scale
            self._write_typed("gripper_cmd", types["std_msgs/msg/Float64"](data=value), t_ns)
        if "intervention" in topics:
            active = bool(episode.interventions[step])
            self._write_typed("intervention", types["std_msgs/msg/Bool"](data=active), t_ns)

    def _write_wrench(self, episode: Episode, step: int, missing: bool, t_ns: int) -> None:
        if episode.wrench is not None:
            values = episode.wrench[step].astype(np.float64)
            if missing and np.isfinite(values).all():
                return  # no reading at this step
        elif missing:
            return
        else:
            values = episode.obs["force"][step].astype(np.float64)
        types = self.typestore.types
        vector = types["geometry_msgs/msg/Vector3"]
        message = types["geometry_msgs/msg/WrenchStamped"](
            header=self._header(t_ns)("wrench"),
            wrench=types["geometry_msgs/msg/Wrench"](force=vector(*values[0:3]), torque=vector(*values[3:6])),
        )
        self._write_typed("wrench", message, t_ns)

    # -- helpers ---------------------------------------------------------------------------

    def _require_open(self) -> Writer:
        if self._writer is None:
            raise LogWriteError(f"bag {self.path} is not open; use the writer as a context manager or call open()")
        return self._writer

    def _connection(self, topic: str, msgtype: str):
        connection = self._connections.get(topic)
        if connection is not None:
            if connection.msgtype != msgtype:
                raise LogWriteError(f"topic {topic} was declared as {connection.msgtype}, not {msgtype}")
            return connection
        if msgtype not in self.typestore.types:
            raise LogWriteError(
                f"cannot record {topic}: type {msgtype} is unknown to typestore '{self.robot_map.typestore}'; "
                "list its .msg file under 'types' in the robot map"
            )
        connection = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
        self._connections[topic] = connection
        return connection

    def _header(self, t_ns: int):
        types = self.typestore.types
        stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)

        def make(role: str):
            return types["std_msgs/msg/Header"](stamp=stamp, frame_id=self.robot_map.topics[role].frame_id)

        return make

    def _twist(self, header, linear: np.ndarray):
        types = self.typestore.types
        vector = types["geometry_msgs/msg/Vector3"]
        twist = types["geometry_msgs/msg/Twist"](linear=vector(*linear), angular=vector(0.0, 0.0, 0.0))
        return types["geometry_msgs/msg/TwistStamped"](header=header, twist=twist)

    def _write_pose(self, role: str, position: np.ndarray, t_ns: int) -> None:
        types = self.typestore.types
        pose = types["geometry_msgs/msg/Pose"](
            position=types["geometry_msgs/msg/Point"](*position),
            orientation=types["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0),
        )
        message = types["geometry_msgs/msg/PoseStamped"](header=self._header(t_ns)(role), pose=pose)
        self._write_typed(role, message, t_ns)

    def _write_typed(self, role: str, message: Any, t_ns: int) -> None:
        spec = self.robot_map.topics[role]
        connection = self._connections[spec.topic]
        raw = self.typestore.serialize_cdr(message, connection.msgtype)
        self._writer.write(connection, t_ns, raw)
        self.messages_written += 1


def build_message(typestore, msgtype: str, value: Any):
    """Build a rosbags message of `msgtype` from a message, a nested dict or an object with
    attributes (an rclpy message). Missing fields become zero, empty or default."""
    cls = typestore.types.get(msgtype)
    if cls is None:
        raise LogWriteError(f"type {msgtype} is unknown to the typestore")
    if isinstance(value, cls):
        return value
    fields = {}
    for name, (nodetype, info) in typestore.fielddefs[msgtype][1]:
        item = _field(value, name)
        fields[name] = _build_field(typestore, nodetype, info, item, f"{msgtype}.{name}")
    return cls(**fields)


def _field(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _build_field(typestore, nodetype, info, item: Any, where: str):
    if nodetype == Nodetype.NAME:
        return build_message(typestore, info, item if item is not None else {})
    if nodetype == Nodetype.BASE:
        base = info[0]
        if base == "string":
            return "" if item is None else str(item)
        if base == "bool":
            return bool(item) if item is not None else False
        if base in ("float32", "float64"):
            return float(item) if item is not None else 0.0
        return int(item) if item is not None else 0
    if nodetype in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        sub_type, sub_info = info[0]
        length = info[1] if nodetype == Nodetype.ARRAY else None
        items = [] if item is None else item
        if sub_type == Nodetype.BASE and sub_info[0] in NUMPY_DTYPES:
            if isinstance(items, (bytes, bytearray)):
                items = np.frombuffer(items, dtype=np.uint8)  # rclpy gives uint8[] fields as bytes
            array = np.asarray(items, dtype=NUMPY_DTYPES[sub_info[0]])
            if length is not None and array.shape != (length,):
                array = np.resize(array, length) if array.size else np.zeros(length, NUMPY_DTYPES[sub_info[0]])
            return array
        return [_build_field(typestore, sub_type, sub_info, element, where) for element in items]
    raise LogWriteError(f"cannot build field {where} of node type {nodetype!r}")


def _warn_off_grid(episode: Episode, t_ns: np.ndarray, robot_map: RobotMap) -> None:
    if len(t_ns) < 2:
        return
    deviation = np.abs(np.diff(t_ns) - robot_map.period_ns).max()
    if deviation > robot_map.period_ns * 0.01:
        logger.warning(
            "episode %s: steps are not %.1f ms apart (the robot map's %.1f Hz; largest deviation %.2f ms); "
            "reading resamples them onto that grid, so timestamps will not read back unchanged",
            episode.id, robot_map.period_ns / 1e6, robot_map.control_hz, deviation / 1e6,
        )


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"cannot store {type(value).__name__} in an episode event")
