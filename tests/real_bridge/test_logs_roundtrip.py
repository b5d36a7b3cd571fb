"""EpisodeWriter -> load_episodes round trips, storage options and the streaming API."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from logs_factory import BASE, PERIOD, SECOND, make_episode, standin_map

from ast_robot.errors import LogReadError, LogWriteError
from ast_robot.real_bridge.logs import load_episodes
from ast_robot.real_bridge.writer import EpisodeWriter


def assert_same_episode(original, loaded):
    for group in original.obs:
        valid = ~original.missing.get(group, np.zeros(len(original), bool))
        np.testing.assert_allclose(loaded.obs[group][valid], original.obs[group][valid], atol=1e-6, err_msg=group)
    np.testing.assert_allclose(loaded.actions, original.actions, atol=1e-6)
    np.testing.assert_allclose(loaded.timestamps, original.timestamps, atol=1e-9)
    np.testing.assert_array_equal(loaded.interventions, original.interventions)
    np.testing.assert_allclose(loaded.wrench, original.wrench, atol=1e-6)  # NaN compares equal to NaN
    np.testing.assert_allclose(loaded.context, original.context, atol=1e-7)
    assert loaded.success == original.success
    assert loaded.flags == original.flags
    assert loaded.domain_params == pytest.approx(original.domain_params)
    assert loaded.id == original.id
    assert loaded.source == "real"
    for group, mask in original.missing.items():
        np.testing.assert_array_equal(loaded.missing[group], mask, err_msg=group)
    if original.action_labels is None:
        assert loaded.action_labels is None
    else:
        np.testing.assert_allclose(loaded.action_labels, original.action_labels, atol=1e-6)


@pytest.mark.parametrize(
    ("storage", "compression"),
    [("mcap", "none"), ("sqlite3", "none"), ("mcap", "storage"), ("sqlite3", "message"), ("mcap", "file")],
)
def test_roundtrip_every_field(tmp_path, storage, compression):
    robot_map = standin_map()
    episodes = [
        make_episode(30, seed=1, interventions=range(5, 12)),
        make_episode(12, seed=2, success=False, wrench_nan=[3, 4]),
        make_episode(1, seed=3),
    ]
    with EpisodeWriter(tmp_path / "bag", robot_map, storage=storage, compression=compression) as writer:
        for episode in episodes:
            writer.write(episode)

    result = load_episodes(tmp_path, robot_map)

    assert result.summary.episodes_loaded == 3
    assert len(result.episodes) == 3
    for original, loaded in zip(episodes, result.episodes):
        assert_same_episode(original, loaded)
    assert result.episodes[0].info["storage"] == storage


def test_roundtrip_wall_clock_times(tmp_path):
    robot_map = standin_map()
    episode = make_episode(20, seed=4, t0=BASE / SECOND)
    with EpisodeWriter(tmp_path / "bag", robot_map) as writer:
        writer.write(episode)

    (loaded,) = load_episodes(tmp_path / "bag", robot_map).episodes

    np.testing.assert_allclose(loaded.timestamps, episode.timestamps, rtol=0, atol=1e-6)
    assert "time_offset_ns" not in loaded.info


def test_writer_shifts_overlapping_episodes(tmp_path):
    robot_map = standin_map()
    first, second = make_episode(10, seed=5), make_episode(10, seed=6)
    with EpisodeWriter(tmp_path / "bag", robot_map) as writer:
        writer.write(first)
        writer.write(second)

    result = load_episodes(tmp_path, robot_map)

    assert [len(e) for e in result.episodes] == [10, 10]
    np.testing.assert_allclose(result.episodes[1].timestamps, second.timestamps, atol=1e-9)
    assert not [p for p in result.problems if p.kind in ("clock_jump", "unsorted")]


def test_writer_closes_bag_on_exception(tmp_path):
    robot_map = standin_map()
    with pytest.raises(RuntimeError, match="controller crashed"):
        with EpisodeWriter(tmp_path / "bag", robot_map) as writer:
            writer.write(make_episode(8, seed=7))
            raise RuntimeError("controller crashed")

    assert (tmp_path / "bag" / "metadata.yaml").is_file()
    result = load_episodes(tmp_path / "bag", robot_map)
    assert len(result.episodes) == 1
    assert len(result.episodes[0]) == 8


def test_writer_rejects_existing_path(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(LogWriteError, match="exists already"):
        EpisodeWriter(tmp_path / "bag", standin_map())


def test_writer_rejects_unknown_storage(tmp_path):
    with pytest.raises(LogWriteError, match="storage 'rosbag1' is not supported"):
        EpisodeWriter(tmp_path / "bag", standin_map(), storage="rosbag1")


def test_streaming_api_records_episode(tmp_path):
    robot_map = standin_map()
    writer = EpisodeWriter(tmp_path / "bag", robot_map, storage="sqlite3").open_stream()
    start = BASE
    writer.write_event("start", start, episode_id="live-1")
    for k in range(5):
        t = start + k * PERIOD
        stamp = {"sec": t // SECOND, "nanosec": t % SECOND}
        writer.write_message("ee_pose", None, {"header": {"stamp": stamp}, "pose": {"position": {"x": 0.1 * k, "z": 0.3}}}, t)
        writer.write_message("/cmd_twist", "geometry_msgs/msg/TwistStamped", {"header": {"stamp": stamp}, "twist": {"linear": {"x": 0.125}}}, t)
        writer.write_message("gripper_cmd", None, {"data": 0.5}, t)
        writer.write_message("intervention", None, {"data": k >= 3}, t)
        writer.write_message("/diagnostics_text", "std_msgs/msg/String", {"data": "ok"}, t)
    writer.write_event("end", start + 4 * PERIOD, success=True)
    writer.close()

    result = load_episodes(tmp_path, robot_map)

    (episode,) = result.episodes
    assert episode.id == "live-1"
    assert episode.success is True
    np.testing.assert_allclose(episode.obs["proprio"][:, 0], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-9)
    np.testing.assert_allclose(episode.actions[:, 0], 0.5)
    np.testing.assert_allclose(episode.actions[:, 3], 0.5)
    np.testing.assert_array_equal(episode.interventions, [False, False, False, True, True])
    assert episode.action_labels is not None
    assert episode.missing["force"].all()
    assert episode.wrench is None


def test_streaming_rejects_wrong_type(tmp_path):
    with EpisodeWriter(tmp_path / "bag", standin_map()) as writer:
        with pytest.raises(LogWriteError, match="mapped as geometry_msgs/msg/PoseStamped"):
            writer.write_message("ee_pose", "geometry_msgs/msg/TwistStamped", {}, BASE)


def test_split_bag_reads_all_files(tmp_path):
    """A bag directory with two storage files and one metadata.yaml listing both."""
    robot_map = standin_map()
    first, second = make_episode(6, seed=8, t0=100.0), make_episode(7, seed=9, t0=200.0)
    for name, episode in (("part0", first), ("part1", second)):
        with EpisodeWriter(tmp_path / name, robot_map, storage="sqlite3", version=8) as writer:
            writer.write(episode)
    bag = tmp_path / "logs" / "split_bag"
    bag.mkdir(parents=True)
    meta0 = yaml.safe_load((tmp_path / "part0" / "metadata.yaml").read_text())
    meta1 = yaml.safe_load((tmp_path / "part1" / "metadata.yaml").read_text())
    info0, info1 = meta0["rosbag2_bagfile_information"], meta1["rosbag2_bagfile_information"]
    shutil.copy(tmp_path / "part0" / "part0.db3", bag / "split_bag_0.db3")
    shutil.copy(tmp_path / "part1" / "part1.db3", bag / "split_bag_1.db3")
    info0["relative_file_paths"] = ["split_bag_0.db3", "split_bag_1.db3"]
    info0["message_count"] += info1["message_count"]
    for topic0, topic1 in zip(info0["topics_with_message_count"], info1["topics_with_message_count"]):
        topic0["message_count"] += topic1["message_count"]
    info0["files"] = []
    (bag / "metadata.yaml").write_text(yaml.safe_dump(meta0))

    result = load_episodes(tmp_path / "logs", robot_map)

    assert result.summary.bags_found == 1
    assert [len(e) for e in result.episodes] == [6, 7]
    assert_same_episode(second, result.episodes[1])


def test_labels_file_gives_success(tmp_path):
    robot_map = standin_map()
    from logs_factory import steady_recording

    steady_recording(10, events=False).write(tmp_path / "run_a")
    steady_recording(10, events=False).write(tmp_path / "run_b", storage="sqlite3")
    steady_recording(10, events=False).write(tmp_path / "run_c")
    (tmp_path / "labels.yaml").write_text("run_a: true\nrun_b: {success: false}\n")

    result = load_episodes(tmp_path, robot_map)

    assert [e.success for e in result.episodes] == [True, False, None]
    assert [len(e) for e in result.episodes] == [10, 10, 10]


def test_missing_path_raises(tmp_path):
    with pytest.raises(LogReadError, match="does not exist"):
        load_episodes(tmp_path / "nope", standin_map())


def test_directory_without_bags_raises(tmp_path):
    (tmp_path / "notes.txt").write_text("no bags here")
    with pytest.raises(LogReadError, match="no rosbag2 recordings found"):
        load_episodes(tmp_path, standin_map())


def test_build_message_from_objects_and_bytes():
    from types import SimpleNamespace

    from ast_robot.real_bridge.decode import default_typestore
    from ast_robot.real_bridge.writer import build_message

    store = default_typestore(standin_map())
    joint = SimpleNamespace(name=["finger_left"], position=[0.02], velocity=(), header=SimpleNamespace(frame_id="base"))
    image = {"height": 1, "width": 3, "encoding": "mono8", "step": 3, "data": b"\x01\x02\x03"}

    joint_message = build_message(store, "sensor_msgs/msg/JointState", joint)
    image_message = build_message(store, "sensor_msgs/msg/Image", image)

    assert joint_message.header.frame_id == "base"
    assert joint_message.header.stamp.sec == 0
    np.testing.assert_array_equal(joint_message.position, [0.02])
    assert joint_message.velocity.shape == (0,)
    np.testing.assert_array_equal(image_message.data, [1, 2, 3])
    raw = store.serialize_cdr(image_message, "sensor_msgs/msg/Image")
    assert store.deserialize_cdr(raw, "sensor_msgs/msg/Image").encoding == "mono8"
