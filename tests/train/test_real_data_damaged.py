"""A bag whose message bytes are damaged is reported and left out; training uses the others."""

import logging
import shutil

import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from ast_robot.cli import main
from ast_robot.config import load_config
from ast_robot.errors import TrainError
from ast_robot.train.real_data import load_real_data

EE_POSE_TOPIC = "/ee_pose"  # the stand-in robot map's end-effector pose topic


def copy_with_damaged_messages(source, target, topic=EE_POSE_TOPIC):
    """Copy a rosbag2 recording, overwriting the string length of every `topic` message.

    PoseStamped CDR data starts with a 4-byte encapsulation header and the 8-byte stamp; the next
    4 bytes are the frame_id length, set here to 2**31 - 1 so the message cannot be decoded.
    """
    with Reader(source) as reader, Writer(target, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {
            conn.id: writer.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest)
            for conn in reader.connections
        }
        for conn, stamp_ns, raw in reader.messages():
            data = bytearray(raw)
            if conn.topic == topic:
                data[12:16] = b"\xff\xff\xff\x7f"
            writer.write(connections[conn.id], stamp_ns, bytes(data))


@pytest.fixture
def logs_with_damaged_bag(tmp_path, standin_logs):
    logs = tmp_path / "logs"
    shutil.copytree(standin_logs, logs)
    first = sorted(logs.iterdir())[0]
    copy_with_damaged_messages(first, logs / "damaged")
    return logs


def test_damaged_bag_skipped_others_used(logs_with_damaged_bag):
    real = load_real_data(logs_with_damaged_bag, load_config(env="pick_place", overrides=["env.max_steps=30"]))
    assert len(real.episodes) == 4
    assert real.load_summary.bags_skipped == 1
    damaged = [p for p in real.problems if "damaged" in p.bag]
    assert [p.kind for p in damaged] == ["undecodable"]
    assert "cannot deserialize" in damaged[0].message


def test_only_damaged_bags_is_clear_error(tmp_path, standin_logs, caplog):
    logs = tmp_path / "logs"
    logs.mkdir()
    copy_with_damaged_messages(sorted(standin_logs.iterdir())[0], logs / "damaged")
    with caplog.at_level(logging.WARNING), pytest.raises(TrainError, match="none of the 1 bags contains a usable episode"):
        load_real_data(logs, load_config(env="pick_place"))
    assert "training on the" not in caplog.text


def test_train_cli_skips_damaged_bag(tmp_path, logs_with_damaged_bag, capsys, tiny_cli_args):
    code = main(["--log-level", "WARNING", "train", "--run-dir", str(tmp_path / "run"), "--real-log",
                 str(logs_with_damaged_bag), "--workers", "0", "--no-progress", *tiny_cli_args("train.iterations=1")])
    assert code == 0
    assert "training on the 4 episodes of the others" in capsys.readouterr().err
