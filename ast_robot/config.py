"""Typed configuration: one dataclass per component, loaded from YAML with strict validation.

A run's configuration is a `Config` with one section per component (`env`, `randomization`,
`significance`, `gate`, `policy`, `train`, `logs`, `vision`). Values come from, in order:

1. the dataclass defaults below,
2. a YAML file (`configs/<task>.yaml` for ``--env TASK``, or any file given by path),
3. ``--set section.key=value`` overrides, each value parsed as a YAML scalar.

Every field is declared with `param`, which records its help text, unit and allowed range. Loading
rejects unknown keys (suggesting the closest valid one), wrong types and out-of-range values with
a `ConfigError` that names the source file, the dotted key path, the bad value and what is
allowed. Cross-field checks live in each section's `check` method. `dump_yaml` writes a resolved
config back to YAML (with help and units as comments) that loads to an equal object.

To add a setting: add a `param(...)` field to the section's dataclass and the same key, with its
unit in a comment, to every task file in `configs/`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib.resources
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from ast_robot.errors import ConfigError

TASKS = ("pick_place", "reach", "push")

_MISSING = dataclasses.MISSING


def param(
    default: Any,
    *,
    help: str,
    unit: str | None = None,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> Any:
    """Declare a config field with its help text, unit and allowed numeric range.

    `low` and `high` bound a number, or every number inside a list or dict value.
    Mutable defaults (lists, dicts, dataclasses) are copied for each instance.
    """
    metadata = {
        "help": help,
        "unit": unit,
        "low": low,
        "high": high,
        "low_inclusive": low_inclusive,
        "high_inclusive": high_inclusive,
    }
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclass
class EnvConfig:
    """The simulated task: timing, action scaling and episode limits."""

    task: Literal["pick_place", "reach", "push"] = param("pick_place", help="task name")
    control_hz: float = param(20.0, help="control rate", unit="Hz", low=1.0, high=1000.0)
    timestep_s: float = param(
        0.002, help="MuJoCo physics timestep", unit="s", low=1e-4, high=0.02
    )
    max_steps: int = param(
        100, help="step limit per episode; reaching it truncates the episode", unit="control steps", low=1,
        high=1_000_000,
    )
    max_ee_speed_m_s: float = param(
        0.25, help="end-effector speed for a normalized action of 1", unit="m/s", low=0.0,
        low_inclusive=False, high=5.0,
    )
    success_threshold_m: float = param(
        0.05, help="object-to-goal (or gripper-to-goal for reach) distance that counts as success",
        unit="m", low=0.0, low_inclusive=False,
    )

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return max(1, round(1.0 / (self.control_hz * self.timestep_s)))

    def check(self, path: str) -> None:
        ratio = 1.0 / (self.control_hz * self.timestep_s)
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(
                f"{path}: control_hz={self.control_hz} and timestep_s={self.timestep_s} give "
                f"{ratio:.4f} physics steps per control step; choose values whose ratio is a whole number"
            )


MIN_FRICTION = 1e-5
"""MuJoCo's mjMINMU: smaller friction coefficients are silently raised to this value."""

MAX_FRICTION = 3.0
"""Largest friction coefficient accepted; real material pairs stay below about 1.5, so larger
values are rejected as likely typos."""


def _range_param(default: tuple[float, float], *, help: str, unit: str | None = None, **bounds: Any) -> Any:
    """Declare a ``[low, high]`` sampling range; both ends must lie within `bounds`."""
    return param(default, help=help, unit=unit, **bounds)


@dataclass
class RandomizationConfig:
    """Domain randomization of the simulated tasks.

    Every range is ``[low, high]`` and is sampled uniformly at each reset; ``low == high`` fixes
    the value. Scale factors multiply the value in the MJCF model. `latency_steps` lists the
    choices of action latency, each equally likely.
    """

    enabled: bool = param(True, help="sample domain parameters at every reset")
    object_mass_kg: tuple[float, float] = _range_param(
        (0.06, 0.2), help="object mass", unit="kg", low=0.0, low_inclusive=False, high=5.0
    )
    object_half_size_m: tuple[float, float] = _range_param(
        (0.018, 0.024), help="half edge length of the cube", unit="m", low=0.01, high=0.03
    )
    object_friction: tuple[float, float] = _range_param(
        (0.6, 1.2), help="sliding friction coefficient of the object", low=MIN_FRICTION, high=MAX_FRICTION
    )
    table_friction: tuple[float, float] = _range_param(
        (0.4, 1.0), help="sliding friction coefficient of the table top", low=MIN_FRICTION, high=MAX_FRICTION
    )
    finger_friction: tuple[float, float] = _range_param(
        (0.8, 1.5), help="sliding friction coefficient of the finger pads", low=MIN_FRICTION,
        high=MAX_FRICTION,
    )
    table_size_scale: tuple[float, float] = _range_param(
        (1.0, 1.0), help="scale of the table top's horizontal half-extents", unit="x nominal",
        low=0.5, high=3.0,
    )
    joint_damping_scale: tuple[float, float] = _range_param(
        (0.7, 1.5), help="scale of the gripper joints' damping", unit="x nominal", low=0.0, high=10.0
    )
    actuator_gain_scale: tuple[float, float] = _range_param(
        (0.8, 1.25), help="scale of the position servos' stiffness (damping follows to keep the "
        "damping ratio)", unit="x nominal", low=0.1, high=10.0,
    )
    gravity_tilt_rad: tuple[float, float] = _range_param(
        (0.0, 0.02), help="angle between gravity and -z, in a uniformly random direction", unit="rad",
        low=0.0, high=0.2,
    )
    latency_steps: list[int] = param(
        [0, 1], help="choices of action latency; an action takes effect this many steps later",
        unit="control steps", low=0,
    )
    action_noise_std: tuple[float, float] = _range_param(
        (0.0, 0.05), help="standard deviation of Gaussian noise added to each action component",
        unit="normalized action units", low=0.0, high=1.0,
    )
    proprio_noise_std: tuple[float, float] = _range_param(
        (0.0, 0.002), help="standard deviation of Gaussian noise on the proprio group",
        unit="m or m/s", low=0.0, high=1.0,
    )
    object_noise_std_m: tuple[float, float] = _range_param(
        (0.0, 0.005), help="standard deviation of Gaussian noise on the object group", unit="m",
        low=0.0, high=1.0,
    )
    goal_noise_std_m: tuple[float, float] = _range_param(
        (0.0, 0.0), help="standard deviation of Gaussian noise on the goal group", unit="m",
        low=0.0, high=1.0,
    )
    force_bias_n: tuple[float, float] = _range_param(
        (-0.3, 0.3), help="constant bias of each wrist force component", unit="N", low=-100.0, high=100.0
    )
    force_noise_std_n: tuple[float, float] = _range_param(
        (0.0, 0.1), help="standard deviation of Gaussian noise on each wrist force component",
        unit="N", low=0.0, high=100.0,
    )
    torque_bias_nm: tuple[float, float] = _range_param(
        (-0.02, 0.02), help="constant bias of each wrist torque component", unit="N*m", low=-10.0,
        high=10.0,
    )
    torque_noise_std_nm: tuple[float, float] = _range_param(
        (0.0, 0.005), help="standard deviation of Gaussian noise on each wrist torque component",
        unit="N*m", low=0.0, high=10.0,
    )

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Every ``[low, high]`` range field by name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), tuple)
        }

    def check(self, path: str) -> None:
        for name, (low, high) in self.ranges().items():
            if low > high:
                raise ConfigError(
                    f"{path}.{name}: the range [{low:g}, {high:g}] has low > high; write it as "
                    f"[low, high]"
                )
        if not self.latency_steps:
            raise ConfigError(f"{path}.latency_steps: the list of choices is empty; use [0] for no latency")

    def check_episode_length(self, path: str, max_steps: int) -> None:
        """Reject latencies that reach the step limit, when no action would ever take effect."""
        longest = max(self.latency_steps)
        if longest >= max_steps:
            raise ConfigError(
                f"{path}.latency_steps: latency {longest} control steps is not shorter than the "
                f"episode (env.max_steps={max_steps}); no action would take effect in time"
            )


