"""Testing a policy on recorded robot logs, without a robot.

Two modes:

- `replay_logs` (closed loop through the bridge's own code): every mapped message of a bag goes,
  in log-time order, into the same `ControlCore` the ROS2 node runs, and at every logged command
  the core takes a control step. The command it would have sent is compared with the one that
  was logged: per-episode and per-dimension error, the share of steps the safety layer clamped,
  and where the policy diverges. Messages count as received at their log time, which is the
  receive time the bridge node records, so a replay with the checkpoint that drove the robot
  reproduces its commands exactly.
- `replay_in_sim` (open loop): the logged actions of each episode are replayed in simulation
  under a physics profile, starting from the episode's context and logged end-effector position.
  The distance between the simulated and the logged end-effector and object trajectories is the
  sim-to-real gap. Open loop, success labels need not match even under the profile that
  recorded the logs: its action noise, sensor noise and latency are drawn anew.

During a human intervention the logged command is the human's. Closed-loop replay feeds it to the
core as the teleoperation input, and reports those steps apart from the policy steps and clamps.

Errors are in normalized action units (linear velocity / `linear_scale_m_s`, gripper /
`gripper_scale`), so the four dimensions compare on one scale.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ast_robot.config import BridgeConfig, EnvConfig
from ast_robot.errors import LogReadError
from ast_robot.real_bridge.decode import parse_event, read_bag
from ast_robot.real_bridge.discovery import BagSource, find_bags
from ast_robot.real_bridge.pipeline import (
    CONTROL_EVENTS_TOPIC,
    SENSOR_ROLES,
    ActingPolicy,
    ControlCore,
    single_thread_inference,
)
from ast_robot.real_bridge.problems import BagSkipped, Problem
from ast_robot.real_bridge.safety import CLAMP_NAMES
from ast_robot.real_bridge.topic_map import RobotMap, TopicSpec

logger = logging.getLogger(__name__)

DIMENSIONS = ("vx", "vy", "vz", "gripper")
"""Names of the compared command dimensions."""

CONTROL_EVENTS = ("arm", "disarm", "reset", "estop", "estop_released", "force_stop")
"""Events the bridge node records besides episode start and end, so replay can follow its state."""


@dataclass
class EpisodeReplay:
    """Comparison of replayed and logged commands over one episode.

    Attributes:
        bag: Bag path.
        episode: Episode index in the bag.
        steps: Logged commands compared (steps the replayed core also sent a command).
        success: The episode's success label, or None.
        mean_abs_error: Mean absolute error per dimension (`DIMENSIONS`), policy steps only.
        max_abs_error: Largest absolute error per dimension, policy steps only.
        exact_steps: Policy steps whose replayed command equals the logged one bit for bit.
        clamped_share: Share of policy steps where the safety layer changed the requested
            command (a ``watchdog`` clamp is a step stopped for stale or non-finite observations).
        clamp_counts: Limit name -> policy steps it was active.
        intervention_steps: Steps a human was in control. The logged command there is the
            human's, so it is fed to the replayed core as the teleoperation input. These steps are
            left out of the error, the clamps and the divergence.
        correction_mean_abs_error: Mean absolute difference per dimension between what the policy
            would have sent and the logged human command on the intervention steps, or None
            without interventions.
        first_divergence_step: First policy step whose error exceeds the threshold, or None.
        unsent_steps: Logged commands where the replayed core sent nothing (disarmed).
        intervention_exact_steps: Intervention steps whose replayed velocity equals the logged
            human command: the human's command passed the replayed safety layer unchanged.
        intervention_clamp_counts: Limit name -> intervention steps it changed the human's command.
    """

    bag: str
    episode: int
    steps: int
    success: bool | None
    mean_abs_error: list[float]
    max_abs_error: list[float]
    exact_steps: int
    clamped_share: float
    clamp_counts: dict[str, int]
    intervention_steps: int
    correction_mean_abs_error: list[float] | None
    first_divergence_step: int | None
    unsent_steps: int = 0
    intervention_exact_steps: int = 0
    intervention_clamp_counts: dict[str, int] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.first_divergence_step is not None

    @property
    def policy_steps(self) -> int:
        return self.steps - self.intervention_steps


@dataclass
class ReplayReport:
    """The result of `replay_logs`: one entry per episode, plus the problems met."""

    episodes: list[EpisodeReplay]
    problems: list[Problem] = field(default_factory=list)
    divergence_threshold: float = 0.1

    def to_dict(self) -> dict:
        episodes = []
        for item in self.episodes:
            entry = asdict(item)
            entry["diverged"] = item.diverged
            episodes.append(entry)
        total = sum(item.policy_steps for item in self.episodes)
        return {
            "dimensions": list(DIMENSIONS),
            "divergence_threshold": self.divergence_threshold,
            "episodes": episodes,
            "summary": {
                "episodes": len(self.episodes),
                "diverged": sum(item.diverged for item in self.episodes),
                "policy_steps": total,
                "exact_steps": sum(item.exact_steps for item in self.episodes),
                "intervention_steps": sum(item.intervention_steps for item in self.episodes),
                "watchdog_steps": sum(item.clamp_counts.get("watchdog", 0) for item in self.episodes),
                "clamped_share": _weighted(self.episodes, "clamped_share", "policy_steps"),
            },
            "problems": [problem.as_dict() for problem in self.problems],
        }


def _weighted(items: list, key: str, weight: str) -> float:
    weights = np.array([getattr(item, weight) for item in items], dtype=np.float64)
    if weights.sum() == 0:
        return 0.0
    values = np.array([getattr(item, key) for item in items], dtype=np.float64)
    return float((values * weights).sum() / weights.sum())


# ---------------------------------------------------------------------------------------------
# Closed-loop replay through the bridge's control core
# ---------------------------------------------------------------------------------------------


def replay_logs(
    path: str | Path,
    policy: ActingPolicy,
    robot_map: RobotMap,
    cfg: BridgeConfig,
    *,
    history_steps: int,
    divergence_threshold: float = 0.1,
) -> ReplayReport:
    """Replay every bag under `path` through a fresh `ControlCore` per bag.

    Args:
        path: A bag, storage file, or directory searched recursively.
        policy: The policy to test, with ``act(obs_history) -> (action (4,), std (4,))``.
        robot_map: Topic map of the recording.
        cfg: Bridge settings (the safety limits the robot ran with).
        history_steps: Observation history length H of the policy.
        divergence_threshold: Error (normalized units, any dimension) that counts as diverged.

    Raises:
        LogReadError: `path` does not exist or contains no recordings.
    """
    sources, problems = find_bags(path)
    report = ReplayReport([], list(problems), divergence_threshold)
    for source in sources:
        try:
            bag = read_bag(source, robot_map)
        except BagSkipped as skipped:
            report.problems.append(Problem(str(source.path), skipped.kind, skipped.message, topic=skipped.topic))
            logger.warning("replay skips bag %s: %s", source.path, skipped.message)
            continue
        report.problems.extend(bag.problems)
        if "cmd_twist" not in bag.streams or len(bag.streams["cmd_twist"]) == 0:
            report.problems.append(Problem(str(source.path), "no_commands", "the bag holds no logged commands to compare"))
            continue
        control_texts = _read_control_events(source, robot_map) if CONTROL_EVENTS_TOPIC in bag.topics else []
        core = ControlCore(policy, robot_map, cfg, history_steps=history_steps)
        with single_thread_inference():
            report.episodes.extend(_replay_bag(source, bag, control_texts, core, robot_map, divergence_threshold))
    if not report.episodes:
        logger.warning("replay of %s compared no episodes; see the problems", path)
    return report


def _read_control_events(source: BagSource, robot_map: RobotMap) -> list[tuple[int, str]]:
    """Read the bridge's arm, disarm, reset and stop events as (log time in ns, JSON text)."""
    control_map = dataclasses.replace(robot_map, topics={
        "events": TopicSpec("events", CONTROL_EVENTS_TOPIC, "std_msgs/msg/String", None),
    })
    try:
        stream = read_bag(source, control_map).streams.get("events")
    except BagSkipped:
        return []
    if stream is None:
        return []
    return [(int(t), text) for t, text in zip(stream.log_ns, stream.texts)]


