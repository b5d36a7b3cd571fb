"""Helpers for tests with real rclpy nodes: loopback-only DDS, a scripted arm node, a fixed policy.

Importing this module keeps DDS discovery on this machine and picks a ROS domain id from the
process id, so two test sessions on one machine do not see each other's topics.
"""

from __future__ import annotations

import os
import time

import numpy as np

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ.pop("ROS_STATIC_PEERS", None)
DOMAIN_ID = 1 + os.getpid() % 100
os.environ["ROS_DOMAIN_ID"] = str(DOMAIN_ID)

from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Float64, String  # noqa: E402

from ast_robot.real_bridge.ros2_node import RELIABLE_QOS, set_stamp  # noqa: E402


class FixedPolicy:
    """A policy that always returns the same action, so the expected command is known exactly."""

    def __init__(self, action):
        self.action = np.asarray(action, dtype=np.float32)
        self.history_lengths: list[int] = []

    def act(self, obs_history):
        self.history_lengths.append(len(obs_history["proprio"]))
        return self.action.copy(), np.full(4, 0.1, np.float32)


class ScriptedArm(Node):
    """Stands in for a robot driver: publishes sensor topics at `rate_hz`, collects commands.

    Sensor values are attributes the test changes between spins.
    """

    def __init__(self, robot_map, *, context, rate_hz: float = 50.0, cfg=None):
        super().__init__("scripted_arm", context=context)
        topics = robot_map.topics
        self.ee_position = np.array([0.0, 0.0, 0.15])
        self.object_position = np.array([0.05, 0.05, 0.02])
        self.goal_position = np.array([0.1, -0.1, 0.02])
        self.wrench = np.zeros(6)
        self.fingers = np.array([0.02, 0.02])
        self.publishing = True
        self.last_publish_s = None
        self.commands: list[tuple[float, TwistStamped]] = []
        self.grippers: list[tuple[float, float]] = []
        self.events: list[str] = []
        self.published: list[tuple[str, float]] = []

        sensor = qos_profile_sensor_data
        self.joint_pub = self.create_publisher(JointState, topics["joint_states"].topic, sensor)
        self.ee_pub = self.create_publisher(PoseStamped, topics["ee_pose"].topic, sensor)
        self.object_pub = self.create_publisher(PoseStamped, topics["object_pose"].topic, sensor)
        self.goal_pub = self.create_publisher(PoseStamped, topics["goal_pose"].topic, sensor)
        self.wrench_pub = self.create_publisher(WrenchStamped, topics["wrench"].topic, sensor)
        self.intervention_pub = self.create_publisher(Bool, topics["intervention"].topic, RELIABLE_QOS)
        if cfg is not None:
            self.estop_pub = self.create_publisher(Bool, cfg.estop_topic, RELIABLE_QOS)
            self.teleop_pub = self.create_publisher(TwistStamped, cfg.teleop_topic, sensor)
            self.operator_pub = self.create_publisher(String, cfg.operator_topic, RELIABLE_QOS)
        self.create_subscription(TwistStamped, topics["cmd_twist"].topic, self._on_cmd, RELIABLE_QOS)
        self.create_subscription(Float64, topics["gripper_cmd"].topic, self._on_gripper, RELIABLE_QOS)
        self.create_subscription(String, topics["events"].topic, lambda m: self.events.append(m.data), RELIABLE_QOS)
        self.create_timer(1.0 / rate_hz, self.publish_sensors)

    def _on_cmd(self, msg: TwistStamped) -> None:
        self.commands.append((time.monotonic(), msg))

    def _on_gripper(self, msg: Float64) -> None:
        self.grippers.append((time.monotonic(), msg.data))

    def publish_sensors(self) -> None:
        if not self.publishing:
            return
        now_ns = self.get_clock().now().nanoseconds
        joints = JointState(name=["finger_left", "finger_right"], position=list(self.fingers), velocity=[0.0, 0.0])
        set_stamp(joints.header, now_ns)
        self.joint_pub.publish(joints)
        for publisher, position in (
            (self.ee_pub, self.ee_position),
            (self.object_pub, self.object_position),
            (self.goal_pub, self.goal_position),
        ):
            pose = PoseStamped()
            set_stamp(pose.header, now_ns)
            pose.header.frame_id = "base"
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in position)
            pose.pose.orientation.w = 1.0
            publisher.publish(pose)
        wrench = WrenchStamped()
        set_stamp(wrench.header, now_ns)
        force, torque = wrench.wrench.force, wrench.wrench.torque
        force.x, force.y, force.z, torque.x, torque.y, torque.z = (float(v) for v in self.wrench)
        self.wrench_pub.publish(wrench)
        self.last_publish_s = time.monotonic()
        self.published.append(("ee", float(self.ee_position[0])))

    def linear(self, index: int = -1) -> np.ndarray:
        linear = self.commands[index][1].twist.linear
        return np.array([linear.x, linear.y, linear.z])

    def commands_since(self, t_s: float) -> list[np.ndarray]:
        result = []
        for stamp, msg in self.commands:
            if stamp >= t_s:
                linear = msg.twist.linear
                result.append(np.array([linear.x, linear.y, linear.z]))
        return result
