"""Shared pytest setup: every test runs headless and with a fixed seed source."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