def _merged_inputs(bag, control_texts: list[tuple[int, str]]):
    """Yield ``(log_ns, order, kind, payload)`` for every message, sorted by log time.

    At equal log time, inputs (order 0) come before the control step (order 1), as in the node,
    where a command is stamped after the callbacks that preceded it ran. Episode end events
    (order 2) come after the control step.
    """
    streams = []
    for role, stream in bag.streams.items():
        if role in SENSOR_ROLES or role == "intervention":
            items = (
                (int(stream.log_ns[i]), 0, "values", (role, int(stream.stamp_ns[i]), stream.values[i]))
                for i in range(len(stream))
            )
        elif role == "events":
            # An end event logged at the same time as the last command closes the episode after it.
            items = (
                (int(stream.log_ns[i]), 2 if _is_end_event(stream.texts[i]) else 0, "event", stream.texts[i])
                for i in range(len(stream))
            )
        elif role == "cmd_twist":
            items = ((int(stream.log_ns[i]), 1, "command", stream.values[i]) for i in range(len(stream)))
        else:
            continue
        streams.append(sorted(items, key=lambda item: (item[0], item[1])))
    streams.append(sorted((t_ns, 0, "event", text) for t_ns, text in control_texts))
    gripper = bag.streams.get("gripper_cmd")
    grippers = {} if gripper is None else {int(t): float(v[0]) for t, v in zip(gripper.log_ns, gripper.values)}
    return heapq.merge(*streams, key=lambda item: (item[0], item[1])), grippers


