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
    assert "train.eval_reality" in err and "missing.yaml" in err
    assert not (tmp_path / "run").exists()


def test_bad_robot_map_fails_before_training(tmp_path, standin_logs, capsys, tiny_cli_args):
    code = main(["--log-level", "WARNING", "train", "--run-dir", str(tmp_path / "run"), "--workers", "0",
                 "--no-progress", "--real-log", str(standin_logs),
                 *tiny_cli_args("train.iterations=1", f"logs.robot={tmp_path / 'nomap.yaml'}")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nomap.yaml" in err
    assert not (tmp_path / "run").exists()
