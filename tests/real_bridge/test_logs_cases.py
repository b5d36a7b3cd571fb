"""Hard cases of real recordings: disorder, missing definitions, metadata forms, interrupted
recordings, empty topics, short episodes, clock jumps, gaps and bad sensor values."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
import yaml
from logs_factory import (
    BASE,
    PERIOD,
    SECOND,
    TYPESTORE,
    Recording,
    boolean,
    event,
    float64,
    joint_state,
    pose,
    standin_map,
    steady_recording,
    twist,
    wrench,
)
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from ast_robot.config import LogsConfig
from ast_robot.errors import LogReadError
from ast_robot.real_bridge.logs import load_episodes
from ast_robot.real_bridge.topic_map import RobotMap


def kinds(result, kind):
    return [problem for problem in result.problems if problem.kind == kind]


def assert_accounted(summary):
    assert summary.episodes_found + summary.extra_pieces == summary.episodes_loaded + summary.episodes_skipped


# -- ordering ----------------------------------------------------------------------------------


def test_mcap_file_order_and_decreasing_stamps(tmp_path):
    """Joint states all written before wrenches (overlapping times) in small chunks, and an
    ee pose topic whose stamps step back twice."""
    from mcap_ros2.writer import Writer as McapRos2Writer

    steps = 40
    path = tmp_path / "disordered.mcap"
    with path.open("wb") as stream:
        writer = McapRos2Writer(stream, chunk_size=512)
        schemas = {
            msgtype: writer.register_msgdef(msgtype, TYPESTORE.generate_msgdef(msgtype, ros_version=2)[0])
            for msgtype in (
                "sensor_msgs/msg/JointState", "geometry_msgs/msg/WrenchStamped", "geometry_msgs/msg/PoseStamped",
                "geometry_msgs/msg/TwistStamped", "std_msgs/msg/String",
            )
        }

        def stamp(t):
            return {"sec": t // SECOND, "nanosec": t % SECOND}

        times = [BASE + k * PERIOD for k in range(steps)]
        for k, t in enumerate(times):
            message = {"header": {"stamp": stamp(t)}, "name": ["finger_left", "finger_right"],
                       "position": [0.001 * k, 0.001 * k], "velocity": [0.0, 0.0], "effort": []}
            writer.write_message("/joint_states", schemas["sensor_msgs/msg/JointState"], message, log_time=t, publish_time=t)
        for k, t in enumerate(times):
            message = {"header": {"stamp": stamp(t)}, "wrench": {"force": {"x": float(k)}, "torque": {}}}
            writer.write_message("/wrist_wrench", schemas["geometry_msgs/msg/WrenchStamped"], message, log_time=t, publish_time=t)
        # The ee pose stamps of steps 10/11 and 20/21 are swapped, while the log times increase.
        pose_order = list(range(steps))
        pose_order[10], pose_order[11] = 11, 10
        pose_order[20], pose_order[21] = 21, 20
        for k, t in enumerate(times):
            j = pose_order[k]
            message = {"header": {"stamp": stamp(times[j])}, "pose": {"position": {"x": 0.01 * j}, "orientation": {"w": 1.0}}}
            writer.write_message("/ee_pose", schemas["geometry_msgs/msg/PoseStamped"], message, log_time=t, publish_time=t)
            command = {"header": {"stamp": stamp(t)}, "twist": {"linear": {"x": 0.1}, "angular": {}}}
            writer.write_message("/cmd_twist", schemas["geometry_msgs/msg/TwistStamped"], command, log_time=t, publish_time=t)
        writer.finish()

    result = load_episodes(path, standin_map())

    (episode,) = result.episodes
    assert len(episode) == steps
    assert np.all(np.diff(episode.timestamps) > 0)
    np.testing.assert_allclose(episode.obs["proprio"][:, 0], 0.01 * np.arange(steps), atol=1e-6)
    np.testing.assert_allclose(episode.obs["force"][:, 0], np.arange(steps), atol=1e-6)
    np.testing.assert_allclose(episode.obs["proprio"][:, 6], 0.002 * np.arange(steps), atol=1e-6)
    unsorted = kinds(result, "unsorted")
    assert [p.topic for p in unsorted] == ["/ee_pose"]
    assert "2 message(s)" in unsorted[0].message
    assert unsorted[0].time_ns == BASE + 10 * PERIOD
    assert kinds(result, "file_order")


# -- type definitions --------------------------------------------------------------------------

OBJECT_ESTIMATE_MSG = "std_msgs/Header header\ngeometry_msgs/Pose pose\nfloat64 confidence\n"


def write_humble_style_bag(path):
    """A sqlite3 bag with standard types and a custom type, then stored definitions blanked."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(OBJECT_ESTIMATE_MSG, "my_robot_msgs/msg/ObjectEstimate"))
    estimate = store.types["my_robot_msgs/msg/ObjectEstimate"]
    recording = steady_recording(10)
    for k in range(10):
        t = BASE + k * PERIOD
        message = estimate(header=pose(t, [0, 0, 0]).header, pose=pose(t, [0.4, 0.1, 0.05]).pose, confidence=0.9)
        recording.add("/object_estimate", message, t)
    recording.declare("/object_estimate", "my_robot_msgs/msg/ObjectEstimate")
    recording.write(path, storage="sqlite3", typestore=store)
    (db,) = path.glob("*.db3")
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE message_definitions SET encoded_message_definition = ''")
    return path