def _is_end_event(text: str) -> bool:
    event = parse_event(text)
    return event is not None and event["event"] == "end"


def _control_event(text: str) -> str | None:
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    kind = payload.get("event") if isinstance(payload, dict) else None
    return kind if kind in CONTROL_EVENTS else None


class _EpisodeAccumulator:
    def __init__(self, bag: str, index: int):
        self.bag = bag
        self.index = index
        self.errors: list[np.ndarray] = []
        self.corrections: list[np.ndarray] = []
        self.clamps: list[dict[str, bool]] = []
        self.exact = 0
        self.unsent = 0
        self.intervened = 0
        self.intervention_exact = 0
        self.intervention_clamps: list[dict[str, bool]] = []
        self.success: bool | None = None

    def finish(self, threshold: float) -> EpisodeReplay:
        errors = np.abs(np.array(self.errors, dtype=np.float64)).reshape(-1, len(DIMENSIONS))
        corrections = np.abs(np.array(self.corrections, dtype=np.float64)).reshape(-1, len(DIMENSIONS))
        steps = len(self.errors) + self.intervened
        over = np.flatnonzero((errors > threshold).any(axis=1)) if len(errors) else np.array([], int)
        counts = {name: sum(flags[name] for flags in self.clamps) for name in CLAMP_NAMES}
        return EpisodeReplay(
            bag=self.bag,
            episode=self.index,
            steps=steps,
            success=self.success,
            mean_abs_error=errors.mean(axis=0).tolist() if len(errors) else [0.0] * len(DIMENSIONS),
            max_abs_error=errors.max(axis=0).tolist() if len(errors) else [0.0] * len(DIMENSIONS),
            exact_steps=self.exact,
            clamped_share=float(np.mean([any(flags.values()) for flags in self.clamps])) if self.clamps else 0.0,
            clamp_counts=counts,
            intervention_steps=self.intervened,
            intervention_exact_steps=self.intervention_exact,
            intervention_clamp_counts={
                name: sum(flags[name] for flags in self.intervention_clamps) for name in CLAMP_NAMES
            },
            correction_mean_abs_error=corrections.mean(axis=0).tolist() if len(corrections) else None,
            first_divergence_step=int(over[0]) if len(over) else None,
            unsent_steps=self.unsent,
        )


