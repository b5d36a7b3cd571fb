"""`ast-robot record-standin --ros`: the stand-in robot driven through the bridge node over ROS2."""

from __future__ import annotations

import pytest

from ast_robot.cli import main


def test_ros_mode_needs_checkpoint(tmp_path, capsys):
    code = main(["record-standin", "--ros", "--out", str(tmp_path / "logs"), "--episodes", "1"])
    assert code == 2
    assert "--ros needs --checkpoint" in capsys.readouterr().err


def test_ros_mode_records_readable_bags(tmp_path):
    pytest.importorskip("rclpy", reason="ROS2 recording needs the 'ros' extra (rclpy)")
    import ros_testing  # noqa: F401  (keeps DDS on loopback with a per-process domain id)
    import torch

    from ast_robot.config import PolicyConfig
    from ast_robot.policy import TransformerPolicy
    from ast_robot.real_bridge.logs import load_episodes
    from ast_robot.real_bridge.topic_map import RobotMap

    torch.manual_seed(0)
    checkpoint = tmp_path / "policy.safetensors"
    TransformerPolicy(PolicyConfig(history=4, d_model=16, layers=1, heads=2)).eval().save(checkpoint)
    out = tmp_path / "logs"

    code = main([
        "--log-level", "WARNING", "record-standin", "--ros", "--checkpoint", str(checkpoint),
        "--out", str(out), "--episodes", "1", "--set", "env.max_steps=15",
    ])

    assert code == 0
    episodes = load_episodes(out, RobotMap.load("configs/robots/standin.yaml")).episodes
    assert len(episodes) == 1
    assert episodes[0].success is not None
    assert len(episodes[0]) >= 5
