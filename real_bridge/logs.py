"""Loading real-robot rosbag2 recordings as `Episode(source="real")` objects.

`load_episodes(path, robot_map)` finds every recording under `path` (bag directories, standalone
``.mcap`` and ``.db3`` files, recursively) and decodes the topics named in the robot map. It puts
them on one clock, cuts episodes and resamples each onto the control-rate grid. It returns the
episodes with every problem found and a summary that accounts for each episode (loaded, split,
skipped and why). A recording that cannot be used is reported and skipped; the others still load.

Bag timestamps are nanoseconds (int64) throughout. `Episode.timestamps` are the same times in
seconds (float64) on the recording's clock, not shifted to start at 0. The one exception is an
episode that the writer moved in time to avoid an overlap, which reads back at its original
times (see ``time_offset_ns`` below).

Episode boundaries. JSON strings on the events topic: ``{"event": "start"}`` and
``{"event": "end", "success": true}``. An episode runs from a start to the next end, both
included. The writer in this package adds ``episode_id``, ``context``, ``domain_params`` and
``time_offset_ns`` to the start event and ``terminated`` / ``truncated`` / other flags to the
end event. Reading uses them when present. A recording (or a clock segment of one) without events
is one episode whose success comes from a labels file beside it (``labels.yaml``: bag name ->
true/false), else unknown.

Mapping onto the Episode model (per control step, from the latest message within the topic's
tolerance; "hold" topics use their latest message at any age):

| Episode field        | source                                                              |
|----------------------|---------------------------------------------------------------------|
| proprio[0:3]         | ee_pose position (m)                                                |
| proprio[3:6]         | ee_twist linear velocity (m/s) when mapped and recorded, else the   |
|                      | finite difference of the resampled ee position (numpy.gradient)     |
| proprio[6]           | gripper opening: sum of the finger joint positions (m), joint_states |
| proprio[7]           | opening velocity: sum of finger joint velocities (m/s), or the      |
|                      | finite difference of the opening when the message has no velocities |
| force, wrench        | wrench force xyz (N), torque xyz (N*m)                              |
| object[0:3]          | object_pose position (m)                                            |
| object[3:6]          | object position minus ee position (m)                               |
| goal                 | goal_pose position (m)                                              |
| actions[0:3]         | cmd_twist linear (m/s) / linear_scale_m_s, clipped to [-1, 1]      |
| actions[3]           | gripper_cmd / gripper_scale, clipped to [-1, 1]                     |
| interventions        | intervention Bool (held); False when not recorded                   |
| action_labels        | the logged commands when any step has an intervention (the human's  |
|                      | corrected actions on those steps), else None                        |
| context              | start event's ``context``, else first object position + first goal |
| success              | end event's ``success``, else the labels file, else None            |

Missing data never reaches the arrays as NaN: a step without a valid reading is filled with 0
and marked in `Episode.missing` under ``proprio`` (ee pose or velocity), ``gripper`` (opening),
``force``, ``object``, ``goal`` or ``actions`` (no command within tolerance, so the action is 0,
as a velocity controller that stops on a command timeout would do). ``info["commands_logged"]``
is False when the recording has no command messages at all. A NaN wrench reading marks that
step's force missing; `Episode.wrench` keeps NaN there, and is None when the recording has no
wrench messages at all.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from ast_robot.config import LogsConfig
from ast_robot.episode import Episode
from ast_robot.errors import EpisodeError
from ast_robot.real_bridge.alignment import Segment, build_segments, find_gaps, resample
from ast_robot.real_bridge.decode import BagData, parse_event, read_bag
from ast_robot.real_bridge.discovery import BagSource, find_bags
from ast_robot.real_bridge.problems import BagSkipped, Problem
from ast_robot.real_bridge.topic_map import RobotMap

logger = logging.getLogger(__name__)

__all__ = ["BagResult", "LoadResult", "LoadSummary", "Problem", "load_bag", "load_episodes", "resolve_robot_map"]


@dataclass
class LoadSummary:
    """Counts that account for every bag and episode found.

    ``episodes_found + extra_pieces == episodes_loaded + episodes_skipped`` always holds:
    an episode split at gaps into n pieces adds n - 1 extra pieces.

    Attributes:
        bags_found: Recordings found under the path.
        bags_read: Recordings that were opened and decoded.
        bags_skipped: Recordings that could not be used; see `skipped_bags` for why.
        episodes_found: Episodes delimited by events (or whole recordings without events).
        episodes_split: Episodes cut into pieces at gaps.
        extra_pieces: Pieces added by those splits.
        episodes_loaded: Episodes returned.
        episodes_skipped: Episodes or pieces dropped; see `skipped_episodes` for why.
        skipped_bags: Reason -> count.
        skipped_episodes: Reason -> count.
        messages_decoded: Messages of mapped topics decoded.
        steps_loaded: Control steps in the returned episodes.
    """

    bags_found: int = 0
    bags_read: int = 0
    bags_skipped: int = 0
    episodes_found: int = 0
    episodes_split: int = 0
    extra_pieces: int = 0
    episodes_loaded: int = 0
    episodes_skipped: int = 0
    skipped_bags: dict[str, int] = field(default_factory=dict)
    skipped_episodes: dict[str, int] = field(default_factory=dict)
    messages_decoded: int = 0
    steps_loaded: int = 0

    def add(self, other: LoadSummary) -> None:
        for name, value in asdict(other).items():
            if isinstance(value, dict):
                merged = Counter(getattr(self, name))
                merged.update(value)
                setattr(self, name, dict(merged))
            else:
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        text = (
            f"{self.bags_read}/{self.bags_found} bags read, {self.episodes_loaded} episodes loaded "
            f"({self.steps_loaded} steps) of {self.episodes_found} found, {self.episodes_split} split, "
            f"{self.episodes_skipped} skipped"
        )
        reasons = {**{f"bag: {k}": v for k, v in self.skipped_bags.items()}, **self.skipped_episodes}
        if reasons:
            text += " (" + ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items())) + ")"
        return text


@dataclass
class LoadResult:
    """Episodes loaded from a log path, with the problems found and a summary."""

    episodes: list[Episode]
    problems: list[Problem]
    summary: LoadSummary
    bags: list[BagResult] = field(default_factory=list)


@dataclass
class BagResult:
    """Result of loading one recording: its data (None when skipped), episodes, problems, counts."""

    source: BagSource
    data: BagData | None
    episodes: list[Episode]
    problems: list[Problem]
    summary: LoadSummary


@dataclass
class _Window:
    """One episode's time span inside a clock segment, before gap handling."""

    index: int
    segment: Segment
    start_ns: int
    end_ns: int
    success: bool | None
    start_event: dict
    end_event: dict | None


