"""The stand-in robot: a simulator running a reality profile behind the topics a real arm exposes.

`StandinRobot` is an rclpy node that steps a task env (`ast_robot.envs`) at the robot map's
control rate with the latest Cartesian command it received, and publishes what a robot driver
would: joint states of the two fingers, end-effector pose and twist, object and goal poses and
the wrist wrench, all from the env's observation (sensor noise of the reality profile included).
So the bridge node cannot tell it from a robot, and the whole robot path (topics, QoS, safety,
recording) runs without hardware.

Commands: ``cmd_twist`` (m/s) is divided by the env's `max_ee_speed_m_s` and clipped to [-1, 1];
``gripper_cmd`` is divided by the map's `gripper_scale`. A velocity command older than
`command_timeout_s` counts as zero, like the incoming-command timeout of MoveIt Servo. When the
env's episode ends (success terminal state or step limit) the robot holds still and keeps
publishing its last observation until ``~/reset_scene`` starts a new one.

Optionally a scripted supervisor (the task's privileged expert) watches, as a human operator
would: when the executed command keeps deviating from the expert's, or the wrist force exceeds a
limit, it sets the intervention topic and teleoperates with the expert's commands for a while.

``~/status`` (std_msgs/String JSON) reports the env step, success and episode end after every
step. ``~/reset_scene`` (std_srvs/Trigger) resets the env with the next seed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ast_robot.config import BridgeConfig, Config, EnvConfig
from ast_robot.errors import BridgeError

# ros2_node raises MissingExtraError without rclpy, before the message imports below fail.
from ast_robot.real_bridge.ros2_node import (  # isort: skip
    RELIABLE_QOS,
    BagRecorder,
    BridgeNode,
    RosSession,
    set_stamp,
)
from ast_robot.real_bridge.topic_map import RobotMap

from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Float64, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

logger = logging.getLogger(__name__)


@dataclass
class SupervisorSettings:
    """When the scripted supervisor takes over from the policy."""

    deviation_threshold: float = 0.6  # normalized-action distance from the expert that counts as astray
    reaction_steps: int = 3  # consecutive deviating steps before a takeover [control steps]
    hold_steps: int = 12  # control steps the supervisor keeps control once it takes over
    force_limit_n: float = 40.0  # wrist force that triggers a takeover [N]


class StandinRobot(Node):
    """A simulated arm behind ROS2 topics (see the module docstring).

    Args:
        env: A task env from `ast_robot.envs.make_env`.
        robot_map: Topic map to publish and subscribe on.
        context: rclpy context.
        seed: Seed of the first scene; each ``~/reset_scene`` uses the next one.
        command_timeout_s: Age after which a velocity command counts as zero, in seconds.
        supervisor: Supervisor settings, or None for no supervisor.
        teleop_topic: Where the supervisor publishes its velocity commands (m/s).
        publish_hz: Sensor publishing rate; None gives three times the control rate, so that
            every step of a log's control-rate grid finds a sensor message well within tolerance
            (a real driver publishes at hundreds of Hz). Between env steps the same observation
            is published again with a new stamp.
    """

    def __init__(
        self,
        env,
        robot_map: RobotMap,
        *,
        context=None,
        seed: int = 0,
        command_timeout_s: float = 0.1,
        supervisor: SupervisorSettings | None = None,
        teleop_topic: str = BridgeConfig().teleop_topic,
        node_name: str = "standin_robot",
        publish_hz: float | None = None,
    ):
        super().__init__(node_name, context=context)
        self.env = env
        self.robot_map = robot_map
        self.seed = int(seed)
        self.command_timeout_ns = round(command_timeout_s * 1e9)
        self.speed_scale_m_s = env.unwrapped.env_cfg.max_ee_speed_m_s
        self.supervisor = supervisor
        self.expert = None
        if supervisor is not None:
            from ast_robot.envs import make_expert

            self.expert = make_expert(env.unwrapped.task, env)

        self._command: tuple[np.ndarray, int] | None = None
        self._gripper = -1.0
        self.obs = None
        self.info: dict = {}
        self.done = True
        self.steps = 0
        self.episode_steps = 0
        self.intervening = False
        self.interventions = 0
        self._deviating = 0
        self._holding = 0

        topics = robot_map.topics
        sensor = qos_profile_sensor_data
        self.publishers_by_role = {}
        for role, msg_class in (
            ("joint_states", JointState), ("ee_pose", PoseStamped), ("ee_twist", TwistStamped),
            ("object_pose", PoseStamped), ("goal_pose", PoseStamped), ("wrench", WrenchStamped),
        ):
            if role in topics:
                self.publishers_by_role[role] = self.create_publisher(msg_class, topics[role].topic, sensor)
        self.status_publisher = self.create_publisher(String, "~/status", RELIABLE_QOS)
        self.create_subscription(TwistStamped, topics["cmd_twist"].topic, self._on_cmd, RELIABLE_QOS)
        if "gripper_cmd" in topics:
            self.create_subscription(Float64, topics["gripper_cmd"].topic, self._on_gripper, RELIABLE_QOS)
        if supervisor is not None:
            self.intervention_publisher = self.create_publisher(Bool, topics["intervention"].topic, RELIABLE_QOS)
            self.teleop_publisher = self.create_publisher(TwistStamped, teleop_topic, sensor)
        self.create_service(Trigger, "~/reset_scene", self._on_reset_service)
        self.reset_scene()
        self.create_timer(1.0 / robot_map.control_hz, self._on_step)
        self.create_timer(1.0 / (publish_hz or 3.0 * robot_map.control_hz), self.publish_observation)

    # -- commands -----------------------------------------------------------------------------

    def _on_cmd(self, msg: TwistStamped) -> None:
        linear = msg.twist.linear
        self._command = (np.array([linear.x, linear.y, linear.z]), self.get_clock().now().nanoseconds)

    def _on_gripper(self, msg: Float64) -> None:
        self._gripper = float(msg.data) / self.robot_map.gripper_scale

    def current_action(self) -> np.ndarray:
        """Return the normalized env action from the latest commands, with zero velocity when stale."""
        linear = np.zeros(3)
        if self._command is not None:
            linear_m_s, received_ns = self._command
            if self.get_clock().now().nanoseconds - received_ns <= self.command_timeout_ns:
                linear = linear_m_s / self.speed_scale_m_s
        return np.clip(np.append(linear, self._gripper), -1.0, 1.0).astype(np.float32)

    # -- scene --------------------------------------------------------------------------------

    def _on_reset_service(self, request, response):
        self.reset_scene()
        response.success, response.message = True, f"scene reset with seed {self.seed - 1}"
        return response

    def reset_scene(self) -> dict:
        """Reset the env with the next seed and publish the new observation; return its info."""
        self.obs, self.info = self.env.reset(seed=self.seed)
        self.seed += 1
        if self.expert is not None:
            self.expert.reset(seed=self.seed)
        self.done = False
        self.episode_steps = 0
        self._command = None
        self._gripper = -1.0
        self._set_intervention(False)
        self._deviating = self._holding = 0
        self.publish_observation()
        return self.info

    def _on_step(self) -> None:
        if not self.done:
            action = self.current_action()
            if self.expert is not None:
                self._supervise(action)
            self.obs, _reward, terminated, truncated, self.info = self.env.step(action)
            self.steps += 1
            self.episode_steps += 1
            self.done = bool(terminated or truncated)
            self.terminated, self.truncated = bool(terminated), bool(truncated)
        status = {
            "step": self.episode_steps,
            "is_success": bool(self.info.get("is_success", False)),
            "done": self.done,
            "intervention": self.intervening,
        }
        self.status_publisher.publish(String(data=json.dumps(status)))

    def _supervise(self, executed: np.ndarray) -> None:
        """Take over with the expert's commands when the executed ones go astray."""
        settings = self.supervisor
        expert_action = np.asarray(self.expert.act(self.obs, self.info), dtype=np.float32)
        if not self.intervening:
            deviation = float(np.linalg.norm(executed - expert_action))
            self._deviating = self._deviating + 1 if deviation > settings.deviation_threshold else 0
        force_n = float(np.linalg.norm(self.obs["force"][:3]))
        if self._deviating >= settings.reaction_steps or force_n > settings.force_limit_n:
            self._holding = settings.hold_steps
            self._deviating = 0
        self._set_intervention(self._holding > 0)
        if self._holding > 0:
            self._holding -= 1
            teleop = TwistStamped()
            set_stamp(teleop.header, self.get_clock().now().nanoseconds)
            linear = expert_action[:3].astype(np.float64) * self.speed_scale_m_s
            teleop.twist.linear.x, teleop.twist.linear.y, teleop.twist.linear.z = (float(v) for v in linear)
            self.teleop_publisher.publish(teleop)

    def _set_intervention(self, active: bool) -> None:
        if self.supervisor is None:
            return
        if active and not self.intervening:
            self.interventions += 1
        self.intervening = active
        self.intervention_publisher.publish(Bool(data=active))

    # -- sensors ------------------------------------------------------------------------------

    def publish_observation(self) -> None:
        """Publish the env's current observation on every mapped sensor topic, stamped now."""
        now_ns = self.get_clock().now().nanoseconds
        proprio = self.obs["proprio"].astype(np.float64)
        topics = self.robot_map.topics

        def pose(role: str, position: np.ndarray) -> None:
            msg = PoseStamped()
            set_stamp(msg.header, now_ns)
            msg.header.frame_id = topics[role].frame_id
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in position)
            msg.pose.orientation.w = 1.0
            self.publishers_by_role[role].publish(msg)

        if "joint_states" in self.publishers_by_role:
            joints = self.robot_map.gripper_joints
            # Each finger carries an equal share of the opening, as the log writer records it.
            msg = JointState(
                name=list(joints),
                position=[float(proprio[6]) / len(joints)] * len(joints),
                velocity=[float(proprio[7]) / len(joints)] * len(joints),
            )
            set_stamp(msg.header, now_ns)
            self.publishers_by_role["joint_states"].publish(msg)
        if "ee_pose" in self.publishers_by_role:
            pose("ee_pose", proprio[0:3])
        if "ee_twist" in self.publishers_by_role:
            msg = TwistStamped()
            set_stamp(msg.header, now_ns)
            msg.header.frame_id = topics["ee_twist"].frame_id
            msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in proprio[3:6])
            self.publishers_by_role["ee_twist"].publish(msg)
        if "object_pose" in self.publishers_by_role:
            pose("object_pose", self.obs["object"][0:3].astype(np.float64))
        if "goal_pose" in self.publishers_by_role:
            pose("goal_pose", self.obs["goal"].astype(np.float64))
        if "wrench" in self.publishers_by_role:
            msg = WrenchStamped()
            set_stamp(msg.header, now_ns)
            msg.header.frame_id = topics["wrench"].frame_id
            force, torque = msg.wrench.force, msg.wrench.torque
            values = [float(v) for v in self.obs["force"]]
            force.x, force.y, force.z, torque.x, torque.y, torque.z = values
            self.publishers_by_role["wrench"].publish(msg)