@dataclass
class ComponentWeights:
    """Weights of the five significance components; they must sum to 1."""

    learning_value: float = param(
        0.20, help="weight of the learning value (output-layer gradient-norm bound)", low=0.0, high=1.0
    )
    difficulty: float = param(0.25, help="weight of the difficulty (imitation loss)", low=0.0, high=1.0)
    novelty: float = param(
        0.15, help="weight of the novelty (k-th nearest neighbour distance to trained episodes)",
        low=0.0, high=1.0,
    )
    uncertainty: float = param(
        0.10, help="weight of the uncertainty (mean predicted action standard deviation)", low=0.0, high=1.0
    )
    physical: float = param(
        0.30, help="weight of the physical feedback from real-robot logs", low=0.0, high=1.0
    )

    def check(self, path: str) -> None:
        total = (
            self.learning_value + self.difficulty + self.novelty + self.uncertainty + self.physical
        )
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(
                f"{path}: the weights sum to {total:.6g}; they must sum to 1 so that a score stays "
                f"in [0, 1]"
            )
        if total - self.physical <= 0.0:
            raise ConfigError(
                f"{path}: every weight except physical is 0; at least one learning-signal weight "
                f"must be positive"
            )


@dataclass
class FeedbackConfig:
    """Physical feedback for simulated episodes from nearby real-robot episodes."""

    radius_m: float = param(
        0.05, help="largest context distance (object start and goal, 6-D) of a real neighbour",
        unit="m", low=0.0, low_inclusive=False,
    )
    max_neighbours: int = param(
        8, help="nearest real episodes used per simulated episode", unit="episodes", low=1
    )
    failure_weight: float = param(
        0.8, help="added for real failures nearby, times their distance-weighted share", low=0.0
    )
    gap_scale: float = param(
        0.5, help="sim-to-real success gap that maps to 1 before the cap", low=0.0, low_inclusive=False
    )
    gap_cap: float = param(0.7, help="largest contribution of the sim-to-real success gap", low=0.0)
    force_limit_n: float = param(
        30.0, help="contact force above which a step counts as unsafe", unit="N", low=0.0,
        low_inclusive=False,
    )
    unsafe_weight: float = param(
        0.5, help="added when the simulated episode or its real neighbours exceed force_limit_n",
        low=0.0,
    )
    correction_weight: float = param(
        0.6, help="added for human corrections in the real neighbours, times their weighted share",
        low=0.0,
    )
    discrepancy_weight: float = param(
        0.3, help="added for the trajectory discrepancy to real neighbours that logged commands, "
        "at full discrepancy", low=0.0,
    )
    discrepancy_scale: float = param(
        0.5, help="RMS action difference (normalized action units) that counts as full discrepancy",
        low=0.0, low_inclusive=False,
    )
    discrepancy_points: int = param(
        20, help="points on the normalized-time grid used to compare action sequences",
        unit="points", low=2,
    )


@dataclass
class SignificanceConfig:
    """The significance model that scores episodes in [0, 1]."""

    window: int = param(
        512, help="recent episodes used for the robust normalization of each component",
        unit="episodes", low=8,
    )
    normalization: Literal["rank", "quantile"] = param(
        "rank", help="rank: mid-rank percentile in the window; quantile: linear between "
        "quantile_low and quantile_high of the window, clipped"
    )
    quantile_low: float = param(0.05, help="lower window quantile mapped to 0", low=0.0, high=1.0)
    quantile_high: float = param(0.95, help="upper window quantile mapped to 1", low=0.0, high=1.0)
    robot_weights: ComponentWeights = param(ComponentWeights(), help="component weights for robot episodes")
    vision_weights: ComponentWeights = param(
        ComponentWeights(
            learning_value=0.35, difficulty=0.25, novelty=0.20, uncertainty=0.20, physical=0.0
        ),
        help="component weights for image samples",
    )
    novelty_k: int = param(5, help="k of the k-th nearest trained neighbour", low=1)
    novelty_memory: int = param(
        256, help="trained feature vectors kept (a uniform reservoir sample) for novelty",
        unit="episodes", low=1,
    )
    familiarity_floor: float = param(
        0.3, help="lowest familiarity factor, reached after many trainings on one context",
        low=0.0, high=1.0,
    )
    familiarity_half_count: float = param(
        4.0, help="times trained on at which the familiarity factor is halfway from 1 to the floor",
        unit="trainings", low=0.0, low_inclusive=False,
    )
    familiarity_cell_m: float = param(
        0.02, help="grid cell size; contexts in one cell count as the same context", unit="m",
        low=0.0, low_inclusive=False,
    )
    curriculum_breakpoints: list[float] = param(
        [0.3, 0.7], help="fractions of training at which the difficulty scale steps to the next "
        "value in curriculum_scales", low=0.0, high=1.0,
    )
    curriculum_scales: list[float] = param(
        [0.5, 1.0, 1.5], help="difficulty weight multipliers before, between and after the breakpoints",
        low=0.0,
    )
    feedback: FeedbackConfig = param(FeedbackConfig(), help="physical feedback from real-robot logs")

    def check(self, path: str) -> None:
        if self.quantile_low >= self.quantile_high:
            raise ConfigError(
                f"{path}: quantile_low={self.quantile_low} must be below "
                f"quantile_high={self.quantile_high}"
            )
        points = self.curriculum_breakpoints
        if any(later <= earlier for earlier, later in zip(points, points[1:])):
            raise ConfigError(f"{path}.curriculum_breakpoints: {points} must increase strictly")
        if len(self.curriculum_scales) != len(points) + 1:
            raise ConfigError(
                f"{path}.curriculum_scales: {len(points)} breakpoints need {len(points) + 1} scales, "
                f"got {len(self.curriculum_scales)} ({self.curriculum_scales})"
            )


