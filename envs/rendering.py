"""Off-screen rendering with a clear error when no OpenGL backend works.

MuJoCo picks its OpenGL backend once, when `mujoco` is imported, from the ``MUJOCO_GL``
environment variable. The choices are ``glfw`` (the default, which needs a display), ``egl`` (GPU
or Mesa EGL, no display needed) and ``osmesa`` (software). Without a display and without ``MUJOCO_GL`` the default glfw
backend cannot create a context, so `make_renderer` checks that case first and tries the headless
backends in subprocesses with a timeout, to name the one that works instead of failing deep inside
MuJoCo or hanging.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import mujoco

from ast_robot.errors import EnvError

logger = logging.getLogger(__name__)

HEADLESS_BACKENDS = ("egl", "osmesa")
PROBE_TIMEOUT_S = 20.0
"""Time limit for one backend probe; a driver that hangs while creating a context fails it."""

_PROBE_CODE = (
    "import mujoco; context = mujoco.GLContext(16, 16); context.make_current(); context.free()"
)


def has_display() -> bool:
    """Return whether an X11 or Wayland display is set for this process."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def probe_backend(backend: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Create a GL context with ``MUJOCO_GL=backend`` in a subprocess.

    Returns None when it works, else a one-line reason.
    """
    env = dict(os.environ, MUJOCO_GL=backend)
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE], env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout_s:g} s"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {result.returncode}"


def make_renderer(model: mujoco.MjModel, *, height: int, width: int) -> mujoco.Renderer:
    """Create an off-screen `mujoco.Renderer`, or raise `EnvError` naming ``MUJOCO_GL`` and the
    backends tried.

    Raises:
        EnvError: when no display is set and ``MUJOCO_GL`` is unset (after probing the headless
            backends), or when the selected backend cannot create a context.
    """
    selected = os.environ.get("MUJOCO_GL", "").strip().lower()
    if not selected and not has_display():
        results = {backend: probe_backend(backend) for backend in HEADLESS_BACKENDS}
        tried = "; ".join(
            ["glfw (the default): no DISPLAY or WAYLAND_DISPLAY is set"]
            + [f"{name}: {'works' if reason is None else 'failed: ' + reason}" for name, reason in results.items()]
        )
        working = [name for name, reason in results.items() if reason is None]
        advice = (
            f"set MUJOCO_GL={working[0]} in the environment before Python starts"
            if working
            else "install EGL (GPU driver or Mesa libegl1) or OSMesa (libosmesa6) and set MUJOCO_GL=egl or osmesa"
        )
        raise EnvError(
            f"render_mode='rgb_array' needs an OpenGL backend, but MUJOCO_GL is not set and there is "
            f"no display; backends tried: {tried}; {advice}"
        )

    # NOTE: with MUJOCO_GL set, the context is created in this process; a driver that hangs
    # there is not caught by a timeout.
    logger.debug("creating a %dx%d off-screen renderer with MUJOCO_GL=%s", width, height, selected or "glfw")
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as error:  # MuJoCo raises FatalError, RuntimeError or ImportError here
        others = ", ".join(b for b in ("egl", "osmesa", "glfw") if b != selected)
        raise EnvError(
            f"cannot create an OpenGL context with MUJOCO_GL={selected or '(unset, glfw)'}: "
            f"{type(error).__name__}: {error}; backends tried: {selected or 'glfw'}; try MUJOCO_GL "
            f"set to one of {others} before Python starts"
        ) from error
