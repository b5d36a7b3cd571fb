"""End-to-end PPO and SAC runs on `reach` with a tiny budget, gate on, off and random."""

import json
import math
import time

import numpy as np
import pytest

from ast_robot.cli import main
from ast_robot.errors import CheckpointError, MissingExtraError, TrainError
from ast_robot.rl import train_rl


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("gate", ["off", "random"])
def test_ppo_runs_with_gate_baselines(tmp_path, tiny_config, gate):
    summary = train_rl(tiny_config(), algo="ppo", run_dir=tmp_path / "run", gate_mode=gate, workers=0, progress=False)

    assert summary["iterations_completed"] == 2
    assert summary["gate_mode"] == gate
    rows = _rows(tmp_path / "run")
    assert [row["iteration"] for row in rows] == [0, 1]
    for row in rows:
        assert row["gate/mode"] == gate
        assert row["rollout/steps"] == 40
        # Each rollout of 2 x 20 steps contains 4 finished 10-step episodes.
        assert row["gate/judged"] == 4
        assert row["rollout/episodes"] == 4
        # Gated-out episodes cost no gradient step: ppo_epochs * ceil(admitted / minibatch).
        assert row["compute/gradient_steps"] == 2 * math.ceil(row["compute/admitted_steps"] / 20)
    if gate == "off":
        assert all(row["gate/activation_rate"] == 1.0 for row in rows)
        assert summary["totals"]["compute/skipped_steps_total"] == 0
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "run" / "plots" / "success.png").is_file()