@dataclass
class GateConfig:
    """The Sundew gate: a score threshold held at a target activation rate by a PI controller."""

    mode: Literal["on", "off", "random"] = param(
        "on", help="on: gate by score; off: admit everything; random: admit at target_rate by chance"
    )
    target_rate: float = param(
        0.25, help="share of episodes admitted to the large model", low=0.0, high=1.0,
        low_inclusive=False,
    )
    initial_threshold: float | None = param(
        None, help="score threshold before the first controller update; null sets it at the first "
        "decided batch to that batch's (1 - target_rate) score quantile (0.5 for a one-item batch)",
    )
    temperature: float = param(
        0.0, help="0 opens when score > threshold; above 0 opens with probability "
        "sigmoid((score - threshold) / temperature)", low=0.0,
    )
    update_every: int = param(
        16, help="decisions between controller updates; the rate is measured over them",
        unit="decisions", low=1,
    )
    kp: float = param(
        0.08, help="proportional gain: threshold change per unit of rate error at each update", low=0.0
    )
    ki: float = param(0.01, help="integral gain: threshold change per unit of accumulated rate error", low=0.0)
    integral_limit: float = param(
        2.0, help="clamp on the accumulated rate error (anti-windup)", low=0.0
    )
    deadband: float = param(
        0.005, help="rate errors smaller than this leave the threshold and integral unchanged",
        low=0.0, high=1.0,
    )
    min_threshold: float = param(0.0, help="lowest threshold the controller may set")
    max_threshold: float = param(1.0, help="highest threshold the controller may set")
    probe_rate: float = param(
        0.0, help="share of otherwise skipped episodes opened at random so skipped data keeps being "
        "measured", low=0.0, high=1.0, high_inclusive=False,
    )
    decision_log_size: int = param(
        1000, help="most recent decisions kept with their score, threshold and reason",
        unit="decisions", low=0,
    )
    history_size: int = param(
        10000, help="most recent controller updates kept in the threshold history", unit="updates", low=1
    )

    def check(self, path: str) -> None:
        if self.min_threshold >= self.max_threshold:
            raise ConfigError(
                f"{path}: min_threshold={self.min_threshold} must be below "
                f"max_threshold={self.max_threshold}"
            )
        if self.initial_threshold is not None and not (
            self.min_threshold <= self.initial_threshold <= self.max_threshold
        ):
            raise ConfigError(
                f"{path}: initial_threshold={self.initial_threshold} is outside "
                f"[min_threshold, max_threshold] = [{self.min_threshold}, {self.max_threshold}]"
            )
        if self.mode == "on" and self.probe_rate >= self.target_rate:
            raise ConfigError(
                f"{path}: probe_rate={self.probe_rate} must be below target_rate={self.target_rate}, "
                f"or probes alone would exceed the target rate"
            )


@dataclass
class PolicyConfig:
    """The sparse-attention transformer policy and the proxy model."""

    history: int = param(8, help="control steps of observation history", unit="steps", low=1)
    d_model: int = param(64, help="transformer token width", low=8)
    layers: int = param(2, help="transformer blocks", low=1)
    heads: int = param(4, help="attention heads; d_model must divide by it", low=1)
    mlp_ratio: float = param(2.0, help="MLP hidden width as a multiple of d_model", low=0.25)
    global_tokens: int = param(
        2, help="learned global tokens that attend to all tokens; the action head reads the first", low=1
    )
    attention_backend: Literal["auto", "dense", "gather", "flex"] = param(
        "auto", help="sparse attention backend; auto picks by device and sequence length"
    )
    block_size: int = param(
        4, help="tokens per attention block, the unit of key selection; 4 is one control step", unit="tokens", low=1
    )
    window: int = param(
        4, help="local attention half-width, rounded up to whole blocks", unit="tokens", low=0
    )
    top_k: int = param(
        2, help="key blocks the learned indexer selects per query block, besides the local ones", unit="blocks", low=0
    )
    indexer_heads: int = param(2, help="heads of the block indexer", low=1)
    indexer_dim: int = param(8, help="width of each indexer head", low=1)
    indexer_queries: int = param(
        16, help="queries sampled per batch for the indexer's auxiliary loss", unit="queries", low=0
    )
    indexer_loss_weight: float = param(0.1, help="weight of the indexer's auxiliary KL loss", low=0.0)
    nll_weight: float = param(
        0.1, help="weight of the Gaussian negative log-likelihood next to the mean-squared error", low=0.0
    )
    log_std_min: float = param(-5.0, help="lower clamp of the action log standard deviation")
    log_std_max: float = param(1.0, help="upper clamp of the action log standard deviation")
    obs_clip: float = param(
        5.0, help="clip of normalized observations", unit="standard deviations", low=0.0, low_inclusive=False
    )
    action_squash: Literal["clip", "tanh"] = param(
        "clip", help="map from the Gaussian action mean to an action in [-1, 1]: clip, or tanh as "
        "SAC's actor does (SAC runs set tanh)"
    )
    proxy_hidden: int = param(32, help="hidden width of the proxy MLP", low=1)

    def check(self, path: str) -> None:
        if self.d_model % self.heads:
            raise ConfigError(
                f"{path}.d_model: {self.d_model} is not divisible by {path}.heads={self.heads}; "
                f"choose d_model as a multiple of heads"
            )
        if self.log_std_min >= self.log_std_max:
            raise ConfigError(
                f"{path}.log_std_min: {self.log_std_min} is not below {path}.log_std_max="
                f"{self.log_std_max}; the clamp range would be empty"
            )


