"""Run directory files: metrics, CSV copy, resume truncation, plots."""

import csv
import json

from ast_robot.config import load_config
from ast_robot.train.rundir import RunDir


def test_metrics_csv_and_plots(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(load_config(env="pick_place"))
    for i in range(3):
        run.append({"iteration": i, "time/wall_s": 1.0 + i, "gate/activation_rate": 0.25,
                    "gate/threshold": 0.5, "eval/success_sim": 0.1 * i if i % 2 == 0 else None})
    run.write_plots()
    assert (tmp_path / "run/config.yaml").is_file()
    lines = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [0, 1, 2]
    with open(tmp_path / "run/metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3
    assert rows[0]["gate/threshold"] == "0.5"
    assert (tmp_path / "run/plots/success.png").stat().st_size > 0
    assert (tmp_path / "run/plots/gate.png").stat().st_size > 0


def test_reopen_drops_rows_after_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    run.create(load_config(env="reach"))
    for i in range(4):
        run.append({"iteration": i})
    with (tmp_path / "metrics.jsonl").open("a") as stream:
        stream.write('{"iteration": 4, "trunc')  # a line cut off by a kill
    reopened = RunDir(tmp_path)
    reopened.reopen(completed_iterations=2)
    assert [row["iteration"] for row in reopened.rows] == [0, 1]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