def _replay_bag(
    source: BagSource, bag, control_texts: list[tuple[int, str]], core: ControlCore, robot_map: RobotMap,
    threshold: float,
) -> list[EpisodeReplay]:
    texts = bag.streams["events"].texts if "events" in bag.streams else []
    has_episode_events = any(parse_event(text) is not None for text in texts)
    if not any(_control_event(text) == "arm" for _, text in control_texts):
        # A recording from another recorder has no arm events: it was armed whenever it commanded.
        core.safety.arm()

    episodes: list[EpisodeReplay] = []
    current = None if has_episode_events else _EpisodeAccumulator(str(source.path), 0)
    next_index = 0
    inputs, grippers = _merged_inputs(bag, control_texts)
    for t_ns, _order, kind, payload in inputs:
        if kind == "values":
            core.on_values(*payload, t_ns)
        elif kind == "event":
            current, next_index = _apply_event(payload, core, current, next_index, episodes, source, threshold)
        else:
            if core.intervention:
                _feed_logged_teleop(core, payload, grippers.get(t_ns), robot_map, t_ns)
            result = core.tick(t_ns)
            if current is None:
                continue
            if not result.command.send:
                current.unsent += 1
                continue
            # Compare in the robot's units (what was published), then normalize the error.
            scale = np.array([robot_map.linear_scale_m_s] * 3 + [robot_map.gripper_scale])
            replayed = np.append(result.command.linear_m_s, result.command.gripper * robot_map.gripper_scale)
            logged = np.append(payload, grippers.get(t_ns, np.nan))
            if result.command.intervention:
                # The human's command is the logged one; compare what the policy would have sent.
                current.intervened += 1
                current.intervention_clamps.append(result.command.clamps)
                current.intervention_exact += bool(np.allclose(replayed[:3], logged[:3], rtol=0.0, atol=1e-9))
                if result.action is not None:
                    policy_command = np.append(
                        result.action[:3] * robot_map.linear_scale_m_s, result.action[3] * robot_map.gripper_scale
                    )
                    if np.isnan(logged[3]):
                        logged[3] = policy_command[3]
                    current.corrections.append((policy_command - logged) / scale)
                continue
            if np.isnan(logged[3]):
                logged[3] = replayed[3]  # no gripper command logged: compare velocities only
            current.errors.append((replayed - logged) / scale)
            current.clamps.append(result.command.clamps)
            current.exact += bool(np.array_equal(replayed, logged))
    if current is not None:
        episodes.append(current.finish(threshold))
    return episodes


def _feed_logged_teleop(core: ControlCore, linear_m_s, gripper: float | None, robot_map: RobotMap, t_ns: int) -> None:
    """Hand the logged command to the core as the human's teleoperation input at `t_ns`.

    Logs rarely hold the teleoperation topic, and during an intervention the logged command is
    the human's, so it stands in for it. Without it the core would see no teleoperation, stop the
    robot as if an observation were stale and count a watchdog stop on every corrected step.
    """
    core.on_teleop(np.asarray(linear_m_s, dtype=np.float64), t_ns)
    if gripper is not None and robot_map.gripper_scale:
        core.on_teleop_gripper(float(gripper) / robot_map.gripper_scale)


def _apply_event(text, core, current, next_index, episodes, source, threshold):
    control = _control_event(text)
    if control == "arm":
        core.safety.arm()
    elif control == "disarm":
        core.safety.disarm()
    elif control == "reset":
        core.safety.reset()
    elif control in ("estop", "estop_released"):
        core.on_estop(control == "estop")
    elif control == "force_stop":
        # A bag that opens while the force stop is latched: latch it in replay too.
        core.safety.force_latched = True
        core.safety.armed = False
    event = parse_event(text)
    if event is None:
        return current, next_index
    if event["event"] == "start":
        if current is not None:
            episodes.append(current.finish(threshold))
        core.start_episode()
        current = _EpisodeAccumulator(str(source.path), next_index)
        next_index += 1
    elif event["event"] == "end" and current is not None:
        current.success = event.get("success")
        episodes.append(current.finish(threshold))
        current = None
    return current, next_index


def _label(success: bool | None) -> str:
    if success is None:
        return "?"
    return "yes" if success else "no"


