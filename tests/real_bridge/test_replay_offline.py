"""Replay of stand-in robot logs without ROS2: human interventions in closed-loop replay, and
open-loop replay in simulation under the profile that recorded the logs.

The logs are real rosbag2 bags written by `record_standin` (simulator under the stand-in reality
profile, scripted supervisor); the policy is a small saved transformer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from logs_factory import PERIOD, Recording, boolean, float64, joint_state, pose, standin_map, twist, wrench

from ast_robot.cli import main
from ast_robot.config import PolicyConfig, load_config
from ast_robot.policy import TransformerPolicy
from ast_robot.real_bridge.logs import load_episodes
from ast_robot.real_bridge.replay import SIM_REPLAY_NOTE, replay_in_sim, replay_logs

TINY = PolicyConfig(history=4, d_model=16, layers=1, heads=2, global_tokens=1, proxy_hidden=8)


@pytest.fixture(scope="module")
def standin_logs(tmp_path_factory):
    """Six stand-in episodes in two bags (seed 0: five successes, four with interventions)."""
    from ast_robot.train.standin import record_standin

    root = tmp_path_factory.mktemp("standin_logs")
    config = load_config(env="pick_place")
    summary = record_standin(root / "logs", config, episodes=6, episodes_per_bag=3, progress=False)
    torch.manual_seed(1)
    checkpoint = root / "policy.safetensors"
    TransformerPolicy(TINY).eval().save(checkpoint)
    return root / "logs", checkpoint, config, summary


def test_replay_reports_interventions_apart_from_watchdog(standin_logs):
    logs, checkpoint, config, summary = standin_logs
    assert summary["intervened_steps"] > 0
    policy = TransformerPolicy.load(checkpoint).eval()
    report = replay_logs(logs, policy, standin_map(), config.bridge, history_steps=TINY.history)

    totals = report.to_dict()["summary"]
    # The logs hold no teleoperation topic: the logged human command stands in for it, so no
    # corrected step is a watchdog stop and every one is reported as an intervention.
    assert totals["intervention_steps"] == summary["intervened_steps"]
    assert totals["watchdog_steps"] == 0
    assert totals["policy_steps"] == summary["episodes"] * 100 - summary["intervened_steps"]
    # The human's commands pass the replayed safety layer (unchanged unless a limit applies).
    exact = sum(item.intervention_exact_steps for item in report.episodes)
    assert exact >= summary["intervened_steps"] // 2
    for item in report.episodes:
        assert item.clamp_counts["watchdog"] == 0
        assert item.intervention_clamp_counts["watchdog"] == 0
        if item.intervention_steps:
            assert item.correction_mean_abs_error is not None
            assert all(np.isfinite(item.correction_mean_abs_error))
        else:
            assert item.correction_mean_abs_error is None


def observation_gap_recording(steps: int, stale_from: int) -> Recording:
    """One episode without events whose /ee_pose stops at `stale_from` while commands go on."""
    recording = Recording()
    start = 1_700_000_000 * 10**9
    for k in range(steps):
        t = start + k * PERIOD
        recording.add("/joint_states", joint_state(t, [0.02, 0.02], [0.0, 0.0]), t)
        if k < stale_from:
            recording.add("/ee_pose", pose(t, [0.1, 0.0, 0.3]), t)
        recording.add("/object_pose", pose(t, [0.5, 0.0, 0.02]), t)
        recording.add("/goal_pose", pose(t, [0.6, 0.1, 0.02]), t)
        recording.add("/wrist_wrench", wrench(t, [1.0, 0.0, -2.0, 0.0, 0.0, 0.0]), t)
        recording.add("/cmd_twist", twist(t, [0.0, 0.0, 0.0]), t)
        recording.add("/gripper_cmd", float64(-1.0), t)
        recording.add("/intervention", boolean(False), t)
    return recording


def test_replay_counts_stale_observations_as_watchdog(tmp_path):
    bag = observation_gap_recording(30, stale_from=20).write(tmp_path / "gap")
    torch.manual_seed(1)
    policy = TransformerPolicy(TINY).eval()
    config = load_config(env="pick_place")
    report = replay_logs(bag, policy, standin_map(), config.bridge, history_steps=TINY.history)

    totals = report.to_dict()["summary"]
    assert totals["intervention_steps"] == 0
    # 0.1 s watchdog at 20 Hz: the steps from 22 on see an /ee_pose older than the timeout.
    assert 5 <= totals["watchdog_steps"] <= 10


def test_sim_replay_reproduces_logged_successes(standin_logs):
    logs, _, config, summary = standin_logs
    loaded = load_episodes(logs, standin_map(), logs_cfg=config.logs).episodes
    results, problems = replay_in_sim(
        logs, standin_map(), config.env, reality="configs/reality/standin.yaml", logs_cfg=config.logs
    )

    assert problems == []
    assert [item.steps for item in results] == [len(episode) for episode in loaded]
    # Started from the logged end-effector position, the path gap stays at the noise level.
    assert max(item.ee_rmse_m for item in results) < 0.03
    logged = sum(bool(item.success_logged) for item in results)
    simulated = sum(item.success_sim for item in results)
    assert logged == summary["successes"] == 5
    # Open loop the profile's noise is drawn anew, so one grasp may miss; most must reproduce.
    assert simulated >= logged - 1
    agree = sum(item.success_sim == item.success_logged for item in results)
    assert agree >= len(results) - 1


def test_sim_replay_cli_reports_open_loop_note(standin_logs, capsys):
    logs, _, _, _ = standin_logs
    assert main(["replay", str(logs), "--sim", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["note"] == SIM_REPLAY_NOTE
    assert payload["summary"]["success_logged"] == 5
    assert main(["replay", str(logs), "--sim"]) == 0
    assert "note: open-loop replay" in capsys.readouterr().out


def test_reset_tcp_start_option():
    from ast_robot.envs import make_env
    from ast_robot.errors import EnvError

    env = make_env("reach")
    try:
        target = np.array([0.02, -0.03, 0.16])
        _, info = env.reset(seed=3, options={"tcp_start": target})
        assert np.allclose(info["state"]["tcp_pos"], target, atol=1e-6)
        with pytest.raises(EnvError, match="tcp_start"):
            env.reset(seed=3, options={"tcp_start": [0.0, 0.1]})
    finally:
        env.close()
