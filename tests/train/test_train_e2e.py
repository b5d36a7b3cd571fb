"""End-to-end training runs with a tiny budget on real MuJoCo rollouts and real rosbag2 logs."""

import csv
import json
import os
import shutil
import signal

import numpy as np
import pytest

from ast_robot.cli import main
from ast_robot.config import load_config
from ast_robot.train.trainer import train
from ast_robot.train.workers import LocalProcessPool

TIME_KEYS = ("time/",)


def read_rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_time(row):
    return {key: value for key, value in row.items() if not key.startswith(TIME_KEYS)}


def test_train_then_eval_from_cli(tmp_path, standin_logs, capsys, tiny_cli_args):
    run_dir = tmp_path / "run"
    code = main([
        "--log-level", "WARNING", "train", "--env", "pick_place", "--real-log", str(standin_logs),
        "--run-dir", str(run_dir), "--workers", "2", "--device", "cpu", "--no-progress",
        *tiny_cli_args(),
    ])
    assert code == 0
    assert "best checkpoint" in capsys.readouterr().out

    rows = read_rows(run_dir)
    assert [row["iteration"] for row in rows] == [0, 1]
    for key in ("time/wall_s", "rollout/episodes", "gate/activation_rate", "gate/threshold", "train/loss",
                "train/proxy_loss", "eval/success_sim", "eval/success_reality", "compute/admitted_steps",
                "compute/skipped_steps", "compute/rollouts_skipped"):
        assert key in rows[-1], key
    assert rows[-1]["eval/success_reality"] is not None
    with open(run_dir / "metrics.csv") as stream:
        assert len(list(csv.DictReader(stream))) == 2
    assert load_config(run_dir / "config.yaml").train.iterations == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations_completed"] == 2
    assert summary["real_logs"]["episodes"] == 4
    for name in ("checkpoints/last.pt", "checkpoints/best.pt", "checkpoints/best_policy.safetensors",
                 "plots/success.png", "plots/gate.png", "real_logs.json"):
        assert (run_dir / name).is_file(), name

    code = main(["--log-level", "WARNING", "eval", "--checkpoint", str(run_dir / "checkpoints/best.pt"),
                 "--episodes", "2", "--workers", "0"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) >= {"success_sim", "success_randomized", "success_reality", "iteration"}
    assert 0.0 <= results["success_reality"] <= 1.0

    # The stand-in robot can also be driven by the trained checkpoint.
    code = main(["--log-level", "WARNING", "record-standin", "--out", str(tmp_path / "policy_logs"),
                 "--episodes", "1", "--checkpoint", str(run_dir / "checkpoints/best.pt"),
                 "--set", "env.max_steps=30"])
    assert code == 0
    assert "recorded 1 episodes" in capsys.readouterr().out


class KilledMidIteration(Exception):
    """Stands in for SIGKILL: the run stops inside an iteration without any cleanup."""


class DyingBackend:
    """A real process pool that dies after `episodes_before_death` episodes of its `dying_call`-th collect."""

    def __init__(self, pool, *, dying_call, episodes_before_death=1):
        self.pool = pool
        self.calls = 0
        self.dying_call = dying_call
        self.episodes_before_death = episodes_before_death

    def collect(self, tasks, policy_state):
        self.calls += 1
        for count, episode in enumerate(self.pool.collect(tasks, policy_state)):
            if self.calls == self.dying_call and count == self.episodes_before_death:
                raise KilledMidIteration
            yield episode

    def close(self):
        self.pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def test_resume_equals_uninterrupted(tmp_path, standin_logs, tiny_config):
    config = tiny_config()
    straight = tmp_path / "straight"
    train(config, real_log=standin_logs, run_dir=straight, workers=0, device="cpu", progress=False)

    # Each iteration makes 2 collect calls (rollouts, evaluation); call 5 is iteration 2's rollout.
    resumed = tmp_path / "resumed"
    pool = LocalProcessPool(config.env, config.randomization, config.policy, workers=0)
    with pytest.raises(KilledMidIteration):
        train(config, real_log=standin_logs, run_dir=resumed, backend=DyingBackend(pool, dying_call=5),
              workers=0, device="cpu", progress=False)
    pool.close()
    assert [row["iteration"] for row in read_rows(resumed)] == [0, 1]
    with (resumed / "metrics.jsonl").open("a") as stream:
        stream.write('{"iteration": 2, "cut off by the ki')

    summary = train(config, resume=resumed, workers=0, device="cpu", progress=False)
    assert summary["iterations_completed"] == 3
    assert [without_time(row) for row in read_rows(resumed)] == [without_time(row) for row in read_rows(straight)]


def test_ctrl_c_finishes_iteration_and_checkpoints(tmp_path, tiny_config):
    config = tiny_config()
    pool = LocalProcessPool(config.env, config.randomization, config.policy, workers=0)

    class InterruptingBackend(DyingBackend):
        def collect(self, tasks, policy_state):
            self.calls += 1
            if self.calls == 1:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C during the first rollout
            yield from self.pool.collect(tasks, policy_state)

    handler_before = signal.getsignal(signal.SIGINT)
    summary = train(config, run_dir=tmp_path / "run", backend=InterruptingBackend(pool, dying_call=0),
                    workers=0, device="cpu", progress=False)
    pool.close()
    assert summary["interrupted"] is True
    assert summary["iterations_completed"] == 1
    assert (tmp_path / "run/checkpoints/last.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is handler_before


@pytest.mark.parametrize("mode", ["off", "random"])
def test_gate_baselines_record_activation(tmp_path, mode, tiny_config):
    config = tiny_config("train.iterations=1", "train.episodes_per_iteration=6", "gate.target_rate=0.5")
    summary = train(config, run_dir=tmp_path / mode, gate_mode=mode, workers=0, device="cpu", progress=False)
    row = read_rows(tmp_path / mode)[0]
    assert summary["gate_mode"] == mode
    assert row["gate/mode"] == mode
    if mode == "off":
        assert row["gate/activation_rate"] == 1.0
        assert row["compute/skipped_steps"] == 0
    else:
        assert 0.0 <= row["gate/activation_rate"] <= 1.0
        assert row["gate/admitted"] == round(row["gate/activation_rate"] * row["rollout/episodes"])
    assert load_config(tmp_path / mode / "config.yaml").gate.mode == mode


def test_missing_real_log_is_clear_error(tmp_path, capsys, tiny_cli_args):
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--real-log", str(tmp_path / "nowhere"),
                 *tiny_cli_args()])
    assert code == 2
    assert "nowhere: no such file or directory" in capsys.readouterr().err


