"""Domain randomization: sampling, determinism and writing parameters into MuJoCo correctly."""

import dataclasses
import random
import re

import mujoco
import numpy as np
import pytest

from ast_robot.config import RandomizationConfig, load_config
from ast_robot.envs import PARAM_NAMES, DomainRandomizer, load_randomization_spec, load_reality_profile, make_env
from ast_robot.envs.randomization import apply_domain_params, nominal_params
from ast_robot.envs.scene import Scene, asset_path
from ast_robot.errors import ConfigError

STANDIN = "configs/reality/standin.yaml"


def _compiled_with(edit) -> mujoco.MjModel:
    """Compile the scene MJCF after `edit(spec)`: the reference a randomized model must match."""
    spec = mujoco.MjSpec.from_file(str(asset_path()))
    edit(spec)
    return spec.compile()


def _drop(model: mujoco.MjModel, body: str, start: np.ndarray, seconds: float = 0.6) -> np.ndarray:
    """Drop a free body from `start` (its qpos xyz) and return its trajectory, (steps, 3) in m."""
    data = mujoco.MjData(model)
    joint = model.body(body).jntadr[0]
    address = model.jnt_qposadr[joint]
    data.qpos[address:address + 3] = start
    positions = []
    for _ in range(int(seconds / model.opt.timestep)):
        mujoco.mj_step(model, data)
        positions.append(data.qpos[address:address + 3].copy())
    return np.array(positions)


# -- determinism -------------------------------------------------------------------------------


def test_same_seed_same_params_and_first_obs(task, task_config):
    first = make_env(task, task_config.env, task_config.randomization)
    second = make_env(task, task_config.env, task_config.randomization)
    obs_a, info_a = first.reset(seed=11)
    # Global random states must not matter: all randomness goes through the env's np_random.
    np.random.seed(123)
    random.seed(123)
    obs_b, info_b = second.reset(seed=11)
    assert info_a["domain_params"] == info_b["domain_params"]
    for name in obs_a:
        np.testing.assert_array_equal(obs_a[name], obs_b[name])
    action = np.array([0.3, -0.2, 0.1, 1.0], np.float32)
    for _ in range(5):
        obs_a, *_ = first.step(action)
        obs_b, *_ = second.step(action)
    for name in obs_a:
        np.testing.assert_array_equal(obs_a[name], obs_b[name])


def test_different_seeds_differ():
    config = load_config(env="pick_place")
    env = make_env("pick_place", config.env, config.randomization)
    _, info_a = env.reset(seed=1)
    _, info_b = env.reset(seed=2)
    assert info_a["domain_params"]["object_mass_kg"] != info_b["domain_params"]["object_mass_kg"]


def test_samples_stay_in_ranges():
    config = load_config(env="pick_place")
    env = make_env("pick_place", config.env, config.randomization)
    ranges = config.randomization.ranges()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        params = info["domain_params"]
        assert set(params) == set(PARAM_NAMES)
        low, high = ranges["object_mass_kg"]
        assert low <= params["object_mass_kg"] <= high
        low, high = ranges["force_bias_n"]
        assert low <= params["force_bias_z_n"] <= high
        assert params["latency_steps"] in config.randomization.latency_steps


def test_disabled_randomization_gives_nominal():
    config = load_config(env="pick_place", overrides=["randomization.enabled=false"])
    env = make_env("pick_place", config.env, config.randomization)
    _, info = env.reset(seed=5)
    assert info["domain_params"] == nominal_params(env.scene)


# -- mass --------------------------------------------------------------------------------------


def test_tripled_mass_sets_subtree_mass_and_inertia():
    env = make_env("pick_place")
    nominal_mass = nominal_params(env.scene)["object_mass_kg"]
    world_mass = float(env.model.body_subtreemass[0])
    env.reset(seed=0, options={"domain_params": {"object_mass_kg": 3 * nominal_mass}})
    body = env.scene.object_body
    assert env.model.body_subtreemass[body] == pytest.approx(3 * nominal_mass)
    assert env.model.body_subtreemass[0] == pytest.approx(world_mass + 2 * nominal_mass)

    reference = _compiled_with(lambda spec: setattr(spec.geom("object_geom"), "mass", 3 * nominal_mass))
    np.testing.assert_allclose(env.model.body_inertia[body], reference.body_inertia[body], rtol=1e-12)
    # mj_setConst recomputed the constants the contact solver uses for softness.
    np.testing.assert_allclose(env.model.body_invweight0[body], reference.body_invweight0[body], rtol=1e-9)
    np.testing.assert_allclose(env.model.dof_invweight0, reference.dof_invweight0, rtol=1e-9)


def test_tripled_mass_drop_matches_compiled_model():
    env = make_env("pick_place")
    nominal_mass = nominal_params(env.scene)["object_mass_kg"]
    env.reset(seed=0, options={"domain_params": {"object_mass_kg": 3 * nominal_mass}})
    reference = _compiled_with(lambda spec: setattr(spec.geom("object_geom"), "mass", 3 * nominal_mass))
    start = np.array([0.1, -0.1, 0.12])
    randomized = _drop(env.model, "object", start)
    compiled = _drop(reference, "object", start)
    np.testing.assert_allclose(randomized, compiled, atol=1e-9)
    assert randomized[-1, 2] == pytest.approx(0.02, abs=1e-3)  # resting on the table


