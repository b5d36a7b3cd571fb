"""Shared fixtures for training tests: tiny settings and stand-in robot logs."""

import pytest

from ast_robot.cli import main

TINY = [
    "env.max_steps=30",
    "train.iterations=2",
    "train.episodes_per_iteration=4",
    "train.eval_every=1",
    "train.eval_episodes=2",
    "train.batch_size=16",
    "train.max_steps_per_iteration=3",
    "train.replay_capacity_steps=2000",
    "train.pregate_warmup_iterations=1",
    "policy.d_model=16",
    "policy.layers=1",
    "policy.heads=2",
    "policy.history=4",
    "gate.update_every=4",
]
"""Overrides that make a training run take seconds: short episodes, 2 iterations, a tiny model."""


@pytest.fixture
def tiny_cli_args():
    """Factory: ``--set`` arguments for the tiny settings plus extra overrides."""

    def make(*extra: str) -> list[str]:
        args = []
        for item in [*TINY, *extra]:
            args += ["--set", item]
        return args

    return make


@pytest.fixture
def tiny_config():
    """Factory: the pick_place config with the tiny settings, 3 iterations and extra overrides."""
    from ast_robot.config import load_config

    def make(*extra: str):
        return load_config(env="pick_place", overrides=[*TINY, "train.iterations=3", *extra])

    return make


@pytest.fixture(scope="session")
def standin_logs(tmp_path_factory):
    """Bags recorded by `ast-robot record-standin`: 4 short episodes in 2 bags."""
    out = tmp_path_factory.mktemp("standin") / "logs"
    code = main([
        "--log-level", "WARNING", "record-standin", "--out", str(out), "--episodes", "4",
        "--episodes-per-bag", "2", "--seed", "3", "--set", "env.max_steps=30",
    ])
    assert code == 0
    return out
