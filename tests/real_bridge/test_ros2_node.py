"""The bridge node with real rclpy nodes in one process over loopback DDS.

A scripted arm node publishes the sensor topics and collects the commands the bridge sends; a
fixed-action policy makes the expected command known exactly.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS2 bridge tests need the 'ros' extra (rclpy)")

from ros_testing import DOMAIN_ID, FixedPolicy, ScriptedArm  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from ast_robot.config import BridgeConfig, SafetyConfig  # noqa: E402
from ast_robot.real_bridge.pipeline import ControlCore  # noqa: E402
from ast_robot.real_bridge.ros2_node import BridgeNode, RosSession  # noqa: E402
from ast_robot.real_bridge.topic_map import RobotMap  # noqa: E402

pytestmark = pytest.mark.ros

PERIOD_S = 0.05  # the stand-in map's 20 Hz control rate


@pytest.fixture
def robot_map():
    return RobotMap.load("configs/robots/standin.yaml")


def start_bridge(session, robot_map, action, *, safety=None, recorder=None):
    cfg = BridgeConfig(safety=safety or SafetyConfig())
    policy = FixedPolicy(action)
    core = ControlCore(policy, robot_map, cfg, history_steps=4)
    bridge = session.add(BridgeNode(core, robot_map, cfg, context=session.context, recorder=recorder))
    arm = session.add(ScriptedArm(robot_map, context=session.context, cfg=cfg))
    return bridge, arm, policy


def call(session, node, srv_type, name, **fields):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=2.0), f"service {name} not available"
    future = client.call_async(srv_type.Request(**fields))
    session.spin_for(2.0, until=future.done)
    return future.result()


def test_commands_flow_at_control_rate(robot_map):
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, policy = start_bridge(session, robot_map, [0.2, 0.0, -0.1, 0.5])
        session.spin_for(0.3)
        assert arm.commands == [], "a disarmed bridge must not send commands"

        response = call(session, arm, SetBool, "/ast_robot_bridge/arm", data=True)
        assert response.success
        session.spin_for(0.3)
        window_start = time.monotonic()
        session.spin_for(1.0)
        received = arm.commands_since(window_start)

    rate_hz = len(received) / 1.0
    assert 15.0 <= rate_hz <= 25.0, f"{rate_hz} commands/s, expected about 20"
    np.testing.assert_allclose(received[-1], [0.05, 0.0, -0.025], atol=1e-9)
    assert arm.grippers[-1][1] == pytest.approx(0.5)
    assert max(policy.history_lengths) == 4


def test_watchdog_zeroes_command_within_timeout(robot_map, record_property):
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, _ = start_bridge(session, robot_map, [0.4, 0.0, 0.0, 0.0])
        bridge.arm(True)
        session.spin_for(0.5)
        assert np.any(arm.linear())

        arm.publishing = False
        last_observation_s = arm.last_publish_s
        session.spin_for(0.4)

    zero_times = [t for t, msg in arm.commands if t > last_observation_s and msg.twist.linear.x == 0.0]
    moving_after = [t for t, msg in arm.commands if t > last_observation_s and msg.twist.linear.x != 0.0]
    assert zero_times, "no zero command after the sensors stopped"
    latency_s = zero_times[0] - last_observation_s
    record_property("watchdog_latency_s", latency_s)
    # The 100 Hz check stops the robot once the newest message is 90 ms old, so the zero command
    # leaves before the 100 ms timeout. The margin covers scheduling on a shared 2-core machine.
    assert latency_s <= 0.1 + 0.03, f"zero command {latency_s * 1e3:.0f} ms after the last observation"
    assert all(t - last_observation_s <= 0.1 + 0.03 for t in moving_after), "moved after the timeout"
    assert all(np.allclose(v, 0) for v in arm.commands_since(zero_times[0]))


def test_speed_and_acceleration_limits(robot_map):
    safety = SafetyConfig(max_speed_m_s=0.15, max_accel_m_s2=1.0)
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, _ = start_bridge(session, robot_map, [1.0, 1.0, 0.0, 0.0], safety=safety)
        session.spin_for(0.2)
        bridge.arm(True)
        session.spin_for(0.6)

    speeds = [float(np.linalg.norm(v)) for v in arm.commands_since(0.0)]
    # 1 m/s^2 * 0.05 s = 0.05 m/s more per command, up to the 0.15 m/s speed limit.
    np.testing.assert_allclose(speeds[:3], [0.05, 0.10, 0.15], atol=1e-9)
    assert max(speeds) == pytest.approx(0.15)
    direction = arm.linear() / np.linalg.norm(arm.linear())
    np.testing.assert_allclose(direction, [2**-0.5, 2**-0.5, 0.0], atol=1e-9)


def test_workspace_bound_clamps_at_face(robot_map):
    safety = SafetyConfig(workspace_high_m=[0.32, 0.32, 0.155], max_accel_m_s2=100.0)
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, _ = start_bridge(session, robot_map, [0.0, 0.0, 1.0, 0.0], safety=safety)
        session.spin_for(0.2)
        bridge.arm(True)
        session.spin_for(0.3)
        arm.ee_position = np.array([0.0, 0.0, 0.16])  # past the face
        session.spin_for(0.3)

    commands = arm.commands_since(0.0)
    # 5 mm to the face in one 0.05 s period: at most 0.1 m/s upward, then none once outside.
    assert commands[2][2] == pytest.approx(0.1)
    assert commands[-1][2] == 0.0


def test_force_stop_opens_gripper_and_latches(robot_map):
    safety = SafetyConfig(max_force_n=30.0)
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, _ = start_bridge(session, robot_map, [0.2, 0.0, 0.0, 1.0], safety=safety)
        session.spin_for(0.2)
        bridge.arm(True)
        session.spin_for(0.3)
        assert arm.grippers[-1][1] == 1.0

        arm.wrench = np.array([0.0, 0.0, 45.0, 0.0, 0.0, 0.0])
        session.spin_for(0.3)
        assert bridge.core.safety.state == "force_stop"
        assert np.allclose(arm.linear(), 0.0)
        assert arm.grippers[-1][1] == -1.0, "the gripper must open on a force stop"

        arm.wrench = np.zeros(6)
        session.spin_for(0.2)
        assert not call(session, arm, SetBool, "/ast_robot_bridge/arm", data=True).success
        assert np.allclose(arm.linear(), 0.0)
        assert call(session, arm, Trigger, "/ast_robot_bridge/reset").success
        assert call(session, arm, SetBool, "/ast_robot_bridge/arm", data=True).success
        session.spin_for(0.3)
        assert arm.linear()[0] == pytest.approx(0.05)


def test_estop_latches_until_reset(robot_map):
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, _ = start_bridge(session, robot_map, [0.2, 0.0, 0.0, 0.0])
        session.spin_for(0.2)
        bridge.arm(True)
        session.spin_for(0.3)
        assert arm.linear()[0] == pytest.approx(0.05)

        arm.estop_pub.publish(Bool(data=True))
        session.spin_for(0.2)
        assert bridge.core.safety.state == "estop"
        assert np.allclose(arm.linear(), 0.0)

        arm.estop_pub.publish(Bool(data=False))
        session.spin_for(0.2)
        assert bridge.core.safety.state == "estop", "releasing the e-stop must not clear the latch"
        assert not call(session, arm, SetBool, "/ast_robot_bridge/arm", data=True).success
        assert call(session, arm, Trigger, "/ast_robot_bridge/reset").success
        count_after_reset = len(arm.commands)
        session.spin_for(0.3)
        assert len(arm.commands) == count_after_reset, "disarmed after a reset: no commands"

        arm.operator_pub.publish(__import__("std_msgs.msg", fromlist=["String"]).String(data='{"command": "arm"}'))
        session.spin_for(0.3)
        assert bridge.core.safety.state == "armed"
        assert arm.linear()[0] == pytest.approx(0.05)


def test_intervention_passes_clamped_teleop(robot_map, tmp_path):
    from geometry_msgs.msg import TwistStamped

    from ast_robot.real_bridge.logs import load_episodes
    from ast_robot.real_bridge.ros2_node import BagRecorder

    recorder = BagRecorder(tmp_path, robot_map)
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, _ = start_bridge(session, robot_map, [0.2, 0.0, 0.0, 0.0], recorder=recorder)
        session.spin_for(0.2)
        bridge.start_episode()
        bridge.arm(True)
        session.spin_for(0.4)
        arm.intervention_pub.publish(Bool(data=True))
        teleop = TwistStamped()
        teleop.twist.linear.y = 1.0  # far above the default 0.45 m/s limit

        def send_teleop():
            arm.teleop_pub.publish(teleop)

        timer = arm.create_timer(0.02, send_teleop)
        session.spin_for(0.6)
        timer.cancel()
        assert bridge.core.intervention
        bridge.end_episode(True)
    recorder.close()

    np.testing.assert_allclose(arm.linear(), [0.0, 0.45, 0.0], atol=1e-9)
    episode = load_episodes(tmp_path, robot_map).episodes[0]
    assert episode.interventions[:3].sum() == 0, "the policy was in control at the start"
    assert episode.interventions[-3:].all()
    assert episode.action_labels is not None, "commands during an intervention are corrections"
    # 0.45 m/s is 1.8 normalized units at 0.25 m/s per unit; the reader clips labels to 1.
    np.testing.assert_allclose(episode.action_labels[-1, :3], [0.0, 1.0, 0.0], atol=1e-6)


def test_recorded_bag_reads_back(robot_map, tmp_path):
    from ast_robot.real_bridge.logs import load_episodes
    from ast_robot.real_bridge.ros2_node import BagRecorder

    recorder = BagRecorder(tmp_path, robot_map)
    with RosSession(domain_id=DOMAIN_ID) as session:
        bridge, arm, _ = start_bridge(session, robot_map, [0.2, -0.4, 0.0, 0.5], recorder=recorder)
        arm.wrench = np.array([1.5, -2.0, 3.0, 0.1, 0.2, -0.3])
        session.spin_for(0.3)
        assert call(session, arm, Trigger, "/ast_robot_bridge/start_episode").success
        bridge.arm(True)
        session.spin_for(1.0)
        assert call(session, arm, SetBool, "/ast_robot_bridge/end_episode", data=True).success
        bridge.arm(False)
        session.spin_for(0.1)
    recorder.close()

    result = load_episodes(tmp_path, robot_map)
    assert len(result.episodes) == 1, [str(p) for p in result.problems]
    episode = result.episodes[0]
    assert episode.success is True
    assert len(episode) >= 15
    np.testing.assert_allclose(episode.obs["proprio"][:, :3], np.tile(arm.ee_position, (len(episode), 1)), atol=1e-6)
    np.testing.assert_allclose(episode.obs["proprio"][:, 6], 0.04, atol=1e-6)  # two fingers at 2 cm
    np.testing.assert_allclose(episode.obs["force"], np.tile(arm.wrench, (len(episode), 1)), atol=1e-6)
    np.testing.assert_allclose(episode.obs["goal"], np.tile(arm.goal_position, (len(episode), 1)), atol=1e-6)
    np.testing.assert_allclose(episode.context, np.concatenate([arm.object_position, arm.goal_position]), atol=1e-6)
    # Steady state: 0.2 and -0.4 normalized at 0.25 m/s per unit, as published.
    np.testing.assert_allclose(episode.actions[-5:], np.tile([0.2, -0.4, 0.0, 0.5], (5, 1)), atol=1e-6)
    published = np.array([[c.twist.linear.x, c.twist.linear.y, c.twist.linear.z] for _, c in arm.commands])
    np.testing.assert_allclose(published[-2], [0.05, -0.1, 0.0])
    np.testing.assert_array_equal(published[-1], np.zeros(3), err_msg="disarming sends one zero command")
