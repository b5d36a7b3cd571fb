"""The rclpy node that runs a policy on a robot behind the safety layer, and records what happened.

Topics (names from the robot's topic map and the ``bridge`` config section):

| direction | topic (role)                 | type                       | QoS                      |
|-----------|------------------------------|----------------------------|--------------------------|
| in        | joint_states, ee_pose, ee_twist, object_pose, goal_pose, wrench | sensor types | sensor data (best effort) |
| in        | intervention                 | std_msgs/Bool              | reliable                 |
| in        | `bridge.teleop_topic`        | geometry_msgs/TwistStamped | sensor data              |
| in        | `bridge.teleop_gripper_topic`| std_msgs/Float64           | reliable                 |
| in        | `bridge.estop_topic`         | std_msgs/Bool              | reliable                 |
| in        | `bridge.operator_topic`      | std_msgs/String (JSON)     | reliable                 |
| out       | cmd_twist                    | geometry_msgs/TwistStamped | reliable                 |
| out       | gripper_cmd                  | std_msgs/Float64           | reliable                 |
| out       | events                       | std_msgs/String (JSON)     | reliable                 |
| out       | ``~/status``                 | std_msgs/String (JSON)     | reliable                 |

Services: ``~/arm`` (std_srvs/SetBool: true arms, false disarms, like a lifecycle node's
activate and deactivate), ``~/reset`` (std_srvs/Trigger: clears the e-stop and force latches),
``~/start_episode`` (std_srvs/Trigger), ``~/end_episode`` (std_srvs/SetBool: ``data`` is the
success label). The operator topic takes the same commands as JSON:
``{"command": "arm"}``, ``"disarm"``, ``"reset"``, ``"start"``, ``{"command": "end", "success": true}``.

The node needs the ``ros`` extra; importing this module without rclpy raises `MissingExtraError`.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ast_robot.errors import MissingExtraError

try:
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float64, String
    from std_srvs.srv import SetBool, Trigger
except ImportError as error:  # pragma: no cover - exercised by a test that hides rclpy
    raise MissingExtraError("ros", error.name or "rclpy", "the ROS2 bridge") from error

from ast_robot.config import BridgeConfig
from ast_robot.real_bridge.pipeline import (
    CONTROL_EVENTS_TOPIC,
    SENSOR_ROLES,
    ControlCore,
    TickResult,
    single_thread_inference,
)
from ast_robot.real_bridge.topic_map import RobotMap

logger = logging.getLogger(__name__)

MESSAGE_CLASSES = {
    "sensor_msgs/msg/JointState": JointState,
    "geometry_msgs/msg/PoseStamped": PoseStamped,
    "geometry_msgs/msg/TwistStamped": TwistStamped,
    "geometry_msgs/msg/WrenchStamped": WrenchStamped,
    "std_msgs/msg/Float64": Float64,
    "std_msgs/msg/Bool": Bool,
    "std_msgs/msg/String": String,
}
"""Standard message type name -> rclpy class, for the roles of a topic map."""

RELIABLE_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)
"""Commands, flags and events: a lost message here changes what the robot does."""


def message_class(msgtype: str):
    """Return the rclpy class of a standard message type name such as ``std_msgs/msg/Bool``."""
    try:
        return MESSAGE_CLASSES[msgtype]
    except KeyError:
        raise ValueError(
            f"the ROS2 bridge supports the standard types {sorted(MESSAGE_CLASSES)}, not {msgtype!r}"
        ) from None


def stamp_ns(stamp: Any) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time``."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def set_stamp(header: Any, t_ns: int) -> None:
    header.stamp.sec = int(t_ns // 1_000_000_000)
    header.stamp.nanosec = int(t_ns % 1_000_000_000)


class BridgeNode(Node):
    """The policy bridge as an rclpy node; the control logic itself lives in `ControlCore`.

    Args:
        core: Control state and step.
        robot_map: Topic map.
        cfg: Bridge settings.
        context: rclpy context to create the node in (tests use one per node set).
        recorder: Optional `BagRecorder` that logs every mapped message, command and event.
    """

    def __init__(
        self,
        core: ControlCore,
        robot_map: RobotMap,
        cfg: BridgeConfig,
        *,
        context=None,
        recorder: BagRecorder | None = None,
    ):
        super().__init__(cfg.node_name, context=context)
        self.core = core
        self.robot_map = robot_map
        self.cfg = cfg
        self.recorder = recorder
        self.episode_active = False
        self.episode_index = 0
        self.commands_sent = 0
        self._last_tick_ns: int | None = None

        self._subscribe_sensors()
        self._create_publishers()
        self._create_services()
        self.control_timer = self.create_timer(1.0 / robot_map.control_hz, self._on_control_timer)
        self.watchdog_timer = self.create_timer(1.0 / cfg.watchdog_check_hz, self._on_watchdog_timer)
        logger.info(
            "bridge node '%s' up: robot %s at %.1f Hz, watchdog %.0f ms, %s",
            cfg.node_name, robot_map.name, robot_map.control_hz, cfg.safety.watchdog_timeout_s * 1e3,
            f"recording to {recorder.path}" if recorder else "not recording",
        )

    # -- setup ------------------------------------------------------------------------------

    def _subscribe_sensors(self) -> None:
        for role, spec in self.robot_map.topics.items():
            if role in SENSOR_ROLES:
                qos = qos_profile_sensor_data
            elif role == "intervention":
                qos = RELIABLE_QOS
            else:
                continue
            self.create_subscription(
                message_class(spec.msgtype), spec.topic, self._make_sensor_callback(role, spec.topic), qos
            )
        self.create_subscription(TwistStamped, self.cfg.teleop_topic, self._on_teleop, qos_profile_sensor_data)
        self.create_subscription(Float64, self.cfg.teleop_gripper_topic, self._on_teleop_gripper, RELIABLE_QOS)
        self.create_subscription(Bool, self.cfg.estop_topic, self._on_estop, RELIABLE_QOS)
        self.create_subscription(String, self.cfg.operator_topic, self._on_operator, RELIABLE_QOS)

    def _create_publishers(self) -> None:
        topics = self.robot_map.topics
        self.cmd_publisher = self.create_publisher(TwistStamped, topics["cmd_twist"].topic, RELIABLE_QOS)
        self.gripper_publisher = None
        if "gripper_cmd" in topics:
            self.gripper_publisher = self.create_publisher(Float64, topics["gripper_cmd"].topic, RELIABLE_QOS)
        self.events_publisher = self.create_publisher(String, topics["events"].topic, RELIABLE_QOS)
        self.status_publisher = self.create_publisher(String, "~/status", RELIABLE_QOS)
        self.control_events_publisher = self.create_publisher(String, CONTROL_EVENTS_TOPIC, RELIABLE_QOS)

    def _create_services(self) -> None:
        self.create_service(SetBool, "~/arm", self._on_arm_service)
        self.create_service(Trigger, "~/reset", self._on_reset_service)
        self.create_service(Trigger, "~/start_episode", self._on_start_service)
        self.create_service(SetBool, "~/end_episode", self._on_end_service)

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # -- inputs -----------------------------------------------------------------------------

    def _make_sensor_callback(self, role: str, topic: str):
        msgtype = self.robot_map.topics[role].msgtype

        def callback(msg) -> None:
            t_ns = self.now_ns()
            if self.recorder is not None:
                self.recorder.message(topic, msgtype, msg, t_ns)
            if self.core.on_message(role, msg, t_ns):
                # A force stop latched: send the stop now instead of at the next control step.
                self._send(self.core.tick(self.now_ns()))

        return callback

    def _on_teleop(self, msg: TwistStamped) -> None:
        linear = msg.twist.linear
        self.core.on_teleop(np.array([linear.x, linear.y, linear.z]), self.now_ns())

    def _on_teleop_gripper(self, msg: Float64) -> None:
        self.core.on_teleop_gripper(msg.data)

    def _on_estop(self, msg: Bool) -> None:
        t_ns = self.now_ns()
        self._control_event("estop" if msg.data else "estop_released", t_ns)
        if self.core.on_estop(bool(msg.data)):
            self._send(self.core.tick(self.now_ns()))
            self._publish_status("e-stop latched")

    def _on_operator(self, msg: String) -> None:
        try:
            request = json.loads(msg.data)
            command = request["command"] if isinstance(request, dict) else str(request)
        except (json.JSONDecodeError, KeyError, TypeError):
            command, request = msg.data.strip(), {}
        success = request.get("success") if isinstance(request, dict) else None
        handlers = {
            "arm": lambda: self.arm(True),
            "disarm": lambda: self.arm(False),
            "reset": self.reset,
            "start": self.start_episode,
            "end": lambda: self.end_episode(success),
        }
        handler = handlers.get(command)
        if handler is None:
            logger.warning(
                "operator command %r on %s is unknown; use one of %s",
                msg.data, self.cfg.operator_topic, ", ".join(handlers),
            )
            return
        ok, message = handler()
        if not ok:
            logger.warning("operator command %r rejected: %s", command, message)

    # -- services ---------------------------------------------------------------------------

    def _on_arm_service(self, request, response):
        response.success, response.message = self.arm(bool(request.data))
        return response

    def _on_reset_service(self, request, response):
        response.success, response.message = self.reset()
        return response

    def _on_start_service(self, request, response):
        response.success, response.message = self.start_episode()
        return response

    def _on_end_service(self, request, response):
        response.success, response.message = self.end_episode(bool(request.data))
        return response

    def arm(self, armed: bool) -> tuple[bool, str]:
        """Arm (start sending commands) or disarm (stop, after one zero command)."""
        t_ns = self.now_ns()
        was_armed = self.core.safety.armed
        ok, message = self.core.safety.arm() if armed else self.core.safety.disarm()
        if ok and was_armed != armed:
            self._control_event("arm" if armed else "disarm", t_ns)
        if ok and was_armed and not armed:
            # One zero command, so a controller that keeps executing the last command comes to rest.
            self._publish_command(np.zeros(3), self.core.safety.held_gripper, t_ns)
        self._publish_status(message)
        return ok, message

    def reset(self) -> tuple[bool, str]:
        ok, message = self.core.safety.reset()
        if ok:
            self._control_event("reset", self.now_ns())
        self._publish_status(message)
        return ok, message

    def start_episode(self) -> tuple[bool, str]:
        """Mark the start of an episode; ends a running one first with an unknown label."""
        if self.episode_active:
            self.end_episode(None)
        t_ns = self.now_ns()
        self.core.start_episode()
        self.episode_active = True
        context = self._episode_context()
        self._publish_event({"event": "start", "index": self.episode_index, "context": context}, t_ns)
        if self.recorder is not None:
            stop_state = self.core.safety.state if self.core.safety.stopped else None
            self.recorder.start(t_ns, self.episode_index, stop_state=stop_state, context=context)
        logger.info("episode %d started", self.episode_index)
        return True, f"episode {self.episode_index} started"

    def _episode_context(self) -> list[float] | None:
        """Object start position and goal (m), the episode's context, when both are known."""
        obj = self.core.pipeline.latest("object_pose")
        goal = self.core.pipeline.latest("goal_pose")
        if obj is None or goal is None:
            return None
        return [float(v) for v in np.concatenate([obj, goal])]

    def end_episode(self, success: bool | None) -> tuple[bool, str]:
        if not self.episode_active:
            return False, "no episode is running; start one first"
        t_ns = self.now_ns()
        self.episode_active = False
        self._publish_event({"event": "end", "index": self.episode_index, "success": success}, t_ns)
        if self.recorder is not None:
            self.recorder.end(t_ns, success=success)
        logger.info("episode %d ended, success=%s", self.episode_index, success)
        self.episode_index += 1
        return True, f"episode {self.episode_index - 1} ended"

    # -- control ----------------------------------------------------------------------------

    def _on_control_timer(self) -> None:
        result = self.core.tick(self.now_ns())
        self._send(result)

    def _on_watchdog_timer(self) -> None:
        result = self.core.watchdog_check(self.now_ns())
        if result is not None:
            ages = ", ".join(
                f"{role} {self.core.pipeline.age_s(role, result.t_ns) * 1e3:.0f} ms" for role in result.stale_roles
            )
            logger.warning("watchdog: stale %s (limit %.0f ms); motion stopped", ages, self.cfg.safety.watchdog_timeout_s * 1e3)
            self._send(result)

    def _send(self, result: TickResult) -> None:
        if not result.command.send:
            return
        self._publish_command(result.command.linear_m_s, result.command.gripper, result.t_ns)
        if result.command.clamped:
            flags = [name for name, on in result.command.clamps.items() if on]
            logger.debug("command clamped by %s", ", ".join(flags))

    def _publish_command(self, linear_m_s: np.ndarray, gripper: float, t_ns: int) -> None:
        spec = self.robot_map.topics["cmd_twist"]
        twist = TwistStamped()
        set_stamp(twist.header, t_ns)
        twist.header.frame_id = spec.frame_id
        twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (float(v) for v in linear_m_s)
        self.cmd_publisher.publish(twist)
        gripper_msg = Float64(data=float(gripper) * self.robot_map.gripper_scale)
        if self.gripper_publisher is not None:
            self.gripper_publisher.publish(gripper_msg)
        self.commands_sent += 1
        if self.recorder is not None:
            self.recorder.message(spec.topic, spec.msgtype, twist, t_ns)
            if self.gripper_publisher is not None:
                gripper_spec = self.robot_map.topics["gripper_cmd"]
                self.recorder.message(gripper_spec.topic, gripper_spec.msgtype, gripper_msg, t_ns)

    def _control_event(self, kind: str, t_ns: int) -> None:
        self.control_events_publisher.publish(String(data=json.dumps({"event": kind})))
        if self.recorder is not None:
            self.recorder.control_event(kind, t_ns)

    def _publish_event(self, payload: dict, t_ns: int) -> None:
        self.events_publisher.publish(String(data=json.dumps(payload)))

    def _publish_status(self, message: str) -> None:
        status = {
            "state": self.core.safety.state,
            "episode_active": self.episode_active,
            "intervention": self.core.intervention,
            "message": message,
        }
        self.status_publisher.publish(String(data=json.dumps(status)))

    def stop_motion(self) -> None:
        """Disarm with one zero command, or send a zero command while a stop is latched."""
        if self.core.safety.armed:
            self.arm(False)
        elif self.core.safety.stopped:
            self._publish_command(np.zeros(3), self.core.safety.held_gripper, self.now_ns())