def test_empty_definitions_decode_standard_types(tmp_path):
    bag = write_humble_style_bag(tmp_path / "humble_bag")

    result = load_episodes(bag, standin_map())

    (episode,) = result.episodes
    assert len(episode) == 10
    np.testing.assert_allclose(episode.obs["object"][:, :3], np.tile([0.5, 0.0, 0.02], (10, 1)), atol=1e-6)


def test_mapped_custom_type_without_definition_raises(tmp_path):
    bag = write_humble_style_bag(tmp_path / "humble_bag")
    robot_map = standin_map().with_topics(object_pose={"topic": "/object_estimate", "msgtype": "my_robot_msgs/msg/ObjectEstimate"})

    with pytest.raises(LogReadError) as error:
        load_episodes(bag, robot_map)

    message = str(error.value)
    assert str(bag) in message
    assert "/object_estimate" in message
    assert "my_robot_msgs/msg/ObjectEstimate" in message
    assert "types: {my_robot_msgs/msg/ObjectEstimate: path/to/ObjectEstimate.msg}" in message


def test_custom_type_registered_in_map_decodes(tmp_path):
    bag = write_humble_style_bag(tmp_path / "humble_bag")
    (tmp_path / "ObjectEstimate.msg").write_text(OBJECT_ESTIMATE_MSG)
    data = yaml.safe_load(standin_map().path.read_text())
    data["topics"]["object_pose"] = {"topic": "/object_estimate", "type": "my_robot_msgs/msg/ObjectEstimate"}
    data["types"] = {"my_robot_msgs/msg/ObjectEstimate": "ObjectEstimate.msg"}
    map_path = tmp_path / "custom.yaml"
    map_path.write_text(yaml.safe_dump(data))

    result = load_episodes(bag, RobotMap.load(map_path))

    np.testing.assert_allclose(result.episodes[0].obs["object"][:, :3], np.tile([0.4, 0.1, 0.05], (10, 1)), atol=1e-6)


def test_mapped_topic_of_other_type_raises(tmp_path):
    steady_recording(5).write(tmp_path / "bag")
    robot_map = standin_map().with_topics(wrench={"topic": "/ee_pose"})

    with pytest.raises(LogReadError, match="topic /ee_pose has type geometry_msgs/msg/PoseStamped, but robot map"):
        load_episodes(tmp_path / "bag", robot_map)


# -- metadata.yaml forms -----------------------------------------------------------------------

QOS = Qos(
    QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE, QosTime(0, 0), QosTime(0, 0),
    QosLiveliness.AUTOMATIC, QosTime(0, 0), False,
)


