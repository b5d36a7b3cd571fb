"""The `Episode` data model shared by simulated and real data.

An episode is one task attempt: T control steps of named observation groups, the executed
actions, optional action labels (the expert's or a human's), and what is known about how the
attempt ended. Simulation rollouts, rosbag2 logs and the ROS2 node all produce this structure, so
the significance model, the trainer and the log writer never care where an episode came from.

Observation groups (float32, shape (T, d)):

| group     | d | components                                                             | units        |
|-----------|---|------------------------------------------------------------------------|--------------|
| `proprio` | 8 | end-effector position xyz, end-effector velocity xyz, gripper opening, | m, m/s, m,   |
|           |   | gripper opening velocity                                               | m/s          |
| `force`   | 6 | wrist wrench: force xyz, torque xyz                                    | N, N*m       |
| `object`  | 6 | object position xyz, object position relative to the end-effector xyz  | m, m         |
| `goal`    | 3 | goal position xyz                                                      | m            |

Actions (float32, shape (T, 4)), normalized to [-1, 1]: end-effector velocity command xyz and a
gripper command (-1 open, +1 closed). The scale to m/s lives in the task config.

The context vector (float32, shape (6,)) is the object start position xyz followed by the goal
position xyz, in metres. It matches a simulated episode to real episodes of the same situation.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ast_robot.errors import EpisodeError

OBS_GROUPS: dict[str, int] = {"proprio": 8, "force": 6, "object": 6, "goal": 3}
"""Observation group name -> width d."""

ACTION_DIM = 4
CONTEXT_DIM = 6

FLAG_NAMES = ("unstable", "nan_sensor", "terminated", "truncated")
"""Known episode flags: `unstable` (physics blew up), `nan_sensor` (a sensor returned NaN/Inf),
`terminated` (a true terminal state), `truncated` (the step limit or a recording ended the
attempt). `terminated` and `truncated` are never merged."""

Source = Literal["sim", "real"]


def new_episode_id(prefix: str = "ep") -> str:
    """Return a unique episode id such as ``sim-3f2a9c1b``."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Episode:
    """One task attempt, simulated or recorded on a robot.

    Attributes:
        id: Unique id; for real data it names the bag and the episode index.
        source: ``"sim"`` or ``"real"``.
        obs: Observation group name -> float32 array (T, d) with the widths in `OBS_GROUPS`.
            Every group in `OBS_GROUPS` is present.
        actions: Executed actions, float32 (T, ACTION_DIM), normalized to [-1, 1].
        timestamps: Time of each step in seconds, float64 (T,), strictly increasing.
        action_labels: Expert or human-corrected actions, float32 (T, ACTION_DIM), or None.
        interventions: True where a human was in control, bool (T,).
        wrench: Wrist wrench in N and N*m, float32 (T, 6), or None when not measured.
        rewards: Per-step reward, float32 (T,), or None (real logs have no reward).
        success: True, False, or None when unknown.
        context: Object start position and goal position in metres, float32 (CONTEXT_DIM,).
        domain_params: Sampled simulation parameters (name -> value); empty for real data.
        flags: Flag name -> bool, see `FLAG_NAMES`; other names are allowed.
        missing: Group name -> bool (T,), True where that group had no valid reading. NaN is
            allowed in a group only on its missing steps, or anywhere once `nan_sensor` is set.
        step_stats: Per-step statistics computed while acting, name -> float32 (T,), such as the
            policy's prediction error norm, last hidden feature norm and action standard deviation.
        info: Free-form metadata (bag path, episode index in the bag, task name, seed).
    """

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    timestamps: np.ndarray
    source: Source = "sim"
    id: str = field(default_factory=new_episode_id)
    action_labels: np.ndarray | None = None
    interventions: np.ndarray | None = None
    wrench: np.ndarray | None = None
    rewards: np.ndarray | None = None
    success: bool | None = None
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT_DIM, np.float32))
    domain_params: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    step_stats: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._coerce()
        self.validate()

    # -- construction helpers -------------------------------------------------------------

    def _coerce(self) -> None:
        """Convert array-likes to the declared dtypes without changing values."""
        self.obs = {name: np.asarray(value, dtype=np.float32) for name, value in self.obs.items()}
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        if self.action_labels is not None:
            self.action_labels = np.asarray(self.action_labels, dtype=np.float32)
        if self.interventions is None:
            self.interventions = np.zeros(len(self.actions), dtype=bool)
        else:
            self.interventions = np.asarray(self.interventions, dtype=bool)
        if self.wrench is not None:
            self.wrench = np.asarray(self.wrench, dtype=np.float32)
        if self.rewards is not None:
            self.rewards = np.asarray(self.rewards, dtype=np.float32)
        self.context = np.asarray(self.context, dtype=np.float32)
        self.missing = {name: np.asarray(mask, dtype=bool) for name, mask in self.missing.items()}
        self.step_stats = {
            name: np.asarray(value, dtype=np.float32) for name, value in self.step_stats.items()
        }
        self.flags = {name: bool(value) for name, value in self.flags.items()}

    def validate(self) -> None:
        """Check shapes, dtypes and values; raise `EpisodeError` naming the first problem."""
        if self.source not in ("sim", "real"):
            raise EpisodeError(f"episode {self.id}: source must be 'sim' or 'real', got {self.source!r}")
        length = len(self.actions)
        self._check_shape("actions", self.actions, (length, ACTION_DIM))
        self._check_shape("timestamps", self.timestamps, (length,))
        if length > 1 and not np.all(np.diff(self.timestamps) > 0):
            step = int(np.argmin(np.diff(self.timestamps)))
            raise EpisodeError(
                f"episode {self.id}: timestamps must increase strictly, but step {step + 1} is at "
                f"{self.timestamps[step + 1]:.6f} s after {self.timestamps[step]:.6f} s"
            )

        unknown_groups = sorted(set(self.obs) - set(OBS_GROUPS))
        if unknown_groups:
            raise EpisodeError(
                f"episode {self.id}: unknown observation groups {unknown_groups}; "
                f"expected {sorted(OBS_GROUPS)}"
            )
        for name, width in OBS_GROUPS.items():
            if name not in self.obs:
                raise EpisodeError(f"episode {self.id}: observation group '{name}' is missing")
            self._check_shape(f"obs['{name}']", self.obs[name], (length, width))

        if self.action_labels is not None:
            self._check_shape("action_labels", self.action_labels, (length, ACTION_DIM))
        self._check_shape("interventions", self.interventions, (length,))
        if self.wrench is not None:
            self._check_shape("wrench", self.wrench, (length, 6))
        if self.rewards is not None:
            self._check_shape("rewards", self.rewards, (length,))
        self._check_shape("context", self.context, (CONTEXT_DIM,))
        for name, mask in self.missing.items():
            self._check_shape(f"missing['{name}']", mask, (length,))
        for name, values in self.step_stats.items():
            self._check_shape(f"step_stats['{name}']", values, (length,))

        self._check_finite()

    def _check_shape(self, name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
        if array.shape != expected:
            raise EpisodeError(
                f"episode {self.id}: {name} has shape {array.shape}, expected {expected}"
            )

    def _check_finite(self) -> None:
        if self.flags.get("nan_sensor", False):
            return
        arrays: dict[str, np.ndarray] = {f"obs['{k}']": v for k, v in self.obs.items()}
        if self.wrench is not None:
            arrays["wrench"] = self.wrench
        for name, array in arrays.items():
            bad_steps = ~np.isfinite(array).all(axis=1)
            group = name[5:-2] if name.startswith("obs[") else "force"
            allowed = self.missing.get(group)
            if allowed is not None:
                bad_steps &= ~allowed
            if bad_steps.any():
                step = int(np.flatnonzero(bad_steps)[0])
                raise EpisodeError(
                    f"episode {self.id}: {name} contains NaN or Inf at step {step}; mark the step in "
                    f"`missing['{group}']` or set the 'nan_sensor' flag"
                )
        for name in ("actions", "timestamps", "context"):
            if not np.isfinite(getattr(self, name)).all():
                raise EpisodeError(f"episode {self.id}: {name} contains NaN or Inf")
        if self.action_labels is not None and not np.isfinite(self.action_labels).all():
            raise EpisodeError(f"episode {self.id}: action_labels contains NaN or Inf")

    # -- views -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def duration_s(self) -> float:
        """Time from the first to the last step in seconds (0 for a 1-step episode)."""
        return float(self.timestamps[-1] - self.timestamps[0]) if len(self) else 0.0

    @property
    def terminated(self) -> bool:
        return self.flags.get("terminated", False)

    @property
    def truncated(self) -> bool:
        return self.flags.get("truncated", False)

    @property
    def peak_force_n(self) -> float | None:
        """Largest force magnitude in newtons over valid steps, or None without wrench data."""
        if self.wrench is None:
            return None
        force = np.linalg.norm(self.wrench[:, :3], axis=1)
        force = force[np.isfinite(force)]
        return float(force.max()) if force.size else None

    def stacked_obs(self) -> np.ndarray:
        """Concatenate all groups in `OBS_GROUPS` order into float32 (T, sum of widths)."""
        return np.concatenate([self.obs[name] for name in OBS_GROUPS], axis=1)

    def replace(self, **changes) -> Episode:
        """Return a copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def slice(self, start: int, stop: int) -> Episode:
        """Return steps [start, stop) as a new episode sharing the episode-level fields."""

        def cut(array):
            return None if array is None else array[start:stop]

        return Episode(
            obs={k: v[start:stop] for k, v in self.obs.items()},
            actions=self.actions[start:stop],
            timestamps=self.timestamps[start:stop],
            source=self.source,
            id=self.id,
            action_labels=cut(self.action_labels),
            interventions=cut(self.interventions),
            wrench=cut(self.wrench),
            rewards=cut(self.rewards),
            success=self.success,
            context=self.context.copy(),
            domain_params=dict(self.domain_params),
            flags=dict(self.flags),
            missing={k: v[start:stop] for k, v in self.missing.items()},
            step_stats={k: v[start:stop] for k, v in self.step_stats.items()},
            info=dict(self.info),
        )

    # -- serialization ---------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flatten into named numpy arrays (for `np.savez` or sending between processes)."""
        import json

        arrays: dict[str, np.ndarray] = {
            "actions": self.actions,
            "timestamps": self.timestamps,
            "interventions": self.interventions,
            "context": self.context,
        }
        for name, value in self.obs.items():
            arrays[f"obs/{name}"] = value
        for name, value in self.missing.items():
            arrays[f"missing/{name}"] = value
        for name, value in self.step_stats.items():
            arrays[f"step_stats/{name}"] = value
        for name in ("action_labels", "wrench", "rewards"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        header = {
            "id": self.id,
            "source": self.source,
            "success": self.success,
            "domain_params": self.domain_params,
            "flags": self.flags,
            "info": self.info,
        }
        arrays["header"] = np.frombuffer(json.dumps(header, default=_json_default).encode(), np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Episode:
        """Inverse of `to_arrays`."""
        import json

        header = json.loads(bytes(np.asarray(arrays["header"], np.uint8)).decode())

        def prefixed(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: np.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}

        return cls(
            obs=prefixed("obs/"),
            actions=arrays["actions"],
            timestamps=arrays["timestamps"],
            source=header["source"],
            id=header["id"],
            action_labels=arrays.get("action_labels"),
            interventions=arrays["interventions"],
            wrench=arrays.get("wrench"),
            rewards=arrays.get("rewards"),
            success=header["success"],
            context=arrays["context"],
            domain_params=header["domain_params"],
            flags=header["flags"],
            missing=prefixed("missing/"),
            step_stats=prefixed("step_stats/"),
            info=header["info"],
        )


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in episode metadata")
