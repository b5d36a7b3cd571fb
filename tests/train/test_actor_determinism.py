"""Rollout actors reseed the expert from the episode seed, so noisy experts repeat episodes."""

import numpy as np

from ast_robot.config import load_config
from ast_robot.envs import make_env, make_expert
from ast_robot.envs.rollout import run_episode
from ast_robot.train.standin import SupervisedActor, SupervisorSettings
from ast_robot.train.workers import DaggerActor


def _env_and_noisy_expert():
    config = load_config(env="reach", overrides=["env.max_steps=15"])
    env = make_env("reach", config.env, config.randomization)
    expert = make_expert("reach", env, noise_std=0.3, mistake_prob=0.3, mistake_steps=3)
    return env, expert


def test_dagger_actor_reseeds_noisy_expert():
    env, expert = _env_and_noisy_expert()
    actor = DaggerActor(expert, None, 4)
    try:
        actor.start_episode(seed=5, expert_share=1.0)
        first = run_episode(env, actor, seed=5)
        first_draw = expert.rng.random()
        actor.start_episode(seed=9, expert_share=1.0)
        run_episode(env, actor, seed=9)
        actor.start_episode(seed=5, expert_share=1.0)
        again = run_episode(env, actor, seed=5)
        again_draw = expert.rng.random()
    finally:
        env.close()
    np.testing.assert_array_equal(first.actions, again.actions)
    assert first_draw == again_draw


def test_supervised_actor_repeats_noisy_episode():
    env, expert = _env_and_noisy_expert()
    settings = SupervisorSettings(attentive_probability=1.0)
    try:
        first = run_episode(env, SupervisedActor(expert, None, settings, np.random.default_rng(1)), seed=5)
        run_episode(env, SupervisedActor(expert, None, settings, np.random.default_rng(1)), seed=9)
        again = run_episode(env, SupervisedActor(expert, None, settings, np.random.default_rng(1)), seed=5)
    finally:
        env.close()
    assert first.step_stats["expert_mistake"].any()
    np.testing.assert_array_equal(first.actions, again.actions)