def test_empty_real_log_is_clear_error(tmp_path, capsys, tiny_cli_args):
    (tmp_path / "logs").mkdir()
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--real-log", str(tmp_path / "logs"),
                 *tiny_cli_args()])
    assert code == 2
    assert "the directory is empty" in capsys.readouterr().err


def test_bad_bags_reported_good_ones_used(tmp_path, standin_logs, tiny_config):
    logs = tmp_path / "logs"
    shutil.copytree(standin_logs, logs)
    broken = logs / "broken_bag"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: [this is not a bag\n")
    (logs / "truncated.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(40))

    config = tiny_config("train.iterations=1")
    summary = train(config, real_log=logs, run_dir=tmp_path / "run", workers=0, device="cpu", progress=False)
    report = json.loads((tmp_path / "run/real_logs.json").read_text())
    assert summary["real_logs"]["episodes"] == 4
    assert report["load_summary"]["bags_skipped"] == 2
    assert any("broken_bag" in bag for bag in report["bags_with_problems"])
    assert any("truncated.mcap" in bag for bag in report["bags_with_problems"])


def test_existing_run_dir_needs_resume(tmp_path, tiny_config):
    config = tiny_config("train.iterations=1")
    train(config, run_dir=tmp_path / "run", workers=0, device="cpu", progress=False)
    with pytest.raises(Exception, match="--resume"):
        train(config, run_dir=tmp_path / "run", workers=0, device="cpu", progress=False)


def test_checkpoint_policy_matches_training_policy(tmp_path, tiny_config):
    from ast_robot.train.checkpoint import load_checkpoint
    from ast_robot.train.policy_io import policy_from_checkpoint

    config = tiny_config("train.iterations=1")
    train(config, run_dir=tmp_path / "run", workers=0, device="cpu", progress=False)
    policy, history = policy_from_checkpoint(load_checkpoint(tmp_path / "run/checkpoints/last.pt"))
    assert history == 4
    obs = {name: np.zeros((2, width), np.float32) for name, width in
           {"proprio": 8, "force": 6, "object": 6, "goal": 3}.items()}
    action, std = policy.act(obs)
    assert action.shape == (4,)
    assert np.all(std > 0)


@pytest.mark.parametrize("task", ["reach", "push"])
def test_other_tasks_train(tmp_path, task, tiny_cli_args, capsys):
    code = main(["--log-level", "WARNING", "train", "--env", task, "--run-dir", str(tmp_path / task),
                 "--workers", "0", "--no-progress", *tiny_cli_args("train.iterations=1")])
    assert code == 0
    assert read_rows(tmp_path / task)[0]["rollout/episodes"] == 4
    assert load_config(tmp_path / task / "config.yaml").env.task == task
