"""The Ray rollout backend against real Ray instances on this machine.

Ray listens on the loopback interface only: the single-machine switch below is set before Ray is
imported, and the simulated cluster's nodes are given 127.0.0.1 explicitly.
"""

import logging
import os
import signal
import sys

import numpy as np
import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="the ray rollout backend needs the distributed extra")

from ast_robot.config import load_config  # noqa: E402
from ast_robot.errors import MissingExtraError, RolloutError  # noqa: E402
from ast_robot.train.ray_pool import RayPool, check_reachable  # noqa: E402
from ast_robot.train.workers import LocalProcessPool, RolloutBackend, RolloutTask, serialize_policy  # noqa: E402

TINY_TRAIN = [
    "env.max_steps=25",
    "train.iterations=1",
    "train.episodes_per_iteration=4",
    "train.eval_every=1",
    "train.eval_episodes=2",
    "train.batch_size=16",
    "train.max_steps_per_iteration=3",
    "policy.d_model=16",
    "policy.layers=1",
    "policy.history=4",
]


@pytest.fixture(scope="module")
def config():
    return load_config(env="reach", overrides=TINY_TRAIN)


@pytest.fixture(scope="module")
def policy_state(config):
    import torch

    from ast_robot.policy import TransformerPolicy

    torch.manual_seed(0)
    return serialize_policy(TransformerPolicy(config.policy))


def make_tasks(count, seed=500):
    return [RolloutTask(index=i, seed=seed + i, expert_share=0.5) for i in range(count)]


def by_index(episodes):
    return sorted(episodes, key=lambda ep: ep.info["task_index"])


def assert_same_episodes(expected, actual):
    assert [ep.info["task_index"] for ep in actual] == [ep.info["task_index"] for ep in expected]
    for want, got in zip(expected, actual):
        np.testing.assert_array_equal(want.actions, got.actions)
        np.testing.assert_array_equal(want.action_labels, got.action_labels)
        for name in want.obs:
            np.testing.assert_array_equal(want.obs[name], got.obs[name])
        for name in want.step_stats:
            np.testing.assert_array_equal(want.step_stats[name], got.step_stats[name])
        assert want.domain_params == got.domain_params
        assert want.success == got.success
        assert want.info == got.info


def test_missing_ray_raises_missing_extra(config, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'ast-robot\[distributed\]'"):
        RayPool(config.env, config.randomization, config.policy, workers=1)


def test_core_does_not_import_ray():
    import subprocess

    code = "import sys, ast_robot.cli, ast_robot.train.trainer, ast_robot.train.ray_pool; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "address, message",
    [
        ("127.0.0.1:1", r"Ray cluster at 127.0.0.1:1 is unreachable"),
        ("ray://127.0.0.1:1", r"Ray cluster at ray://127.0.0.1:1 is unreachable"),
        ("no-port-here", r"invalid Ray cluster address 'no-port-here'"),
        ("127.0.0.1:notaport", r"invalid Ray cluster address '127.0.0.1:notaport'"),
    ],
)
def test_unreachable_address_named(address, message):
    with pytest.raises(RolloutError, match=message):
        check_reachable(address, timeout_s=2.0)


def test_unreachable_cluster_rejected_by_pool(config):
    assert not ray.is_initialized()
    with pytest.raises(RolloutError, match=r"127\.0\.0\.1:1 is unreachable"):
        RayPool(config.env, config.randomization, config.policy, workers=1, address="127.0.0.1:1")
    assert not ray.is_initialized()


def test_bad_worker_count_rejected(config):
    with pytest.raises(RolloutError, match="workers >= 1"):
        RayPool(config.env, config.randomization, config.policy, workers=0)


