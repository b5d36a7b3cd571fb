"""The gripper-on-a-table env that every task builds on.

A task subclass chooses where the object and the goal start, the reward terms, success and the
terminal condition. This class runs the physics, domain randomization, action latency and noise,
the observation groups and the blow-up checks.
"""

from __future__ import annotations

import collections
import logging
import math
from pathlib import Path
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from ast_robot.config import EnvConfig, RandomizationConfig
from ast_robot.episode import ACTION_DIM, CONTEXT_DIM, OBS_GROUPS
from ast_robot.errors import ConfigError, EnvError

from .randomization import (
    DomainRandomizer,
    apply_domain_params,
    check_domain_params,
    load_reality_profile,
    nominal_params,
)
from .scene import FINGER_OPEN_M, PAD_HALF_HEIGHT_M, TCP_HOME_M, Scene

logger = logging.getLogger(__name__)

OBS_SLICES: dict[str, slice] = {}
_start = 0
for _name, _width in OBS_GROUPS.items():
    OBS_SLICES[_name] = slice(_start, _start + _width)
    _start += _width
OBS_SIZE = _start
"""Width of all observation groups concatenated in `OBS_GROUPS` order."""

MAX_TARGET_LEAD_M = 0.03
"""Largest distance the servo target may run ahead of the gripper. When the gripper is blocked
(pressing on the table or the object) the integrated velocity command stops growing here, which
bounds the contact force near servo stiffness times this distance."""

MAX_SPEED = 50.0
"""Largest norm of the whole velocity vector qvel (m/s and rad/s mixed) that counts as sane.
The tasks move at under 1 m/s, so anything faster is treated as a physics blow-up."""

TOUCH_THRESHOLD_N = 0.05
"""Normal force on a fingertip touch sensor above which the pad counts as in contact."""

_INSTABILITY_WARNINGS = (
    mujoco.mjtWarning.mjWARN_CONTACTFULL,
    mujoco.mjtWarning.mjWARN_CNSTRFULL,
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQACC,
)
"""MuJoCo warnings that mean the physics is invalid: the contact or constraint buffer overflowed
(contacts were dropped), or qpos, qvel or qacc went bad."""