def load_episodes(path: str | Path, robot_map: RobotMap | str | Path, *, logs_cfg: LogsConfig | None = None) -> LoadResult:
    """Load every recording under `path` as real episodes.

    Args:
        path: A bag directory, a ``.mcap`` / ``.db3`` file, or a directory searched recursively.
        robot_map: The topic map, or a path to one.
        logs_cfg: Gap, clock-jump and labels settings; defaults to `LogsConfig()`.

    Returns:
        The episodes in bag path order, every problem found, and a summary.

    Raises:
        LogReadError: `path` does not exist or contains no recordings, or a mapped topic's type
            cannot be decoded (the message names the bag, topic and type and how to register it).
    """
    logs_cfg = logs_cfg or LogsConfig()
    if not isinstance(robot_map, RobotMap):
        robot_map = RobotMap.load(robot_map)
    sources, problems = find_bags(path)
    summary = LoadSummary()
    episodes: list[Episode] = []
    bags: list[BagResult] = []

    for source in tqdm(sources, desc="reading bags", unit="bag", disable=len(sources) < 5, leave=False):
        result = load_bag(source, robot_map, logs_cfg)
        bags.append(result)
        episodes.extend(result.episodes)
        problems.extend(result.problems)
        summary.add(result.summary)

    logger.info("loaded logs from %s: %s", path, summary)
    for problem in problems:
        logger.debug("log problem: %s", problem)
    return LoadResult(episodes=episodes, problems=problems, summary=summary, bags=bags)