@dataclass
class TrainConfig:
    """The collect-score-gate-update loop."""

    seed: int = param(0, help="seed for every random number generator of the run", low=0)
    iterations: int = param(20, help="collect-score-gate-update cycles", unit="iterations", low=1)
    episodes_per_iteration: int = param(
        16, help="candidate contexts sampled per iteration (some may be skipped before simulation)",
        unit="episodes", low=1,
    )
    workers: int | None = param(
        None, help="rollout worker processes; null uses the CPU count, 0 rolls out in the main process",
        unit="processes", low=0,
    )
    torch_threads: int = param(
        1, help="torch intra-op threads of the main process; 1 keeps model updates from fighting the "
        "rollout workers for cores", unit="threads", low=1,
    )
    expert_share_start: float = param(
        1.0, help="probability that the expert's action is executed at a step, at the first iteration",
        low=0.0, high=1.0,
    )
    expert_share_end: float = param(
        0.0, help="expert share reached at the end of the decay", low=0.0, high=1.0
    )
    expert_share_decay: Literal["linear", "exponential"] = param(
        "linear", help="schedule from expert_share_start to expert_share_end"
    )
    expert_share_decay_iterations: int = param(
        15, help="iterations over which the expert share decays", unit="iterations", low=1
    )
    batch_size: int = param(128, help="samples (history windows) per gradient step", unit="samples", low=1)
    reuse_factor: float = param(
        16.0, help="transformer gradient samples per newly admitted sample; sets its gradient steps "
        "per iteration", low=0.0, low_inclusive=False,
    )
    proxy_reuse_factor: float = param(
        1.0, help="proxy gradient samples per newly gated-out sample", low=0.0
    )
    max_steps_per_iteration: int = param(
        400, help="cap on transformer gradient steps in one iteration", unit="gradient steps", low=1
    )
    learning_rate: float = param(1e-3, help="AdamW learning rate of the transformer", low=0.0, low_inclusive=False)
    proxy_learning_rate: float = param(1e-3, help="AdamW learning rate of the proxy", low=0.0, low_inclusive=False)
    weight_decay: float = param(1e-4, help="AdamW weight decay", low=0.0)
    grad_clip_norm: float = param(1.0, help="gradient norm clip; 0 disables clipping", low=0.0)
    replay_capacity_steps: int = param(
        200_000, help="control steps kept in each replay buffer (transformer and proxy)",
        unit="steps", low=1,
    )
    real_data_repeats: int = param(
        1, help="copies of each human-corrected real episode added to the transformer's replay "
        "buffer; 0 leaves real data out of training", unit="copies", low=0,
    )
    curriculum_strength: float = param(
        0.5, help="bias of new contexts toward regions with high physical feedback from real logs; "
        "0 samples uniformly; has no effect without real logs", low=0.0, high=1.0,
    )
    pregate: bool = param(
        True, help="skip candidate contexts whose predicted significance is low before simulating them"
    )
    pregate_quantile: float = param(
        0.25, help="a candidate is skipped when its predicted significance is below this quantile of "
        "recent episode scores", low=0.0, high=1.0,
    )
    pregate_max_skip: float = param(
        0.5, help="largest share of an iteration's candidates the pre-simulation gate may skip",
        low=0.0, high=1.0, high_inclusive=False,
    )
    pregate_warmup_iterations: int = param(
        2, help="iterations before the pre-simulation gate starts skipping", unit="iterations", low=0
    )
    eval_every: int = param(5, help="evaluate every N iterations (and after the last)", unit="iterations", low=1)
    eval_episodes: int = param(
        20, help="episodes per evaluation setting (nominal, randomized, reality)", unit="episodes", low=1
    )
    eval_reality: str | None = param(
        "reality/standin.yaml",
        help="reality profile for eval/success_reality; a path or a path relative to the packaged "
        "configs/ directory; null skips it",
    )
    target_success: float = param(
        0.8, help="sim success rate whose first crossing is recorded in summary.json as time to target",
        low=0.0, high=1.0,
    )
    stop_at_target: bool = param(
        False, help="end the run at the first evaluation that reaches target_success (for benchmarks)"
    )

    def check(self, path: str) -> None:
        if self.expert_share_end > self.expert_share_start:
            raise ConfigError(
                f"{path}: expert_share_end={self.expert_share_end} is above "
                f"expert_share_start={self.expert_share_start}; the expert share may only decay"
            )


@dataclass
class LogsConfig:
    """Reading real-robot rosbag2 recordings."""

    robot: str = param(
        "robots/standin.yaml",
        help="topic map; a path, or a path relative to the packaged configs/ directory",
    )
    max_gap_s: float = param(
        0.5, help="longest silence of a streaming topic inside an episode before it counts as a gap",
        unit="s", low=0.0, low_inclusive=False,
    )
    on_gap: Literal["split", "reject"] = param(
        "split", help="split: cut the episode at a gap; reject: drop an episode that has a gap"
    )
    clock_jump_s: float = param(
        0.5, help="a timestamp this far below its predecessor is a clock jump; smaller steps back are reordered",
        unit="s", low=0.0, low_inclusive=False,
    )
    min_episode_steps: int = param(
        1, help="episodes (or pieces after a split) with fewer control steps are skipped", unit="steps", low=1
    )
    labels_file: str = param(
        "labels.yaml", help="file beside a bag without episode events that maps bag name -> success"
    )


