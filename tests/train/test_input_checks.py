"""Bad inputs to train, eval and record-standin fail early with one clear line."""

import os

import pytest

from ast_robot.cli import main


def _train(run_args, tiny_cli_args, *extra_sets):
    return main(["--log-level", "WARNING", "train", *run_args, "--workers", "0", "--no-progress",
                 *tiny_cli_args("train.iterations=1", *extra_sets)])


def test_train_refuses_non_empty_folder_that_is_no_run(tmp_path, capsys, tiny_cli_args):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "config.yaml").write_text("mine: 1\n")
    (folder / "summary.json").write_text("{}\n")
    code = _train(["--run-dir", str(folder)], tiny_cli_args)
    assert code == 2
    assert "is not empty and contains no run" in capsys.readouterr().err
    assert (folder / "config.yaml").read_text() == "mine: 1\n"
    assert sorted(os.listdir(folder)) == ["config.yaml", "summary.json"]


def test_train_refuses_folder_with_metrics_only(tmp_path, capsys, tiny_cli_args):
    folder = tmp_path / "killed"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("")
    code = _train(["--run-dir", str(folder)], tiny_cli_args)
    assert code == 2
    assert "already contains a run" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".", "", "  "])
def test_bad_run_name_is_rejected(tmp_path, monkeypatch, capsys, tiny_cli_args, name):
    monkeypatch.chdir(tmp_path)
    code = _train(["--run-name", name], tiny_cli_args)
    assert code == 2
    assert "--run-name" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_bad_eval_reality_fails_before_training(tmp_path, capsys, tiny_cli_args):
    code = _train(["--run-dir", str(tmp_path / "run")], tiny_cli_args,
                  f"train.eval_reality={tmp_path / 'missing.yaml'}")
    err = capsys.readouterr().err
    assert code == 2
    assert "train.eval_reality" in err
    assert "missing.yaml" in err
    assert not (tmp_path / "run").exists()


def test_bad_robot_map_fails_before_training(tmp_path, standin_logs, capsys, tiny_cli_args):
    code = main(["--log-level", "WARNING", "train", "--run-dir", str(tmp_path / "run"), "--workers", "0",
                 "--no-progress", "--real-log", str(standin_logs),
                 *tiny_cli_args("train.iterations=1", f"logs.robot={tmp_path / 'nomap.yaml'}")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nomap.yaml" in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def reach_checkpoint(tmp_path_factory):
    """A robot checkpoint of an untrained tiny reach policy, in the layout training writes."""
    from ast_robot.config import config_to_dict, load_config
    from ast_robot.policy import TransformerPolicy
    from ast_robot.train.checkpoint import save_checkpoint

    config = load_config(env="reach", overrides=["policy.d_model=16", "policy.layers=1", "policy.heads=2",
                                                 "policy.history=4", "env.max_steps=10", "train.workers=0"])
    path = tmp_path_factory.mktemp("reach_run") / "checkpoints" / "best.pt"
    save_checkpoint({"config": config_to_dict(config), "policy": TransformerPolicy(config.policy).state_dict(),
                     "iteration": 1}, path)
    return path


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(("options", "expected"), [
    (["--episodes-per-bag", "0"], "--episodes-per-bag must be at least 1"),
    (["--episodes-per-bag", "-1"], "--episodes-per-bag must be at least 1"),
    (["--episodes", "0"], "--episodes must be at least 1"),
    (["--episodes", "-1"], "--episodes must be at least 1"),
])
def test_record_standin_bad_counts(tmp_path, capsys, options, expected):
    code = main(["record-standin", "--out", str(tmp_path / "logs"), *options])
    assert code == 2
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "logs").exists()


def test_record_standin_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    code = main(["record-standin", "--out", str(target), "--episodes", "1"])
    assert code == 2
    assert "is a file" in _one_error_line(capsys)


@pytest.mark.parametrize("episodes", ["0", "-1"])
def test_eval_rejects_no_episodes(reach_checkpoint, capsys, episodes):
    code = main(["eval", "--checkpoint", str(reach_checkpoint), "--episodes", episodes])
    assert code == 2
    assert "--episodes must be at least 1" in _one_error_line(capsys)
    assert capsys.readouterr().out == ""


def test_eval_vision_checkpoint(tmp_path, capsys):
    import torch

    path = tmp_path / "vision.pt"
    torch.save({"kind": "vision", "version": 1, "model": {"w": torch.zeros(2)}}, path)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    line = _one_error_line(capsys)
    assert "vision model checkpoint" in line
    assert "checkpoints/last.pt or best.pt" in line


def test_eval_safetensors_points_to_best_pt(tmp_path, capsys):
    from ast_robot.config import load_config
    from ast_robot.policy import TransformerPolicy

    path = tmp_path / "best_policy.safetensors"
    TransformerPolicy(load_config(env="reach", overrides=["policy.d_model=16", "policy.layers=1",
                                                          "policy.heads=2"]).policy).save(path)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    assert "pass best.pt" in _one_error_line(capsys)


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "is empty (0 bytes)"),
    (b"this is not a checkpoint at all" * 10, "is not a file written by torch.save"),
])
def test_eval_unreadable_pt(tmp_path, capsys, content, expected):
    path = tmp_path / "ck.pt"
    path.write_bytes(content)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    line = _one_error_line(capsys)
    assert expected in line
    assert "ast-robot train" in line


def test_eval_pickle_with_code_is_one_line(tmp_path, capsys):
    import argparse

    import torch

    path = tmp_path / "code.pt"
    torch.save({"format": 1, "thing": argparse.Namespace(a=1)}, path)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    assert "could not read checkpoint" in _one_error_line(capsys)


def test_eval_directory_names_checkpoint_inside(reach_checkpoint, capsys):
    run_dir = reach_checkpoint.parent.parent
    assert main(["eval", "--checkpoint", str(run_dir)]) == 2
    line = _one_error_line(capsys)
    assert "is a directory" in line
    assert str(reach_checkpoint) in line


def test_checkpoint_of_other_task_is_refused(tmp_path, reach_checkpoint, capsys):
    code = main(["record-standin", "--env", "pick_place", "--out", str(tmp_path / "logs"), "--episodes", "1",
                 "--checkpoint", str(reach_checkpoint)])
    assert code == 2
    line = _one_error_line(capsys)
    assert "'reach'" in line
    assert "'pick_place'" in line
    assert not (tmp_path / "logs").exists()
    assert main(["eval", "--env", "push", "--checkpoint", str(reach_checkpoint)]) == 2
    line = _one_error_line(capsys)
    assert "'reach'" in line
    assert "'push'" in line