def test_local_ray_matches_local_pool_and_trains(config, policy_state, tmp_path):
    from ast_robot.train.trainer import train

    tasks = make_tasks(4)
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=0) as local:
        expected = by_index(local.collect(tasks, policy_state))

    with RayPool(config.env, config.randomization, config.policy, workers=2) as pool:
        assert isinstance(pool, RolloutBackend)
        assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
        assert int(ray.cluster_resources()["CPU"]) == 2

        first = by_index(pool.collect(tasks, policy_state))
        assert pool.last_stats.weights_put
        assert pool.last_stats.weights_bytes == len(policy_state)
        assert pool.last_stats.episode_bytes > 0
        actors_before = pool.actor_info()
        second = by_index(pool.collect(tasks, policy_state))
        assert not pool.last_stats.weights_put  # unchanged weights stay in the object store
        assert pool.actor_info() == actors_before  # the same actors, with their envs, serve again

        bad = RolloutTask(index=7, seed=1, context=np.zeros(5, np.float32))
        with pytest.raises(RolloutError, match=r"failed on task 7 \(seed 1\)"):
            list(pool.collect([bad], None))

        summary = train(config, run_dir=tmp_path / "run", device="cpu", backend=pool, progress=False)
        assert summary["iterations_completed"] == 1
        assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1

    assert not ray.is_initialized()  # the pool stopped the instance it started
    assert_same_episodes(expected, first)
    assert_same_episodes(expected, second)


def test_cli_ray_address_needs_ray_rollout(capsys):
    from ast_robot.cli import main

    code = main(["train", "--env", "reach", "--ray-address", "auto", "--no-progress"])
    assert code == 2
    assert "--ray-address needs --rollout ray" in capsys.readouterr().err


def test_cli_unreachable_cluster_named(tmp_path, capsys):
    from ast_robot.cli import main

    code = main(
        ["train", "--env", "reach", "--run-dir", str(tmp_path / "run"), "--rollout", "ray",
         "--ray-address", "ray://127.0.0.1:1", "--no-progress"]
    )
    assert code == 2
    assert "Ray cluster at ray://127.0.0.1:1 is unreachable" in capsys.readouterr().err
    assert not ray.is_initialized()


@pytest.fixture()
def two_node_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_killed_actor_task_rerun_once(config, policy_state, two_node_cluster, caplog):
    tasks = make_tasks(6, seed=900)
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=0) as local:
        expected = by_index(local.collect(tasks, policy_state))

    address = two_node_cluster.address
    with pytest.raises(RolloutError, match="3 ray rollout actors need 3 CPUs but the Ray cluster has 2"):
        RayPool(config.env, config.randomization, config.policy, workers=3, address=address)
    assert ray.is_initialized()  # a pool leaves a cluster it connected to running

    with RayPool(config.env, config.randomization, config.policy, address=address) as pool:
        assert pool.num_workers == 2
        nodes = {node for node, _pid in pool.actor_info()}
        assert len(nodes) == 2  # one actor on each node

        episodes = []
        killed_task = None
        with caplog.at_level(logging.WARNING, logger="ast_robot.train.ray_pool"):
            for episode in pool.collect(tasks, policy_state):
                episodes.append(episode)
                if killed_task is None:
                    # The slot running the newest task has just started it; its process dies mid-task.
                    slot, killed_task = max(pool.in_flight().items(), key=lambda item: item[1])
                    os.kill(pool.actor_info()[slot][1], signal.SIGKILL)
        stats = pool.last_stats

        # With one attempt per task, the next actor death ends the collect call with an error.
        pool.max_task_attempts = 1
        with pytest.raises(RolloutError, match=r"lost its ray rollout actor on all 1 attempts"):
            for _episode in pool.collect(make_tasks(4, seed=950), policy_state):
                slot, _task = max(pool.in_flight().items(), key=lambda item: item[1])
                os.kill(pool.actor_info()[slot][1], signal.SIGKILL)

    indices = [ep.info["task_index"] for ep in episodes]
    assert sorted(indices) == list(range(6))  # every task once: none lost, none duplicated
    assert stats.retried == [killed_task]
    assert stats.actors_replaced == 1
    assert f"died while running task {killed_task}" in caplog.text
    assert "re-running the task" in caplog.text
    assert_same_episodes(expected, by_index(episodes))
