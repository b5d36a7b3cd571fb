"""The safety layer on its own: no ROS needed, every limit against a hand-computed value."""

import numpy as np
import pytest

from ast_robot.config import SafetyConfig
from ast_robot.real_bridge.safety import GRIPPER_OPEN, SafetyLayer

PERIOD_S = 0.05
CENTER_M = np.array([0.0, 0.0, 0.15])


def make_layer(**overrides) -> SafetyLayer:
    cfg = SafetyConfig(**overrides)
    layer = SafetyLayer(cfg, control_period_s=PERIOD_S)
    layer.arm()
    return layer


def test_disarmed_sends_nothing():
    layer = SafetyLayer(SafetyConfig(), control_period_s=PERIOD_S)
    command = layer.filter(np.array([0.1, 0, 0]), 0.5, position_m=CENTER_M, stale=False)
    assert command.send is False


def test_command_within_limits_unchanged():
    layer = make_layer()
    command = layer.filter(np.array([0.05, 0.0, 0.0]), 0.5, position_m=CENTER_M, stale=False)
    assert command.send
    np.testing.assert_array_equal(command.linear_m_s, [0.05, 0.0, 0.0])
    assert command.gripper == 0.5
    assert not command.clamped


def test_speed_clamped_keeps_direction():
    layer = make_layer(max_speed_m_s=0.2, max_accel_m_s2=1000.0)
    command = layer.filter(np.array([0.3, 0.4, 0.0]), 0.0, position_m=CENTER_M, stale=False)
    np.testing.assert_allclose(command.linear_m_s, [0.12, 0.16, 0.0])
    assert command.clamps["speed"]


def test_acceleration_limits_change_per_step():
    layer = make_layer(max_speed_m_s=1.0, max_accel_m_s2=2.0)
    speeds = []
    for _ in range(4):
        command = layer.filter(np.array([0.0, 0.0, 0.5]), 0.0, position_m=CENTER_M, stale=False)
        speeds.append(command.linear_m_s[2])
    # 2 m/s^2 * 0.05 s = 0.1 m/s more per step.
    np.testing.assert_allclose(speeds, [0.1, 0.2, 0.3, 0.4])
    assert command.clamps["accel"]


def test_acceleration_uses_measured_dt():
    layer = make_layer(max_speed_m_s=1.0, max_accel_m_s2=2.0)
    command = layer.filter(np.array([0.5, 0, 0]), 0.0, position_m=CENTER_M, stale=False, dt_s=0.1)
    np.testing.assert_allclose(command.linear_m_s, [0.2, 0, 0])


def test_workspace_stops_at_face():
    layer = make_layer(workspace_high_m=[0.32, 0.32, 0.16], max_accel_m_s2=1000.0)
    command = layer.filter(np.array([0.0, 0.0, 0.2]), 0.0, position_m=CENTER_M, stale=False)
    # 0.01 m left to the face in one 0.05 s period: at most 0.2 m/s, here exactly that.
    np.testing.assert_allclose(command.linear_m_s, [0.0, 0.0, 0.2])
    command = layer.filter(np.array([0.0, 0.0, 0.25]), 0.0, position_m=CENTER_M, stale=False)
    np.testing.assert_allclose(command.linear_m_s, [0.0, 0.0, 0.2])
    assert command.clamps["workspace"]


def test_outside_workspace_only_moves_back():
    layer = make_layer(max_accel_m_s2=1000.0)
    outside = np.array([0.4, 0.0, 0.15])  # beyond workspace_high_m x = 0.32
    command = layer.filter(np.array([0.1, 0.1, 0.0]), 0.0, position_m=outside, stale=False)
    np.testing.assert_allclose(command.linear_m_s, [0.0, 0.1, 0.0])
    command = layer.filter(np.array([-0.1, 0.1, 0.0]), 0.0, position_m=outside, stale=False)
    np.testing.assert_allclose(command.linear_m_s, [-0.1, 0.1, 0.0])


def test_gripper_clipped():
    layer = make_layer()
    command = layer.filter(np.zeros(3), 3.0, position_m=CENTER_M, stale=False)
    assert command.gripper == 1.0
    assert command.clamps["gripper"]


def test_watchdog_zeroes_and_holds_gripper():
    layer = make_layer(max_accel_m_s2=1000.0)
    layer.filter(np.array([0.1, 0, 0]), 0.7, position_m=CENTER_M, stale=False)
    command = layer.filter(np.array([0.1, 0, 0]), -0.3, position_m=CENTER_M, stale=True)
    assert command.send
    np.testing.assert_array_equal(command.linear_m_s, np.zeros(3))
    assert command.gripper == 0.7
    assert command.clamps["watchdog"]


