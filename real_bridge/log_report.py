"""`ast-robot logs inspect`: a per-bag report of what a log path contains and what is wrong with it.

For every recording: storage and metadata version, duration, each topic with its type, message
count and rate, the episodes found (length, success, intervention steps, peak force) and every
problem found while loading. `format_table` renders it for people, `as_json` for machines.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ast_robot.config import LogsConfig
from ast_robot.errors import LogReadError
from ast_robot.real_bridge.discovery import find_bags
from ast_robot.real_bridge.logs import LoadSummary, load_bag
from ast_robot.real_bridge.problems import Problem
from ast_robot.real_bridge.topic_map import RobotMap


@dataclass
class TopicReport:
    """One topic of a recording; `rate_hz` is None with fewer than two messages."""

    topic: str
    msgtype: str
    count: int
    rate_hz: float | None
    role: str | None


@dataclass
class EpisodeReport:
    """One loaded episode."""

    id: str
    steps: int
    duration_s: float
    success: bool | None
    intervention_steps: int
    peak_force_n: float | None
    split: bool


@dataclass
class BagReport:
    """Everything `logs inspect` shows for one recording."""

    path: str
    storage: str | None
    version: int | None
    duration_s: float | None
    message_count: int | None
    topics: list[TopicReport] = field(default_factory=list)
    episodes: list[EpisodeReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    summary: LoadSummary = field(default_factory=LoadSummary)


@dataclass
class LogReport:
    """The reports of every recording under a path, the problems of the search and the totals."""

    path: str
    robot: str
    bags: list[BagReport]
    problems: list[Problem]
    summary: LoadSummary


def inspect_logs(path: str | Path, robot_map: RobotMap, logs_cfg: LogsConfig | None = None) -> LogReport:
    """Load every recording under `path` and describe it; unlike `load_episodes`, a mapped
    topic that cannot be decoded is reported on its bag instead of raised.

    Raises:
        LogReadError: `path` does not exist or contains no recordings.
    """
    logs_cfg = logs_cfg or LogsConfig()
    sources, problems = find_bags(path)
    summary = LoadSummary()
    bags = []
    for source in sources:
        try:
            result = load_bag(source, robot_map, logs_cfg)
        except LogReadError as error:
            problem = Problem(str(source.path), "undecodable", str(error))
            bags.append(BagReport(str(source.path), None, None, None, None, problems=[problem],
                                  summary=LoadSummary(bags_found=1, bags_skipped=1, skipped_bags={"undecodable": 1})))
            summary.add(bags[-1].summary)
            continue
        summary.add(result.summary)
        data = result.data
        report = BagReport(
            path=str(source.path),
            storage=data.storage if data else None,
            version=data.version if data else None,
            duration_s=data.duration_ns / 1e9 if data else None,
            message_count=data.message_count if data else None,
            problems=result.problems,
            summary=result.summary,
        )
        if data is not None:
            report.topics = _topic_reports(data, robot_map)
        report.episodes = [
            EpisodeReport(
                id=episode.id,
                steps=len(episode),
                duration_s=episode.duration_s,
                success=episode.success,
                intervention_steps=int(episode.interventions.sum()),
                peak_force_n=episode.peak_force_n,
                split=bool(episode.flags.get("split_at_gap", False)),
            )
            for episode in result.episodes
        ]
        bags.append(report)
    robot = str(robot_map.path) if robot_map.path else robot_map.name
    return LogReport(str(path), robot, bags, problems, summary)


def _topic_reports(data, robot_map: RobotMap) -> list[TopicReport]:
    reports = []
    for topic, (msgtype, count) in sorted(data.topics.items()):
        role = robot_map.role_of(topic)
        stream = data.streams.get(role) if role else None
        rate = None
        if stream is not None and len(stream) >= 2:
            span = int(np.max(stream.log_ns) - np.min(stream.log_ns))
            rate = (len(stream) - 1) / (span / 1e9) if span > 0 else None
        elif count >= 2 and data.duration_ns > 0:
            rate = (count - 1) / (data.duration_ns / 1e9)  # NOTE: average over the whole recording
        reports.append(TopicReport(topic, msgtype, count, rate, role))
    return reports


def as_json(report: LogReport) -> str:
    """Render the report as JSON text (problems as objects with bag, kind, message, topic, time_ns)."""
    return json.dumps(asdict(report), indent=2, default=str)


def format_table(report: LogReport) -> str:
    """Render the report as plain-text tables, one block per recording."""
    lines = [f"logs: {report.path}   robot map: {report.robot}", ""]
    for problem in report.problems:
        lines.append(f"  ! {problem}")
    for bag in report.bags:
        lines.extend(_bag_block(bag))
        lines.append("")
    lines.append(f"total: {report.summary}")
    return "\n".join(lines) + "\n"


def _bag_block(bag: BagReport) -> list[str]:
    version = f" v{bag.version}" if bag.version is not None else ""
    duration = f"{bag.duration_s:.2f} s" if bag.duration_s is not None else "?"
    lines = [f"== {bag.path}", f"   storage: {bag.storage or '?'}{version}   duration: {duration}   messages: {bag.message_count}"]
    if bag.topics:
        rows = [("topic", "type", "count", "rate Hz", "role")]
        for topic in bag.topics:
            rate = f"{topic.rate_hz:.1f}" if topic.rate_hz is not None else "-"
            rows.append((topic.topic, topic.msgtype, str(topic.count), rate, topic.role or "(unmapped)"))
        lines.extend("   " + line for line in _columns(rows))
    if bag.episodes:
        rows = [("episode", "steps", "duration s", "success", "intervention steps", "peak force N")]
        for episode in bag.episodes:
            success = {None: "?", True: "yes", False: "no"}[episode.success]
            force = f"{episode.peak_force_n:.2f}" if episode.peak_force_n is not None else "no data"
            name = episode.id + (" (split)" if episode.split else "")
            rows.append((name, str(episode.steps), f"{episode.duration_s:.2f}", success, str(episode.intervention_steps), force))
        lines.append("")
        lines.extend("   " + line for line in _columns(rows))
    else:
        lines.append("   no episodes loaded")
    lines.append(f"   {bag.summary}")
    if bag.problems:
        lines.append(f"   problems ({len(bag.problems)}):")
        lines.extend(f"   - {_problem_line(problem)}" for problem in bag.problems)
    return lines


def _problem_line(problem: Problem) -> str:
    where = []
    if problem.topic:
        where.append(problem.topic)
    if problem.time_ns is not None:
        where.append(f"t={problem.time_ns / 1e9:.3f} s")
    if problem.episode is not None:
        where.append(f"episode {problem.episode}")
    prefix = f"[{problem.kind}]" + (f" {', '.join(where)}:" if where else "")
    return f"{prefix} {problem.message}"


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