@dataclass
class VisionConfig:
    """The CIFAR-10 image-classification mode: sparse ViT, CNN proxy and per-image gating."""

    batch_size: int = param(256, help="images per batch", unit="images", low=1)
    epochs: int = param(20, help="passes over the training images", unit="epochs", low=1)
    train_subset: int = param(
        0, help="train on the first N training images only; 0 uses all of them", unit="images", low=0
    )
    test_subset: int = param(
        0, help="validate on the first N test images only; 0 uses all of them", unit="images", low=0
    )
    eval_batch_size: int = param(1024, help="images per batch during validation", unit="images", low=1)
    patch_size: int = param(4, help="ViT patch side; 4 gives 64 patch tokens", unit="pixels", low=1, high=32)
    embed_dim: int = param(192, help="ViT token width", low=8)
    depth: int = param(6, help="ViT transformer blocks", unit="blocks", low=1)
    heads: int = param(3, help="ViT attention heads; must divide embed_dim", low=1)
    mlp_ratio: float = param(2.0, help="ViT MLP hidden width over embed_dim", low=0.5)
    registers: int = param(
        0, help="register tokens after the class token; all of them attend and are attended globally",
        unit="tokens", low=0,
    )
    attention_backend: Literal["auto", "dense", "gather", "flex"] = param(
        "auto", help="sparse attention backend of the ViT; auto picks by device and sequence length"
    )
    block_size: int = param(
        8, help="patch tokens per attention block, the unit of key selection; 8 is one row of 4x4 patches",
        unit="tokens", low=1,
    )
    window: int = param(8, help="local attention half-width, rounded up to whole blocks", unit="tokens", low=0)
    top_k: int = param(
        2, help="key blocks the learned indexer selects per query block, besides the local ones",
        unit="blocks", low=0,
    )
    indexer_heads: int = param(2, help="heads of the block indexer", low=1)
    indexer_dim: int = param(16, help="width of each indexer head", low=1)
    indexer_queries: int = param(
        16, help="queries sampled per batch for the indexer's auxiliary loss", unit="queries", low=0
    )
    indexer_loss_weight: float = param(0.1, help="weight of the indexer's auxiliary KL loss", low=0.0)
    proxy_width: int = param(32, help="channels of the first CNN proxy block (doubled twice)", low=4)
    lr: float = param(1e-3, help="ViT peak learning rate (AdamW)", low=0.0, low_inclusive=False)
    proxy_lr: float = param(2e-3, help="CNN proxy learning rate (AdamW)", low=0.0, low_inclusive=False)
    weight_decay: float = param(0.05, help="AdamW weight decay of both models", low=0.0)
    warmup_epochs: float = param(1.0, help="linear learning-rate warmup, then cosine decay", unit="epochs",
                                 low=0.0)
    label_smoothing: float = param(0.0, help="label smoothing of the ViT loss", low=0.0, high=1.0,
                                   high_inclusive=False)
    crop_padding: int = param(4, help="zero padding for the random crop; 0 disables it", unit="pixels",
                              low=0, high=16)
    flip: bool = param(True, help="flip half the training images horizontally")
    gate_target_rate: float = param(
        0.5, help="share of training images admitted to the ViT's forward and backward (replaces "
        "gate.target_rate in vision mode)", low=0.0, high=1.0, low_inclusive=False,
    )
    balance_classes: bool = param(
        True, help="gate on each image's score percentile within its class, so every class is "
        "admitted at about the target rate",
    )
    importance_weighting: bool = param(
        False, help="weight each admitted image's ViT loss by the inverse of its admission probability; "
        "changes nothing unless gate.temperature > 0 or gate.probe_rate > 0, because a hard threshold "
        "admits with probability 1",
    )
    max_importance_weight: float = param(
        4.0, help="cap on an admitted image's importance weight", low=1.0,
    )
    mixed_precision: bool = param(True, help="bf16 autocast on CUDA; CPU always runs float32")
    channels_last: bool = param(True, help="channels-last memory layout for image tensors on CUDA")
    compile: bool = param(False, help="torch.compile the ViT and the proxy on CUDA; ignored on CPU")

    def check(self, path: str) -> None:
        if self.embed_dim % self.heads:
            raise ConfigError(
                f"{path}: embed_dim={self.embed_dim} is not divisible by heads={self.heads}; "
                "choose a head count that divides the token width"
            )
        if 32 % self.patch_size:
            raise ConfigError(
                f"{path}: patch_size={self.patch_size} does not divide the 32-pixel image side; use 1, 2, 4, 8, 16 or 32"
            )


@dataclass
class SafetyConfig:
    """Limits the ROS2 bridge enforces on every command it sends to a robot."""

    watchdog_timeout_s: float = param(
        0.1, help="a required observation older than this stops motion and holds", unit="s",
        low=0.0, low_inclusive=False, high=5.0,
    )
    required_roles: list[str] = param(
        ["joint_states", "ee_pose", "wrench", "object_pose", "goal_pose"],
        help="topic-map roles whose age the watchdog checks; all of them must have arrived before any motion",
    )
    workspace_low_m: list[float] = param(
        [-0.32, -0.32, 0.0], help="lower corner xyz of the box the end effector must stay in (robot base frame)",
        unit="m",
    )
    workspace_high_m: list[float] = param(
        [0.32, 0.32, 0.35], help="upper corner xyz of the box the end effector must stay in (robot base frame)",
        unit="m",
    )
    max_speed_m_s: float = param(
        0.45, help="end-effector linear speed limit (norm of xyz)", unit="m/s", low=0.0, low_inclusive=False,
        high=5.0,
    )
    max_accel_m_s2: float = param(
        5.0, help="end-effector linear acceleration limit between consecutive commands", unit="m/s^2",
        low=0.0, low_inclusive=False,
    )
    max_force_n: float = param(
        60.0, help="wrist force magnitude that stops motion and opens the gripper", unit="N",
        low=0.0, low_inclusive=False,
    )
    max_torque_nm: float = param(
        10.0, help="wrist torque magnitude that stops motion and opens the gripper", unit="N*m",
        low=0.0, low_inclusive=False,
    )

    def check(self, path: str) -> None:
        for name in ("workspace_low_m", "workspace_high_m"):
            if len(getattr(self, name)) != 3:
                raise ConfigError(f"{path}.{name}: expected 3 values (x, y, z), got {getattr(self, name)}")
        for axis, low, high in zip("xyz", self.workspace_low_m, self.workspace_high_m):
            if low >= high:
                raise ConfigError(
                    f"{path}: workspace_low_m {axis}={low} is not below workspace_high_m {axis}={high}"
                )


@dataclass
class BridgeConfig:
    """The ROS2 bridge node that runs a policy on a robot."""

    node_name: str = param("ast_robot_bridge", help="ROS2 node name; its services live under ~/")
    teleop_topic: str = param(
        "/ast_robot/teleop/cmd_twist",
        help="geometry_msgs/TwistStamped from a teleoperation device, passed through while the intervention topic is true",
    )
    teleop_gripper_topic: str = param(
        "/ast_robot/teleop/gripper_cmd",
        help="std_msgs/Float64 gripper command (normalized, -1 open to 1 closed) used during an intervention",
    )
    estop_topic: str = param(
        "/ast_robot/estop", help="std_msgs/Bool; true latches the node in a stopped state until a reset"
    )
    operator_topic: str = param(
        "/ast_robot/operator",
        help="std_msgs/String JSON operator commands: arm, disarm, reset, start, end (with success)",
    )
    watchdog_check_hz: float = param(
        100.0, help="rate of the watchdog check between control steps", unit="Hz", low=1.0, high=1000.0
    )
    safety: SafetyConfig = param(SafetyConfig(), help="command limits")

    def check(self, path: str) -> None:
        period_s = 1.0 / self.watchdog_check_hz
        if self.safety.watchdog_timeout_s <= period_s:
            raise ConfigError(
                f"{path}.safety.watchdog_timeout_s={self.safety.watchdog_timeout_s} is not above one watchdog "
                f"check period ({period_s:g} s at {path}.watchdog_check_hz={self.watchdog_check_hz}); "
                "raise the timeout or the check rate"
            )