def format_report(report: ReplayReport) -> str:
    """Format a replay report as a text table: one row per episode, the totals, the problems."""
    header = (
        f"{'bag':<28} {'ep':>3} {'steps':>5} {'succ':>5} {'int':>4} "
        + " ".join(f"{'mae_' + d:>11}" for d in DIMENSIONS)
        + f" {'max_err':>8} {'exact':>6} {'clamped':>7} {'diverged':>9}"
    )
    lines = [header, "-" * len(header)]
    for item in report.episodes:
        success = _label(item.success)
        diverged = "-" if item.first_divergence_step is None else f"step {item.first_divergence_step}"
        lines.append(
            f"{Path(item.bag).name[-28:]:<28} {item.episode:>3} {item.steps:>5} {success:>5} "
            f"{item.intervention_steps:>4} "
            + " ".join(f"{value:>11.2e}" for value in item.mean_abs_error)
            + f" {max(item.max_abs_error):>8.2e} {item.exact_steps:>6} {item.clamped_share:>7.1%} {diverged:>9}"
        )
    summary = report.to_dict()["summary"]
    lines.append("")
    lines.append(
        f"{summary['episodes']} episodes, {summary['diverged']} diverged (error > "
        f"{report.divergence_threshold:g} normalized units), {summary['exact_steps']} of "
        f"{summary['policy_steps']} policy steps reproduced exactly, "
        f"{summary['clamped_share']:.1%} of policy steps clamped by the safety layer "
        f"({summary['watchdog_steps']} watchdog stops), {summary['intervention_steps']} human intervention steps"
    )
    for problem in report.problems:
        lines.append(f"problem: {problem}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Open-loop replay in simulation
# ---------------------------------------------------------------------------------------------


@dataclass
class SimReplay:
    """Trajectory discrepancy between a logged episode and its open-loop replay in simulation.

    Attributes:
        episode_id: Id of the logged episode.
        steps: Steps replayed.
        ee_rmse_m: RMS distance between simulated and logged end-effector positions (m).
        ee_path_rmse_m: The same after removing each trajectory's start position (m), so an
            offset at the start does not hide or inflate how the motion itself differs.
        object_rmse_m: RMS distance between simulated and logged object positions (m).
        object_final_error_m: Distance between the final object positions (m).
        success_logged: The logged success label, or None.
        success_sim: Whether the simulated replay ended in success.
    """

    episode_id: str
    steps: int
    ee_rmse_m: float
    ee_path_rmse_m: float
    object_rmse_m: float
    object_final_error_m: float
    success_logged: bool | None
    success_sim: bool


def replay_in_sim(
    path: str | Path,
    robot_map: RobotMap,
    env_cfg: EnvConfig,
    *,
    reality: str | Path | None = None,
    logs_cfg=None,
    seed: int = 0,
) -> tuple[list[SimReplay], list[Problem]]:
    """Replay the logged actions of every episode under `path` open loop in simulation.

    Each episode resets the simulator with its context (object start and goal) and the logged
    first end-effector position, then steps every logged normalized action; the success label is
    read after the last one, as when the episode was recorded. The simulation stops early if its
    episode ends first.

    Open loop, the replay does not reproduce a logged success reliably even under the profile
    that recorded it: the profile's action noise, sensor noise and latency are drawn anew, the
    object's start yaw is not logged (the replay starts it at 0), and the logged start position
    holds the proprioception noise. A grasp that closed with a few millimetres to spare can miss.
    `SIM_REPLAY_NOTE` says so in the reports.

    Args:
        path: Logs to read with `load_episodes`.
        robot_map: Topic map of the logs.
        env_cfg: Task and timing; its control rate should match the map's.
        reality: A physics profile YAML; None runs nominal physics.
        logs_cfg: Settings for reading the logs.
        seed: Seed of the simulator resets.

    Raises:
        LogReadError: `path` does not exist or contains no recordings or no episodes.
    """
    from ast_robot.envs import make_env
    from ast_robot.real_bridge.logs import load_episodes

    if abs(env_cfg.control_hz - robot_map.control_hz) > 1e-9:
        logger.warning(
            "the simulator runs at %.1f Hz but the robot map at %.1f Hz; the replayed actions "
            "will last a different time than on the robot", env_cfg.control_hz, robot_map.control_hz,
        )
    loaded = load_episodes(path, robot_map, logs_cfg=logs_cfg)
    if not loaded.episodes:
        raise LogReadError(f"no episodes could be read from {path}; run `ast-robot logs inspect {path}`")
    env = make_env(env_cfg.task, env_cfg, None, reality=reality)
    results = []
    try:
        for index, episode in enumerate(loaded.episodes):
            results.append(_replay_episode_in_sim(env, episode, seed + index))
    finally:
        env.close()
    return results, list(loaded.problems)


def _replay_episode_in_sim(env, episode, seed: int) -> SimReplay:
    options = {"context": episode.context}
    start_m = np.asarray(episode.obs["proprio"][0, :3], dtype=np.float64)
    if np.isfinite(start_m).all():
        # Without it the simulator draws its own start within a few cm of home, and the
        # open-loop motion misses the object by that offset.
        options["tcp_start"] = start_m
    obs, info = env.reset(seed=seed, options=options)
    sim_ee, sim_object = [], []
    success = bool(info["is_success"])
    # obs[t] is what the robot saw before action[t]; success is judged after the last action.
    for action in episode.actions:
        sim_ee.append(obs["proprio"][:3])
        sim_object.append(obs["object"][:3])
        obs, _reward, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
        success = bool(info["is_success"])
        if terminated or truncated:
            break
    steps = len(sim_ee)
    sim_ee = np.asarray(sim_ee, dtype=np.float64)
    sim_object = np.asarray(sim_object, dtype=np.float64)
    real_ee = episode.obs["proprio"][:steps, :3].astype(np.float64)
    real_object = episode.obs["object"][:steps, :3].astype(np.float64)

    def rms(a: np.ndarray, b: np.ndarray) -> float:
        distance = np.linalg.norm(a - b, axis=1)
        distance = distance[np.isfinite(distance)]
        return float(np.sqrt(np.mean(distance**2))) if distance.size else float("nan")

    return SimReplay(
        episode_id=episode.id,
        steps=steps,
        ee_rmse_m=rms(sim_ee, real_ee),
        ee_path_rmse_m=rms(sim_ee - sim_ee[0], real_ee - real_ee[0]),
        object_rmse_m=rms(sim_object, real_object),
        object_final_error_m=float(np.linalg.norm(sim_object[-1] - real_object[-1])),
        success_logged=episode.success,
        success_sim=success,
    )


SIM_REPLAY_NOTE = (
    "open-loop replay: the profile's action noise, sensor noise and latency are drawn anew and the "
    "object's start yaw is not logged, so a logged success can fail in sim (and the reverse) "
    "without any bug; compare the trajectory gaps, not only the success counts"
)
"""Why open-loop success in sim can differ from the logged label; printed with every sim report."""


def sim_summary(results: list[SimReplay]) -> dict:
    """Counts of a `replay_in_sim` run: episodes, logged and simulated successes, agreement."""
    labelled = [item for item in results if item.success_logged is not None]
    return {
        "episodes": len(results),
        "success_logged": sum(bool(item.success_logged) for item in results),
        "success_sim": sum(item.success_sim for item in results),
        "success_agree": sum(item.success_sim == item.success_logged for item in labelled),
        "labelled": len(labelled),
        "note": SIM_REPLAY_NOTE,
    }


def format_sim_report(results: list[SimReplay], problems: list[Problem]) -> str:
    """Format `replay_in_sim` results as a text table."""
    header = (
        f"{'episode':<24} {'steps':>5} {'ee_rmse_m':>10} {'ee_path_m':>10} {'obj_rmse_m':>10} "
        f"{'obj_final_m':>11} {'succ_log':>8} {'succ_sim':>8}"
    )
    lines = [header, "-" * len(header)]
    for item in results:
        logged = _label(item.success_logged)
        lines.append(
            f"{item.episode_id[-24:]:<24} {item.steps:>5} {item.ee_rmse_m:>10.4f} {item.ee_path_rmse_m:>10.4f} "
            f"{item.object_rmse_m:>10.4f} {item.object_final_error_m:>11.4f} {logged:>8} "
            f"{'yes' if item.success_sim else 'no':>8}"
        )
    if results:
        lines.append("")
        lines.append(
            f"{len(results)} episodes: mean end-effector RMS gap {np.mean([r.ee_rmse_m for r in results]):.4f} m, "
            f"mean object RMS gap {np.nanmean([r.object_rmse_m for r in results]):.4f} m"
        )
        summary = sim_summary(results)
        lines.append(
            f"success: {summary['success_logged']} logged, {summary['success_sim']} in sim; "
            f"labels agree on {summary['success_agree']} of {summary['labelled']}"
        )
        lines.append(f"note: {SIM_REPLAY_NOTE}")
    for problem in problems:
        lines.append(f"problem: {problem}")
    return "\n".join(lines) + "\n"