def write_with_qos(path, version):
    with Writer(path, version=version, storage_plugin=StoragePlugin.SQLITE3) as writer:
        connections = {}
        for topic, message, log_ns in steady_recording(6).messages:
            if topic not in connections:
                msgtype = message.__msgtype__
                connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[QOS])
            writer.write(connections[topic], log_ns, TYPESTORE.serialize_cdr(message, connections[topic].msgtype))
    return path


def metadata_of(path):
    return yaml.safe_load((path / "metadata.yaml").read_text())


def test_metadata_version_9_qos_list(tmp_path):
    bag = write_with_qos(tmp_path / "v9", 9)
    topic = metadata_of(bag)["rosbag2_bagfile_information"]["topics_with_message_count"][0]["topic_metadata"]
    assert isinstance(topic["offered_qos_profiles"], list)

    result = load_episodes(bag, standin_map())

    assert len(result.episodes) == 1
    assert len(result.episodes[0]) == 6


def test_metadata_old_version_qos_string(tmp_path):
    bag = write_with_qos(tmp_path / "v5", 8)
    data = metadata_of(bag)
    info = data["rosbag2_bagfile_information"]
    info["version"] = 5
    for key in ("custom_data", "ros_distro"):
        info.pop(key, None)
    for topic in info["topics_with_message_count"]:
        topic["topic_metadata"].pop("type_description_hash", None)
        assert isinstance(topic["topic_metadata"]["offered_qos_profiles"], str)
    (bag / "metadata.yaml").write_text(yaml.safe_dump(data))

    result = load_episodes(bag, standin_map())

    assert len(result.episodes) == 1
    assert len(result.episodes[0]) == 6


def test_unsupported_metadata_version_reported(tmp_path):
    good = write_with_qos(tmp_path / "good", 9)
    bad = write_with_qos(tmp_path / "future", 9)
    data = metadata_of(bad)
    data["rosbag2_bagfile_information"]["version"] = 10
    (bad / "metadata.yaml").write_text(yaml.safe_dump(data))

    result = load_episodes(tmp_path, standin_map())

    (problem,) = kinds(result, "unsupported_version")
    assert problem.bag == str(bad)
    assert "metadata.yaml version 10 is not supported (supported: 1-9)" in problem.message
    assert [e.info["bag"] for e in result.episodes] == [str(good)]
    assert result.summary.bags_skipped == 1
    assert result.summary.skipped_bags == {"unsupported_version": 1}


# -- interrupted recordings --------------------------------------------------------------------


def test_db3_without_metadata_reads_storage(tmp_path):
    bag = steady_recording(8).write(tmp_path / "killed", storage="sqlite3")
    (bag / "metadata.yaml").unlink()

    result = load_episodes(tmp_path, standin_map())

    assert len(result.episodes) == 1
    assert len(result.episodes[0]) == 8
    (problem,) = kinds(result, "no_metadata")
    assert "ros2 bag reindex" in problem.message


def test_damaged_db3_gives_reindex_error(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "broken_0.db3").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    steady_recording(4).write(tmp_path / "fine")

    result = load_episodes(tmp_path, standin_map())

    (problem,) = kinds(result, "unreadable")
    assert problem.bag.endswith("broken_0.db3")
    assert "ros2 bag reindex" in problem.message
    assert len(result.episodes) == 1
    assert result.summary.skipped_bags == {"unreadable": 1}


def test_db3_without_messages_is_reported(tmp_path):
    recording = Recording()
    recording.declare("/ee_pose")
    bag = recording.write(tmp_path / "empty", storage="sqlite3")
    (bag / "metadata.yaml").unlink()

    result = load_episodes(tmp_path, standin_map())

    assert result.episodes == []
    (problem,) = kinds(result, "empty_bag")
    assert "no messages" in problem.message
    assert result.summary.skipped_bags == {"empty_bag": 1}


# -- empty topics and short episodes -----------------------------------------------------------