@dataclass
class RLConfig:
    """Reinforcement learning with stable-baselines3 (`ast-robot train --algo ppo|sac`).

    The run length, seed and evaluation come from the `train` section: `train.iterations`
    iterations of `steps_per_env` environment steps in each of `n_envs` environments.
    """

    n_envs: int = param(4, help="environments stepped together in one SB3 vectorized env", low=1)
    vec_env: Literal["dummy", "subproc"] = param(
        "dummy", help="dummy: all environments in the training process; subproc: one process each"
    )
    steps_per_env: int = param(
        400, help="environment steps per environment per iteration (the PPO rollout length)",
        unit="control steps", low=2,
    )
    learning_rate: float = param(1e-3, help="Adam learning rate of every network", low=0.0, low_inclusive=False)
    gamma: float = param(0.95, help="discount factor per control step", low=0.0, high=1.0, high_inclusive=False)
    value_hidden: list[int] = param(
        [64, 64], help="hidden layer widths of the value (PPO) or Q (SAC) head on the transformer features",
        low=1,
    )
    gae_lambda: float = param(0.95, help="PPO: GAE lambda", low=0.0, high=1.0)
    ppo_epochs: int = param(10, help="PPO: passes over the admitted transitions per iteration", low=1)
    ppo_minibatch: int = param(200, help="PPO: transitions per gradient step", unit="transitions", low=2)
    ppo_clip_range: float = param(0.2, help="PPO: probability-ratio clip", low=0.0, low_inclusive=False)
    ppo_ent_coef: float = param(0.0, help="PPO: entropy bonus weight", low=0.0)
    ppo_vf_coef: float = param(0.5, help="PPO: value loss weight", low=0.0)
    ppo_init_log_std: float = param(
        -0.5, help="PPO: initial log standard deviation of the action noise", unit="log normalized action units"
    )
    max_grad_norm: float = param(0.5, help="gradient norm clip of every update", low=0.0, low_inclusive=False)
    sac_buffer_steps: int = param(
        100_000, help="SAC: replay buffer capacity", unit="transitions", low=1
    )
    sac_batch_size: int = param(256, help="SAC: transitions per gradient step", unit="transitions", low=1)
    sac_learning_starts: int = param(
        1000, help="SAC: environment steps with random actions before the first update",
        unit="transitions", low=0,
    )
    sac_updates_per_step: float = param(
        0.25, help="SAC: gradient steps per admitted transition (the replay ratio)", low=0.0,
        low_inclusive=False,
    )
    sac_tau: float = param(0.005, help="SAC: target network soft-update rate", low=0.0, high=1.0)

    def check(self, path: str) -> None:
        if not self.value_hidden:
            raise ConfigError(f"{path}.value_hidden: give at least one hidden layer width, got []")


@dataclass
class Config:
    """The whole resolved configuration of a run."""

    env: EnvConfig = param(EnvConfig(), help="simulated task")
    randomization: RandomizationConfig = param(
        RandomizationConfig(), help="domain randomization; each [low, high] range is sampled uniformly at reset"
    )
    significance: SignificanceConfig = param(SignificanceConfig(), help="significance model")
    gate: GateConfig = param(GateConfig(), help="Sundew gate")
    policy: PolicyConfig = param(PolicyConfig(), help="transformer policy and proxy")
    train: TrainConfig = param(TrainConfig(), help="training loop")
    logs: LogsConfig = param(LogsConfig(), help="real-robot logs")
    vision: VisionConfig = param(VisionConfig(), help="image classification mode")
    bridge: BridgeConfig = param(BridgeConfig(), help="ROS2 bridge node on a robot")
    rl: RLConfig = param(RLConfig(), help="reinforcement learning with stable-baselines3 (--algo ppo|sac)")

    def check(self, path: str) -> None:
        """Cross-section rules; `path` is empty for the root."""
        self.randomization.check_episode_length("randomization", self.env.max_steps)


# ---------------------------------------------------------------------------------------------
# Locating files
# ---------------------------------------------------------------------------------------------


def config_dir() -> Path:
    """Return the packaged `configs/` directory (task files, robot maps, reality profiles)."""
    return Path(str(importlib.resources.files("ast_robot.configs")))


def resolve_config_path(path: str | Path) -> Path:
    """Find a config file given as a path, or relative to the packaged `configs/` directory.

    ``configs/reality/standin.yaml`` and ``reality/standin.yaml`` both resolve to the packaged
    file when no such file exists relative to the working directory.
    """
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    parts = candidate.parts
    relative = Path(*parts[1:]) if parts and parts[0] == "configs" and len(parts) > 1 else candidate
    packaged = config_dir() / relative
    if not candidate.is_absolute() and packaged.is_file():
        return packaged
    raise ConfigError(
        f"config file {str(path)!r} not found in the working directory or in the packaged "
        f"configs directory {config_dir()}"
    )


def task_config_path(task: str) -> Path:
    """Return the packaged YAML file of a task, or raise `ConfigError` for an unknown name."""
    if task not in TASKS:
        close = difflib.get_close_matches(task, TASKS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}{hint}")
    return config_dir() / f"{task}.yaml"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_config(
    source: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    env: str | None = None,
) -> Config:
    """Load a `Config` from a YAML file and ``key=value`` overrides.

    Args:
        source: Path of a YAML config file. Mutually exclusive with `env`.
        overrides: Items of the form ``section.key=value``; values are parsed as YAML scalars.
        env: Task name; loads the packaged ``configs/<env>.yaml``.

    Raises:
        ConfigError: On a missing file, invalid YAML, an unknown key, a wrong type or an
            out-of-range value. The message names the file, the key path and what is allowed.
    """
    if source is not None and env is not None:
        raise ConfigError("give either a config file or a task name, not both")
    if env is not None:
        path = task_config_path(env)
    elif source is not None:
        path = resolve_config_path(source)
    else:
        path = None

    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path is not None:
        data = _read_yaml_mapping(path)
        _record_sources(data, "", str(path), sources)
        data = _with_task_defaults(data, path, sources)

    for item in overrides:
        key, value = parse_override(item)
        _check_key_exists(Config, key, "--set")
        _set_dotted(data, key, value)
        sources[key] = "--set"

    return config_from_dict(data, source_name=str(path) if path else "<defaults>", sources=sources)


