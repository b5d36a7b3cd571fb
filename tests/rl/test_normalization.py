"""Observation statistics: saved with the checkpoint, restored frozen, identical in a fresh process."""

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from ast_robot.episode import OBS_GROUPS

FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ast_robot.rl import load_for_evaluation

    checkpoint, batch_path, out_path = sys.argv[1:4]
    model, venv = load_for_evaluation(checkpoint)
    raw = dict(np.load(batch_path))
    normalized = venv.normalize(raw)
    before = {k: v.clone() for k, v in venv.state_dict().items()}
    venv.reset()
    for _ in range(5):
        venv.step(np.zeros((venv.num_envs, 4), np.float32))
    unchanged = all(bool((venv.state_dict()[k] == before[k]).all()) for k in before)
    np.savez(out_path, **normalized)
    print(json.dumps({"unchanged": unchanged, "training": venv.training,
                      "count": float(before["count_proprio"])}))
    """
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A PPO run after one iteration: the trainer and its checkpoint path."""
    from ast_robot.config import load_config
    from ast_robot.rl.trainer import RLTrainer
    from ast_robot.train.workers import LocalProcessPool
    from tests.rl.conftest import TINY

    torch.set_num_threads(1)
    config = load_config(env="reach", overrides=TINY)
    run_dir = tmp_path_factory.mktemp("rl") / "run"
    trainer = RLTrainer.create(config, algo="ppo", real_log=None, run_dir=run_dir, resume=None, device="cpu",
                               gate_mode="off", workers=0)
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=0) as pool:
        trainer.run_iteration(pool, time.perf_counter())
    yield trainer, run_dir / "checkpoints" / "last.pt"
    trainer.venv.close()


def _raw_batch(history: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    batch = {name: rng.normal(0.1, 0.3, (3, history, width)).astype(np.float32) for name, width in OBS_GROUPS.items()}
    pad = np.zeros((3, history), np.float32)
    pad[1, 0] = 1.0  # one history starts mid-window
    batch["pad_mask"] = pad
    return batch


def test_statistics_survive_a_fresh_process_and_stay_frozen(trained, tmp_path):
    trainer, checkpoint = trained
    state = trainer.venv.state_dict()
    # Training merged the newest step of each env at every step (and at the first reset).
    assert float(state["count_proprio"]) == 2 * 20 + 2

    raw = _raw_batch(trainer.config.policy.history)
    expected = trainer.venv.normalize(raw)
    np.savez(tmp_path / "raw.npz", **raw)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(checkpoint), str(tmp_path / "raw.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["training"] is False
    assert report["unchanged"] is True
    assert report["count"] == float(state["count_proprio"])
    loaded = np.load(tmp_path / "out.npz")
    for key in expected:
        np.testing.assert_array_equal(loaded[key], expected[key], err_msg=key)


def test_exported_policy_matches_sb3_actor(trained):
    from ast_robot.train.checkpoint import load_checkpoint
    from ast_robot.train.policy_io import policy_from_checkpoint

    trainer, checkpoint = trained
    policy, history = policy_from_checkpoint(load_checkpoint(checkpoint))
    raw = _raw_batch(history)
    groups = {name: torch.from_numpy(raw[name]) for name in OBS_GROUPS}
    normalized = trainer.venv.normalize(raw)
    with torch.no_grad():
        ours = policy.normalizer(groups)
        for name in OBS_GROUPS:
            np.testing.assert_allclose(ours[name].numpy(), normalized[name], atol=1e-6)
        mean = policy(groups, torch.from_numpy(raw["pad_mask"] > 0.5)).mean.clamp(-1, 1).numpy()
    actions, _ = trainer.model.predict(normalized, deterministic=True)
    np.testing.assert_allclose(mean, actions, atol=1e-5)


def test_bridge_and_replay_load_the_checkpoint(trained):
    """`ast-robot bridge` and `replay` read a policy with the same loader; it acts on a short history."""
    from ast_robot.cli import _load_policy
    from ast_robot.config import resolve_config_path
    from ast_robot.real_bridge.topic_map import RobotMap

    _trainer, checkpoint = trained
    robot_map = RobotMap.load(resolve_config_path("configs/robots/standin.yaml"))
    policy, history = _load_policy(str(checkpoint), robot_map)
    assert history == 2
    action, std = policy.act({name: np.zeros((1, width), np.float32) for name, width in OBS_GROUPS.items()})
    assert action.shape == (4,)
    assert np.all(np.abs(action) <= 1.0)
    assert np.all(std > 0)


def test_exported_sac_policy_matches_sb3_actor(tmp_path):
    """A SAC checkpoint acts with tanh of its Gaussian mean, as SAC's deterministic actor does."""
    from ast_robot.config import load_config
    from ast_robot.rl.trainer import RLTrainer
    from ast_robot.train.checkpoint import load_checkpoint
    from ast_robot.train.policy_io import policy_from_checkpoint
    from ast_robot.train.workers import LocalProcessPool
    from tests.rl.conftest import TINY

    torch.set_num_threads(1)
    config = load_config(env="reach", overrides=TINY)
    trainer = RLTrainer.create(config, algo="sac", real_log=None, run_dir=tmp_path / "run", resume=None,
                               device="cpu", gate_mode="off", workers=0)
    try:
        with LocalProcessPool(config.env, config.randomization, config.policy, workers=0) as pool:
            trainer.run_iteration(pool, time.perf_counter())
        policy, history = policy_from_checkpoint(load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt"))
        assert policy.cfg.action_squash == "tanh"
        raw = _raw_batch(history)
        groups = {name: torch.from_numpy(raw[name]) for name in OBS_GROUPS}
        with torch.no_grad():
            ours = policy.action_from_mean(policy(groups, torch.from_numpy(raw["pad_mask"] > 0.5)).mean).numpy()
        actions, _ = trainer.model.predict(trainer.venv.normalize(raw), deterministic=True)
        np.testing.assert_allclose(ours, actions, atol=1e-5)
    finally:
        trainer.venv.close()