def make_standin_env(env_cfg: EnvConfig, *, reality: str | Path | None, control_hz: float):
    """Build the stand-in's env with the robot map's control rate and a reality profile."""
    import dataclasses

    from ast_robot.config import resolve_config_path
    from ast_robot.envs import make_env

    if abs(env_cfg.control_hz - control_hz) > 1e-9:
        logger.info("stand-in runs at the robot map's %.1f Hz instead of env.control_hz %.1f", control_hz, env_cfg.control_hz)
        env_cfg = dataclasses.replace(env_cfg, control_hz=control_hz)
    reality_path = None if reality is None else resolve_config_path(reality)
    return make_env(env_cfg.task, env_cfg, None, reality=reality_path)


def run_standin_robot(
    robot_map: RobotMap,
    env_cfg: EnvConfig,
    *,
    reality: str | Path | None = "configs/reality/standin.yaml",
    seed: int = 0,
    duration_s: float | None = None,
    supervisor: SupervisorSettings | None = None,
    teleop_topic: str = BridgeConfig().teleop_topic,
    domain_id: int | None = None,
) -> dict:
    """Run the stand-in robot node until SIGINT, SIGTERM or `duration_s`; return a summary."""
    import signal

    stop_requested: list[int] = []

    def request_stop(signum, _frame) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    env = make_standin_env(env_cfg, reality=reality, control_hz=robot_map.control_hz)
    started = time.monotonic()
    try:
        with RosSession(domain_id=domain_id) as session:
            robot = session.add(StandinRobot(
                env, robot_map, context=session.context, seed=seed, supervisor=supervisor,
                teleop_topic=teleop_topic,
            ))
            logger.info("stand-in robot up: task %s, reality %s, %.1f Hz", env_cfg.task, reality, robot_map.control_hz)
            while not stop_requested and session.context.ok():
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                session.executor.spin_once(timeout_sec=0.05)
            summary = {"steps": robot.steps, "scenes": robot.seed - seed}
    finally:
        env.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary["wall_s"] = round(time.monotonic() - started, 3)
    return summary