def _with_task_defaults(data: dict[str, Any], path: Path, sources: dict[str, str]) -> dict[str, Any]:
    """Layer a partial config file over the packaged file of the task it names.

    A file that sets ``env.task: reach`` and nothing else gets reach's defaults (its step limit,
    for one), not the dataclass defaults, which are pick_place's.
    """
    env = data.get("env")
    task = env.get("task") if isinstance(env, dict) else None
    if task not in TASKS:
        return data
    task_path = task_config_path(task)
    if path.resolve() == task_path.resolve():
        return data
    base = _read_yaml_mapping(task_path)
    base_sources: dict[str, str] = {}
    _record_sources(base, "", str(task_path), base_sources)
    for key, source in base_sources.items():
        sources.setdefault(key, source)
    return _merge_mappings(base, data)


def config_from_dict(
    data: dict[str, Any], *, source_name: str = "<dict>", sources: dict[str, str] | None = None
) -> Config:
    """Build and validate a `Config` from nested plain data (as read from YAML)."""
    converter = _Converter(source_name, sources or {})
    config = converter.convert(data, Config, "")
    _run_checks(config, "", converter)
    return config


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``section.key=value`` into the dotted key and the YAML-parsed value."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected the form section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML: {error}") from error
    return key, value


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key written twice in one mapping.

    Plain YAML loaders keep the last value, so a duplicated setting would silently win.
    """

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"the key {key!r} appears twice (first on line {seen[key].line + 1})", key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _merge_mappings(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `top` over `base`, returning a new dict."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_mappings(merged[key], value)
        else:
            merged[key] = value
    return merged


def _record_sources(data: Any, prefix: str, name: str, sources: dict[str, str]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            sources[dotted] = name
            _record_sources(value, dotted, name, sources)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _check_key_exists(cls: type, dotted: str, source: str) -> None:
    """Raise `ConfigError` with the closest valid key when `dotted` names no field."""
    tp: Any = cls
    walked: list[str] = []
    for part in dotted.split("."):
        tp = _strip_optional(tp)
        origin = typing.get_origin(tp)
        if origin is dict:
            tp = typing.get_args(tp)[1]
        elif dataclasses.is_dataclass(tp):
            hints = _type_hints(tp)
            if part not in hints:
                raise _unknown_key_error(source, walked, part, list(hints), all_keys(Config), dotted)
            tp = hints[part]
        else:
            prefix = ".".join(walked)
            raise ConfigError(f"{source}: '{dotted}' goes below '{prefix}', which is a single value")
        walked.append(part)


def _unknown_key_error(
    source: str, walked: list[str], part: str, siblings: list[str], every_key: list[str], full_key: str = ""
) -> ConfigError:
    """Build the error for a key that names no field, with the closest valid key as a hint.

    `walked` is the valid prefix, `part` the first unknown component, and `full_key` the whole
    key as written (it may go deeper than `part`).
    """
    full_key = full_key or ".".join([*walked, part])
    prefix = ".".join(walked)
    suggestion = None
    close = difflib.get_close_matches(part, siblings, n=1, cutoff=0.6)
    if close:
        suggestion = f"{prefix}.{close[0]}" if prefix else close[0]
    elif prefix:
        leaves = [k for k in every_key if k.startswith(prefix + ".")]
        matches = difflib.get_close_matches(full_key, leaves, n=1, cutoff=0.0)
        suggestion = matches[0] if matches else None
    else:
        # At the top level, a near-miss of a whole key beats the nearest section name.
        matches = difflib.get_close_matches(full_key, every_key, n=1, cutoff=0.6)
        matches = matches or difflib.get_close_matches(part, siblings, n=1, cutoff=0.0)
        suggestion = matches[0] if matches else None
    where = f"in section '{prefix}'" if prefix else "at the top level"
    hint = f"; did you mean '{suggestion}'?" if suggestion else ""
    if not prefix:
        hint += f" Valid sections: {', '.join(siblings)}."
    return ConfigError(f"{source}: unknown key '{full_key}' ('{part}' is not a key {where}){hint}")


def all_keys(cls: type = None, prefix: str = "") -> list[str]:
    """List every dotted key path of a config dataclass, sections and leaves."""
    cls = Config if cls is None else cls
    keys = []
    for name, tp in _type_hints(cls).items():
        dotted = f"{prefix}.{name}" if prefix else name
        keys.append(dotted)
        inner = _strip_optional(tp)
        if dataclasses.is_dataclass(inner):
            keys.extend(all_keys(inner, dotted))
    return keys


_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS_CACHE:
        hints = typing.get_type_hints(cls)
        _HINTS_CACHE[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
    return _HINTS_CACHE[cls]


def _strip_optional(tp: Any) -> Any:
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _describe_type(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " or ".join(_describe_type(a) for a in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = _describe_type(args[0]) if args else "values"
        return f"a list of {inner}"
    if origin is dict:
        return f"a mapping of names to {_describe_type(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


class _Converter:
    """Converts plain YAML data into config dataclasses, checking types and ranges."""

    def __init__(self, source_name: str, sources: dict[str, str]):
        self.source_name = source_name
        self.sources = sources

    def source_of(self, path: str) -> str:
        while path:
            if path in self.sources:
                return self.sources[path]
            path = path.rpartition(".")[0]
        return self.source_name

    def sources_under(self, path: str) -> str:
        """Name every source that set a key at or below `path`, e.g. ``reach.yaml and --set``."""
        names = {
            source for key, source in self.sources.items()
            if not path or key == path or key.startswith(path + ".")
        }
        if not names:
            return self.source_of(path)
        return " and ".join(sorted(names, key=lambda name: (name == "--set", name)))

    def error(self, path: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(f"{self.source_of(path)}: {path}: invalid value {value!r}; expected {expected}")

    def convert(self, value: Any, tp: Any, path: str, meta: dict | None = None) -> Any:
        if _is_union(tp):
            return self._convert_union(value, tp, path, meta)
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self._convert_dataclass(value, tp, path)
        if origin is Literal:
            choices = typing.get_args(tp)
            # YAML 1.1 reads a bare on/off as a boolean; map it back when the choices are words.
            if isinstance(value, bool) and {"on", "off"} <= set(choices):
                value = "on" if value else "off"
            if value not in choices:
                raise self.error(path, value, _describe_type(tp))
            return value
        if origin in (list, tuple):
            return self._convert_sequence(value, tp, path, meta)
        if origin is dict:
            return self._convert_mapping(value, tp, path, meta)
        if tp is Any:
            return value
        return self._convert_scalar(value, tp, path, meta)

    def _convert_union(self, value: Any, tp: Any, path: str, meta: dict | None) -> Any:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return self.convert(value, arg, path, meta)
            except ConfigError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        raise self.error(path, value, _describe_type(tp))

    def _convert_dataclass(self, value: Any, cls: type, path: str) -> Any:
        if dataclasses.is_dataclass(value) and isinstance(value, cls):
            value = config_to_dict(value)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(path, value, f"a mapping of {cls.__name__} keys")
        hints = _type_hints(cls)
        for key in value:
            if key not in hints:
                walked = path.split(".") if path else []
                raise _unknown_key_error(
                    self.source_of(f"{path}.{key}" if path else str(key)), walked, str(key),
                    list(hints), all_keys(Config),
                )
        kwargs = {}
        for f in dataclasses.fields(cls):
            if not f.init or f.name not in value:
                continue
            child_path = f"{path}.{f.name}" if path else f.name
            kwargs[f.name] = self.convert(value[f.name], hints[f.name], child_path, dict(f.metadata))
        return cls(**kwargs)

    def _convert_sequence(self, value: Any, tp: Any, path: str, meta: dict | None) -> Any:
        if not isinstance(value, (list, tuple)):
            raise self.error(path, value, _describe_type(tp))
        args = typing.get_args(tp)
        origin = typing.get_origin(tp)
        if origin is tuple and args and Ellipsis not in args:
            if len(value) != len(args):
                raise self.error(path, value, f"a list of exactly {len(args)} values")
            items = [self.convert(v, a, f"{path}[{i}]", meta) for i, (v, a) in enumerate(zip(value, args))]
            return tuple(items)
        item_type = args[0] if args else Any
        items = [self.convert(v, item_type, f"{path}[{i}]", meta) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items

    def _convert_mapping(self, value: Any, tp: Any, path: str, meta: dict | None) -> Any:
        if not isinstance(value, dict):
            raise self.error(path, value, _describe_type(tp))
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        result = {}
        for key, item in value.items():
            if key_type is str and not isinstance(key, str):
                raise self.error(f"{path}.{key}", key, "a string key")
            result[key] = self.convert(item, value_type, f"{path}.{key}", meta)
        return result

    def _convert_scalar(self, value: Any, tp: Any, path: str, meta: dict | None) -> Any:
        if tp is bool:
            if not isinstance(value, bool):
                raise self.error(path, value, "true or false")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise self.error(path, value, "an integer")
            self._check_range(value, path, meta)
            return value
        if tp is float:
            # YAML 1.1 reads "1e-3" (no dot) as a string, so accept numeric strings here.
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise self.error(path, value, "a number") from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(path, value, "a number")
            value = float(value)
            if not math.isfinite(value):
                raise self.error(path, value, "a finite number")
            self._check_range(value, path, meta)
            return value
        if tp is str:
            if not isinstance(value, str):
                raise self.error(path, value, "a string")
            return value
        raise ConfigError(f"{path}: unsupported config type {tp!r}")

    def _check_range(self, value: float, path: str, meta: dict | None) -> None:
        if not meta:
            return
        low, high = meta.get("low"), meta.get("high")
        below = low is not None and (value < low if meta["low_inclusive"] else value <= low)
        above = high is not None and (value > high if meta["high_inclusive"] else value >= high)
        if below or above:
            raise self.error(path, value, describe_range(meta))


def describe_range(meta: dict) -> str:
    """Describe the allowed range of a `param` field, e.g. ``a value in (0, 1]``."""
    low, high = meta.get("low"), meta.get("high")
    unit = f" {meta['unit']}" if meta.get("unit") else ""
    if low is not None and high is not None:
        left = "[" if meta["low_inclusive"] else "("
        right = "]" if meta["high_inclusive"] else ")"
        return f"a value in {left}{low:g}, {high:g}{right}{unit}"
    if low is not None:
        return f"a value {'>=' if meta['low_inclusive'] else '>'} {low:g}{unit}"
    if high is not None:
        return f"a value {'<=' if meta['high_inclusive'] else '<'} {high:g}{unit}"
    return "any value"


def _run_checks(obj: Any, path: str, converter: _Converter) -> None:
    """Call each section's `check(path)` for cross-field rules, depth first."""
    for f in dataclasses.fields(obj):
        child = getattr(obj, f.name)
        if dataclasses.is_dataclass(child):
            _run_checks(child, f"{path}.{f.name}" if path else f.name, converter)
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check(path)
        except ConfigError as error:
            raise ConfigError(f"{converter.sources_under(path)}: {error}") from None


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def config_to_dict(config: Any) -> dict[str, Any]:
    """Convert a config dataclass into plain nested dicts and lists (YAML-safe)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def dump_yaml(config: Any, *, comments: bool = True) -> str:
    """Write a config as YAML, with each field's help and unit as a comment.

    `load_config` on the result gives an object equal to `config`.
    """
    lines: list[str] = []
    _dump_dataclass(config, 0, lines, comments)
    return "\n".join(lines) + "\n"


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config to `path` as commented YAML."""
    Path(path).write_text(dump_yaml(config))


