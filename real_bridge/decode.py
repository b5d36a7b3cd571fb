"""Opening one recording with `rosbags` and decoding its mapped topics into numeric streams.

Only topics named in the robot map are decoded, so an unused topic of an unknown custom type
costs nothing. Message definitions stored in the bag (ROS2 Iron and newer, and every MCAP file)
are used when present. Bags without them (Humble and older sqlite3 bags) decode through the
map's default typestore, plus any ``.msg`` files the map lists under ``types``.

Every timestamp here is in nanoseconds: `log_ns` is the time the recorder received a message,
`stamp_ns` its ``header.stamp`` (0 when the message has no header or the stamp is zero).
"""

from __future__ import annotations

import gc
import json
import math
import struct
from itertools import chain
from operator import attrgetter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from rosbags.interfaces import MessageDefinitionFormat, Nodetype
from rosbags.rosbag2 import Reader
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from ast_robot.errors import LogReadError
from ast_robot.real_bridge.discovery import BagSource
from ast_robot.real_bridge.problems import BagSkipped, Problem
from ast_robot.real_bridge.topic_map import ROLE_TYPES, RobotMap

SUPPORTED_METADATA_VERSIONS = range(1, 10)
"""rosbag2 ``metadata.yaml`` versions that rosbags 0.11 reads (1 to 9)."""

ROLE_WIDTHS = {
    "joint_states": 2,  # gripper opening (m), opening velocity (m/s)
    "ee_pose": 3,
    "ee_twist": 3,
    "object_pose": 3,
    "goal_pose": 3,
    "wrench": 6,
    "cmd_twist": 3,
    "gripper_cmd": 1,
    "intervention": 1,
    "events": 0,
}


@dataclass
class Stream:
    """Decoded messages of one mapped topic, in the order the reader returned them.

    Attributes:
        role: Role of the topic in the robot map.
        topic: Topic name.
        msgtype: Message type in the bag.
        log_ns: Receive time of each message in ns, int64 (N,).
        stamp_ns: ``header.stamp`` in ns, int64 (N,); 0 where the message has none.
        values: Extracted numbers, float64 (N, width); see `ROLE_WIDTHS`.
        texts: Message strings for the events role, else None.
        declared_count: Message count the bag's index declares for the topic.
        has_header: Whether the message type has a ``header``.
    """

    role: str
    topic: str
    msgtype: str
    log_ns: np.ndarray
    stamp_ns: np.ndarray
    values: np.ndarray
    texts: list[str] | None = None
    declared_count: int = 0
    has_header: bool = True

    def __len__(self) -> int:
        return len(self.log_ns)


@dataclass
class BagData:
    """Decoded content and metadata of one recording.

    Attributes:
        source: The recording.
        storage: ``mcap`` or ``sqlite3``.
        version: ``metadata.yaml`` version, or None for a standalone storage file.
        start_ns, duration_ns: Log time of the first message and span of the recording in ns.
        message_count: Messages in the recording, all topics.
        topics: Topic name -> (message type, message count) for every topic in the recording.
        streams: Role -> decoded `Stream` for mapped topics present in the recording.
        problems: Problems found while reading.
        file_out_of_order: True when storage order differs from log-time order.
    """

    source: BagSource
    storage: str
    version: int | None
    start_ns: int
    duration_ns: int
    message_count: int
    topics: dict[str, tuple[str, int]]
    streams: dict[str, Stream] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    file_out_of_order: bool = False


def read_bag(source: BagSource, robot_map: RobotMap) -> BagData:
    """Open `source` and decode every mapped topic.

    Raises:
        BagSkipped: The recording cannot be opened, has no messages, or a message cannot be decoded.
        LogReadError: A mapped topic has a type that cannot be decoded or lacks the fields its
            role needs. The message names the bag, topic and type, and how to register it.
    """
    version = _check_metadata(source)
    try:
        reader = Reader(source.path)
        reader.open()
    except Exception as error:  # rosbags raises ReaderError, sqlite and OS errors here
        raise BagSkipped("unreadable", _unreadable_message(source, error)) from error

    try:
        return _read_open_bag(source, reader, robot_map, version)
    finally:
        reader.close()