def test_mass_change_without_set_const_is_stale():
    # The reason for mj_setConst: writing body_mass alone leaves derived constants behind.
    scene = Scene(0.002)
    scene.model.body_mass[scene.object_body] *= 3
    assert scene.model.body_subtreemass[scene.object_body] == pytest.approx(scene.nominal.body_mass[scene.object_body])
    apply_domain_params(scene, {**nominal_params(scene), "object_mass_kg": 0.3})
    assert scene.model.body_subtreemass[scene.object_body] == pytest.approx(0.3)


# -- geom size ---------------------------------------------------------------------------------


def _scene_with_ball(tmp_path, ball_xy):
    spec = mujoco.MjSpec.from_file(str(asset_path()))
    ball = spec.worldbody.add_body(name="ball", pos=[ball_xy[0], ball_xy[1], 0.1])
    ball.add_freejoint()
    ball.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.02, 0, 0])
    path = tmp_path / "scene_with_ball.xml"
    path.write_text(spec.to_xml())
    return Scene(0.002, path)


def test_enlarged_table_holds_ball_on_new_area(tmp_path):
    # (0.5, 0.3) lies outside the nominal 0.35 m half-extent and inside the enlarged 0.525 m.
    scene = _scene_with_ball(tmp_path, (0.5, 0.3))
    apply_domain_params(scene, {**nominal_params(scene), "table_size_scale": 1.5})
    mujoco.mj_resetData(scene.model, scene.data)
    mujoco.mj_step(scene.model, scene.data, nstep=1000)
    assert scene.data.body("ball").xpos[2] == pytest.approx(0.02, abs=1e-3)

    nominal = _scene_with_ball(tmp_path, (0.5, 0.3))
    mujoco.mj_step(nominal.model, nominal.data, nstep=1000)
    assert nominal.data.body("ball").xpos[2] < -0.5  # fell to the floor past the nominal edge


def test_enlarged_table_bounds_match_compiled_model(tmp_path):
    scene = Scene(0.002)
    apply_domain_params(scene, {**nominal_params(scene), "table_size_scale": 1.5})

    def enlarge(spec):
        spec.geom("table_top").size = [0.525, 0.525, 0.02]

    reference = _compiled_with(enlarge)
    table = scene.table_geom
    np.testing.assert_allclose(scene.model.geom_size[table], reference.geom_size[table])
    np.testing.assert_allclose(scene.model.geom_rbound[table], reference.geom_rbound[table])
    np.testing.assert_allclose(scene.model.geom_aabb[table], reference.geom_aabb[table])


def test_object_size_bounds_match_compiled_model():
    env = make_env("pick_place")
    env.reset(seed=0, options={"domain_params": {"object_half_size_m": 0.025}})

    def resize(spec):
        spec.geom("object_geom").size = [0.025, 0.025, 0.025]

    reference = _compiled_with(resize)
    geom, body = env.scene.object_geom, env.scene.object_body
    np.testing.assert_allclose(env.model.geom_rbound[geom], reference.geom_rbound[geom])
    np.testing.assert_allclose(env.model.geom_aabb[geom], reference.geom_aabb[geom])
    np.testing.assert_allclose(env.model.body_inertia[body], reference.body_inertia[body], rtol=1e-12)


# -- actuators, damping, gravity ---------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_gain_scale_keeps_servo_consistent_and_stable(scale):
    scene = Scene(0.002)
    apply_domain_params(scene, {**nominal_params(scene), "actuator_gain_scale": scale})
    model, nominal = scene.model, scene.nominal
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], -model.actuator_biasprm[:, 1])
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], nominal.actuator_gainprm[:, 0] * scale)
    np.testing.assert_allclose(model.actuator_biasprm[:, 2], nominal.actuator_biasprm[:, 2] * np.sqrt(scale))

    # Step response of the x servo: it settles on a 5 cm target without a blow-up.
    data = scene.data
    mujoco.mj_resetData(model, data)
    data.act[0] = 0.05
    data.ctrl[3:5] = 0.04
    mujoco.mj_step(model, data, nstep=1500)
    assert np.isfinite(data.qpos).all()
    assert data.qpos[0] == pytest.approx(0.05, abs=2e-3)
    assert abs(data.qvel[0]) < 1e-2


def test_damping_and_gravity_written():
    scene = Scene(0.002)
    params = {**nominal_params(scene), "joint_damping_scale": 2.0, "gravity_tilt_rad": 0.1,
              "gravity_tilt_azimuth_rad": 0.0}
    apply_domain_params(scene, params)
    dofs = scene.robot_dofs
    np.testing.assert_allclose(scene.model.dof_damping[dofs], 2.0 * scene.nominal.dof_damping[dofs])
    gravity = scene.model.opt.gravity
    assert np.linalg.norm(gravity) == pytest.approx(9.81)
    assert np.arctan2(gravity[0], -gravity[2]) == pytest.approx(0.1)


