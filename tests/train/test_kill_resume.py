"""A training process killed with SIGKILL resumes to the metrics of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ast_robot.cli import main


def read_rows(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut off by the kill
    return rows


def without_time(row):
    return {key: value for key, value in row.items() if not key.startswith("time/")}


@pytest.mark.slow
def test_sigkill_then_resume_matches_straight_run(tmp_path, tiny_cli_args):
    settings = tiny_cli_args("train.iterations=4")
    straight = tmp_path / "straight"
    assert main(["--log-level", "WARNING", "train", "--run-dir", str(straight), "--workers", "2",
                 "--no-progress", *settings]) == 0

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "ast_robot.cli", "--log-level", "WARNING", "train", "--run-dir", str(killed),
         "--workers", "2", "--no-progress", *settings],
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while len(read_rows(killed)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the trainer and its rollout workers, mid-iteration
    process.wait()
    assert len(read_rows(killed)) < 4

    assert main(["--log-level", "WARNING", "train", "--resume", str(killed), "--workers", "2", "--no-progress"]) == 0
    assert [without_time(r) for r in read_rows(killed)] == [without_time(r) for r in read_rows(straight)]
