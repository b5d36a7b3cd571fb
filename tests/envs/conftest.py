"""Shared fixtures for the simulation tests."""

import pytest

from ast_robot.config import load_config


@pytest.fixture(params=["pick_place", "reach", "push"])
def task(request):
    return request.param


@pytest.fixture
def task_config(task):
    return load_config(env=task)