def record_standin_ros(
    out: str | Path,
    config: Config,
    policy,
    *,
    history_steps: int,
    episodes: int,
    robot_map: RobotMap,
    reality: str | Path | None = "configs/reality/standin.yaml",
    seed: int = 0,
    supervisor: SupervisorSettings | None = None,
    storage: str = "mcap",
    domain_id: int | None = None,
    episode_timeout_s: float | None = None,
) -> dict:
    """Record episodes of the stand-in robot driven by a policy through the bridge node.

    Both nodes run in this process over DDS; the commands travel the ROS2 topics and pass the
    bridge's safety layer, and the bridge records one bag per episode under `out`, as it would on
    a robot. Each episode: reset the scene, start the episode, arm, run until the env's episode
    ends, end it with the env's success label, disarm.

    Args:
        out: Folder for the bags.
        config: Task (``env``) and bridge settings.
        policy: Anything with ``act(obs_history) -> (action (4,), std (4,))``.
        history_steps: Observation history length H of the policy.
        episodes: Episodes to record.
        robot_map: Topic map (the stand-in's).
        reality: Physics profile of the stand-in.
        seed: Seed of the first scene.
        supervisor: Scripted supervisor settings, or None for none.
        storage: Bag storage.
        domain_id: ROS_DOMAIN_ID for both nodes.
        episode_timeout_s: Wall-clock limit per episode; by default twice the env's step limit
            at the control rate, plus 2 s.

    Returns:
        Episodes, successes, episodes with interventions and the bag paths.
    """
    from tqdm.auto import tqdm

    from ast_robot.real_bridge.pipeline import ControlCore, single_thread_inference

    env = make_standin_env(config.env, reality=reality, control_hz=robot_map.control_hz)
    timeout_s = episode_timeout_s or 2.0 * config.env.max_steps / robot_map.control_hz + 2.0
    recorder = BagRecorder(out, robot_map, storage=storage)
    core = ControlCore(policy, robot_map, config.bridge, history_steps=history_steps)
    successes = with_interventions = 0
    try:
        with single_thread_inference(), RosSession(domain_id=domain_id) as session:
            robot = session.add(StandinRobot(
                env, robot_map, context=session.context, seed=seed, supervisor=supervisor,
                teleop_topic=config.bridge.teleop_topic,
            ))
            bridge = session.add(BridgeNode(core, robot_map, config.bridge, context=session.context, recorder=recorder))
            for _ in tqdm(range(episodes), desc="record via ROS2", unit="episode"):
                robot.reset_scene()
                steps_at_reset = robot.steps
                # Wait until the bridge has observations of the new scene (two robot steps).
                session.spin_for(2.0, until=lambda: robot.steps >= steps_at_reset + 2)
                stale = core.pipeline.stale_roles(bridge.now_ns())
                if stale:
                    raise BridgeError(
                        f"the bridge received no fresh {', '.join(stale)} from the stand-in robot within "
                        "2 s; check that both nodes share ROS_DOMAIN_ID and that DDS discovery works here"
                    )
                interventions_before = robot.interventions
                bridge.start_episode()
                bridge.arm(True)
                session.spin_for(timeout_s, until=lambda: robot.done)
                success = bool(robot.info.get("is_success", False)) if robot.done else None
                bridge.end_episode(success)
                bridge.arm(False)
                successes += bool(success)
                with_interventions += robot.interventions > interventions_before
    finally:
        recorder.close()
        env.close()
    return {
        "episodes": episodes,
        "successes": successes,
        "episodes_with_interventions": with_interventions,
        "bags": [str(path) for path in recorder.bags],
    }

