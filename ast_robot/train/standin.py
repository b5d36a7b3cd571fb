"""The stand-in robot: recording rosbag2 logs from a simulator that runs a reality profile.

Real logs are what steer training, and a new user has no robot yet, so this module produces logs
with the same topics a real robot records. The simulator runs a reality profile (fixed physics that
training never samples exactly). The robot's controller is either the scripted expert with
injected mistakes or a trained checkpoint. A scripted human supervisor watches and takes over when
failure is imminent. It reacts when the executed command has deviated from what the expert would
do for a few consecutive steps (the supervisor's reaction time), or when the wrist force exceeds a
limit.
A share of supervisors is inattentive and never takes over, so the logs hold real failures too.
Episodes are written through the log writer with the robot's topic map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ast_robot.config import Config, resolve_config_path
from ast_robot.episode import OBS_GROUPS, Episode

logger = logging.getLogger(__name__)


@dataclass
class SupervisorSettings:
    """Settings of the scripted supervisor and of the mistakes injected into the expert controller."""

    mistake_prob: float = 0.01  # per-step probability that the expert starts an injected mistake
    mistake_steps: int = 8  # duration of one injected mistake [control steps]
    attentive_probability: float = 0.6  # share of episodes whose supervisor takes over at all
    deviation_threshold: float = 0.6  # distance between command and clean expert action (normalized units)
    reaction_steps: int = 3  # consecutive deviating steps before a takeover [control steps]
    hold_steps: int = 12  # control steps the supervisor keeps control once it takes over
    force_limit_n: float = 40.0  # wrist force that triggers a takeover [N]


class CheckpointController:
    """Drives the robot with a trained policy from a training checkpoint."""

    def __init__(self, checkpoint: str | Path, *, task: str | None = None):
        from ast_robot.train.policy_io import check_checkpoint_task, load_robot_checkpoint, policy_from_checkpoint

        state = load_robot_checkpoint(checkpoint)
        if task is not None:
            check_checkpoint_task(state, task, checkpoint)
        self.policy, self.history = policy_from_checkpoint(state)
        self._obs: dict[str, list[np.ndarray]] = {name: [] for name in OBS_GROUPS}

    def reset(self) -> None:
        self._obs = {name: [] for name in OBS_GROUPS}

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        for name in OBS_GROUPS:
            self._obs[name].append(np.asarray(obs[name], np.float32))
            del self._obs[name][: -self.history]
        action, _std = self.policy.act({name: np.stack(steps) for name, steps in self._obs.items()})
        return np.clip(np.asarray(action, np.float32), -1.0, 1.0)


class SupervisedActor:
    """The robot controller under a scripted human supervisor, as one actor for `run_episode`.

    The controller is the expert's `act` (with injected mistakes) or a checkpoint's policy. The
    supervisor compares each command with the expert's clean action (`label`) and takes over for
    `hold_steps` steps when they differ by more than `deviation_threshold` for `reaction_steps`
    consecutive steps, or when the wrist force exceeds `force_limit_n`. While it is in control,
    the executed command is the clean expert action and the step is flagged as an intervention.
    """

    def __init__(self, expert, controller, settings: SupervisorSettings, rng: np.random.Generator):
        self.expert = expert
        self.controller = controller
        self.settings = settings
        self.rng = rng
        self.interventions: list[bool] = []
        self._attentive = True
        self._deviating = 0
        self._holding = 0

    def reset(self, seed: int | None = None) -> None:
        self._attentive = bool(self.rng.random() < self.settings.attentive_probability)
        self.interventions = []
        self._deviating = 0
        self._holding = 0
        self.expert.reset(seed=seed)
        if self.controller is not None:
            self.controller.reset()

    def act(self, obs: dict[str, np.ndarray], info: dict) -> np.ndarray:
        clean = np.asarray(self.expert.label(obs, info), np.float32)
        if self.controller is None:
            command = np.asarray(self.expert.act(obs, info), np.float32)
        else:
            command = self.controller.act(obs)

        deviation = float(np.linalg.norm(command - clean))
        self._deviating = self._deviating + 1 if deviation > self.settings.deviation_threshold else 0
        force_n = float(np.linalg.norm(np.asarray(obs["force"][:3], np.float64)))
        if self._attentive and (
            self._deviating >= self.settings.reaction_steps or force_n > self.settings.force_limit_n
        ):
            self._holding = self.settings.hold_steps
        intervening = self._holding > 0
        if intervening:
            self._holding -= 1
        self.interventions.append(intervening)
        return clean if intervening else command

    def step_stats(self) -> dict[str, np.ndarray]:
        return self.expert.step_stats() if self.controller is None else {}


def record_standin(
    out: str | Path,
    config: Config,
    *,
    episodes: int,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    reality: str | Path | None = "reality/standin.yaml",
    episodes_per_bag: int = 5,
    settings: SupervisorSettings | None = None,
    progress: bool = True,
) -> dict:
    """Record `episodes` stand-in robot episodes as rosbag2 bags under `out`.

    Each bag holds up to `episodes_per_bag` consecutive episodes. Returns counts: episodes,
    successes, episodes with interventions, intervened steps and the bag paths.
    """
    from tqdm.auto import tqdm

    from ast_robot.envs import make_env, make_expert
    from ast_robot.envs.rollout import run_episode
    from ast_robot.real_bridge.topic_map import RobotMap
    from ast_robot.real_bridge.writer import EpisodeWriter

    from ast_robot.errors import StandinError

    if episodes < 1:
        raise StandinError(f"--episodes must be at least 1, got {episodes}")
    if episodes_per_bag < 1:
        raise StandinError(f"--episodes-per-bag must be at least 1, got {episodes_per_bag}")
    settings = settings or SupervisorSettings()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StandinError(f"--out {out} is a file; the bags need a directory (a new or existing folder)")
    controller = CheckpointController(checkpoint, task=config.env.task) if checkpoint is not None else None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StandinError(f"cannot create the output directory --out {out}: {error.strerror or error}") from error
    reality_path = None if reality is None else str(resolve_config_path(reality))
    robot_map = RobotMap.load(resolve_config_path(config.logs.robot))
    env = make_env(config.env.task, config.env, config.randomization, reality=reality_path)
    mistake_prob = settings.mistake_prob if checkpoint is None else 0.0
    expert = make_expert(config.env.task, env, mistake_prob=mistake_prob, mistake_steps=settings.mistake_steps)
    rng = np.random.default_rng([seed, 0x5DA])
    actor = SupervisedActor(expert, controller, settings, rng)

    recorded: list[Episode] = []
    bags: list[str] = []
    try:
        for bag_index, first in enumerate(range(0, episodes, episodes_per_bag)):
            bag_path = out / f"standin_{seed:04d}_{bag_index:03d}"
            with EpisodeWriter(bag_path, robot_map) as writer:
                for episode_index in tqdm(
                    range(first, min(first + episodes_per_bag, episodes)),
                    desc=f"record {bag_path.name}", disable=not progress, leave=False,
                ):
                    episode = run_episode(env, actor, seed=int(rng.integers(2**31)))
                    mistakes = episode.step_stats.get("expert_mistake")
                    # Human-corrected labels exist only where the supervisor was in control,
                    # and there the executed action is the supervisor's command.
                    episode = episode.replace(
                        interventions=np.asarray(actor.interventions, bool),
                        action_labels=None,
                        info={
                            **episode.info,
                            "episode_index": episode_index,
                            "mistake_steps": 0 if mistakes is None else int(mistakes.sum()),
                        },
                    )
                    writer.write(episode)
                    recorded.append(episode)
            bags.append(str(bag_path))
    finally:
        env.close()

    summary = {
        "episodes": len(recorded),
        "successes": sum(1 for ep in recorded if ep.success),
        "episodes_with_interventions": sum(1 for ep in recorded if ep.interventions.any()),
        "intervened_steps": int(sum(int(ep.interventions.sum()) for ep in recorded)),
        "episodes_with_mistakes": sum(1 for ep in recorded if ep.info["mistake_steps"] > 0),
        "bags": bags,
        "reality": reality_path,
    }
    logger.info(
        "recorded %d episodes in %d bags under %s: %d successes, %d with interventions",
        summary["episodes"], len(bags), out, summary["successes"], summary["episodes_with_interventions"],
    )
    return summary

