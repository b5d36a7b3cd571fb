"""The stand-in robot node: a simulator behind the robot's ROS2 topics, executing commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the stand-in robot needs the 'ros' extra (rclpy)")

from ros_testing import DOMAIN_ID, ScriptedArm  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402

from ast_robot.config import load_config  # noqa: E402
from ast_robot.real_bridge.ros2_node import RELIABLE_QOS, RosSession  # noqa: E402
from ast_robot.real_bridge.standin_robot import StandinRobot, make_standin_env  # noqa: E402
from ast_robot.real_bridge.topic_map import RobotMap  # noqa: E402

pytestmark = pytest.mark.ros


def test_standin_executes_commands():
    robot_map = RobotMap.load("configs/robots/standin.yaml")
    config = load_config(env="pick_place", overrides=["env.max_steps=200"])
    env = make_standin_env(config.env, reality="configs/reality/standin.yaml", control_hz=robot_map.control_hz)
    poses = []
    with RosSession(domain_id=DOMAIN_ID) as session:
        robot = session.add(StandinRobot(env, robot_map, context=session.context, seed=3))
        listener = session.add(ScriptedArm(robot_map, context=session.context))
        listener.publishing = False
        listener.create_subscription(
            PoseStamped, "/ee_pose", lambda msg: poses.append(msg.pose.position.x), qos_profile_sensor_data
        )
        cmd = listener.create_publisher(TwistStamped, "/cmd_twist", RELIABLE_QOS)
        gripper = listener.create_publisher(Float64, "/gripper_cmd", RELIABLE_QOS)
        session.spin_for(0.3)
        start_x = poses[-1]
        start_opening = float(robot.obs["proprio"][6])

        twist = TwistStamped()
        twist.twist.linear.x = 0.1

        def send() -> None:
            cmd.publish(twist)
            gripper.publish(Float64(data=1.0))

        timer = listener.create_timer(0.05, send)
        session.spin_for(1.0)
        timer.cancel()
        moved_x = poses[-1] - start_x
        session.spin_for(0.5)  # commands stop, so after the 0.1 s command timeout the arm stays put
        after_stop = poses[-1]
        session.spin_for(0.3)

    # About 0.1 m/s for 1 s, less the servo lag of the simulated arm.
    assert 0.04 < moved_x < 0.12, moved_x
    assert abs(poses[-1] - after_stop) < 0.005, "the arm must hold once commands stop"
    assert float(robot.obs["proprio"][6]) < start_opening - 0.02, "gripper command 1.0 closes the fingers"


def test_standin_cli_runs_for_duration(capsys):
    from ast_robot.cli import main

    # The command line takes ROS_DOMAIN_ID from the environment that ros_testing set.
    code = main(["standin-robot", "--duration", "1.0"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] >= 10


@pytest.mark.slow
def test_record_via_ros_marks_takeovers(tmp_path):
    """A random policy strays, so the scripted supervisor takes over and the bag says so."""
    import torch

    from ast_robot.config import PolicyConfig
    from ast_robot.policy import TransformerPolicy
    from ast_robot.real_bridge.logs import load_episodes
    from ast_robot.real_bridge.standin_robot import SupervisorSettings, record_standin_ros

    torch.manual_seed(0)
    policy = TransformerPolicy(PolicyConfig(history=4, d_model=16, layers=1, heads=2)).eval()
    robot_map = RobotMap.load("configs/robots/standin.yaml")
    config = load_config(env="pick_place", overrides=["env.max_steps=40"])
    summary = record_standin_ros(
        tmp_path, config, policy, history_steps=4, episodes=2, robot_map=robot_map,
        supervisor=SupervisorSettings(), domain_id=DOMAIN_ID,
    )
    assert summary["episodes_with_interventions"] >= 1
    episodes = load_episodes(tmp_path, robot_map).episodes
    assert len(episodes) == 2
    assert any(episode.interventions.any() for episode in episodes)
    assert any(episode.action_labels is not None for episode in episodes)
