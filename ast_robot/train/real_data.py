"""Real-robot episodes for a training run: loading, reporting problems, feedback and corrections."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ast_robot.config import Config, resolve_config_path
from ast_robot.episode import Episode
from ast_robot.errors import LogReadError, TrainError

logger = logging.getLogger(__name__)


@dataclass
class RealData:
    """What a run takes from `--real-log`.

    Attributes:
        path: The directory given.
        episodes: Episodes read from the good bags.
        problems: Problems reported by the log reader (bad bags, gaps, unreadable topics).
        load_summary: The log reader's counts of loaded, split and skipped episodes.
        feedback: The `RealFeedbackIndex` built from `episodes`.
        corrections: Episodes (or parts) with human-corrected action labels, used as training data.
    """

    path: Path
    episodes: list[Episode]
    problems: list = field(default_factory=list)
    load_summary: object = None
    feedback: object = None
    corrections: list[Episode] = field(default_factory=list)

    def report(self) -> dict:
        """Counts and problems as plain data for summary.json."""
        bags_with_problems = sorted({str(getattr(p, "bag", "")) for p in self.problems if getattr(p, "bag", None)})
        kinds = Counter(str(getattr(p, "kind", "unknown")) for p in self.problems)
        return {
            "path": str(self.path),
            "episodes": len(self.episodes),
            "successes": sum(1 for ep in self.episodes if ep.success is True),
            "failures": sum(1 for ep in self.episodes if ep.success is False),
            "episodes_with_interventions": sum(1 for ep in self.episodes if ep.interventions.any()),
            "correction_episodes": len(self.corrections),
            "problems": len(self.problems),
            "problem_kinds": dict(kinds),
            "bags_with_problems": bags_with_problems,
            "load_summary": _plain(self.load_summary),
        }

    def write_report(self, path: Path) -> None:
        details = [
            {key: _plain(getattr(problem, key, None)) for key in ("bag", "topic", "time", "message", "kind")}
            for problem in self.problems
        ]
        path.write_text(json.dumps({**self.report(), "problem_details": details}, indent=2) + "\n")


def load_real_data(real_log: str | Path, config: Config) -> RealData:
    """Read every bag under `real_log` and build the physical-feedback index.

    Bags that cannot be read are reported (logged and listed in the run's ``real_logs.json``)
    and the run trains on the rest.

    Raises:
        LogReadError: When `real_log` does not exist, is empty or holds no bags.
        TrainError: When no bag yields a usable episode.
    """
    from ast_robot.feedback import RealFeedbackIndex
    from ast_robot.real_bridge.logs import load_episodes
    from ast_robot.real_bridge.topic_map import RobotMap

    path = Path(real_log)
    if not path.exists():
        raise LogReadError(f"--real-log {path}: no such file or directory; give the directory holding the rosbag2 recordings")
    if path.is_dir() and not any(path.iterdir()):
        raise LogReadError(
            f"--real-log {path}: the directory is empty; record logs into it first (for example with "
            f"'ast-robot record-standin --out {path}') or train without --real-log"
        )
    robot_map = RobotMap.load(resolve_config_path(config.logs.robot))
    result = load_episodes(path, robot_map, logs_cfg=config.logs)

    problems = list(result.problems)
    if problems:
        bags = sorted({str(getattr(p, "bag", "?")) for p in problems})
        logger.warning(
            "%s: %d problems in %d bags; training on the %d episodes that loaded (details in the "
            "run's real_logs.json)", path, len(problems), len(bags), len(result.episodes),
        )
        for problem in problems[:10]:
            logger.warning("  %s: %s", getattr(problem, "bag", "?"), getattr(problem, "message", problem))
    if not result.episodes:
        first = f"; first problem: {getattr(problems[0], 'message', problems[0])}" if problems else ""
        raise TrainError(
            f"--real-log {path}: no usable episode in any bag ({len(problems)} problems){first}. "
            "Check the bags with 'ast-robot logs inspect', or train without --real-log"
        )

    feedback = RealFeedbackIndex.from_episodes(result.episodes, config.significance)
    corrections = list(feedback.corrections())
    logger.info(
        "real logs %s: %d episodes, %d with human corrections", path, len(result.episodes), len(corrections)
    )
    return RealData(
        path=path,
        episodes=list(result.episodes),
        problems=problems,
        load_summary=result.summary,
        feedback=feedback,
        corrections=corrections,
    )


def _plain(value):
    """Convert dataclasses, paths and other objects into JSON-safe values."""
    import dataclasses

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return str(value)
