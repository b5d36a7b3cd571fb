"""`ast-robot bridge --record` as a separate process: bags survive SIGTERM and SIGKILL.

The test process plays the robot (a scripted arm node) and the operator (JSON commands on the
operator topic). The bridge runs as the real command line in a child process, over loopback DDS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("rclpy", reason="the ROS2 bridge tests need the 'ros' extra (rclpy)")

from ros_testing import DOMAIN_ID, ScriptedArm  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from ast_robot.config import BridgeConfig, PolicyConfig  # noqa: E402
from ast_robot.real_bridge.logs import load_episodes  # noqa: E402
from ast_robot.real_bridge.ros2_node import RosSession  # noqa: E402
from ast_robot.real_bridge.topic_map import RobotMap  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from ast_robot.policy import TransformerPolicy

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("policy") / "policy.safetensors"
    TransformerPolicy(PolicyConfig(history=4, d_model=16, layers=1, heads=2, global_tokens=1)).save(path)
    return path


def start_bridge_process(checkpoint, record_dir):
    command = [
        sys.executable, "-m", "ast_robot.cli", "bridge", "--checkpoint", str(checkpoint),
        "--record", str(record_dir), "--arm", "--duration", "60",
    ]
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID))
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


LEAN_BRIDGE = """
import sys
import numpy as np
from ast_robot.config import BridgeConfig
from ast_robot.real_bridge.ros2_node import run_bridge
from ast_robot.real_bridge.topic_map import RobotMap

class Constant:
    def act(self, obs_history):
        return np.array([0.2, 0.0, 0.0, 0.5], np.float32), np.zeros(4, np.float32)

run_bridge(Constant(), RobotMap.load("configs/robots/standin.yaml"), BridgeConfig(), history_steps=2,
           record_dir=sys.argv[1], arm=True, duration_s=60)
"""
"""The bridge without torch (a constant policy), for a child that starts fast."""


def operator(session, arm, payload: dict, *, expect_event: str, timeout_s: float = 15.0) -> None:
    """Publish an operator command until the bridge publishes the expected episode event."""
    seen = len(arm.events)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        arm.operator_pub.publish(String(data=json.dumps(payload)))
        if session.spin_for(1.0, until=lambda: any(
            json.loads(text).get("event") == expect_event for text in arm.events[seen:]
        )):
            return
    raise AssertionError(f"the bridge process did not answer {payload} within {timeout_s} s")


def wait_for_commands(session, arm, count: int, timeout_s: float = 20.0) -> None:
    start = len(arm.commands)
    assert session.spin_for(timeout_s, until=lambda: len(arm.commands) >= start + count), (
        "the bridge process sent no commands"
    )


def test_sigterm_finalizes_bag(checkpoint, tmp_path):
    robot_map = RobotMap.load("configs/robots/standin.yaml")
    process = start_bridge_process(checkpoint, tmp_path)
    try:
        with RosSession(domain_id=DOMAIN_ID) as session:
            arm = session.add(ScriptedArm(robot_map, context=session.context, cfg=BridgeConfig()))
            wait_for_commands(session, arm, 5)
            operator(session, arm, {"command": "start"}, expect_event="start")
            wait_for_commands(session, arm, 10)
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["signal"] == "SIGTERM"

    result = load_episodes(tmp_path, robot_map)
    assert len(result.episodes) == 1, [str(p) for p in result.problems]
    assert result.episodes[0].success is None, "an episode cut by shutdown has no success label"
    assert len(result.episodes[0]) >= 5


def test_sigkill_keeps_finished_episodes(tmp_path):
    robot_map = RobotMap.load("configs/robots/standin.yaml")
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID))
    process = subprocess.Popen([sys.executable, "-c", LEAN_BRIDGE, str(tmp_path)], env=env, text=True)
    try:
        with RosSession(domain_id=DOMAIN_ID) as session:
            arm = session.add(ScriptedArm(robot_map, context=session.context, cfg=BridgeConfig()))
            wait_for_commands(session, arm, 5)
            operator(session, arm, {"command": "start"}, expect_event="start")
            wait_for_commands(session, arm, 10)
            operator(session, arm, {"command": "end", "success": True}, expect_event="end")
            operator(session, arm, {"command": "start"}, expect_event="start")
            wait_for_commands(session, arm, 5)
            process.kill()
            process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL

    result = load_episodes(tmp_path, robot_map)
    assert len(result.episodes) == 1, [str(p) for p in result.problems]
    assert result.episodes[0].success is True
    unfinished = [p for p in result.problems if "_ep001" in p.bag]
    assert unfinished, "the bag of the killed episode must be reported, not silently dropped"