def load_bag(source: BagSource, robot_map: RobotMap, logs_cfg: LogsConfig) -> BagResult:
    """Load the episodes of one recording; a recording that cannot be used gives no episodes
    and a problem saying why."""
    summary = LoadSummary(bags_found=1)
    bag = str(source.path)
    try:
        data = read_bag(source, robot_map)
    except BagSkipped as skipped:
        summary.bags_skipped = 1
        summary.skipped_bags = {skipped.kind: 1}
        problem = Problem(bag, skipped.kind, skipped.message, topic=skipped.topic)
        logger.warning("skipping bag: %s", problem)
        return BagResult(source, None, [], [problem], summary)

    problems = data.problems
    summary.bags_read = 1
    summary.messages_decoded = sum(len(stream) for stream in data.streams.values())
    if data.file_out_of_order:
        problems.append(Problem(bag, "file_order", "messages are stored out of time order; they are read in time order"))

    if "ee_pose" not in data.streams or not len(data.streams["ee_pose"]):
        summary.bags_skipped, summary.bags_read = 1, 0
        summary.skipped_bags = {"no_ee_pose": 1}
        topic = robot_map.topics["ee_pose"].topic
        problems.append(Problem(bag, "no_ee_pose", "the end-effector pose topic has no messages, so no step can be built", topic=topic))
        return BagResult(source, data, [], problems, summary)

    segments = build_segments(data.streams, bag=bag, clock_jump_ns=round(logs_cfg.clock_jump_s * 1e9), problems=problems)
    windows = _find_windows(source, data, segments, logs_cfg, problems)
    summary.episodes_found = len(windows)

    episodes: list[Episode] = []
    skipped: Counter = Counter()
    for window in windows:
        pieces = _split_at_gaps(window, robot_map, logs_cfg, bag, problems)
        if pieces is None:
            skipped["gap_rejected"] += 1
            continue
        if len(pieces) > 1:
            summary.episodes_split += 1
            summary.extra_pieces += len(pieces) - 1
        for piece_index, (start_ns, end_ns) in enumerate(pieces):
            piece = piece_index if len(pieces) > 1 else None
            last_piece = piece_index == len(pieces) - 1
            try:
                episode, reason = _build_episode(source, data, window, start_ns, end_ns, piece, last_piece, robot_map, problems)
            except EpisodeError as error:
                # Reported, not raised, so that one malformed episode does not stop the others.
                problems.append(Problem(bag, "invalid_episode", f"{error}; skipped", time_ns=start_ns, episode=window.index))
                logger.warning("skipping an episode of %s: %s", bag, error)
                episode, reason = None, "invalid"
            if episode is None or len(episode) < logs_cfg.min_episode_steps:
                reason = reason or "too_short"
                skipped[reason] += 1
                if episode is not None:
                    problems.append(
                        Problem(
                            bag, "short_episode",
                            f"episode has {len(episode)} steps, fewer than logs.min_episode_steps="
                            f"{logs_cfg.min_episode_steps}; skipped", time_ns=start_ns, episode=window.index,
                        )
                    )
                continue
            episodes.append(episode)

    summary.episodes_loaded = len(episodes)
    summary.episodes_skipped = sum(skipped.values())
    summary.skipped_episodes = dict(skipped)
    summary.steps_loaded = sum(len(episode) for episode in episodes)
    return BagResult(source, data, episodes, problems, summary)


# ---------------------------------------------------------------------------------------------
# Episode windows
# ---------------------------------------------------------------------------------------------


def _find_windows(
    source: BagSource, data: BagData, segments: list[Segment], logs_cfg: LogsConfig, problems: list[Problem]
) -> list[_Window]:
    bag = str(source.path)
    events_by_segment = [_segment_events(segment, bag, problems) for segment in segments]
    has_events = any(events_by_segment)
    label = None if has_events else _label_success(source, logs_cfg, problems)
    windows: list[_Window] = []
    for segment, events in zip(segments, events_by_segment):
        if not events:
            windows.append(_Window(len(windows), segment, segment.start_ns, segment.end_ns, label, {}, None))
            continue

        open_start: tuple[int, dict] | None = None
        previous_end = segment.start_ns
        for t_ns, event in events:
            if event["event"] == "start":
                if open_start is not None:
                    problems.append(
                        Problem(bag, "unpaired_event", "a start event follows a start without an end; the earlier "
                                "episode ends just before the new start and counts as truncated",
                                topic=data.streams["events"].topic, time_ns=t_ns, episode=len(windows))
                    )
                    windows.append(_Window(len(windows), segment, open_start[0], t_ns - 1, None, open_start[1], {"truncated": True}))
                open_start = (t_ns, event)
            else:
                if open_start is None:
                    problems.append(
                        Problem(bag, "unpaired_event", "an end event without a start; the episode starts at the "
                                "previous end (or the start of the recording)",
                                topic=data.streams["events"].topic, time_ns=t_ns, episode=len(windows))
                    )
                    open_start = (previous_end, {})
                success = event.get("success")
                success = bool(success) if isinstance(success, bool) else None
                windows.append(_Window(len(windows), segment, open_start[0], t_ns, success, open_start[1], event))
                previous_end = t_ns + 1
                open_start = None
        if open_start is not None:
            problems.append(
                Problem(bag, "unpaired_event", "the recording ends inside an episode (no end event); the episode "
                        "runs to the last message and counts as truncated",
                        topic=data.streams["events"].topic, time_ns=open_start[0], episode=len(windows))
            )
            windows.append(_Window(len(windows), segment, open_start[0], segment.end_ns, None, open_start[1], {"truncated": True}))
    return windows


