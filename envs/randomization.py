"""Domain randomization: sampling physical and sensor parameters and writing them into MuJoCo.

The parameter set of one episode is a flat ``dict[str, float]`` (see `PARAM_NAMES`), returned in
``info["domain_params"]`` at reset and stored with each episode. It comes from one of three
places: the nominal values of the MJCF model, a sample from a `RandomizationConfig` drawn with the
env's ``np_random``, or a reality profile (a YAML file of fixed values, see `load_reality_profile`).

`apply_domain_params` writes the physical parameters into the compiled model the way MuJoCo needs:

- Mass: the inertia is recomputed for the new mass and size, then `mj_setConst` recomputes
  the constants derived from them at qpos0 (subtree masses, the inverse weights the constraint
  solver uses for contact softness, actuator moment scaling).
- Geom size: collision detection reads the bounding-sphere radius (`geom_rbound`) and the local
  bounding box (`geom_aabb`) besides `geom_size`, so all three change together; each changed geom
  is the only geom of its body, so there is no multi-geom body tree to rebuild.
- Servo stiffness: a MuJoCo position actuator computes ``kp * ctrl - kp * q - kv * qdot`` from
  ``gainprm[0] = kp``, ``biasprm[1] = -kp`` and ``biasprm[2] = -kv``. The gain and the bias are
  scaled together, and kv by the square root of the factor so the damping ratio stays the same.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import yaml

from ast_robot.config import RandomizationConfig, config_from_dict, resolve_config_path
from ast_robot.errors import ConfigError, EnvError

from .scene import Scene

FORCE_AXES = ("x", "y", "z")

PARAM_NAMES: tuple[str, ...] = (
    "object_mass_kg",
    "object_half_size_m",
    "object_friction",
    "table_friction",
    "finger_friction",
    "table_size_scale",
    "joint_damping_scale",
    "actuator_gain_scale",
    "gravity_tilt_rad",
    "gravity_tilt_azimuth_rad",
    "latency_steps",
    "action_noise_std",
    "proprio_noise_std",
    "object_noise_std_m",
    "goal_noise_std_m",
    *(f"force_bias_{axis}_n" for axis in FORCE_AXES),
    "force_noise_std_n",
    *(f"torque_bias_{axis}_nm" for axis in FORCE_AXES),
    "torque_noise_std_nm",
)
"""Every domain parameter, in the order they are sampled."""

_CONFIG_FIELD = {name: name for name in PARAM_NAMES}
_CONFIG_FIELD.update({f"force_bias_{axis}_n": "force_bias_n" for axis in FORCE_AXES})
_CONFIG_FIELD.update({f"torque_bias_{axis}_nm": "torque_bias_nm" for axis in FORCE_AXES})
del _CONFIG_FIELD["gravity_tilt_azimuth_rad"]


def nominal_params(scene: Scene) -> dict[str, float]:
    """The parameters of the MJCF model as compiled, with no latency, noise or bias."""
    nominal = scene.nominal
    params = dict.fromkeys(PARAM_NAMES, 0.0)
    params.update(
        object_mass_kg=float(nominal.body_mass[scene.object_body]),
        object_half_size_m=float(nominal.geom_size[scene.object_geom, 0]),
        object_friction=float(nominal.geom_friction[scene.object_geom, 0]),
        table_friction=float(nominal.geom_friction[scene.table_geom, 0]),
        finger_friction=float(nominal.geom_friction[scene.pad_geoms[0], 0]),
        table_size_scale=1.0,
        joint_damping_scale=1.0,
        actuator_gain_scale=1.0,
    )
    return params


def check_domain_params(params: dict[str, Any], source: str) -> dict[str, float]:
    """Validate names and values of a (possibly partial) parameter mapping.

    The allowed range of each value is the one its `RandomizationConfig` field accepts.

    Raises:
        ConfigError: naming `source`, the parameter and the allowed values.
    """
    fields = {f.name: f for f in dataclasses.fields(RandomizationConfig)}
    checked: dict[str, float] = {}
    for name, value in params.items():
        if name not in PARAM_NAMES:
            raise ConfigError(
                f"{source}: unknown domain parameter {name!r}; known parameters: {', '.join(PARAM_NAMES)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{source}: {name}: invalid value {value!r}; expected a finite number")
        value = float(value)
        if name == "latency_steps" and (value < 0 or not value.is_integer()):
            raise ConfigError(f"{source}: latency_steps: invalid value {value!r}; expected a whole number >= 0")
        field = fields.get(_CONFIG_FIELD.get(name, ""))
        if field is not None:
            low, high = field.metadata.get("low"), field.metadata.get("high")
            too_low = low is not None and (value < low if field.metadata["low_inclusive"] else value <= low)
            too_high = high is not None and value > high
            if too_low or too_high:
                lower = "(" if not field.metadata["low_inclusive"] else "["
                raise ConfigError(
                    f"{source}: {name}: invalid value {value:g}; expected a value in "
                    f"{lower}{low:g}, {high if high is not None else math.inf:g}]"
                )
        checked[name] = value
    return checked


def load_reality_profile(path: str | Path) -> dict[str, float]:
    """Read a reality profile: a YAML file with a ``params`` mapping of fixed domain parameters.

    Parameters the profile leaves out keep their nominal values. The path may be relative to the
    packaged configs directory (``configs/reality/standin.yaml`` or ``reality/standin.yaml``).

    Raises:
        ConfigError: when the file is missing or invalid, or names an unknown parameter or an
            invalid value.
    """
    resolved = resolve_config_path(path)
    try:
        data = yaml.safe_load(resolved.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read reality profile {resolved}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise ConfigError(f"{resolved}: a reality profile needs a 'params' mapping of parameter names to values")
    unknown = sorted(set(data) - {"name", "description", "params"})
    if unknown:
        raise ConfigError(f"{resolved}: unknown top-level keys {unknown}; expected name, description, params")
    return check_domain_params(data["params"], str(resolved))


def load_randomization_spec(path: str | Path) -> RandomizationConfig:
    """Read a YAML randomization spec: the keys of a `RandomizationConfig`, at the top level or
    under a ``randomization`` section (so a whole task file works too)."""
    resolved = resolve_config_path(path)
    try:
        data = yaml.safe_load(resolved.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read randomization spec {resolved}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{resolved}: a randomization spec must be a mapping")
    section = data["randomization"] if "randomization" in data else data
    config = config_from_dict({"randomization": section}, source_name=str(resolved))
    return config.randomization


class DomainRandomizer:
    """Samples the domain parameters of an episode.

    Args:
        cfg: Sampling ranges; None, or ``cfg.enabled`` false, gives the nominal parameters.
        nominal: The nominal parameter set (`nominal_params`).
        fixed: Values that replace sampling, e.g. a reality profile; the other parameters keep
            their nominal values.
    """

    def __init__(
        self,
        cfg: RandomizationConfig | None,
        nominal: dict[str, float],
        *,
        fixed: dict[str, float] | None = None,
    ):
        if cfg is not None:
            cfg.check("randomization")
        self.cfg = cfg
        self.nominal = dict(nominal)
        self.fixed = None if fixed is None else check_domain_params(fixed, "fixed domain parameters")

    @classmethod
    def from_yaml(cls, path: str | Path, nominal: dict[str, float]) -> DomainRandomizer:
        """Build a randomizer from a YAML randomization spec (see `load_randomization_spec`)."""
        return cls(load_randomization_spec(path), nominal)

    @property
    def randomizes(self) -> bool:
        return self.fixed is None and self.cfg is not None and self.cfg.enabled

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """Return the parameters of one episode, drawn from `rng` when sampling is enabled."""
        params = dict(self.nominal)
        if self.fixed is not None:
            params.update(self.fixed)
            return params
        if not self.randomizes:
            return params

        cfg = self.cfg
        for name in PARAM_NAMES:
            if name == "gravity_tilt_azimuth_rad":
                params[name] = float(rng.uniform(-math.pi, math.pi))
            elif name == "latency_steps":
                params[name] = float(cfg.latency_steps[int(rng.integers(len(cfg.latency_steps)))])
            else:
                low, high = getattr(cfg, _CONFIG_FIELD[name])
                params[name] = float(rng.uniform(low, high))
        return params


def apply_domain_params(scene: Scene, params: dict[str, float]) -> None:
    """Write the physical parameters into `scene.model` and recompute its derived constants.

    Sensor, latency and noise parameters are used by the env itself and are not written here.
    Every call starts from the compiled values, so the result depends on `params` alone.
    """
    model, nominal = scene.model, scene.nominal
    scene.restore_nominal()

    mass = params["object_mass_kg"]
    half = params["object_half_size_m"]
    if mass <= 0.0 or half <= 0.0:
        raise EnvError(f"object mass {mass} kg and half size {half} m must both be positive")
    body, geom = scene.object_body, scene.object_geom
    model.body_mass[body] = mass
    # A solid cube of half edge h has the principal moment 2/3 * m * h^2 about every axis.
    model.body_inertia[body] = 2.0 / 3.0 * mass * half**2
    _set_box_size(model, geom, np.array([half, half, half]))

    table = scene.table_geom
    table_size = nominal.geom_size[table].copy()
    table_size[:2] *= params["table_size_scale"]
    _set_box_size(model, table, table_size)

    model.geom_friction[geom, 0] = params["object_friction"]
    model.geom_friction[table, 0] = params["table_friction"]
    model.geom_friction[scene.pad_geoms, 0] = params["finger_friction"]

    dofs = scene.robot_dofs
    model.dof_damping[dofs] = nominal.dof_damping[dofs] * params["joint_damping_scale"]

    scale = params["actuator_gain_scale"]
    model.actuator_gainprm[:, 0] = nominal.actuator_gainprm[:, 0] * scale
    model.actuator_biasprm[:, 1] = nominal.actuator_biasprm[:, 1] * scale
    model.actuator_biasprm[:, 2] = nominal.actuator_biasprm[:, 2] * math.sqrt(scale)

    tilt, azimuth = params["gravity_tilt_rad"], params["gravity_tilt_azimuth_rad"]
    magnitude = float(np.linalg.norm(nominal.gravity))
    model.opt.gravity[:] = magnitude * np.array(
        [math.sin(tilt) * math.cos(azimuth), math.sin(tilt) * math.sin(azimuth), -math.cos(tilt)]
    )

    mujoco.mj_setConst(model, scene.data)


def _set_box_size(model: mujoco.MjModel, geom: int, half_extents: np.ndarray) -> None:
    """Resize a box geom together with the bounds collision detection uses."""
    model.geom_size[geom] = half_extents
    model.geom_rbound[geom] = float(np.linalg.norm(half_extents))
    # geom_aabb is (center xyz, half-size xyz) in the geom frame; a box is centred on its frame.
    model.geom_aabb[geom, :3] = 0.0
    model.geom_aabb[geom, 3:] = half_extents
