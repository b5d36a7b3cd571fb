import subprocess
import sys

import yaml

from ast_robot import __version__
from ast_robot.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert __version__ in capsys.readouterr().out


def test_config_show_applies_overrides(capsys):
    assert main(["config", "show", "--env", "pick_place", "--set", "gate.target_rate=0.1"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["gate"]["target_rate"] == 0.1
    assert data["env"]["task"] == "pick_place"


def test_config_show_from_file(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("env:\n  task: push\n")
    assert main(["config", "show", "--config", str(path), "--no-comments"]) == 0
    output = capsys.readouterr().out
    assert "#" not in output
    assert yaml.safe_load(output)["env"]["task"] == "push"


def test_config_show_unknown_key_one_line(capsys):
    code = main(["config", "show", "--env", "pick_place", "--set", "no.such.key=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown key 'no.such.key'" in err
    assert "did you mean" in err
    assert "Traceback" not in err


def test_verbose_error_shows_traceback(capsys):
    code = main(["-v", "config", "show", "--env", "pick_place", "--set", "gate.target_rate=3"])
    assert code == 2
    assert "Traceback" in capsys.readouterr().err


def test_console_script_exit_code():
    result = subprocess.run(
        [sys.executable, "-m", "ast_robot.cli", "config", "show", "--env", "pick_place", "--set", "no.such.key=1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown key 'no.such.key'" in result.stderr