def test_nan_request_treated_as_stale():
    layer = make_layer()
    command = layer.filter(np.array([np.nan, 0, 0]), 0.0, position_m=CENTER_M, stale=False)
    np.testing.assert_array_equal(command.linear_m_s, np.zeros(3))
    assert command.clamps["watchdog"]


def test_force_stop_opens_gripper_and_latches():
    layer = make_layer(max_force_n=30.0)
    layer.filter(np.array([0.05, 0, 0]), 1.0, position_m=CENTER_M, stale=False)
    assert not layer.check_wrench(np.array([20.0, 0, 0, 0, 0, 0]))
    assert layer.check_wrench(np.array([25.0, 25.0, 0, 0, 0, 0]))  # |F| = 35.4 N
    command = layer.filter(np.array([0.05, 0, 0]), 1.0, position_m=CENTER_M, stale=False)
    np.testing.assert_array_equal(command.linear_m_s, np.zeros(3))
    assert command.gripper == GRIPPER_OPEN
    assert command.clamps["force_stop"]
    # Still latched once the force is gone, and arming is rejected until a reset.
    assert layer.check_wrench(np.zeros(6))
    assert layer.arm()[0] is False
    assert layer.reset()[0] is True
    assert layer.arm()[0] is True


def test_torque_limit_triggers_force_stop():
    layer = make_layer(max_torque_nm=2.0)
    assert layer.check_wrench(np.array([0, 0, 0, 0, 0, 2.5]))
    assert layer.state == "force_stop"


def test_estop_latches_until_reset():
    layer = make_layer()
    layer.set_estop(True)
    assert layer.state == "estop"
    command = layer.filter(np.array([0.1, 0, 0]), 0.0, position_m=CENTER_M, stale=False)
    np.testing.assert_array_equal(command.linear_m_s, np.zeros(3))
    assert command.clamps["estop"]
    layer.set_estop(False)
    assert layer.state == "estop", "releasing the e-stop input must not clear the latch"
    assert layer.arm()[0] is False
    assert layer.reset()[0] is True
    assert layer.state == "disarmed"
    command = layer.filter(np.array([0.1, 0, 0]), 0.0, position_m=CENTER_M, stale=False)
    assert command.send is False


def test_reset_rejected_while_estop_pressed():
    layer = make_layer()
    layer.set_estop(True)
    ok, message = layer.reset()
    assert not ok
    assert "still true" in message
    assert layer.state == "estop"


@pytest.mark.parametrize("low, high", [([0, 0, 0], [0, 1, 1]), ([0, 0], [1, 1])])
def test_invalid_workspace_rejected(low, high):
    from ast_robot.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="workspace"):
        config_from_dict({"bridge": {"safety": {"workspace_low_m": low, "workspace_high_m": high}}})


def test_franka_example_map_loads():
    from ast_robot.real_bridge.topic_map import RobotMap

    robot_map = RobotMap.load("configs/robots/franka_servo.yaml")
    assert robot_map.topics["cmd_twist"].topic == "/servo_node/delta_twist_cmds"
    assert robot_map.gripper_joints == ("fr3_finger_joint1", "fr3_finger_joint2")
    # Live commands arrive once per control period; the tolerance must cover one period.
    assert robot_map.topics["cmd_twist"].tolerance_ns > robot_map.period_ns


def test_watchdog_timeout_below_check_period_rejected():
    from ast_robot.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="watchdog_timeout_s"):
        config_from_dict({"bridge": {"watchdog_check_hz": 10.0, "safety": {"watchdog_timeout_s": 0.05}}})


def test_bridge_without_rclpy_names_extra(monkeypatch, capsys):
    import sys

    from ast_robot.cli import main

    # rclpy is installed here, so its absence is simulated: a None entry in sys.modules makes
    # `import rclpy` raise ImportError, as on a machine without the 'ros' extra.
    for name in [n for n in sys.modules if n == "rclpy" or n.startswith("rclpy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rclpy", None)
    monkeypatch.delitem(sys.modules, "ast_robot.real_bridge.ros2_node", raising=False)
    code = main(["bridge", "--checkpoint", "no-such.pt"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'ros' extra" in err
    assert "pip install 'ast-robot[ros]'" in err


def test_core_imports_without_rclpy():
    import subprocess
    import sys

    # A fresh interpreter where `import rclpy` fails, as without the 'ros' extra (rclpy is
    # installed here, so its absence is simulated).
    code = (
        "import sys; sys.modules['rclpy'] = None\n"
        "import ast_robot.cli, ast_robot.real_bridge.replay, ast_robot.real_bridge.pipeline\n"
        "from ast_robot.cli import main\n"
        "sys.exit(main(['standin-robot', '--duration', '0.1']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "'ros' extra" in result.stderr