class BagRecorder:
    """Records the bridge's episodes to rosbag2 through the shared log writer, one bag per episode.

    A bag opens at an episode's start and closes at its end, so a process killed with SIGKILL
    loses only the episode in progress: every finished episode is a closed bag that
    `real_bridge.logs` reads. The open bag of a killed process is left unfinished and is reported
    as unreadable by the reader. Outside episodes nothing is written.

    On opening, the bag first receives the last few messages of every sensor role (at their
    original receive times) and the latched stop state, so that replay starts each episode from
    the state the node had.

    Args:
        directory: Folder that receives the bags, named ``<run>_ep<index>``.
        robot_map: Topic map the bags follow.
        storage: ``mcap`` (default) or ``sqlite3``.
    """

    RECENT_MESSAGES = 3
    """Messages kept per topic for the start of the next bag (two suffice to differentiate poses)."""

    def __init__(self, directory: str | Path, robot_map: RobotMap, *, storage: str = "mcap"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.run_name = "bridge-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.robot_map = robot_map
        self.storage = storage
        self.bags: list[Path] = []
        self.messages = 0
        self._writer = None
        self._recent: dict[str, deque] = {}

    @property
    def path(self) -> Path:
        return self.directory

    @property
    def recording(self) -> bool:
        return self._writer is not None

    def message(self, topic: str, msgtype: str, msg: Any, t_ns: int) -> None:
        """Record one rclpy message received (or sent) at `t_ns`."""
        # The writer takes the rclpy message by its fields. Serialized bytes from rclpy would be
        # faster, but Fast-CDR pads them in a way that rosbags rejects on reading.
        recent = self._recent.setdefault(topic, deque(maxlen=self.RECENT_MESSAGES))
        recent.append((msgtype, msg, int(t_ns)))
        if self._writer is not None:
            self._writer.write_message(topic, msgtype, msg, int(t_ns))
            self.messages += 1

    def start(self, t_ns: int, index: int, *, stop_state: str | None = None, **fields: Any) -> None:
        """Open the episode's bag and write its start event."""
        from ast_robot.real_bridge.writer import EpisodeWriter

        self.close()
        path = self.directory / f"{self.run_name}_ep{index:03d}"
        while path.exists():
            path = path.with_name(path.name + "_")
        self._writer = EpisodeWriter(path, self.robot_map, storage=self.storage)
        self._writer.open_stream()
        self.bags.append(path)
        commands = {self.robot_map.topics[role].topic for role in ("cmd_twist", "gripper_cmd") if role in self.robot_map.topics}
        for topic, recent in self._recent.items():
            if topic in commands:
                continue  # commands before the start belong to no episode
            for msgtype, msg, stamp in recent:
                self._writer.write_message(topic, msgtype, msg, stamp)
        if stop_state is not None:
            self.control_event(stop_state, t_ns)
        self._writer.write_event("start", int(t_ns), **fields)

    def end(self, t_ns: int, *, success: bool | None) -> None:
        """Write the end event and close the episode's bag."""
        if self._writer is None:
            return
        self._writer.write_event("end", int(t_ns), success=success)
        self.close()

    def control_event(self, kind: str, t_ns: int) -> None:
        """Record an arm, disarm, reset or stop change on `CONTROL_EVENTS_TOPIC`, so replay can
        follow the node's state."""
        if self._writer is None:
            return
        text = json.dumps({"event": kind})
        self._writer.write_message(CONTROL_EVENTS_TOPIC, "std_msgs/msg/String", {"data": text}, int(t_ns))

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            logger.info("bag %s closed", writer.path)


class RosSession:
    """An rclpy context with its own executor, as a context manager.

    Each session is independent of the global rclpy context, so tests can run several in one
    process. Signal handling is left to the caller (`run_bridge` installs its own).

    Args:
        domain_id: ROS_DOMAIN_ID for this context; None uses the environment's.
    """

    def __init__(self, *, domain_id: int | None = None):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def spin_for(self, seconds: float, *, until=None) -> bool:
        """Spin until `seconds` pass or `until()` returns true; return whether it did."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, deadline - time.monotonic())))
            if until is not None and until():
                return True
        return until is not None and bool(until())

    def close(self) -> None:
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        if self.context.ok():
            rclpy.shutdown(context=self.context)

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def run_bridge(
    policy,
    robot_map: RobotMap,
    cfg: BridgeConfig,
    *,
    history_steps: int,
    record_dir: str | Path | None = None,
    storage: str = "mcap",
    duration_s: float | None = None,
    arm: bool = False,
    domain_id: int | None = None,
) -> dict:
    """Run the bridge node until SIGINT, SIGTERM or `duration_s`; return a summary.

    With `record_dir`, the open episode's bag is closed on every exit path, SIGINT and SIGTERM
    included. A process killed with SIGKILL loses the episode in progress, but every finished
    episode is a closed bag that `real_bridge.logs` reads.

    Args:
        policy: Anything with ``act(obs_history) -> (action (4,), std (4,))``.
        robot_map: Topic map of the robot.
        cfg: Bridge settings.
        history_steps: Observation history length H of the policy.
        record_dir: Folder for the bag, or None to record nothing.
        storage: Bag storage, ``mcap`` or ``sqlite3``.
        duration_s: Stop after this many seconds; None runs until a signal.
        arm: Arm at start instead of waiting for ``~/arm`` or the operator topic.
        domain_id: ROS_DOMAIN_ID; None uses the environment's.
    """
    stop_requested: list[int] = []

    def request_stop(signum, _frame) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    core = ControlCore(policy, robot_map, cfg, history_steps=history_steps)
    recorder = BagRecorder(record_dir, robot_map, storage=storage) if record_dir is not None else None
    started = time.monotonic()
    try:
        with single_thread_inference(), RosSession(domain_id=domain_id) as session:
            node = session.add(BridgeNode(core, robot_map, cfg, context=session.context, recorder=recorder))
            if arm:
                node.arm(True)
            while not stop_requested and session.context.ok():
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                session.executor.spin_once(timeout_sec=0.05)
            if node.episode_active:
                node.end_episode(None)
            node.stop_motion()
            summary = {
                "commands_sent": node.commands_sent,
                "episodes": node.episode_index,
                "state": core.safety.state,
                "bags": [str(path) for path in recorder.bags] if recorder else [],
            }
    finally:
        if recorder is not None:
            recorder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary["wall_s"] = round(time.monotonic() - started, 3)
    summary["signal"] = signal.Signals(stop_requested[0]).name if stop_requested else None
    return summary
