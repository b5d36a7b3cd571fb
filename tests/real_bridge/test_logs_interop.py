"""Interoperability with the independent `mcap` + `mcap-ros2-support` reader and writer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from logs_factory import BASE, PERIOD, SECOND, TYPESTORE, make_episode, standin_map
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.writer import Writer as McapRos2Writer

from ast_robot.real_bridge.logs import load_episodes
from ast_robot.real_bridge.writer import EpisodeWriter


@dataclass
class Decoded:
    log_time_ns: int
    ros_msg: object


def test_mcap_ros2_reads_our_bags(tmp_path):
    robot_map = standin_map()
    episode = make_episode(15, seed=11, interventions=[4, 5], t0=BASE / SECOND)
    with EpisodeWriter(tmp_path / "bag", robot_map, storage="mcap") as writer:
        writer.write(episode)
    (mcap_file,) = (tmp_path / "bag").glob("*.mcap")

    by_topic: dict[str, list] = {}
    with mcap_file.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, message, ros_msg in reader.iter_decoded_messages():
            by_topic.setdefault(channel.topic, []).append(Decoded(message.log_time, ros_msg))

    poses = by_topic["/ee_pose"]
    # Float64 seconds near 1.7e9 s resolve about 0.24 us, so the writer rounds to whole ns.
    expected_ns = np.round(episode.timestamps * 1e9).astype(np.int64).tolist()
    assert [m.log_time_ns for m in poses] == expected_ns
    ee = np.array([[m.ros_msg.pose.position.x, m.ros_msg.pose.position.y, m.ros_msg.pose.position.z] for m in poses])
    np.testing.assert_array_equal(ee, episode.obs["proprio"][:, :3].astype(np.float64))
    stamps = [m.ros_msg.header.stamp.sec * SECOND + m.ros_msg.header.stamp.nanosec for m in poses]
    assert stamps == [m.log_time_ns for m in poses]
    wrenches = np.array(
        [[m.ros_msg.wrench.force.x, m.ros_msg.wrench.force.y, m.ros_msg.wrench.force.z,
          m.ros_msg.wrench.torque.x, m.ros_msg.wrench.torque.y, m.ros_msg.wrench.torque.z]
         for m in by_topic["/wrist_wrench"]]
    )
    np.testing.assert_array_equal(wrenches, episode.wrench.astype(np.float64))
    commands = np.array([[m.ros_msg.twist.linear.x, m.ros_msg.twist.linear.y, m.ros_msg.twist.linear.z] for m in by_topic["/cmd_twist"]])
    np.testing.assert_allclose(commands, episode.actions[:, :3].astype(np.float64) * robot_map.linear_scale_m_s, rtol=1e-12)
    gripper = np.array([m.ros_msg.data for m in by_topic["/gripper_cmd"]])
    np.testing.assert_array_equal(gripper, episode.actions[:, 3].astype(np.float64))
    np.testing.assert_array_equal([m.ros_msg.data for m in by_topic["/intervention"]], episode.interventions)
    joints = by_topic["/joint_states"][0].ros_msg
    assert list(joints.name) == ["finger_left", "finger_right"]
    assert sum(joints.position) == np.float64(episode.obs["proprio"][0, 6])
    events = [json.loads(m.ros_msg.data) for m in by_topic["/episode_events"]]
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[1]["success"] is True
    assert events[0]["episode_id"] == episode.id


def test_we_read_mcap_ros2_bags(tmp_path):
    path = tmp_path / "foreign.mcap"
    steps = 12
    with path.open("wb") as stream:
        writer = McapRos2Writer(stream)
        schemas = {
            msgtype: writer.register_msgdef(msgtype, TYPESTORE.generate_msgdef(msgtype, ros_version=2)[0])
            for msgtype in (
                "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/TwistStamped", "geometry_msgs/msg/WrenchStamped",
                "std_msgs/msg/Float64", "std_msgs/msg/Bool", "std_msgs/msg/String",
            )
        }
        writer.write_message("/episode_events", schemas["std_msgs/msg/String"], {"data": json.dumps({"event": "start"})}, log_time=BASE)
        for k in range(steps):
            t = BASE + k * PERIOD
            header = {"stamp": {"sec": t // SECOND, "nanosec": t % SECOND}, "frame_id": "base"}
            writer.write_message("/ee_pose", schemas["geometry_msgs/msg/PoseStamped"],
                                 {"header": header, "pose": {"position": {"x": 0.01 * k, "y": -0.2, "z": 0.4}, "orientation": {"w": 1.0}}},
                                 log_time=t, publish_time=t)
            writer.write_message("/object_pose", schemas["geometry_msgs/msg/PoseStamped"],
                                 {"header": header, "pose": {"position": {"x": 0.5, "y": 0.0, "z": 0.02}, "orientation": {"w": 1.0}}},
                                 log_time=t, publish_time=t)
            writer.write_message("/wrist_wrench", schemas["geometry_msgs/msg/WrenchStamped"],
                                 {"header": header, "wrench": {"force": {"z": -5.0 - k}, "torque": {"x": 0.1}}},
                                 log_time=t, publish_time=t)
            writer.write_message("/cmd_twist", schemas["geometry_msgs/msg/TwistStamped"],
                                 {"header": header, "twist": {"linear": {"x": 0.05, "y": -0.125}, "angular": {}}},
                                 log_time=t, publish_time=t)
            writer.write_message("/gripper_cmd", schemas["std_msgs/msg/Float64"], {"data": 1.0}, log_time=t, publish_time=t)
            writer.write_message("/intervention", schemas["std_msgs/msg/Bool"], {"data": k >= 8}, log_time=t, publish_time=t)
        end = BASE + (steps - 1) * PERIOD
        writer.write_message("/episode_events", schemas["std_msgs/msg/String"],
                             {"data": json.dumps({"event": "end", "success": False})}, log_time=end)
        writer.finish()

    result = load_episodes(path, standin_map())

    (episode,) = result.episodes
    assert len(episode) == steps
    assert episode.success is False
    np.testing.assert_allclose(episode.timestamps, (BASE + np.arange(steps) * PERIOD) / SECOND)
    np.testing.assert_allclose(episode.obs["proprio"][:, 0], 0.01 * np.arange(steps), atol=1e-7)
    np.testing.assert_allclose(episode.obs["proprio"][:, 3], 0.2, atol=1e-5)  # finite difference of x
    np.testing.assert_allclose(episode.obs["object"][:, 3], 0.5 - 0.01 * np.arange(steps), atol=1e-6)
    np.testing.assert_allclose(episode.obs["force"][:, 2], -5.0 - np.arange(steps))
    np.testing.assert_allclose(episode.actions, np.tile([0.2, -0.5, 0.0, 1.0], (steps, 1)), atol=1e-7)
    np.testing.assert_array_equal(episode.interventions, np.arange(steps) >= 8)
    np.testing.assert_allclose(episode.action_labels, episode.actions)
    assert episode.missing["gripper"].all()
    assert episode.missing["goal"].all()
    np.testing.assert_allclose(episode.context, [0.5, 0.0, 0.02, 0.0, 0.0, 0.0], atol=1e-7)