def _dump_dataclass(obj: Any, indent: int, lines: list[str], comments: bool) -> None:
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        comment = ""
        if comments and f.metadata.get("help"):
            unit = f" [{f.metadata['unit']}]" if f.metadata.get("unit") else ""
            comment = f"  # {f.metadata['help']}{unit}"
        if dataclasses.is_dataclass(value):
            if indent == 0 and lines:
                lines.append("")
            lines.append(f"{pad}{f.name}:{comment}")
            _dump_dataclass(value, indent + 1, lines, comments)
        elif isinstance(value, dict) and value:
            lines.append(f"{pad}{f.name}:{comment}")
            _dump_mapping(value, indent + 1, lines, comments)
        else:
            lines.append(f"{pad}{f.name}: {_flow(value)}{comment}")


def _dump_mapping(value: dict, indent: int, lines: list[str], comments: bool) -> None:
    pad = "  " * indent
    for key, item in value.items():
        if dataclasses.is_dataclass(item):
            lines.append(f"{pad}{key}:")
            _dump_dataclass(item, indent + 1, lines, comments)
        elif isinstance(item, dict) and item:
            lines.append(f"{pad}{key}:")
            _dump_mapping(item, indent + 1, lines, comments)
        else:
            lines.append(f"{pad}{_flow(key)}: {_flow(item)}")


def _flow(value: Any) -> str:
    """One-line YAML for a scalar, list or small mapping."""
    text = yaml.safe_dump(config_to_dict(value), default_flow_style=True, width=10_000)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text.removesuffix("...").strip()