def _segment_events(segment: Segment, bag: str, problems: list[Problem]) -> list[tuple[int, dict]]:
    timed = segment.streams.get("events")
    if timed is None or not len(timed):
        return []
    events = []
    for t_ns, text in zip(timed.t_ns, timed.texts):
        event = parse_event(text)
        if event is None:
            problems.append(
                Problem(bag, "bad_event", f"ignored an event that is not a JSON object with an \"event\" key: {text[:80]!r}",
                        topic=timed.stream.topic, time_ns=int(t_ns))
            )
            continue
        if event["event"] not in ("start", "end"):
            continue  # other events (arm, stop, reset) do not delimit episodes
        stamp = event.get("stamp_ns")
        events.append((int(stamp) if isinstance(stamp, int) and stamp > 0 else int(t_ns), event))
    events.sort(key=lambda item: item[0])
    return events


def _label_success(source: BagSource, logs_cfg: LogsConfig, problems: list[Problem]) -> bool | None:
    """Look up the bag in the labels file beside it (or inside a bag directory)."""
    candidates = [source.path.parent / logs_cfg.labels_file]
    if source.kind == "dir":
        candidates.append(source.path / logs_cfg.labels_file)
    for labels_path in candidates:
        if not labels_path.is_file():
            continue
        try:
            labels = yaml.safe_load(labels_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            problems.append(Problem(str(labels_path), "bad_labels", f"cannot read labels file: {error}; success is unknown"))
            return None
        if not isinstance(labels, dict):
            problems.append(Problem(str(labels_path), "bad_labels", "labels file must map bag names to true/false"))
            return None
        names = [source.name, source.path.stem]
        for name in names:
            if name in labels:
                value = labels[name]
                if isinstance(value, dict):
                    value = value.get("success")
                if isinstance(value, bool):
                    return value
                problems.append(
                    Problem(str(labels_path), "bad_labels", f"label of '{name}' is {value!r}, expected true or false")
                )
                return None
    return None


# ---------------------------------------------------------------------------------------------
# Gaps
# ---------------------------------------------------------------------------------------------


def _split_at_gaps(
    window: _Window, robot_map: RobotMap, logs_cfg: LogsConfig, bag: str, problems: list[Problem]
) -> list[tuple[int, int]] | None:
    """Return the (start, end) ns spans of the window between gaps, or None to reject it."""
    streaming = [role for role, spec in robot_map.topics.items() if not spec.holds and role != "events"]
    gaps = find_gaps(window.segment, streaming, window.start_ns, window.end_ns, round(logs_cfg.max_gap_s * 1e9))
    if not gaps:
        return [(window.start_ns, window.end_ns)]
    action = "rejected" if logs_cfg.on_gap == "reject" else "split there"
    for topic, gap_start, gap_end in gaps:
        problems.append(
            Problem(
                bag, "gap",
                f"no message for {(gap_end - gap_start) / 1e9:.3f} s (logs.max_gap_s={logs_cfg.max_gap_s}); "
                f"episode {action}",
                topic=topic, time_ns=gap_start, episode=window.index,
            )
        )
    if logs_cfg.on_gap == "reject":
        return None

    pieces = []
    start = window.start_ns
    for _, gap_start, gap_end in gaps:
        if gap_start >= start:
            pieces.append((start, gap_start))
        start = max(start, gap_end)
    pieces.append((start, window.end_ns))
    return pieces


# ---------------------------------------------------------------------------------------------
# Building an Episode
# ---------------------------------------------------------------------------------------------


def _build_episode(
    source: BagSource,
    data: BagData,
    window: _Window,
    start_ns: int,
    end_ns: int,
    piece: int | None,
    last_piece: bool,
    robot_map: RobotMap,
    problems: list[Problem],
) -> tuple[Episode | None, str | None]:
    bag = str(source.path)
    segment = window.segment
    streams = segment.streams
    grid = _grid(segment, robot_map, start_ns, end_ns)
    if grid is None:
        problems.append(
            Problem(
                bag, "empty_episode",
                f"episode {window.index}{'' if piece is None else f' piece {piece}'} has no "
                f"{robot_map.topics['ee_pose'].topic} message between {start_ns / 1e9:.3f} s and "
                f"{end_ns / 1e9:.3f} s, so it has 0 steps; skipped",
                topic=robot_map.topics["ee_pose"].topic, time_ns=start_ns, episode=window.index,
            )
        )
        return None, "empty"
    seconds = grid / 1e9

    def sample(role: str) -> np.ndarray | None:
        """Resample a mapped role; None when it is unmapped or has no messages in the segment."""
        timed = streams.get(role)
        if timed is None or not len(timed):
            return None
        return resample(timed, grid, robot_map.topics[role].tolerance_ns)

    length = len(grid)
    missing: dict[str, np.ndarray] = {}

    ee = sample("ee_pose")
    missing["proprio"] = ~np.isfinite(ee).all(axis=1)
    twist = sample("ee_twist")
    if twist is not None and np.isfinite(twist).any():
        velocity = twist
    else:
        velocity = _finite_difference(ee, seconds)
    missing["proprio"] |= ~np.isfinite(velocity).all(axis=1)

    joints = sample("joint_states")
    if joints is None:
        gripper = np.full((length, 2), np.nan)
    else:
        gripper = joints.copy()
        no_velocity = ~np.isfinite(gripper[:, 1])
        if no_velocity.any():
            gripper[no_velocity, 1] = _finite_difference(gripper[:, :1], seconds)[no_velocity, 0]
    missing["gripper"] = ~np.isfinite(gripper).all(axis=1)

    wrench = sample("wrench")
    missing["force"] = np.ones(length, bool) if wrench is None else ~np.isfinite(wrench).all(axis=1)
    if wrench is not None:
        _report_nan_wrench(streams["wrench"], start_ns, end_ns, bag, window.index, problems)

    object_position = sample("object_pose")
    object_position = np.full((length, 3), np.nan) if object_position is None else object_position
    relative = object_position - ee
    missing["object"] = ~np.isfinite(relative).all(axis=1)
    goal = sample("goal_pose")
    goal = np.full((length, 3), np.nan) if goal is None else goal
    missing["goal"] = ~np.isfinite(goal).all(axis=1)

    actions, missing["actions"] = _actions(
        length, sample("cmd_twist"), sample("gripper_cmd"), robot_map, bag, window.index, problems, start_ns
    )
    intervention = sample("intervention")
    interventions = np.zeros(length, bool) if intervention is None else np.nan_to_num(intervention[:, 0]) > 0.5

    obs = {
        "proprio": np.concatenate([ee, velocity, gripper], axis=1),
        "force": np.zeros((length, 6)) if wrench is None else wrench,
        "object": np.concatenate([object_position, relative], axis=1),
        "goal": goal,
    }
    obs = {name: np.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0) for name, value in obs.items()}

    start_event = window.start_event
    end_event = window.end_event or {}
    context = _context(start_event, object_position, goal)
    flags = {
        name: bool(value)
        for name, value in end_event.items()
        if isinstance(value, bool) and name not in ("success",)
    }
    success = window.success if last_piece else None
    if piece is not None:
        flags["split_at_gap"] = True
        if not last_piece:
            flags["truncated"] = True
    offset = start_event.get("time_offset_ns", 0)
    offset = offset if isinstance(offset, int) else 0

    base_id = start_event.get("episode_id")
    episode_id = str(base_id) if isinstance(base_id, str) and base_id else f"{source.name}/ep{window.index}"
    if piece is not None:
        episode_id = f"{episode_id}.{piece}"
    info = {
        "bag": bag,
        "commands_logged": "cmd_twist" in streams and len(streams["cmd_twist"]) > 0,
        "storage": data.storage,
        "episode_index": window.index,
        "segment": segment.index,
    }
    if piece is not None:
        info["piece"] = piece
    if isinstance(start_event.get("source"), str):
        info["recorded_source"] = start_event["source"]
    domain_params = start_event.get("domain_params")
    domain_params = {str(k): float(v) for k, v in domain_params.items()} if isinstance(domain_params, dict) else {}

    episode = Episode(
        obs=obs,
        actions=actions,
        timestamps=(grid - offset) / 1e9,
        source="real",
        id=episode_id,
        action_labels=actions.copy() if interventions.any() else None,
        interventions=interventions,
        wrench=wrench,
        success=success,
        context=context,
        domain_params=domain_params,
        flags=flags,
        missing=missing,
        info=info,
    )
    return episode, None