def test_wrench_declared_without_messages(tmp_path):
    recording = steady_recording(12)
    recording.messages = [m for m in recording.messages if m[0] != "/wrist_wrench"]
    recording.declare("/wrist_wrench")
    recording.write(tmp_path / "no_wrench")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    assert episode.wrench is None
    assert episode.missing["force"].all()
    assert not episode.obs["force"].any()
    assert episode.peak_force_n is None
    (problem,) = kinds(result, "no_data")
    assert problem.topic == "/wrist_wrench"
    assert result.bags[0].data.topics["/wrist_wrench"] == ("geometry_msgs/msg/WrenchStamped", 0)


def test_zero_and_one_step_episodes(tmp_path):
    recording = steady_recording(5)
    end_of_first = BASE + 4 * PERIOD
    # Episode 1: start and end with no ee pose between them.
    recording.add("/episode_events", event("start"), end_of_first + 2 * SECOND)
    recording.add("/episode_events", event("end", success=False), end_of_first + 2 * SECOND + PERIOD // 2)
    # Episode 2: exactly one ee pose between start and end.
    t = end_of_first + 4 * SECOND
    recording.add("/episode_events", event("start"), t)
    recording.add("/ee_pose", pose(t, [0.1, 0.2, 0.3]), t)
    recording.add("/cmd_twist", twist(t, [0.25, 0.0, 0.0]), t)
    recording.add("/episode_events", event("end", success=True), t)
    recording.write(tmp_path / "short")

    result = load_episodes(tmp_path, standin_map())

    assert [len(e) for e in result.episodes] == [5, 1]
    one_step = result.episodes[1]
    assert one_step.success is True
    np.testing.assert_allclose(one_step.obs["proprio"][0, :3], [0.1, 0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(one_step.actions[0], [1.0, 0.0, 0.0, -1.0])
    (problem,) = kinds(result, "empty_episode")
    assert problem.episode == 1
    assert "episode 1 " in problem.message
    assert result.summary.skipped_episodes == {"empty": 1}
    assert_accounted(result.summary)


# -- clock jumps and gaps ----------------------------------------------------------------------


def restarting_clock_recording():
    """Header stamps run 0 to 15 s, then restart at 0 while the log clock keeps going.

    The wrench topic runs at 30 Hz and is silent for 2 s in the second run."""
    recording = Recording()
    run_steps = int(15 * SECOND / PERIOD) + 1  # stamps 0 .. 15 s at 20 Hz
    for run in range(2):
        run_log_start = BASE + run * (run_steps * PERIOD)
        for k in range(run_steps):
            stamp, log = k * PERIOD, run_log_start + k * PERIOD
            recording.add("/ee_pose", pose(stamp, [0.001 * k, run, 0.3]), log)
            recording.add("/cmd_twist", twist(stamp, [0.0, 0.0, 0.0]), log)
            recording.add("/intervention", boolean(False), log)
        wrench_period = SECOND // 30
        for k in range(int(15 * 30) + 1):
            stamp = k * wrench_period
            if run == 1 and 5 * SECOND < stamp < 7 * SECOND:
                continue
            recording.add("/wrist_wrench", wrench(stamp, [run, 0, 0, 0, 0, 0]), run_log_start + stamp)
    recording.messages.sort(key=lambda message: message[2])
    return recording


def test_clock_restart_and_gap_split(tmp_path):
    restarting_clock_recording().write(tmp_path / "restart")

    result = load_episodes(tmp_path, standin_map())

    jumps = kinds(result, "clock_jump")
    assert {p.topic for p in jumps} == {"/ee_pose", "/cmd_twist", "/wrist_wrench"}
    (ee_jump,) = [p for p in jumps if p.topic == "/ee_pose"]
    assert "from 15.000 s to 0.000 s" in ee_jump.message
    assert ee_jump.time_ns == 15 * SECOND
    (gap,) = kinds(result, "gap")
    assert gap.topic == "/wrist_wrench"
    assert 4.9 < gap.time < 5.0
    assert gap.bag == str(tmp_path / "restart")
    assert "split there" in gap.message
    assert [len(e) for e in result.episodes] == [301, 100, 160]
    for episode in result.episodes:
        assert np.all(np.diff(episode.timestamps) > 0)
    second_run = result.episodes[1:]
    assert all(e.flags["split_at_gap"] for e in second_run)
    assert second_run[0].flags["truncated"]
    np.testing.assert_allclose(second_run[0].obs["force"][:, 0], 1.0)
    assert result.summary.episodes_split == 1
    assert_accounted(result.summary)


def test_gap_reject(tmp_path):
    restarting_clock_recording().write(tmp_path / "restart")

    result = load_episodes(tmp_path, standin_map(), logs_cfg=LogsConfig(on_gap="reject"))

    assert [len(e) for e in result.episodes] == [301]
    assert result.summary.skipped_episodes == {"gap_rejected": 1}
    assert "rejected" in kinds(result, "gap")[0].message
    assert_accounted(result.summary)


# -- odd messages ------------------------------------------------------------------------------


def test_joint_states_without_names(tmp_path):
    recording = steady_recording(6)
    recording.messages = [
        (topic, joint_state(m.header.stamp.sec * SECOND + m.header.stamp.nanosec, [0.03, 0.01], [0.1, 0.1], names=())
         if topic == "/joint_states" else m, log)
        for topic, m, log in recording.messages
    ]
    recording.write(tmp_path / "nameless")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    np.testing.assert_allclose(episode.obs["proprio"][:, 6], 0.04, atol=1e-7)
    np.testing.assert_allclose(episode.obs["proprio"][:, 7], 0.2, atol=1e-7)
    assert not episode.missing["gripper"].any()
    (problem,) = kinds(result, "joint_names")
    assert "empty name list" in problem.message


def test_all_zero_header_stamps_use_log_time(tmp_path):
    recording = steady_recording(6)
    recording.messages = [
        (topic, pose(0, [m.pose.position.x, 0.0, 0.3]) if topic == "/ee_pose" else m, log)
        for topic, m, log in recording.messages
    ]
    recording.write(tmp_path / "unstamped")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    assert len(episode) == 6
    np.testing.assert_allclose(episode.timestamps, (BASE + np.arange(6) * PERIOD) / SECOND)
    (problem,) = kinds(result, "zero_stamps")
    assert problem.topic == "/ee_pose"
    assert "6 of 6 header stamps are zero" in problem.message


def test_bag_directory_named_db3(tmp_path):
    steady_recording(7).write(tmp_path / "session.db3", storage="sqlite3")

    result = load_episodes(tmp_path, standin_map())

    assert result.summary.bags_found == 1
    assert len(result.episodes[0]) == 7


def test_nan_wrench_marks_step_missing(tmp_path):
    recording = steady_recording(10)
    nan_step_log = BASE + 4 * PERIOD
    recording.messages = [
        (topic, wrench(log, [np.nan, 0, 0, 0, 0, 0]) if topic == "/wrist_wrench" and log == nan_step_log else m, log)
        for topic, m, log in recording.messages
    ]
    recording.write(tmp_path / "nan_wrench")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    assert len(episode) == 10
    np.testing.assert_array_equal(np.flatnonzero(episode.missing["force"]), [4])
    assert np.isnan(episode.wrench[4, 0])
    assert episode.obs["force"][4, 0] == 0.0
    np.testing.assert_allclose(episode.obs["force"][[3, 5], 0], 1.0)
    assert not episode.missing["proprio"].any()
    assert episode.peak_force_n == pytest.approx(np.hypot(1.0, 2.0), rel=1e-6)
    (problem,) = kinds(result, "nan")
    assert problem.time_ns == nan_step_log


def test_sim_clock_stamps_align_headerless_topics(tmp_path):
    """Stamps on a simulation clock starting at exactly 0; commands and flags have no header."""
    recording = steady_recording(10, stamp_offset_ns=-BASE)
    recording.messages = [
        (topic, boolean(log >= BASE + 5 * PERIOD) if topic == "/intervention" else m, log)
        for topic, m, log in recording.messages
    ]
    recording.write(tmp_path / "simclock")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    np.testing.assert_allclose(episode.timestamps, np.arange(10) * PERIOD / SECOND, atol=1e-9)
    np.testing.assert_array_equal(episode.interventions, np.arange(10) >= 5)
    assert not episode.missing["actions"].any()
    assert not kinds(result, "clock_jump")


def test_missing_command_step_is_zero_action(tmp_path):
    recording = steady_recording(8)
    recording.messages = [m for m in recording.messages if not (m[0] == "/cmd_twist" and m[2] == BASE + 3 * PERIOD)]
    recording.write(tmp_path / "dropped_command")
    robot_map = standin_map().with_topics(cmd_twist={"tolerance_ns": 35_000_000})

    (episode,) = load_episodes(tmp_path, robot_map).episodes

    np.testing.assert_array_equal(np.flatnonzero(episode.missing["actions"]), [3])
    np.testing.assert_allclose(episode.actions[3, :3], 0.0)
    np.testing.assert_allclose(episode.actions[2, :3], [0.2, 0.0, 0.0])


def test_unpaired_events_reported(tmp_path):
    recording = steady_recording(6, events=False)
    recording.add("/episode_events", event("start"), BASE)
    recording.add("/episode_events", event("start"), BASE + 3 * PERIOD)
    recording.add("/episode_events", TYPESTORE.types["std_msgs/msg/String"](data="not json"), BASE + PERIOD)
    recording.messages.sort(key=lambda message: message[2])
    recording.write(tmp_path / "unpaired")

    result = load_episodes(tmp_path, standin_map())

    assert [len(e) for e in result.episodes] == [3, 3]
    assert all(e.flags["truncated"] for e in result.episodes)
    assert len(kinds(result, "unpaired_event")) == 2
    assert len(kinds(result, "bad_event")) == 1


def test_compressed_file_without_metadata_reported(tmp_path):
    steady_recording(4).write(tmp_path / "ok")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "run.mcap.zstd").write_bytes(b"\x28\xb5\x2f\xfd")

    result = load_episodes(tmp_path, standin_map())

    (problem,) = kinds(result, "unreadable")
    assert "compressed storage file without metadata.yaml" in problem.message
    assert len(result.episodes) == 1


def test_copies_of_bag_load_independently(tmp_path):
    steady_recording(5).write(tmp_path / "a" / "run")
    shutil.copytree(tmp_path / "a", tmp_path / "b")

    result = load_episodes(tmp_path, standin_map())

    assert [e.id for e in result.episodes] == ["run/ep0", "run/ep0"]
    assert [e.info["bag"] for e in result.episodes] == [str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")]


def test_truncated_mcap_gives_recover_error(tmp_path):
    bag = steady_recording(40).write(tmp_path / "whole")
    (mcap_file,) = bag.glob("*.mcap")
    (tmp_path / "killed").mkdir()
    data = mcap_file.read_bytes()
    (tmp_path / "killed" / "killed_0.mcap").write_bytes(data[: len(data) * 2 // 3])

    result = load_episodes(tmp_path / "killed", standin_map())

    assert result.episodes == []
    (problem,) = kinds(result, "unreadable")
    assert "mcap recover" in problem.message
    assert kinds(result, "no_metadata")


def test_humble_schema_without_definition_table(tmp_path):
    """Humble's sqlite3 schema (version 3) has no message_definitions table at all."""
    bag = write_with_qos(tmp_path / "humble", 8)
    (db,) = bag.glob("*.db3")
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TABLE message_definitions")
        connection.execute("UPDATE schema SET schema_version = 3")
    data = metadata_of(bag)
    data["rosbag2_bagfile_information"]["version"] = 5
    (bag / "metadata.yaml").write_text(yaml.safe_dump(data))

    result = load_episodes(bag, standin_map())

    (episode,) = result.episodes
    assert len(episode) == 6
    np.testing.assert_allclose(episode.obs["goal"], np.tile([0.6, 0.1, 0.02], (6, 1)), atol=1e-7)


def test_recording_without_commands(tmp_path):
    recording = steady_recording(5)
    recording.messages = [m for m in recording.messages if m[0] not in ("/cmd_twist", "/gripper_cmd")]
    recording.write(tmp_path / "no_commands")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    assert episode.info["commands_logged"] is False
    assert episode.missing["actions"].all()
    assert not episode.actions.any()
    assert {p.topic for p in kinds(result, "missing_topic")} >= {"/cmd_twist", "/gripper_cmd"}


def test_joint_states_without_positions(tmp_path):
    recording = steady_recording(4)
    recording.messages = [
        (topic, joint_state(log, [], []) if topic == "/joint_states" else m, log) for topic, m, log in recording.messages
    ]
    recording.write(tmp_path / "no_positions")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    assert episode.missing["gripper"].all()
    assert not episode.missing["proprio"].any()
    (problem,) = kinds(result, "joint_names")
    assert "name 2 joints but carry 0 positions" in problem.message


def test_min_episode_steps_skips_short(tmp_path):
    recording = steady_recording(5)
    t = BASE + 10 * SECOND
    recording.add("/episode_events", event("start"), t)
    recording.add("/ee_pose", pose(t, [0.1, 0.2, 0.3]), t)
    recording.add("/episode_events", event("end", success=True), t)
    recording.write(tmp_path / "short")

    result = load_episodes(tmp_path, standin_map(), logs_cfg=LogsConfig(min_episode_steps=3))

    assert [len(e) for e in result.episodes] == [5]
    assert result.summary.skipped_episodes == {"too_short": 1}
    (problem,) = kinds(result, "short_episode")
    assert "1 steps, fewer than logs.min_episode_steps=3" in problem.message
    assert_accounted(result.summary)


class PaddedRecording(Recording):
    """Writes joint states with 4 extra trailing bytes, as Fast-CDR 2 serializes them."""

    def write(self, path, *, storage="mcap", version=9, typestore=TYPESTORE):
        with Writer(path, version=version, storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {}
            for topic, message, log_ns in self.messages:
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, message.__msgtype__, typestore=typestore)
                raw = bytes(typestore.serialize_cdr(message, connections[topic].msgtype))
                if topic == "/joint_states":
                    raw += b"\x70\x00\x00\x00"
                writer.write(connections[topic], log_ns, raw)
        return path


def test_fastcdr_padding_decodes(tmp_path):
    recording = PaddedRecording(messages=steady_recording(6).messages)
    recording.write(tmp_path / "padded")

    result = load_episodes(tmp_path, standin_map())

    (episode,) = result.episodes
    np.testing.assert_allclose(episode.obs["proprio"][:, 6], 0.04)
    (problem,) = kinds(result, "cdr_padding")
    assert problem.topic == "/joint_states"
    assert problem.message.startswith("6 message(s)")


def test_rclpy_serialized_joint_states(tmp_path):
    """Bytes from rclpy's own serializer, which is what a ROS2 recorder stores."""
    serialization = pytest.importorskip("rclpy.serialization", reason="needs the ros extra (rclpy)")
    from sensor_msgs.msg import JointState

    recording = steady_recording(5)
    bag = tmp_path / "rclpy_bytes"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for topic, message, log_ns in recording.messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, message.__msgtype__, typestore=TYPESTORE)
            raw = bytes(TYPESTORE.serialize_cdr(message, connections[topic].msgtype))
            if topic == "/joint_states":
                ros_message = JointState(name=["finger_left", "finger_right"], position=[0.03, 0.01], velocity=[0.1, -0.3])
                ros_message.header.stamp.sec, ros_message.header.stamp.nanosec = log_ns // SECOND, log_ns % SECOND
                raw = serialization.serialize_message(ros_message)
            writer.write(connections[topic], log_ns, raw)

    result = load_episodes(bag, standin_map())

    (episode,) = result.episodes
    np.testing.assert_allclose(episode.obs["proprio"][:, 6], 0.04)
    np.testing.assert_allclose(episode.obs["proprio"][:, 7], -0.2)
    assert not episode.missing["gripper"].any()