def _check_metadata(source: BagSource) -> int | None:
    if source.kind != "dir":
        return None
    path = source.path / "metadata.yaml"
    hint = f"`ros2 bag reindex {source.path}` rewrites it"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise BagSkipped("unreadable", f"cannot read {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise BagSkipped("unreadable", f"{path} is not valid YAML{line}; {hint}") from error
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        found = "a mapping without it" if isinstance(data, dict) else _yaml_kind(data)
        raise BagSkipped(
            "unreadable",
            f"{path} must be a mapping with a 'rosbag2_bagfile_information' section, found {found}; {hint}",
        )
    try:
        version = int(info["version"])
    except KeyError as error:
        raise BagSkipped("unreadable", f"{path} has no rosbag2_bagfile_information.version; {hint}") from error
    except (TypeError, ValueError) as error:
        raise BagSkipped(
            "unreadable",
            f"{path}: rosbag2_bagfile_information.version must be an integer, found {info['version']!r}; {hint}",
        ) from error
    if version not in SUPPORTED_METADATA_VERSIONS:
        raise BagSkipped(
            "unsupported_version",
            f"metadata.yaml version {version} is not supported (supported: "
            f"{SUPPORTED_METADATA_VERSIONS.start}-{SUPPORTED_METADATA_VERSIONS.stop - 1}); convert the bag "
            f"with `ros2 bag convert` from a ROS2 release that writes a supported version, or upgrade rosbags",
        )
    return version


def _yaml_kind(value) -> str:
    """Return what a YAML document contains, with its article: "a string", "an empty file"."""
    if value is None:
        return "an empty file"
    names = {str: "a string", list: "a list", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


def _storage_files(source: BagSource) -> list[Path]:
    """The storage files of `source`: itself, or those in its bag directory."""
    if source.kind != "dir":
        return [source.path]
    try:
        return sorted(path for path in source.path.iterdir() if path.suffix in (".mcap", ".db3"))
    except OSError:
        return []


def _unreadable_message(source: BagSource, error: Exception) -> str:
    """Say why `source` cannot be opened and how an interrupted recording of its storage is repaired."""
    reason = str(error).strip().rstrip(".") or type(error).__name__
    files = _storage_files(source)
    suffixes = {path.suffix for path in files}
    kind = {".mcap": "MCAP", ".db3": "SQLite (.db3)"}.get(next(iter(suffixes)), "") if len(suffixes) == 1 else ""
    text = f"cannot read {kind + ' ' if kind else ''}recording: {reason}"
    if suffixes == {".db3"}:
        bag_dir = source.path if source.kind == "dir" else source.path.parent
        return (
            f"{text}; a .db3 file from an interrupted recording may need `ros2 bag reindex "
            f"{bag_dir}`, otherwise the file is damaged"
        )
    if suffixes == {".mcap"}:
        target = files[0] if len(files) == 1 else "FILE.mcap"
        return (
            f"{text}; an MCAP file from an interrupted recording can be repaired with "
            f"`mcap recover {target} -o recovered.mcap`, otherwise the file is damaged"
        )
    return text


def _read_open_bag(source: BagSource, reader: Reader, robot_map: RobotMap, version: int | None) -> BagData:
    problems: list[Problem] = []
    storages = {"mcap": "mcap", "db3": "sqlite3"}
    storage = storages[source.kind] if source.kind in storages else _storage_id(source)
    topics = {name: (info.msgtype or "?", info.msgcount) for name, info in reader.topics.items()}
    data = BagData(
        source=source,
        storage=storage,
        version=version,
        start_ns=reader.start_time if reader.message_count else 0,
        duration_ns=reader.duration if reader.message_count else 0,
        message_count=reader.message_count,
        topics=topics,
        problems=problems,
    )
    if reader.message_count == 0:
        raise BagSkipped("empty_bag", f"the recording contains no messages ({len(topics)} topics declared)")

    mapped = {}
    for role, spec in robot_map.topics.items():
        connections = [c for c in reader.connections if c.topic == spec.topic]
        if not connections:
            problems.append(Problem(str(source.path), "missing_topic", f"topic for role '{role}' is not recorded", topic=spec.topic))
            continue
        msgtype = connections[0].msgtype
        if msgtype != spec.msgtype:
            raise LogReadError(
                f"bag {source.path}: topic {spec.topic} has type {msgtype}, but robot map "
                f"'{robot_map.name}' expects {spec.msgtype} for role '{role}'; fix the type in the map"
            )
        mapped[role] = connections

    typestores = _build_typestores(source, robot_map, mapped)
    handlers = {}
    columns = {}
    for role, connections in mapped.items():
        msgtype = connections[0].msgtype
        store = typestores[role]
        has_header = _check_fields(source, role, connections[0].topic, msgtype, store)
        paths = (STAMP_FIELDS if has_header else ()) + ROLE_FIELDS[role]
        rows: list = []
        logs: list[int] = []
        columns[connections[0].topic] = (role, rows, logs, msgtype, has_header)
        handlers[connections[0].topic] = (rows.append, logs.append, store.deserialize_cdr, msgtype, attrgetter(*paths), store)

    # Decoding allocates a tuple per message and frees none until the tables are built, so
    # cyclic garbage collection would rescan the growing lists without finding anything to free.
    collecting = gc.isenabled()
    gc.disable()
    try:
        padded = _decode_messages(source, reader, mapped, handlers)
        for topic, count in padded.items():
            data.problems.append(Problem(
                str(source.path), "cdr_padding",
                f"{count} message(s) end with more padding bytes than rosbags accepts (Fast-CDR 2 pads "
                "some types so); decoded without the trailing bytes", topic=topic,
            ))
        data.file_out_of_order = _mcap_chunks_overlap(reader)
        _build_streams(source, data, mapped, columns, robot_map)
    finally:
        if collecting:
            gc.enable()
    return data


def _decode_messages(source: BagSource, reader: Reader, mapped: dict[str, list], handlers: dict) -> dict[str, int]:
    """Run the hot loop: one deserialization and one C-level attribute fetch per message.

    Returns:
        Topic -> count of messages that needed `_deserialize_padded`.
    """
    all_connections = [c for conns in mapped.values() for c in conns]
    connection = None
    padded: dict[str, int] = {}
    try:
        for connection, log_ns, raw in reader.messages(connections=all_connections):
            append_row, append_log, deserialize, msgtype, fetch, store = handlers[connection.topic]
            try:
                message = deserialize(raw, msgtype)
            except SerdeError:
                message = _deserialize_padded(store, raw, msgtype)
                padded[connection.topic] = padded.get(connection.topic, 0) + 1
            append_row(fetch(message))
            append_log(log_ns)
    except Exception as error:  # rosbags raises struct, index, overflow and serde errors on bad data
        # Damaged message bytes spoil this recording only, so the bag is skipped and the others load.
        where = f"a message on topic {connection.topic} of type {connection.msgtype}" if connection else "the messages"
        raise BagSkipped(
            "undecodable",
            f"cannot deserialize {where} ({type(error).__name__}: {error}); the stored data does not "
            "match its definition, so the recording is damaged",
            topic=connection.topic if connection else None,
        ) from error
    return padded


def _deserialize_padded(typestore, raw: bytes | memoryview, msgtype: str):
    """Deserialize CDR data that ends with extra padding bytes.

    rosbags 0.11 rejects data with more than 3 bytes after the last field. rclpy's
    ``serialize_message`` with rmw_fastrtps (Fast-CDR 2.3) pads some messages by 4 more bytes,
    for example a JointState with an empty effort sequence, and recorders store the bytes the
    middleware produced. The fields are read the same way; only the length check is left out.
    """
    if len(raw) < 4 or bytes(raw[:2]) not in (b"\x00\x00", b"\x00\x01"):
        raise SerdeError(f"invalid or unsupported CDR encapsulation in a {msgtype} message")
    msgdef = typestore.get_msgdef(msgtype)
    function = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
    try:
        message, _ = function(memoryview(raw)[4:], 0, msgdef.cls, typestore)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as error:
        raise SerdeError(f"cannot deserialize {msgtype}: {error}") from error
    return message


def _build_streams(source: BagSource, data: BagData, mapped: dict[str, list], columns: dict, robot_map: RobotMap) -> None:
    """Convert the decoded field tuples of each topic into a `Stream`, dropping the tuples."""
    problems = data.problems
    for topic in list(columns):
        role, rows, logs, msgtype, has_header = columns.pop(topic)
        log_ns = np.asarray(logs, dtype=np.int64)
        data.file_out_of_order |= bool(np.any(np.diff(log_ns) < 0))
        stamp_ns, values, texts = _columns(role, rows, has_header, robot_map, source, problems)
        stream = Stream(
            role=role,
            topic=topic,
            msgtype=msgtype,
            log_ns=log_ns,
            stamp_ns=stamp_ns,
            values=values,
            texts=texts,
            declared_count=sum(c.msgcount for c in mapped[role]),
            has_header=has_header,
        )
        data.streams[role] = stream
        if len(stream) == 0:
            problems.append(
                Problem(str(source.path), "no_data", f"topic for role '{role}' is declared but contains 0 messages", topic=topic)
            )


def _storage_id(source: BagSource) -> str:
    data = yaml.safe_load((source.path / "metadata.yaml").read_text())
    return str(data["rosbag2_bagfile_information"].get("storage_identifier", "?"))


def _mcap_chunks_overlap(reader: Reader) -> bool:
    """Return True when MCAP chunks overlap in time (messages were stored out of time order)."""
    storages = getattr(reader.storage, "storages", None) or [reader.storage]
    for storage in storages:
        chunks = getattr(storage, "chunks", None)
        if not chunks:
            continue
        ordered = sorted(chunks, key=lambda chunk: getattr(chunk, "chunk_start_offset", 0))
        latest_end = None
        for chunk in ordered:
            if latest_end is not None and chunk.message_start_time < latest_end:
                return True
            latest_end = chunk.message_end_time if latest_end is None else max(latest_end, chunk.message_end_time)
    return False


# ---------------------------------------------------------------------------------------------
# Typestores
# ---------------------------------------------------------------------------------------------


def _build_typestores(source: BagSource, robot_map: RobotMap, mapped: dict[str, list]) -> dict[str, object]:
    """Pick the typestore each mapped role decodes with: the bag's stored definitions when the
    topic has one, else the map's default typestore with its extra ``.msg`` files."""
    default_store = default_typestore(robot_map)
    stored: dict = {}
    for connections in mapped.values():
        connection = connections[0]
        definition = connection.msgdef
        if definition.format == MessageDefinitionFormat.NONE or not definition.data.strip():
            continue
        if definition.data == _generated_definition(default_store, connection.msgtype):
            continue  # the default typestore already decodes this exact definition
        try:
            if definition.format == MessageDefinitionFormat.MSG:
                stored.update(get_types_from_msg(definition.data, connection.msgtype))
            else:
                stored.update(_types_from_idl(definition.data))
        except Exception as error:  # the rosbags parsers raise several exception types
            raise LogReadError(
                f"bag {source.path}: the stored definition of {connection.msgtype} on topic "
                f"{connection.topic} cannot be parsed ({error}); list a .msg file for it under "
                f"'types' in the robot map"
            ) from error

    bag_store = _stored_typestore(stored) if stored else None

    stores = {}
    for role, connections in mapped.items():
        msgtype = connections[0].msgtype
        store = bag_store if bag_store is not None and msgtype in bag_store.types else default_store
        if msgtype not in store.types:
            raise LogReadError(
                f"bag {source.path}: cannot decode topic {connections[0].topic} of type {msgtype}: the bag "
                f"stores no definition for it and typestore '{robot_map.typestore}' does not know it; "
                f"register the definition by adding `types: {{{msgtype}: path/to/{msgtype.rsplit('/', 1)[-1]}.msg}}` "
                f"to the robot map"
            )
        stores[role] = store
    return stores


def _types_from_idl(text: str) -> dict:
    separator = "=" * 80 + "\n"
    if not text.startswith(f"{separator}IDL: "):
        return get_types_from_idl(text)
    types: dict = {}
    for part in text.split(separator)[1:]:
        _, idl = part.split("\n", 1)
        types.update(get_types_from_idl(idl))
    return types


_DEFAULT_STORES: dict[tuple, object] = {}
_STORED_STORES: dict[str, object] = {}
_GENERATED: dict[tuple[int, str], str | None] = {}


def _generated_definition(typestore, msgtype: str) -> str | None:
    """Return the message definition text rosbags generates for `msgtype` (cached), or None."""
    key = (id(typestore), msgtype)
    if key not in _GENERATED:
        _GENERATED[key] = typestore.generate_msgdef(msgtype, ros_version=2)[0] if msgtype in typestore.types else None
    return _GENERATED[key]


def _stored_typestore(stored: dict):
    """Return a typestore of a bag's stored definitions, shared by bags with the same ones.

    Registering generates and compiles Python code, so caching keeps many small bags cheap.
    """
    key = repr(sorted(stored.items(), key=lambda item: item[0]))
    store = _STORED_STORES.get(key)
    if store is None:
        store = get_typestore(Stores.EMPTY)
        store.register(stored)
        _STORED_STORES[key] = store
    return store


def default_typestore(robot_map: RobotMap):
    """Return the map's default typestore with its extra ``.msg`` types registered (cached)."""
    key = (robot_map.typestore, tuple(sorted((k, str(v)) for k, v in robot_map.extra_types.items())))
    store = _DEFAULT_STORES.get(key)
    if store is None:
        store = get_typestore(Stores(robot_map.typestore))
        extra: dict = {}
        for msgtype, path in robot_map.extra_types.items():
            try:
                extra.update(get_types_from_msg(Path(path).read_text(), msgtype))
            except Exception as error:  # the rosbags parser raises several exception types
                raise LogReadError(f"robot map '{robot_map.name}': cannot parse {path} as {msgtype}: {error}") from error
        if extra:
            store.register(extra)
        _DEFAULT_STORES[key] = store
    return store


# ---------------------------------------------------------------------------------------------
# Field extraction
# ---------------------------------------------------------------------------------------------


STAMP_FIELDS = ("header.stamp.sec", "header.stamp.nanosec")

ROLE_FIELDS: dict[str, tuple[str, ...]] = {
    "joint_states": ("name", "position", "velocity"),
    "ee_pose": ("pose.position.x", "pose.position.y", "pose.position.z"),
    "object_pose": ("pose.position.x", "pose.position.y", "pose.position.z"),
    "goal_pose": ("pose.position.x", "pose.position.y", "pose.position.z"),
    "ee_twist": ("twist.linear.x", "twist.linear.y", "twist.linear.z"),
    "cmd_twist": ("twist.linear.x", "twist.linear.y", "twist.linear.z"),
    "wrench": (
        "wrench.force.x", "wrench.force.y", "wrench.force.z",
        "wrench.torque.x", "wrench.torque.y", "wrench.torque.z",
    ),
    "gripper_cmd": ("data",),
    "intervention": ("data",),
    "events": ("data",),
}
"""Field paths each role reads. Access is by name, so any type with these fields works."""


def _check_fields(source: BagSource, role: str, topic: str, msgtype: str, typestore) -> bool:
    """Check that `msgtype` has the fields `role` reads; return whether it has a header."""
    for path in ROLE_FIELDS[role]:
        if not _has_field(typestore, msgtype, path):
            raise LogReadError(
                f"bag {source.path}: type {msgtype} on topic {topic} has no field '{path}', which role "
                f"'{role}' reads (as in {ROLE_TYPES[role]}); map a topic of the standard type"
            )
    return all(_has_field(typestore, msgtype, path) for path in STAMP_FIELDS)


def _has_field(typestore, msgtype: str, path: str) -> bool:
    for part in path.split("."):
        fields = dict(typestore.fielddefs[msgtype][1]) if msgtype in typestore.fielddefs else {}
        if part not in fields:
            return False
        nodetype, info = fields[part]
        msgtype = info if nodetype == Nodetype.NAME else ""
    return True


def _columns(
    role: str, rows: list, has_header: bool, robot_map: RobotMap, source: BagSource, problems: list[Problem]
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Turn fetched field tuples into stamps (int64 ns), values (float64) and event texts."""
    count = len(rows)
    stamp_width = 2 if has_header else 0
    if role == "events":
        texts = [str(row[2] if has_header else row) for row in rows]
        stamps = _stamps(np.asarray([row[:2] for row in rows], dtype=np.int64).reshape(count, 2)) if has_header else np.zeros(count, np.int64)
        return stamps, np.zeros((count, 0)), texts
    if role == "joint_states":
        gripper = _GripperReader(robot_map, source)
        values = gripper.openings(rows)
        problems.extend(gripper.problems)
        stamps = _stamps(np.asarray([row[:2] for row in rows], dtype=np.int64).reshape(count, 2))
        return stamps, values, None
    width = stamp_width + ROLE_WIDTHS[role]
    if width == 1:
        table = np.fromiter(rows, np.float64, count=count).reshape(count, 1)  # bare values, no tuples
    else:
        table = np.fromiter(chain.from_iterable(rows), np.float64, count=count * width).reshape(count, width)
    # Seconds below 2**53 and nanoseconds are exact in float64, so the int64 stamps are exact too.
    stamps = _stamps(table[:, :2].astype(np.int64)) if has_header else np.zeros(count, np.int64)
    return stamps, table[:, stamp_width:], None


def _stamps(sec_nanosec: np.ndarray) -> np.ndarray:
    """(N, 2) int64 seconds and nanoseconds -> (N,) int64 nanoseconds."""
    return sec_nanosec[:, 0] * 1_000_000_000 + sec_nanosec[:, 1]


class _GripperReader:
    """Gripper opening (m) and its velocity (m/s) from JointState fields; remembers the finger
    joint positions per name list and reports each naming problem once."""

    def __init__(self, robot_map: RobotMap, source: BagSource):
        self.robot_map = robot_map
        self.source = source
        self.problems: list[Problem] = []

    def openings(self, rows: list[tuple]) -> np.ndarray:
        """Return float64 (N, 2): opening and opening velocity per (sec, nanosec, name, position,
        velocity) row; NaN where the fingers are not found or velocities are missing."""
        out = np.full((len(rows), 2), np.nan)
        groups: dict[tuple, list[int]] = {}
        for i, (_, _, names, position, velocity) in enumerate(rows):
            key = (tuple(names), len(position), len(velocity))
            groups.setdefault(key, []).append(i)

        # Messages with the same names and array lengths are summed in one vectorized step.
        for (names, count, velocity_count), members in groups.items():
            indices = self._finger_indices(names, count)
            if indices is None:
                continue
            positions = np.stack([np.asarray(rows[i][3], dtype=np.float64) for i in members])
            out[members, 0] = positions[:, indices].sum(axis=1)
            if velocity_count == count:
                velocities = np.stack([np.asarray(rows[i][4], dtype=np.float64) for i in members])
                out[members, 1] = velocities[:, indices].sum(axis=1)
            # else: the velocity stays NaN and is filled by finite differences after alignment
        return out

    def _finger_indices(self, names: tuple[str, ...], count: int) -> list[int] | None:
        joints = self.robot_map.gripper_joints
        topic = self.robot_map.topics["joint_states"].topic
        bag = str(self.source.path)
        if names:
            missing = [joint for joint in joints if joint not in names]
            if missing:
                self.problems.append(Problem(
                    bag, "joint_names", f"joint states lack the finger joints {missing} (names: {list(names)}); "
                    "the gripper opening is missing", topic=topic,
                ))
                return None
            indices = [names.index(joint) for joint in joints]
            if max(indices) >= count:
                self.problems.append(Problem(
                    bag, "joint_names", f"joint states name {len(names)} joints but carry {count} positions; "
                    "the gripper opening is missing", topic=topic,
                ))
                return None
            return indices
        indices = list(self.robot_map.gripper_joint_indices)
        if not indices or max(indices) >= count:
            self.problems.append(Problem(
                bag, "joint_names", f"joint states carry {count} positions but an empty name list, and "
                "gripper.indices in the robot map does not cover them; the gripper opening is missing", topic=topic,
            ))
            return None
        self.problems.append(Problem(
            bag, "joint_names", f"joint states carry an empty name list; using positions {indices} "
            "from gripper.indices in the robot map as the finger joints", topic=topic,
        ))
        return indices


def parse_event(text: str) -> dict | None:
    """Parse a JSON episode event; return None unless it is an object with a string ``event``
    (or ``type``) key. Kinds other than ``start`` and ``end`` (arm, stop, ...) are returned too;
    segmentation ignores them."""
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(event, dict):
        return None
    kind = event.get("event", event.get("type"))
    if not isinstance(kind, str):
        return None
    event["event"] = kind
    return event