def _grid(segment: Segment, robot_map: RobotMap, start_ns: int, end_ns: int) -> np.ndarray | None:
    """Control-rate grid times (int64 ns) from the first to the last ee pose inside the span."""
    reference = segment.streams["ee_pose"].between(start_ns, end_ns)
    if not len(reference):
        return None
    first, last = int(reference[0]), int(reference[-1])
    tolerance = robot_map.topics["ee_pose"].tolerance_ns or 0
    stop = min(end_ns, last + tolerance)
    steps = (stop - first) // robot_map.period_ns + 1
    return first + np.arange(steps, dtype=np.int64) * robot_map.period_ns


def _finite_difference(values: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Time derivative of (T, k) values sampled at `seconds`; zero for a single step."""
    if len(values) < 2:
        return np.zeros_like(values)
    return np.gradient(values, seconds, axis=0)


def _actions(
    length: int,
    twist: np.ndarray | None,
    gripper: np.ndarray | None,
    robot_map: RobotMap,
    bag: str,
    episode: int,
    problems: list[Problem],
    start_ns: int,
) -> tuple[np.ndarray, np.ndarray]:
    linear = np.full((length, 3), np.nan) if twist is None else twist / robot_map.linear_scale_m_s
    grip = np.full((length, 1), np.nan) if gripper is None else gripper / robot_map.gripper_scale
    actions = np.concatenate([linear, grip], axis=1)
    missing = ~np.isfinite(linear).all(axis=1)
    actions = np.nan_to_num(actions, nan=0.0, posinf=0.0, neginf=0.0)
    over = np.abs(actions) > 1.0 + 1e-6
    if over.any():
        problems.append(
            Problem(
                bag, "clipped",
                f"{int(over.any(axis=1).sum())} command(s) exceed the normalized range (largest |value| "
                f"{np.abs(actions).max():.3g}); clipped to [-1, 1]. Check command.linear_scale_m_s and "
                "command.gripper_scale in the robot map",
                time_ns=start_ns, episode=episode,
            )
        )
    return np.clip(actions, -1.0, 1.0), missing


def _context(start_event: dict, object_position: np.ndarray, goal: np.ndarray) -> np.ndarray:
    recorded = start_event.get("context")
    if isinstance(recorded, list) and len(recorded) == 6:
        try:
            return np.asarray(recorded, dtype=np.float32)
        except (TypeError, ValueError):
            pass
    context = np.zeros(6, np.float32)
    for offset, values in ((0, object_position), (3, goal)):
        valid = np.flatnonzero(np.isfinite(values).all(axis=1))
        if len(valid):
            context[offset:offset + 3] = values[valid[0]]
    return context


def _report_nan_wrench(timed, start_ns: int, end_ns: int, bag: str, episode: int, problems: list[Problem]) -> None:
    lo = np.searchsorted(timed.t_ns, start_ns, side="left")
    hi = np.searchsorted(timed.t_ns, end_ns, side="right")
    bad = ~np.isfinite(timed.values[lo:hi]).all(axis=1)
    if bad.any():
        problems.append(
            Problem(
                bag, "nan",
                f"{int(bad.sum())} wrench reading(s) hold NaN or Inf; force is marked missing on those steps",
                topic=timed.stream.topic, time_ns=int(timed.t_ns[lo + np.flatnonzero(bad)[0]]), episode=episode,
            )
        )


def resolve_robot_map(robot: str | Path | None, logs_cfg: LogsConfig | None = None) -> RobotMap:
    """Load the robot map named by `robot`, or by `logs_cfg.robot` when `robot` is None."""
    return RobotMap.load(robot if robot is not None else (logs_cfg or LogsConfig()).robot)
