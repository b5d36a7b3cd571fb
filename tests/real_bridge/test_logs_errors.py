"""Error messages and exit codes for damaged recordings and missing map or profile files."""

from __future__ import annotations

import pytest
from logs_factory import standin_map, steady_recording

from ast_robot.cli import main
from ast_robot.real_bridge.logs import load_episodes


def only_problem(result, kind):
    problems = [problem for problem in result.problems if problem.kind == kind]
    assert len(problems) == 1, result.problems
    return problems[0]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_mcap_in_bag_dir_gives_recover_hint(tmp_path, damage):
    bag = steady_recording(20).write(tmp_path / "bag")
    (mcap_file,) = bag.glob("*.mcap")
    data = mcap_file.read_bytes()
    mcap_file.write_bytes(data[: len(data) * 2 // 3] if damage == "truncated" else b"not an mcap file" * 64)

    problem = only_problem(load_episodes(bag, standin_map()), "unreadable")

    assert problem.message.startswith("cannot read MCAP recording: File")
    assert ".." not in problem.message
    assert f"`mcap recover {mcap_file} -o recovered.mcap`" in problem.message


def test_garbage_standalone_mcap_gets_same_hint(tmp_path):
    path = tmp_path / "loose.mcap"
    path.write_bytes(b"not an mcap file" * 64)

    problem = only_problem(load_episodes(path, standin_map()), "unreadable")

    assert problem.message.startswith("cannot read MCAP recording: File magic is invalid;")
    assert f"`mcap recover {path} -o recovered.mcap`" in problem.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("just a string\n", "must be a mapping with a 'rosbag2_bagfile_information' section, found a string"),
        ("- 1\n- 2\n", "found a list"),
        ("", "found an empty file"),
        ("other: 1\n", "found a mapping without it"),
        ("rosbag2_bagfile_information:\n  storage_identifier: mcap\n", "has no rosbag2_bagfile_information.version"),
        ("rosbag2_bagfile_information:\n  version: nine\n", "version must be an integer, found 'nine'"),
        ("rosbag2_bagfile_information: [\n", "is not valid YAML at line"),
    ],
)
def test_bad_metadata_names_file_and_fault(tmp_path, text, expected):
    bag = steady_recording(5).write(tmp_path / "bag")
    (bag / "metadata.yaml").write_text(text)

    problem = only_problem(load_episodes(bag, standin_map()), "unreadable")

    assert str(bag / "metadata.yaml") in problem.message
    assert expected in problem.message
    assert "string indices" not in problem.message
    assert f"`ros2 bag reindex {bag}`" in problem.message


def test_inspect_exit_code_follows_readable_bags(tmp_path, capsys):
    steady_recording(20).write(tmp_path / "good")
    broken = steady_recording(20).write(tmp_path / "broken")
    (broken / "metadata.yaml").write_text("just a string\n")

    assert main(["logs", "inspect", str(tmp_path)]) == 0
    assert "problems (1)" in capsys.readouterr().out

    assert main(["logs", "inspect", str(broken)]) == 2
    captured = capsys.readouterr()
    assert "problems (1)" in captured.out  # the report is still printed
    assert "none of the 1 recording(s)" in captured.err

    assert main(["logs", "inspect", str(broken), "--json"]) == 2


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["logs", "inspect", "{logs}", "--robot", "{missing}"], "--robot"),
        (["logs", "inspect", "{logs}", "--set", "logs.robot={missing}"], "logs.robot"),
        (["replay", "{logs}", "--sim", "--robot", "{missing}"], "--robot"),
        (["replay", "{logs}", "--sim", "--reality", "{missing}"], "--reality"),
        (["replay", "{logs}", "--checkpoint", "x.pt", "--robot", "{missing}"], "--robot"),
    ],
)
def test_missing_map_or_profile_names_option(tmp_path, capsys, argv, option):
    logs = steady_recording(5).write(tmp_path / "bag")
    missing = tmp_path / "nowhere" / "file.yaml"
    argv = [part.format(logs=logs, missing=missing) for part in argv]

    assert main(argv) == 2

    err = capsys.readouterr().err
    assert f"{option}: file '{missing}' does not exist" in err