def test_apply_starts_from_compiled_values():
    scene = Scene(0.002)
    apply_domain_params(scene, {**nominal_params(scene), "object_friction": 0.2, "table_size_scale": 2.0})
    apply_domain_params(scene, nominal_params(scene))
    np.testing.assert_array_equal(scene.model.geom_friction, scene.nominal.geom_friction)
    np.testing.assert_array_equal(scene.model.geom_size, scene.nominal.geom_size)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("randomization.object_mass_kg=[-0.1, 0.2]", r"randomization\.object_mass_kg\[0\]: invalid value -0\.1"),
        ("randomization.object_friction=[0.5, 4.0]", r"randomization\.object_friction\[1\]: invalid value 4\.0"),
        ("randomization.table_friction=[0.0, 1.0]", r"randomization\.table_friction\[0\]"),
        ("randomization.object_mass_kg=[0.3, 0.1]", r"randomization\.object_mass_kg: the range \[0\.3, 0\.1\] has low > high"),
        ("randomization.latency_steps=[0, 200]", r"randomization\.latency_steps: latency 200 .*env\.max_steps=100"),
        ("randomization.latency_steps=[]", r"randomization\.latency_steps: the list of choices is empty"),
        ("randomization.latency_steps=[-1]", r"randomization\.latency_steps\[0\]"),
        ("randomization.object_mass_kg=[0.1]", r"randomization\.object_mass_kg: invalid value \[0\.1\]; expected a list of exactly 2"),
    ],
)
def test_invalid_ranges_rejected_at_load(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env="pick_place", overrides=[override])


def test_latency_checked_against_step_limit():
    with pytest.raises(ConfigError, match="latency_steps"):
        load_config(env="reach", overrides=["env.max_steps=3", "randomization.latency_steps=[0, 3]"])
    config = load_config(env="reach", overrides=["env.max_steps=4", "randomization.latency_steps=[0, 3]"])
    assert config.randomization.latency_steps == [0, 3]


def test_make_env_rejects_latency_beyond_episode():
    config = load_config(env="reach")
    rand_cfg = dataclasses.replace(config.randomization, latency_steps=[500])
    with pytest.raises(ConfigError, match="latency_steps"):
        make_env("reach", config.env, rand_cfg)


def test_randomizer_reads_yaml_spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("object_mass_kg: [0.5, 0.5]\nlatency_steps: [3]\n")
    spec = load_randomization_spec(path)
    assert isinstance(spec, RandomizationConfig)
    randomizer = DomainRandomizer(spec, nominal_params(Scene(0.002)))
    params = randomizer.sample(np.random.default_rng(0))
    assert params["object_mass_kg"] == 0.5
    assert params["latency_steps"] == 3


def test_yaml_spec_with_negative_mass_names_parameter(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("randomization:\n  object_mass_kg: [-1.0, 0.5]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: randomization.object_mass_kg[0]")):
        load_randomization_spec(path)


# -- reality profiles --------------------------------------------------------------------------


def test_standin_profile_outside_training_ranges():
    profile = load_reality_profile(STANDIN)
    ranges = load_config(env="pick_place").randomization
    assert profile["object_mass_kg"] > ranges.object_mass_kg[1]
    assert profile["object_friction"] < ranges.object_friction[0]
    assert profile["latency_steps"] == 2
    assert profile["latency_steps"] not in ranges.latency_steps
    assert profile["force_bias_z_n"] > ranges.force_bias_n[1]
    assert profile["force_noise_std_n"] > ranges.force_noise_std_n[1]


def test_reality_profile_replaces_sampling():
    config = load_config(env="pick_place")
    env = make_env("pick_place", config.env, config.randomization, reality=STANDIN)
    _, info_a = env.reset(seed=1)
    _, info_b = env.reset(seed=2)
    assert info_a["domain_params"] == info_b["domain_params"]
    assert info_a["domain_params"]["object_mass_kg"] == 0.3
    assert env.model.body_mass[env.scene.object_body] == 0.3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("params:\n  object_mas_kg: 0.3\n", "unknown domain parameter 'object_mas_kg'"),
        ("params:\n  object_mass_kg: -0.3\n", r"object_mass_kg: invalid value -0\.3"),
        ("params:\n  latency_steps: 1.5\n", "latency_steps: invalid value 1.5"),
        ("params:\n  table_friction: .nan\n", "expected a finite number"),
        ("name: x\n", "needs a 'params' mapping"),
        ("params: {}\nextra: 1\n", "unknown top-level keys"),
    ],
)
def test_bad_reality_profile_rejected(tmp_path, body, message):
    path = tmp_path / "profile.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_reality_profile(path)


def test_missing_reality_profile_rejected():
    with pytest.raises(ConfigError, match="not found"):
        make_env("reach", reality="configs/reality/nope.yaml")


def test_reset_domain_params_option_validated():
    env = make_env("reach")
    with pytest.raises(ConfigError, match="unknown domain parameter 'mass'"):
        env.reset(seed=0, options={"domain_params": {"mass": 1.0}})
