"""Headless rendering: it works with a headless backend and fails fast and clearly without one."""

import os
import subprocess
import sys

import numpy as np
import pytest

from ast_robot.envs import make_env
from ast_robot.envs.rendering import probe_backend
from ast_robot.errors import EnvError

_MAKE_RENDERING_ENV = "from ast_robot.envs import make_env; make_env('reach', render_mode='rgb_array')"


def _headless_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env.update(extra)
    return env


def test_no_display_no_mujoco_gl_fails_fast():
    # The subprocess timeout only guards against a hang; the check is that it ends with our error.
    result = subprocess.run(
        [sys.executable, "-c", _MAKE_RENDERING_ENV], env=_headless_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ast_robot.errors.EnvError")
    assert "MUJOCO_GL is not set" in last_line
    for backend in ("glfw", "egl", "osmesa"):
        assert backend in last_line


def test_glfw_without_display_names_mujoco_gl():
    result = subprocess.run(
        [sys.executable, "-c", _MAKE_RENDERING_ENV], env=_headless_env(MUJOCO_GL="glfw"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ast_robot.errors.EnvError")
    assert "MUJOCO_GL=glfw" in last_line


def test_invalid_render_mode_rejected():
    with pytest.raises(EnvError, match="render_mode 'human'"):
        make_env("reach", render_mode="human")


def test_rgb_array_renders_headless():
    if os.environ.get("MUJOCO_GL") != "egl" or probe_backend("egl") is not None:
        pytest.skip("needs a working EGL backend (MUJOCO_GL=egl, set by tests/conftest.py)")
    env = make_env("pick_place", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert frame.shape == (240, 320, 3)
    assert frame.dtype == np.uint8
    assert frame.std() > 5  # a scene, not a blank image


def test_no_render_mode_renders_nothing():
    env = make_env("reach")
    env.reset(seed=0)
    assert env.render() is None
