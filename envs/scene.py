"""The MJCF scene shared by every task: loading, named ids and the nominal parameter values.

`Scene` holds one compiled `mujoco.MjModel` with its `mujoco.MjData`, the ids and addresses the
tasks read every step, and a copy of every model field that domain randomization writes, so
each reset starts from the values in the XML file.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from ast_robot.errors import EnvError

SCENE_XML = "gripper_table.xml"

TCP_HOME_M = np.array([0.0, 0.0, 0.15])
"""Tool centre point position in metres when every gripper joint is at 0 (the body's MJCF pos)."""

GRIPPER_JOINTS = ("ee_x", "ee_y", "ee_z")
FINGER_JOINTS = ("finger_left", "finger_right")
FINGER_OPEN_M = 0.04
"""Finger joint target for an open gripper: each pad 4 cm from the TCP (8 cm opening)."""

PAD_HALF_HEIGHT_M = 0.015
"""Half height of a finger pad; the TCP is the pad centre, so pads reach this far below it."""


def asset_path(name: str = SCENE_XML) -> Path:
    """Path of a packaged MJCF file."""
    return Path(str(importlib.resources.files("ast_robot.envs") / "assets" / name))


def load_model(path: str | Path | None = None) -> mujoco.MjModel:
    """Compile the scene MJCF (the packaged one by default) into a model."""
    path = Path(path) if path is not None else asset_path()
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except (ValueError, FileNotFoundError) as error:
        raise EnvError(f"cannot compile the MJCF model {path}: {error}") from error


@dataclass(frozen=True)
class Nominal:
    """Copies of the model fields that randomization changes, as compiled from the XML."""

    body_mass: np.ndarray
    body_inertia: np.ndarray
    geom_size: np.ndarray
    geom_rbound: np.ndarray
    geom_aabb: np.ndarray
    geom_friction: np.ndarray
    dof_damping: np.ndarray
    actuator_gainprm: np.ndarray
    actuator_biasprm: np.ndarray
    gravity: np.ndarray


class Scene:
    """A compiled scene with the ids and array addresses the tasks use."""

    def __init__(self, timestep_s: float, model_path: str | Path | None = None):
        model = load_model(model_path)
        model.opt.timestep = timestep_s
        self.model = model
        self.data = mujoco.MjData(model)

        self.object_body = model.body("object").id
        self.object_geom = model.geom("object_geom").id
        self.table_geom = model.geom("table_top").id
        self.pad_geoms = np.array([model.geom("left_pad").id, model.geom("right_pad").id])
        self.goal_site = model.site("goal").id
        self.ft_site = model.site("ft_site").id

        self.gripper_qpos = np.array([model.jnt_qposadr[model.joint(n).id] for n in GRIPPER_JOINTS])
        self.gripper_dof = np.array([model.jnt_dofadr[model.joint(n).id] for n in GRIPPER_JOINTS])
        self.finger_qpos = np.array([model.jnt_qposadr[model.joint(n).id] for n in FINGER_JOINTS])
        self.finger_dof = np.array([model.jnt_dofadr[model.joint(n).id] for n in FINGER_JOINTS])
        free = model.joint("object_free").id
        self.object_qpos = int(model.jnt_qposadr[free])
        self.object_dof = int(model.jnt_dofadr[free])
        self.robot_dofs = np.concatenate([self.gripper_dof, self.finger_dof])

        self.gripper_actuators = np.array([model.actuator(f"act_{a}").id for a in "xyz"])
        self.finger_actuators = np.array(
            [model.actuator("act_finger_left").id, model.actuator("act_finger_right").id]
        )
        # Workspace of the TCP in metres (the gripper joint ranges around the home position).
        self.tcp_low = model.jnt_range[[model.joint(n).id for n in GRIPPER_JOINTS], 0] + TCP_HOME_M
        self.tcp_high = model.jnt_range[[model.joint(n).id for n in GRIPPER_JOINTS], 1] + TCP_HOME_M

        force_id = model.sensor("wrist_force").id
        torque_id = model.sensor("wrist_torque").id
        self.force_adr = int(model.sensor_adr[force_id])
        self.torque_adr = int(model.sensor_adr[torque_id])
        if self.torque_adr != self.force_adr + 3:
            raise EnvError("the MJCF model must list wrist_torque right after wrist_force")
        self.touch_adr = np.array(
            [model.sensor_adr[model.sensor("left_touch").id], model.sensor_adr[model.sensor("right_touch").id]]
        )

        self.nominal = Nominal(
            body_mass=model.body_mass.copy(),
            body_inertia=model.body_inertia.copy(),
            geom_size=model.geom_size.copy(),
            geom_rbound=model.geom_rbound.copy(),
            geom_aabb=model.geom_aabb.copy(),
            geom_friction=model.geom_friction.copy(),
            dof_damping=model.dof_damping.copy(),
            actuator_gainprm=model.actuator_gainprm.copy(),
            actuator_biasprm=model.actuator_biasprm.copy(),
            gravity=model.opt.gravity.copy(),
        )

    @property
    def nominal_object_half_size_m(self) -> float:
        return float(self.nominal.geom_size[self.object_geom, 0])

    def restore_nominal(self) -> None:
        """Write every randomized field back to its compiled value."""
        model, nominal = self.model, self.nominal
        model.body_mass[:] = nominal.body_mass
        model.body_inertia[:] = nominal.body_inertia
        model.geom_size[:] = nominal.geom_size
        model.geom_rbound[:] = nominal.geom_rbound
        model.geom_aabb[:] = nominal.geom_aabb
        model.geom_friction[:] = nominal.geom_friction
        model.dof_damping[:] = nominal.dof_damping
        model.actuator_gainprm[:] = nominal.actuator_gainprm
        model.actuator_biasprm[:] = nominal.actuator_biasprm
        model.opt.gravity[:] = nominal.gravity
