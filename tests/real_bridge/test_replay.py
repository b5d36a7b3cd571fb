"""Replayed-log testing: a logged run of a known policy, recorded through the real ROS2 path.

The stand-in robot (simulator) and the bridge node run in this process over loopback DDS; the
bridge drives the robot with a saved transformer policy and records one bag per episode. Replay
with that same saved policy must reproduce every logged command bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="recording the replayed logs needs the 'ros' extra (rclpy)")

from ros_testing import DOMAIN_ID  # noqa: E402

from ast_robot.cli import main  # noqa: E402
from ast_robot.config import PolicyConfig, load_config  # noqa: E402
from ast_robot.policy import TransformerPolicy  # noqa: E402
from ast_robot.real_bridge.replay import format_report, replay_logs  # noqa: E402
from ast_robot.real_bridge.topic_map import RobotMap  # noqa: E402

pytestmark = pytest.mark.ros

TINY = PolicyConfig(history=4, d_model=16, layers=1, heads=2, global_tokens=1, proxy_hidden=8)


def save_policy(path, seed):
    import torch

    torch.manual_seed(seed)
    policy = TransformerPolicy(TINY).eval()
    policy.save(path)
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two episodes of the stand-in robot driven by a saved random policy through the bridge."""
    from ast_robot.real_bridge.standin_robot import record_standin_ros

    root = tmp_path_factory.mktemp("replay")
    checkpoint = save_policy(root / "policy.safetensors", seed=1)
    policy = TransformerPolicy.load(checkpoint).eval()
    config = load_config(env="pick_place", overrides=["env.max_steps=20"])
    robot_map = RobotMap.load("configs/robots/standin.yaml")
    summary = record_standin_ros(
        root / "logs", config, policy, history_steps=TINY.history, episodes=2, robot_map=robot_map,
        domain_id=DOMAIN_ID,
    )
    return root, checkpoint, config, robot_map, summary


def test_recording_has_one_bag_per_episode(recorded):
    from ast_robot.real_bridge.logs import load_episodes

    root, _, _, robot_map, summary = recorded
    assert len(summary["bags"]) == 2
    result = load_episodes(root / "logs", robot_map)
    assert len(result.episodes) == 2
    for episode in result.episodes:
        assert episode.success is not None
        assert len(episode) >= 10
        assert not np.isnan(episode.context).any()


def test_replay_reproduces_logged_commands(recorded):
    root, checkpoint, config, robot_map, _ = recorded
    policy = TransformerPolicy.load(checkpoint).eval()
    report = replay_logs(root / "logs", policy, robot_map, config.bridge, history_steps=TINY.history)

    assert len(report.episodes) == 2
    for item in report.episodes:
        assert item.policy_steps >= 10
        assert item.exact_steps == item.policy_steps, format_report(report)
        assert item.max_abs_error == [0.0, 0.0, 0.0, 0.0]
        assert not item.diverged


def test_replay_other_policy_diverges(recorded, tmp_path):
    root, _, config, robot_map, _ = recorded
    other = TransformerPolicy.load(save_policy(tmp_path / "other.safetensors", seed=2)).eval()
    report = replay_logs(root / "logs", other, robot_map, config.bridge, history_steps=TINY.history)

    assert all(max(item.max_abs_error) > 0.0 for item in report.episodes)
    assert sum(item.exact_steps for item in report.episodes) < sum(item.policy_steps for item in report.episodes)
    assert any(item.diverged for item in report.episodes)


def test_replay_cli_json(recorded, capsys):
    root, checkpoint, _, _, _ = recorded
    code = main(["replay", str(root / "logs"), "--checkpoint", str(checkpoint), "--set",
                 "env.max_steps=20", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["episodes"] == 2
    assert report["summary"]["exact_steps"] == report["summary"]["policy_steps"]
    assert report["dimensions"] == ["vx", "vy", "vz", "gripper"]


def test_replay_cli_table(recorded, capsys):
    root, checkpoint, _, _, _ = recorded
    assert main(["replay", str(root / "logs"), "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "mae_vx" in out
    assert "2 episodes, 0 diverged" in out


def test_replay_sim_reports_gap(recorded, capsys):
    root, _, _, _, _ = recorded
    assert main(["replay", str(root / "logs"), "--sim", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["episodes"]) == 2
    for item in report["episodes"]:
        assert item["steps"] >= 10
        assert np.isfinite(item["ee_rmse_m"])
        assert 0.0 <= item["ee_rmse_m"] < 0.3


def test_replay_without_checkpoint_rejected(recorded, capsys):
    root, _, _, _, _ = recorded
    assert main(["replay", str(root / "logs")]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err


def test_replay_missing_path_rejected(recorded, capsys, tmp_path):
    _, checkpoint, _, _, _ = recorded
    assert main(["replay", str(tmp_path / "nothing"), "--checkpoint", str(checkpoint)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_replay_bag_from_episode_writer(recorded, tmp_path):
    """A bag from another recorder (no bridge arm events) replays as armed throughout."""
    from ast_robot.episode import Episode
    from ast_robot.real_bridge.writer import EpisodeWriter

    _, checkpoint, config, robot_map, _ = recorded
    steps = 12
    rng = np.random.default_rng(0)
    times = 100.0 + np.arange(steps) / robot_map.control_hz
    episode = Episode(
        obs={
            "proprio": np.tile([0.0, 0.0, 0.15, 0, 0, 0, 0.08, 0], (steps, 1)),
            "force": np.zeros((steps, 6)),
            "object": np.tile([0.05, 0.0, 0.02, 0.05, 0.0, -0.13], (steps, 1)),
            "goal": np.tile([0.1, 0.1, 0.05], (steps, 1)),
        },
        actions=rng.uniform(-0.5, 0.5, (steps, 4)),
        timestamps=times,
        source="real",
        success=False,
    )
    with EpisodeWriter(tmp_path / "bag", robot_map) as writer:
        writer.write(episode)
    policy = TransformerPolicy.load(checkpoint).eval()
    report = replay_logs(tmp_path, policy, robot_map, config.bridge, history_steps=TINY.history)
    assert len(report.episodes) == 1
    item = report.episodes[0]
    assert item.steps == steps
    assert item.unsent_steps == 0
    assert max(item.max_abs_error) > 0.0, "random logged actions cannot match the policy"