class GripperEnv(gymnasium.Env):
    """A Cartesian parallel gripper, a cube and a goal on a table (MuJoCo).

    The gripper moves on three slide joints under position servos whose target integrates the
    velocity command, the interface of a Cartesian velocity controller on a real arm. A wrist
    force-torque sensor sits between the carriage and the hand, and each finger pad carries a
    touch sensor (reported in ``info["state"]["touch_n"]``).

    Observation (``gymnasium.spaces.Dict``, float32; noise and bias from domain randomization
    are added to these values):

    | group     | index | component                                         | unit |
    |-----------|-------|---------------------------------------------------|------|
    | `proprio` | 0-2   | tool centre point (TCP) position x, y, z          | m    |
    | `proprio` | 3-5   | TCP velocity x, y, z                              | m/s  |
    | `proprio` | 6     | gripper opening (distance between the pads)       | m    |
    | `proprio` | 7     | gripper opening velocity                          | m/s  |
    | `force`   | 0-2   | wrist force x, y, z on the hand, zeroed at reset  | N    |
    | `force`   | 3-5   | wrist torque x, y, z on the hand, zeroed at reset | N*m  |
    | `object`  | 0-2   | cube centre position x, y, z                      | m    |
    | `object`  | 3-5   | cube centre minus TCP position x, y, z            | m    |
    | `goal`    | 0-2   | goal position x, y, z                             | m    |

    Positions are in the world frame: the table top is at z = 0 and its centre at x = y = 0.
    The wrist sensor axes are parallel to the world axes because the hand does not rotate.

    Action (``Box(-1, 1, (4,))``, float32):

    | index | component                              | scale                                |
    |-------|----------------------------------------|--------------------------------------|
    | 0-2   | TCP velocity command x, y, z           | times `EnvConfig.max_ee_speed_m_s`   |
    | 3     | gripper command: -1 open, +1 closed    | finger target 4 cm (open) to 0       |

    ``info`` at every step contains ``state`` (the true state for experts and evaluation),
    ``is_success``, the reward terms ``reward_<name>``, ``unstable`` and ``nan_sensor`` and the
    control step index ``step``. ``info`` at reset also contains ``domain_params`` and ``context``
    (float32 (6,): object start xyz and goal xyz in metres).

    An episode ends with ``terminated`` only at a true terminal state of the task, and with
    ``truncated`` at ``EnvConfig.max_steps`` or when the physics blows up (MuJoCo reports bad
    qpos, qvel or qacc, the velocity norm exceeds 50, or a state or sensor value is NaN/Inf);
    ``info["unstable"]`` or ``info["nan_sensor"]`` says which. The observation returned then
    holds the last finite value of every component that went bad.

    Reset options: ``context`` (6 floats: object start xyz, goal xyz; the object's z is replaced
    by its half size so it rests on the table) and ``domain_params`` (a partial mapping of domain
    parameters that replaces the sampled values) and ``tcp_start`` (3 floats: the TCP start
    position in metres instead of a random one near home, e.g. to replay a logged episode).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    task: str = ""

    def __init__(
        self,
        env_cfg: EnvConfig | None = None,
        rand_cfg: RandomizationConfig | None = None,
        *,
        reality: str | Path | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),
    ):
        env_cfg = env_cfg if env_cfg is not None else EnvConfig(task=self.task)
        env_cfg.check("env")
        if rand_cfg is not None:
            rand_cfg.check("randomization")
            rand_cfg.check_episode_length("randomization", env_cfg.max_steps)
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"render_mode {render_mode!r} is not supported; use None or 'rgb_array'")

        self.env_cfg = env_cfg
        self.scene = Scene(env_cfg.timestep_s)
        self.model = self.scene.model
        self.data = self.scene.data
        self.substeps = env_cfg.substeps
        self.control_dt_s = 1.0 / env_cfg.control_hz
        self.max_steps = env_cfg.max_steps

        fixed = load_reality_profile(reality) if reality is not None else None
        if fixed is not None and fixed.get("latency_steps", 0) >= env_cfg.max_steps:
            raise ConfigError(
                f"{reality}: latency_steps={fixed['latency_steps']:g} is not shorter than the "
                f"episode (env.max_steps={env_cfg.max_steps})"
            )
        self.reality = None if reality is None else str(reality)
        self.randomizer = DomainRandomizer(rand_cfg, nominal_params(self.scene), fixed=fixed)

        self.observation_space = spaces.Dict(
            {
                name: spaces.Box(-np.inf, np.inf, shape=(width,), dtype=np.float32)
                for name, width in OBS_GROUPS.items()
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self.metadata = {**self.metadata, "render_fps": int(round(env_cfg.control_hz))}

        self.render_mode = render_mode
        self._renderer = None
        if render_mode == "rgb_array":
            from .rendering import make_renderer

            self._renderer = make_renderer(self.model, height=render_size[0], width=render_size[1])

        self._index_model(env_cfg.max_ee_speed_m_s)
        # Cached numpy views of MjData arrays: each attribute access costs about a microsecond,
        # and the views stay valid because MjData never reallocates them.
        data = self.data
        self._qpos, self._qvel, self._act = data.qpos, data.qvel, data.act
        self._ctrl, self._sensordata = data.ctrl, data.sensordata
        self._warning_counts = data.warning.number
        self._instability_mask = np.zeros(len(self._warning_counts), dtype=np.int64)
        self._instability_mask[[int(warning) for warning in _INSTABILITY_WARNINGS]] = 1
        self._build_observation_map()

        self.domain_params: dict[str, float] = {}
        self.goal = np.zeros(3)
        self.object_half_size_m = self.scene.nominal_object_half_size_m
        self._step_count = 0
        self._needs_reset = True

    # -- task hooks ------------------------------------------------------------------------

    def _sample_object_xy(self, rng: np.random.Generator) -> np.ndarray:
        """Start position of the cube centre in the table plane, metres (2,)."""
        return rng.uniform(-0.12, 0.12, size=2)

    def _sample_goal(self, rng: np.random.Generator, object_pos: np.ndarray) -> np.ndarray:
        """Goal position in metres (3,)."""
        raise NotImplementedError

    def _evaluate(self, state: dict[str, Any]) -> tuple[float, dict[str, float], bool]:
        """Return the reward, its terms keyed ``reward_<name>`` and whether `state` solves the task."""
        raise NotImplementedError

    def _is_terminal(self, state: dict[str, Any]) -> bool:
        """Whether `state` is a true terminal state (nothing the robot does can matter)."""
        return False

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"context", "domain_params", "tcp_start"})
        if unknown:
            raise EnvError(f"unknown reset options {unknown}; supported: context, domain_params, tcp_start")
        rng = self.np_random

        params = self.randomizer.sample(rng)
        if options.get("domain_params"):
            params.update(check_domain_params(options["domain_params"], "reset options['domain_params']"))
        model, data = self.model, self.data
        apply_domain_params(self.scene, params)
        mujoco.mj_resetData(model, data)
        self.domain_params = params
        self._configure_noise(params, rng)

        half = params["object_half_size_m"]
        self.object_half_size_m = half
        if options.get("context") is not None:
            context = np.asarray(options["context"], dtype=np.float64)
            if context.shape != (CONTEXT_DIM,) or not np.isfinite(context).all():
                raise EnvError(
                    f"reset option 'context' must be {CONTEXT_DIM} finite numbers (object xyz, goal xyz), "
                    f"got shape {context.shape}"
                )
            object_pos = np.array([context[0], context[1], half])
            self.goal = context[3:].copy()
            yaw = 0.0
        else:
            object_pos = np.append(self._sample_object_xy(rng), half)
            self.goal = np.asarray(self._sample_goal(rng, object_pos), dtype=np.float64)
            yaw = float(rng.uniform(-0.2, 0.2))
        self._place_object(object_pos, yaw)
        model.site_pos[self.scene.goal_site] = self.goal

        tcp = TCP_HOME_M + np.array([*rng.uniform(-0.03, 0.03, size=2), rng.uniform(-0.02, 0.02)])
        if options.get("tcp_start") is not None:
            tcp = np.asarray(options["tcp_start"], dtype=np.float64)
            if tcp.shape != (3,) or not np.isfinite(tcp).all():
                raise EnvError(f"reset option 'tcp_start' must be 3 finite numbers (TCP xyz in m), got shape {tcp.shape}")
        data.qpos[self._gripper_q] = tcp - TCP_HOME_M
        data.qpos[self._finger_q] = FINGER_OPEN_M
        data.act[self._gripper_act] = tcp - TCP_HOME_M
        data.ctrl[self._gripper_ctrl] = 0.0
        data.ctrl[self._finger_ctrl] = FINGER_OPEN_M
        mujoco.mj_forward(model, data)
        self._obs_offset[OBS_SLICES["force"]] = -data.sensordata[self._sensor_ft]
        self._obs_offset[OBS_SLICES["goal"]] = self.goal
        self._warnings_seen = self._instability_warnings()

        self._latency = int(params["latency_steps"])
        self._action_queue = collections.deque(
            [np.array([0.0, 0.0, 0.0, -1.0])] * self._latency, maxlen=self._latency + 1
        )
        self._step_count = 0
        self._needs_reset = False

        raw, true_obs = self._read()
        if not np.isfinite(raw).all():
            raise EnvError(f"the initial state is not finite with domain parameters {params}")
        obs_flat = self._observe(true_obs)
        self._last_obs = obs_flat
        state = self._state(raw, true_obs)
        _, _, success = self._evaluate(state)
        info = {
            "state": state,
            "is_success": success,
            "unstable": False,
            "nan_sensor": False,
            "step": 0,
            "domain_params": dict(params),
            "context": np.concatenate([object_pos, self.goal]).astype(np.float32),
        }
        return self._split(obs_flat), info

    def step(self, action):
        if self._needs_reset:
            raise EnvError("step() called before reset() or after the episode ended; call reset() first")
        command = np.asarray(action, dtype=np.float64)
        if command.shape != (ACTION_DIM,):
            raise EnvError(f"action must have shape ({ACTION_DIM},), got {command.shape}")
        if not math.isfinite(float(command @ command)):
            raise EnvError(f"action {command.tolist()} contains NaN or Inf")
        command = self._perturb_action(command)

        # The servo targets (actuator states, relative to the home pose) integrate the velocity
        # command inside mj_step; MuJoCo's actrange keeps them in the workspace.
        joints = self._qpos[self._gripper_q]
        target = self._act[self._gripper_act]
        # np.minimum/np.maximum: np.clip costs several microseconds more per call on 3-vectors.
        self._act[self._gripper_act] = np.minimum(
            np.maximum(target, joints - MAX_TARGET_LEAD_M), joints + MAX_TARGET_LEAD_M
        )
        # One affine map for all controls: TCP velocities in m/s, then both finger targets in m.
        self._ctrl[:] = command[self._ctrl_source] * self._ctrl_scale + self._ctrl_offset

        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self._step_count += 1

        raw, true_obs = self._read()
        unstable, nan_sensor = self._check_blow_up(raw)
        if unstable or nan_sensor:
            raw, true_obs = self._read_finite_part(raw)
        obs_flat = self._observe(true_obs)
        if unstable or nan_sensor:
            obs_flat = np.where(np.isfinite(obs_flat), obs_flat, self._last_obs)
        self._last_obs = obs_flat

        state = self._state(raw, true_obs)
        if unstable or nan_sensor:
            reward, terms, success = 0.0, {}, False
            terminated = False
        else:
            reward, terms, success = self._evaluate(state)
            terminated = self._is_terminal(state)
        truncated = unstable or nan_sensor or self._step_count >= self.max_steps
        self._needs_reset = terminated or truncated

        info = {"state": state, "is_success": success, "unstable": unstable, "nan_sensor": nan_sensor,
                "step": self._step_count, **terms}
        return self._split(obs_flat), float(reward), terminated, truncated, info

    def render(self):
        if self._renderer is None:
            return None
        self._renderer.update_scene(self.data, camera="overview")
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- internals -------------------------------------------------------------------------

    def _configure_noise(self, params: dict[str, float], rng: np.random.Generator) -> None:
        """Set the sensor bias and draw the whole episode's observation and action noise.

        Drawing all noise at reset costs one generator call instead of two per step.
        """
        scale = np.zeros(OBS_SIZE)
        scale[OBS_SLICES["proprio"]] = params["proprio_noise_std"]
        force = OBS_SLICES["force"]
        scale[force.start:force.start + 3] = params["force_noise_std_n"]
        scale[force.start + 3:force.stop] = params["torque_noise_std_nm"]
        scale[OBS_SLICES["object"]] = params["object_noise_std_m"]
        scale[OBS_SLICES["goal"]] = params["goal_noise_std_m"]
        # Row k is added to the observation after step k (row 0: the reset observation).
        self._obs_noise = scale * rng.standard_normal((self.max_steps + 1, OBS_SIZE)) if scale.any() else None
        self._obs_bias = np.zeros(OBS_SIZE)
        self._obs_bias[force] = [params[f"force_bias_{axis}_n"] for axis in "xyz"] + [
            params[f"torque_bias_{axis}_nm"] for axis in "xyz"
        ]
        std = params["action_noise_std"]
        # Row k is added to the action of step k + 1.
        self._action_noise = std * rng.standard_normal((self.max_steps, ACTION_DIM)) if std > 0.0 else None

    def _place_object(self, position: np.ndarray, yaw: float) -> None:
        q = self.scene.object_qpos
        self.data.qpos[q:q + 3] = position
        self.data.qpos[q + 3:q + 7] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]

    def _perturb_action(self, command: np.ndarray) -> np.ndarray:
        """Clip, add action noise and delay by the latency; return the command that acts now."""
        if self._action_noise is not None:
            command = command + self._action_noise[self._step_count]
        command = np.minimum(np.maximum(command, -1.0), 1.0)
        if self._latency:
            self._action_queue.append(command)
            command = self._action_queue.popleft()
        return command

    def _index_model(self, max_speed_m_s: float) -> None:
        """Store the slices of qpos, qvel, act and ctrl that every step reads or writes."""
        scene = self.scene
        self._gripper_q = slice(int(scene.gripper_qpos[0]), int(scene.gripper_qpos[-1]) + 1)
        self._finger_q = slice(int(scene.finger_qpos[0]), int(scene.finger_qpos[-1]) + 1)
        self._object_q = slice(scene.object_qpos, scene.object_qpos + 3)
        self._sensor_ft = slice(scene.force_adr, scene.force_adr + 6)
        if not (
            _is_contiguous(scene.gripper_qpos) and _is_contiguous(scene.gripper_dof)
            and _is_contiguous(scene.finger_qpos) and _is_contiguous(scene.finger_dof)
            and _is_contiguous(scene.gripper_actuators) and _is_contiguous(scene.finger_actuators)
        ):
            raise EnvError("the MJCF model must list the gripper joints, fingers and actuators in order")
        self._gripper_v = slice(int(scene.gripper_dof[0]), int(scene.gripper_dof[-1]) + 1)
        self._finger_v = slice(int(scene.finger_dof[0]), int(scene.finger_dof[-1]) + 1)
        self._gripper_ctrl = slice(int(scene.gripper_actuators[0]), int(scene.gripper_actuators[-1]) + 1)
        self._finger_ctrl = slice(int(scene.finger_actuators[0]), int(scene.finger_actuators[-1]) + 1)
        act_adr = self.model.actuator_actadr[scene.gripper_actuators]
        if not _is_contiguous(act_adr) or act_adr[0] < 0:
            raise EnvError("the gripper actuators must be integrated-velocity servos with states in order")
        self._gripper_act = slice(int(act_adr[0]), int(act_adr[-1]) + 1)
        order = [*scene.gripper_actuators, *scene.finger_actuators]
        if self.model.nu != 5 or order != [0, 1, 2, 3, 4]:
            raise EnvError(
                f"the MJCF model must list 5 actuators in the order x, y, z, left finger, right finger; "
                f"found {self.model.nu} in the order {order}"
            )
        # The gripper command c in [-1, 1] maps to the finger target 0.02 * (1 - c) metres.
        self._ctrl_source = np.array([0, 1, 2, 3, 3])
        speed = max_speed_m_s
        self._ctrl_scale = np.array([speed, speed, speed, -0.5 * FINGER_OPEN_M, -0.5 * FINGER_OPEN_M])
        self._ctrl_offset = np.array([0.0, 0.0, 0.0, 0.5 * FINGER_OPEN_M, 0.5 * FINGER_OPEN_M])

    def _build_observation_map(self) -> None:
        """Write every observation component as a linear function of (qpos, qvel, sensordata).

        `_read` then computes the noise-free observation with one matrix product, which is the
        cheapest way to assemble it in Python. The offset holds the constant parts: the TCP home
        position, the force-sensor tare and the goal (the last two are set at reset).
        """
        model = self.model
        nq, nv = model.nq, model.nv
        self._raw_qvel = slice(nq, nq + nv)
        self._raw_sensor = nq + nv
        scene = self.scene
        self._raw_touch = self._raw_sensor + scene.touch_adr
        self._raw_object_quat = slice(scene.object_qpos + 3, scene.object_qpos + 7)
        self._raw_object_vel = slice(nq + scene.object_dof, nq + scene.object_dof + 6)
        matrix = np.zeros((OBS_SIZE, nq + nv + model.nsensordata))
        offset = np.zeros(OBS_SIZE)
        gq, gv = self._gripper_q.start, nq + self._gripper_v.start
        obj = self._object_q.start
        for axis in range(3):
            matrix[axis, gq + axis] = 1.0  # TCP position
            matrix[3 + axis, gv + axis] = 1.0  # TCP velocity
            matrix[14 + axis, obj + axis] = 1.0  # object position
            matrix[17 + axis, obj + axis] = 1.0  # object minus TCP
            matrix[17 + axis, gq + axis] = -1.0
        matrix[6, self._finger_q] = 1.0  # opening: the sum of both finger joints
        matrix[7, nq + self._finger_v.start:nq + self._finger_v.stop] = 1.0
        for component in range(6):
            matrix[8 + component, self._raw_sensor + self.scene.force_adr + component] = 1.0
        offset[0:3] = TCP_HOME_M
        offset[17:20] = -TCP_HOME_M
        self._obs_matrix = matrix
        self._obs_offset = offset

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the raw state (qpos, qvel, sensordata concatenated; a copy) and the noise-free
        observation, float64 (OBS_SIZE,)."""
        raw = np.concatenate((self._qpos, self._qvel, self._sensordata))
        return raw, self._obs_matrix @ raw + self._obs_offset

    def _read_finite_part(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like `_read` after a blow-up: components that depend on a non-finite raw value are NaN,
        the others are computed normally (a plain product would spread one NaN everywhere)."""
        bad = ~np.isfinite(raw)
        clean = np.where(bad, 0.0, raw)
        true_obs = self._obs_matrix @ clean + self._obs_offset
        true_obs[(self._obs_matrix[:, bad] != 0.0).any(axis=1)] = np.nan
        return clean, true_obs

    def _observe(self, true_obs: np.ndarray) -> np.ndarray:
        """The observation the policy sees: `true_obs` with sensor bias and noise, float64."""
        obs = true_obs + self._obs_bias
        if self._obs_noise is not None:
            obs += self._obs_noise[self._step_count]
        return obs

    def _instability_warnings(self) -> int:
        """Count MuJoCo's instability warnings since the last `mj_resetData` by the env."""
        return int(self._warning_counts @ self._instability_mask)

    def _split(self, obs_flat: np.ndarray) -> dict[str, np.ndarray]:
        obs32 = obs_flat.astype(np.float32)
        return {name: obs32[part] for name, part in OBS_SLICES.items()}

    def _check_blow_up(self, raw: np.ndarray) -> tuple[bool, bool]:
        """Return (unstable, nan_sensor) for the state after a step.

        MuJoCo reacts to bad qpos, qvel or qacc (NaN, Inf or above 1e10) with a warning and
        `mj_resetData`, so the state looks fine afterwards and only the warning counters tell.
        Contact or constraint buffer overflows count as unstable too, because contacts were lost.
        """
        data = self.data
        warnings = self._instability_warnings()
        unstable = warnings != self._warnings_seen
        self._warnings_seen = warnings
        velocity = raw[self._raw_qvel]
        # A NaN fails every comparison, so "not (x <= limit)" also catches NaN and Inf.
        unstable = unstable or not float(velocity @ velocity) <= MAX_SPEED**2
        nan_sensor = False
        # One sum is the cheapest finiteness test; it is finite unless an entry is not (or the
        # values are near 1e308, far past any blow-up threshold).
        if not math.isfinite(float(raw.sum())):
            state_finite = bool(np.isfinite(raw[: self._raw_sensor]).all())
            unstable = unstable or not state_finite
            nan_sensor = not unstable
        if unstable:
            logger.warning(
                "%s: physics became unstable at step %d (MuJoCo reset the state, or a velocity norm "
                "above %g or a non-finite state); ending the episode", self.task, self._step_count, MAX_SPEED,
            )
        elif nan_sensor:
            logger.warning("%s: a sensor returned NaN or Inf at step %d; ending the episode", self.task, self._step_count)
        return unstable, nan_sensor

    def _state(self, raw: np.ndarray, true_obs: np.ndarray) -> dict[str, Any]:
        """The true state, for experts and evaluation (never noisy); arrays are fresh copies."""
        touch = raw[self._raw_touch]
        tcp = true_obs[0:3]
        obj = true_obs[14:17]
        half = self.object_half_size_m
        grasped = bool(
            touch[0] > TOUCH_THRESHOLD_N and touch[1] > TOUCH_THRESHOLD_N
            and np.abs(true_obs[17:20]).max() < half + PAD_HALF_HEIGHT_M
        )
        return {
            "tcp_pos": tcp,
            "tcp_vel": true_obs[3:6],
            "target_pos": self._act[self._gripper_act] + TCP_HOME_M,
            "gripper_opening_m": float(true_obs[6]),
            "object_pos": obj,
            "object_quat": raw[self._raw_object_quat],
            "object_vel": raw[self._raw_object_vel],
            "object_half_size_m": half,
            "goal": self.goal.copy(),
            "touch_n": touch,
            "grasped": grasped,
        }


def _is_contiguous(indices: np.ndarray) -> bool:
    return bool(np.all(np.diff(indices) == 1))
