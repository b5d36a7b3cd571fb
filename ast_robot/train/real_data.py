"""Real-robot episodes for a training run: loading, reporting problems, feedback and corrections."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ast_robot.config import Config
from ast_robot.episode import Episode
from ast_robot.errors import LogReadError, TrainError

logger = logging.getLogger(__name__)


@dataclass
class RealData:
    """The real-robot data of a run, read from `--real-log`.

    Attributes:
        path: The directory given.
        episodes: Episodes read from the good bags.
        problems: `Problem` records from the log reader (bad bags, gaps, unreadable topics).
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
        bags_with_problems = sorted({p.bag for p in self.problems})
        kinds = Counter(p.kind for p in self.problems)
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
            "load_summary": self.load_summary.as_dict() if self.load_summary is not None else None,
        }

    def write_report(self, path: Path) -> None:
        details = [problem.as_dict() for problem in self.problems]
        path.write_text(json.dumps({**self.report(), "problem_details": details}, indent=2) + "\n")


def load_real_data(real_log: str | Path, config: Config) -> RealData:
    """Read every bag under `real_log` and build the physical-feedback index.

    Bags that cannot be read are reported (logged and listed in the run's ``real_logs.json``)
    and the run trains on the rest.

    Raises:
        LogReadError: When `real_log` does not exist, is empty or contains no bags.
        TrainError: When no bag yields a usable episode.
    """
    from ast_robot.feedback import RealFeedbackIndex
    from ast_robot.real_bridge.logs import load_episodes, resolve_robot_map

    path = Path(real_log)
    if not path.exists():
        raise LogReadError(
            f"--real-log {path}: no such file or directory; give the directory holding the rosbag2 recordings"
        )
    if path.is_dir() and not any(path.iterdir()):
        raise LogReadError(
            f"--real-log {path}: the directory is empty; record logs into it first (for example with "
            f"'ast-robot record-standin --out {path}') or train without --real-log"
        )
    robot_map = resolve_robot_map(None, config.logs)
    result = load_episodes(path, robot_map, logs_cfg=config.logs)

    problems = list(result.problems)
    skipped = [bag for bag in result.bags if bag.data is None or not bag.episodes]
    for bag in skipped:
        reasons = "; ".join(p.message for p in bag.problems) or "no episode found"
        logger.warning("%s: no episode, left out: %s", bag.source.path, reasons)
    if not result.episodes:
        first = f"; first problem: {problems[0]}" if problems else ""
        raise TrainError(
            f"--real-log {path}: none of the {len(result.bags)} bags contains a usable episode "
            f"({result.summary}){first}. Check the bags with 'ast-robot logs inspect', or train without --real-log"
        )
    if skipped:
        logger.warning(
            "%s: %d of %d bags gave no episode and are left out; training on the %d episodes of the "
            "others (details in the run's real_logs.json)",
            path, len(skipped), len(result.bags), len(result.episodes),
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

