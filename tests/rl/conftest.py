"""Shared setup for the reinforcement learning tests: tiny settings, one torch thread."""

import pytest

pytest.importorskip("stable_baselines3", reason="the sb3 extra is not installed")

TINY = [
    "env.max_steps=10",
    "policy.history=2",
    "policy.d_model=16",
    "policy.heads=2",
    "policy.layers=1",
    "policy.top_k=0",
    "policy.attention_backend=dense",
    "rl.n_envs=2",
    "rl.steps_per_env=20",
    "rl.ppo_minibatch=20",
    "rl.ppo_epochs=2",
    "rl.value_hidden=[16]",
    "rl.sac_learning_starts=10",
    "rl.sac_batch_size=16",
    "rl.sac_updates_per_step=0.5",
    "train.iterations=2",
    "train.eval_every=1",
    "train.eval_episodes=1",
    "train.eval_reality=null",
    "gate.update_every=2",
]
"""Overrides that make an RL run take a few seconds: 10-step episodes, 2 x 20 steps per iteration."""


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks run fastest on one thread, and the test machine is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config():
    from ast_robot.config import load_config

    def build(*extra: str, env: str = "reach"):
        return load_config(env=env, overrides=[*TINY, *extra])

    return build
