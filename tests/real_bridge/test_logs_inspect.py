"""`ast-robot logs inspect`: the table and JSON reports, end to end through the CLI."""

from __future__ import annotations

import json
import re

from logs_factory import make_episode, standin_map, steady_recording

from ast_robot.cli import main
from ast_robot.real_bridge.writer import EpisodeWriter


def make_log_dir(tmp_path):
    with EpisodeWriter(tmp_path / "logs" / "session", standin_map(), storage="sqlite3") as writer:
        writer.write(make_episode(20, seed=1, interventions=range(4, 9)))
        writer.write(make_episode(6, seed=2, success=False, wrench_nan=[2]))
    recording = steady_recording(10)
    recording.messages = [m for m in recording.messages if m[0] != "/wrist_wrench"]
    recording.declare("/wrist_wrench")
    recording.write(tmp_path / "logs" / "nested" / "no_wrench")
    return tmp_path / "logs"


def test_inspect_table(tmp_path, capsys):
    logs = make_log_dir(tmp_path)

    code = main(["logs", "inspect", str(logs), "--robot", "configs/robots/standin.yaml"])

    out = capsys.readouterr().out
    assert code == 0
    assert "storage: sqlite3 v9" in out
    assert "storage: mcap v9" in out
    assert re.search(r"/wrist_wrench\s+geometry_msgs/msg/WrenchStamped\s+0\s", out)
    assert "no data" in out  # peak force of the bag without wrench messages
    assert "[nan] /wrist_wrench" in out
    assert "[no_data] /wrist_wrench" in out
    assert "total: 2/2 bags read, 3 episodes loaded (36 steps) of 3 found, 0 split, 0 skipped" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("ep-")]
    assert [row[1] for row in rows] == ["20", "6"]
    assert [row[3] for row in rows] == ["yes", "no"]
    assert [row[4] for row in rows] == ["5", "0"]


def test_inspect_json(tmp_path, capsys):
    logs = make_log_dir(tmp_path)

    code = main(["logs", "inspect", str(logs), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["summary"]["episodes_loaded"] == 3
    nested, session = report["bags"]
    assert session["storage"] == "sqlite3"
    counts = {t["topic"]: t["count"] for t in nested["topics"]}
    assert counts["/wrist_wrench"] == 0
    assert counts["/ee_pose"] == 10
    rates = {t["topic"]: t["rate_hz"] for t in session["topics"]}
    assert abs(rates["/ee_pose"] - 20.0) < 1e-6
    assert [e["intervention_steps"] for e in session["episodes"]] == [5, 0]
    assert nested["episodes"][0]["peak_force_n"] is None
    assert {p["kind"] for p in nested["problems"]} >= {"no_data"}
    assert all({"bag", "kind", "message", "topic", "time_ns"} <= set(p) for p in session["problems"])


def test_inspect_reports_undecodable_type(tmp_path, capsys):
    steady_recording(4).write(tmp_path / "bag")
    robot_map = tmp_path / "map.yaml"
    text = standin_map().path.read_text().replace(
        "wrench: {topic: /wrist_wrench, type: geometry_msgs/msg/WrenchStamped, frame_id: wrist}",
        "wrench: {topic: /wrist_wrench, type: my_msgs/msg/Unknown}",
    )
    robot_map.write_text(text)

    code = main(["logs", "inspect", str(tmp_path / "bag"), "--robot", str(robot_map)])

    out = capsys.readouterr().out
    assert code == 2  # the only bag cannot be decoded with this map
    assert "[undecodable]" in out
    assert "has type geometry_msgs/msg/WrenchStamped, but robot map" in out


def test_inspect_missing_path_exits_2(tmp_path, capsys):
    code = main(["logs", "inspect", str(tmp_path / "missing")])

    assert code == 2
    assert "does not exist" in capsys.readouterr().err
