"""Rollout workers against the real MuJoCo tasks."""

import numpy as np
import pytest

from ast_robot.config import load_config
from ast_robot.errors import RolloutError
from ast_robot.train.workers import LocalProcessPool, RolloutBackend, RolloutTask


@pytest.fixture(scope="module")
def config():
    return load_config(env="pick_place", overrides=["env.max_steps=30"])


def tasks(count, **kwargs):
    return [RolloutTask(index=i, seed=1000 + i, expert_share=1.0, **kwargs) for i in range(count)]


def by_index(episodes):
    return sorted(episodes, key=lambda ep: ep.info["task_index"])


def test_pool_matches_inline_rollouts(config):
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=0) as inline:
        expected = by_index(inline.collect(tasks(5), None))
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=2) as pool:
        assert isinstance(pool, RolloutBackend)
        first = by_index(pool.collect(tasks(5), None))
        second = by_index(pool.collect(tasks(5), None))  # workers reuse their envs
    assert [ep.info["task_index"] for ep in first] == [0, 1, 2, 3, 4]
    for a, b, c in zip(expected, first, second):
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.obs["object"], b.obs["object"])
        np.testing.assert_array_equal(b.actions, c.actions)
        assert a.action_labels is not None
        assert set(a.step_stats) >= {"pred_error_norm", "hidden_norm", "action_std", "imitation_loss"}


def test_context_and_settings_reach_the_env(config):
    context = np.array([0.05, -0.05, 0.02, -0.1, 0.1, 0.02], np.float32)
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=0) as inline:
        nominal, = inline.collect([RolloutTask(index=0, seed=3, context=context, randomize=False)], None)
        randomized, = inline.collect([RolloutTask(index=0, seed=3, context=context, randomize=True)], None)
    np.testing.assert_allclose(nominal.context[[0, 1, 3, 4]], context[[0, 1, 3, 4]], atol=1e-6)
    assert nominal.info["randomize"] is False
    assert nominal.domain_params != randomized.domain_params


def test_worker_failure_names_task(config):
    bad = RolloutTask(index=7, seed=1, context=np.zeros(5, np.float32))
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=1) as pool:
        with pytest.raises(RolloutError, match="task 7"):
            list(pool.collect([bad], None))


def test_closed_pool_rejects_work(config):
    pool = LocalProcessPool(config.env, config.randomization, config.policy, workers=0)
    pool.close()
    with pytest.raises(RolloutError, match="closed"):
        list(pool.collect(tasks(1), None))


def test_negative_worker_count_rejected(config):
    with pytest.raises(RolloutError, match="workers must be >= 0"):
        LocalProcessPool(config.env, config.randomization, config.policy, workers=-1)
