"""RobotMap loading and validation."""

from __future__ import annotations

import pytest
import yaml

from ast_robot.errors import ConfigError
from ast_robot.real_bridge.topic_map import ROLE_TYPES, RobotMap


def standin_data():
    return yaml.safe_load(RobotMap.load("configs/robots/standin.yaml").path.read_text())


def test_standin_map_loads():
    robot_map = RobotMap.load("robots/standin.yaml")

    assert robot_map.name == "standin"
    assert set(robot_map.topics) == set(ROLE_TYPES)
    assert robot_map.period_ns == 50_000_000
    assert robot_map.topics["ee_pose"].tolerance_ns == 35_000_000
    assert robot_map.topics["goal_pose"].holds
    assert robot_map.gripper_joints == ("finger_left", "finger_right")
    assert robot_map.linear_scale_m_s == 0.25
    assert robot_map.spec("/wrist_wrench").role == "wrench"
    assert robot_map.spec("cmd_twist").topic == "/cmd_twist"
    assert robot_map.role_of("/unmapped") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["topics"].update(camera={"topic": "/cam"}), "topics.camera is not a known role"),
        (lambda d: d["topics"].pop("ee_pose"), r"topics must map the roles \['ee_pose'\]"),
        (lambda d: d.update(control_hz=0), "control_hz=0 is invalid"),
        (lambda d: d.update(typestore="ros1"), "typestore 'ros1' is unknown"),
        (lambda d: d["gripper"].update(indices=[0]), "gripper.joints has 2 names but gripper.indices has 1"),
        (lambda d: d.update(types={"my/msg/T": "missing.msg"}), "types.my/msg/T: message definition file"),
        (lambda d: d["topics"]["wrench"].update(rate=5), r"topics.wrench has unknown keys \['rate'\]"),
        (lambda d: d.update(extra=1), r"unknown keys \['extra'\]"),
        (lambda d: d["topics"]["ee_pose"].update(tolerance_s=-1), "tolerance_s=-1 is invalid"),
    ],
)
def test_invalid_map_rejected(tmp_path, change, message):
    data = standin_data()
    change(data)
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(ConfigError, match=message):
        RobotMap.load(path)


def test_missing_map_file_rejected(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        RobotMap.load(tmp_path / "none.yaml")


def test_with_topics_remaps_and_removes():
    robot_map = RobotMap.load("configs/robots/standin.yaml")

    changed = robot_map.with_topics(wrench={"topic": "/ft_sensor"}, ee_twist=None)

    assert changed.topics["wrench"].topic == "/ft_sensor"
    assert "ee_twist" not in changed.topics
    assert robot_map.topics["wrench"].topic == "/wrist_wrench"