def test_ppo_cli_train_then_eval(tmp_path, tiny_config, capsys):
    """`ast-robot train --algo ppo` with the gate on, then `ast-robot eval` on its checkpoint."""
    from tests.rl.conftest import TINY

    run_dir = tmp_path / "run"
    sets = [arg for item in TINY for arg in ("--set", item)]
    code = main(["--log-level", "WARNING", "train", "--algo", "ppo", "--env", "reach", "--gate", "on",
                 "--run-dir", str(run_dir), "--workers", "0", "--no-progress", *sets])
    assert code == 0
    assert "success: sim" in capsys.readouterr().out
    rows = _rows(run_dir)
    for row in rows:
        assert row["compute/gradient_steps"] == 2 * math.ceil(row["compute/admitted_steps"] / 20)
        assert row["compute/admitted_steps"] + row["compute/skipped_steps"] == 40
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algo"] == "ppo"

    code = main(["--log-level", "WARNING", "eval", "--checkpoint", summary["checkpoints"]["last"],
                 "--episodes", "1", "--workers", "0"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert results["iteration"] == 2
    assert 0.0 <= results["success_sim"] <= 1.0
    assert results["length_sim"] == 10


@pytest.mark.parametrize("gate", ["on", "off", "random"])
def test_sac_runs_with_each_gate_mode(tmp_path, tiny_config, gate):
    summary = train_rl(tiny_config(), algo="sac", run_dir=tmp_path / "run", gate_mode=gate, workers=0, progress=False)

    assert summary["iterations_completed"] == 2
    rows = _rows(tmp_path / "run")
    admitted = sum(row["compute/admitted_steps"] for row in rows)
    assert admitted + sum(row["compute/skipped_steps"] for row in rows) == 80
    # Only admitted episodes reach the replay buffer...
    from ast_robot.train.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert len(state["replay"]["actions"]) == admitted
    # ... and gradient steps come only from admitted transitions after the warm-up.
    assert summary["totals"]["compute/gradient_steps_total"] <= 0.5 * admitted
    if gate == "off":
        assert admitted == 80
        assert summary["totals"]["compute/gradient_steps_total"] > 0


def test_resume_continues_a_ppo_run(tmp_path, tiny_config):
    from ast_robot.rl.trainer import RLTrainer
    from ast_robot.train.workers import LocalProcessPool

    run_dir = tmp_path / "run"
    config = tiny_config()
    trainer = RLTrainer.create(config, algo="ppo", real_log=None, run_dir=run_dir, resume=None, device="cpu",
                               gate_mode="on", workers=0)
    with LocalProcessPool(config.env, config.randomization, config.policy, workers=0) as pool:
        trainer.run_iteration(pool, time.perf_counter())
    trainer.venv.close()
    first_params = {k: v.clone() for k, v in trainer.model.policy.state_dict().items()}

    with pytest.raises(TrainError, match="--algo ppo"):
        train_rl(config, algo="sac", resume=run_dir, workers=0, progress=False)
    resumed = RLTrainer.create(config, algo="ppo", real_log=None, run_dir=None, resume=run_dir, device="cpu",
                               gate_mode=None, workers=0)
    assert resumed.iteration == 1
    for key, value in resumed.model.policy.state_dict().items():
        assert np.allclose(value.numpy(), first_params[key].numpy()), key
    assert resumed.scorer.gate.state_dict().keys() == trainer.scorer.gate.state_dict().keys()
    summary = resumed.run(progress=False)
    assert summary["iterations_completed"] == 2
    assert [row["iteration"] for row in _rows(run_dir)] == [0, 1]


def test_unknown_algo_and_existing_run_are_refused(tmp_path, tiny_config):
    with pytest.raises(TrainError, match="choose one of"):
        train_rl(tiny_config(), algo="a2c", run_dir=tmp_path / "x", workers=0)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(TrainError, match="already contains a checkpoint"):
        train_rl(tiny_config(), algo="ppo", run_dir=tmp_path / "run", workers=0)


def test_load_for_evaluation_refuses_a_dagger_checkpoint(tmp_path):
    from ast_robot.config import config_to_dict, load_config
    from ast_robot.rl import load_for_evaluation
    from ast_robot.train.checkpoint import save_checkpoint

    path = tmp_path / "dagger.pt"
    save_checkpoint({"config": config_to_dict(load_config(env="reach")), "iteration": 1}, path)
    with pytest.raises(CheckpointError, match="dagger checkpoint"):
        load_for_evaluation(path)


def test_missing_sb3_names_the_extra(monkeypatch, tiny_config):
    import sys

    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # makes `import stable_baselines3` fail
    for name in [name for name in sys.modules if name.startswith("ast_robot.rl")]:
        monkeypatch.delitem(sys.modules, name)
    import ast_robot.rl  # the package itself imports without stable-baselines3

    assert callable(ast_robot.rl.train_rl)
    with pytest.raises(MissingExtraError, match=r"pip install 'ast-robot\[sb3\]'"):
        train_rl(tiny_config(), algo="ppo")
    code = main(["train", "--algo", "sac", "--env", "reach"])
    assert code == 2


def test_ppo_gate_uses_real_log_feedback(tmp_path, tiny_config, monkeypatch):
    """With --real-log, the physical feedback of the real episodes enters every score."""
    from ast_robot.rl.gated import EpisodeScorer

    logs = tmp_path / "logs"
    code = main(["--log-level", "WARNING", "record-standin", "--env", "reach", "--out", str(logs), "--episodes", "2",
                 "--episodes-per-bag", "2", "--set", "env.max_steps=10"])
    assert code == 0

    physical_seen = []
    original = EpisodeScorer.decide

    def spy(self, episodes, advantages, uncertainty, **kwargs):
        physical_seen.append(self.feedback is not None)
        return original(self, episodes, advantages, uncertainty, **kwargs)

    monkeypatch.setattr(EpisodeScorer, "decide", spy)
    summary = train_rl(tiny_config(), algo="ppo", real_log=logs, run_dir=tmp_path / "run", workers=0, progress=False)
    assert summary["real_logs"] is not None
    assert physical_seen
    assert all(physical_seen)
    assert (tmp_path / "run" / "real_logs.json").is_file()
    rows = _rows(tmp_path / "run")
    assert all(0.0 <= row["significance/physical_mean"] <= 1.0 for row in rows)
    assert all(0.0 <= row["significance/difficulty_mean"] <= 1.0 for row in rows)


def test_ppo_judges_episodes_split_by_rollouts(tmp_path, tiny_config):
    """15-step rollouts of 10-step episodes: running episodes are judged on their part so far."""
    summary = train_rl(tiny_config("rl.steps_per_env=15", "rl.ppo_minibatch=10"), algo="ppo",
                       run_dir=tmp_path / "run", gate_mode="on", workers=0, progress=False)

    assert summary["iterations_completed"] == 2
    rows = _rows(tmp_path / "run")
    # Per env: rollout 1 = one finished episode + 5 steps of the next; rollout 2 = its last 5 + one more.
    assert [row["gate/judged"] for row in rows] == [4, 4]
    assert [row["rollout/episodes"] for row in rows] == [2, 4]
    for row in rows:
        assert row["compute/admitted_steps"] + row["compute/skipped_steps"] == 30
        assert row["compute/gradient_steps"] == 2 * math.ceil(row["compute/admitted_steps"] / 10)
