"""Benchmark the log reader: decode + align + segment against plain rosbags deserialization.

Writes one bag of synthetic stand-in episodes with `EpisodeWriter`, then times, in the same run
and on the same bag:

- plain: `rosbags.rosbag2.Reader.messages()` over the mapped topics + `deserialize_cdr` of each
  message (the floor any rosbags-based reader pays);
- ours: `load_episodes()` (discovery, decoding, field extraction, clock checks, episode
  segmentation, resampling onto the control grid, Episode construction and validation).

Each is run `--repeats` times, alternating, and the best time is kept. Both wall time and process
CPU time are recorded, because on a shared machine the CPU time is the steadier measure of the
work done. The goal is ours <= 1.5x plain.

Usage: python scripts/bench_logs.py [--episodes 100] [--steps 200] [--storage mcap] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import importlib.metadata
from rosbags.rosbag2 import Reader

from ast_robot.episode import Episode
from ast_robot.real_bridge.decode import default_typestore
from ast_robot.real_bridge.logs import load_episodes
from ast_robot.real_bridge.topic_map import RobotMap
from ast_robot.real_bridge.writer import EpisodeWriter


def make_episode(steps: int, rng: np.random.Generator, index: int) -> Episode:
    ee = rng.uniform(-0.5, 0.5, (steps, 3))
    obj = rng.uniform(-0.5, 0.5, (steps, 3))
    proprio = np.concatenate([ee, rng.normal(0, 0.1, (steps, 3)), rng.uniform(0, 0.08, (steps, 2))], axis=1)
    interventions = np.zeros(steps, bool)
    interventions[steps // 3: steps // 2] = index % 4 == 0
    return Episode(
        obs={
            "proprio": proprio,
            "force": rng.normal(0, 3, (steps, 6)),
            "object": np.concatenate([obj, obj - ee], axis=1),
            "goal": np.tile(rng.uniform(-0.5, 0.5, 3), (steps, 1)),
        },
        actions=rng.uniform(-1, 1, (steps, 4)),
        timestamps=np.arange(steps) * 0.05,
        interventions=interventions,
        wrench=rng.normal(0, 3, (steps, 6)),
        success=bool(index % 2),
    )


def time_plain(bag: Path, robot_map: RobotMap) -> tuple[float, float, int]:
    """Return wall seconds, CPU seconds and messages of reading + deserializing the mapped topics."""
    typestore = default_typestore(robot_map)
    topics = {spec.topic for spec in robot_map.topics.values()}
    wall, cpu = time.perf_counter(), time.process_time()
    count = 0
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, _, raw in reader.messages(connections=connections):
            typestore.deserialize_cdr(raw, connection.msgtype)
            count += 1
    return time.perf_counter() - wall, time.process_time() - cpu, count


def time_ours(bag: Path, robot_map: RobotMap) -> tuple[float, float, int, int]:
    """Return wall seconds, CPU seconds, messages and episodes of `load_episodes`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = load_episodes(bag, robot_map)
    return (
        time.perf_counter() - wall, time.process_time() - cpu,
        result.summary.messages_decoded, result.summary.episodes_loaded,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes in the bag")
    parser.add_argument("--steps", type=int, default=200, help="control steps per episode")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each reader; the best counts")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    versions = f"rosbags {importlib.metadata.version('rosbags')}, numpy {importlib.metadata.version('numpy')}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {versions}")
    robot_map = RobotMap.load("configs/robots/standin.yaml")
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bench_bag"
        start = time.perf_counter()
        with EpisodeWriter(bag, robot_map, storage=args.storage) as writer:
            for index in range(args.episodes):
                writer.write(make_episode(args.steps, rng, index))
        write_s = time.perf_counter() - start
        messages = writer.messages_written
        print(f"wrote {args.episodes} episodes x {args.steps} steps = {messages} messages ({args.storage}) in {write_s:.2f} s")

        plain_times, ours_times, plain_cpu, ours_cpu = [], [], [], []
        for _ in range(args.repeats):
            wall, cpu, plain_count = time_plain(bag, robot_map)
            plain_times.append(wall)
            plain_cpu.append(cpu)
            wall, cpu, ours_count, episodes = time_ours(bag, robot_map)
            ours_times.append(wall)
            ours_cpu.append(cpu)
        if not plain_count == ours_count == messages or episodes != args.episodes:
            raise RuntimeError(f"readers disagree: plain {plain_count}, ours {ours_count} messages, "
                               f"{messages} written; {episodes} of {args.episodes} episodes loaded")

    plain_best, ours_best = min(plain_times), min(ours_times)
    results = {
        "storage": args.storage,
        "messages": messages,
        "episodes": args.episodes,
        "steps_per_episode": args.steps,
        "plain_rosbags_s": plain_best,
        "ours_s": ours_best,
        "plain_rosbags_msgs_per_s": messages / plain_best,
        "ours_msgs_per_s": messages / ours_best,
        "slowdown": ours_best / plain_best,
        "plain_cpu_s": min(plain_cpu),
        "ours_cpu_s": min(ours_cpu),
        "slowdown_cpu": min(ours_cpu) / min(plain_cpu),
        "plain_times_s": plain_times,
        "ours_times_s": ours_times,
    }
    print(f"plain rosbags read + deserialize: {plain_best:.3f} s  ({messages / plain_best:,.0f} msg/s)")
    print(f"load_episodes (decode+align+segment): {ours_best:.3f} s  ({messages / ours_best:,.0f} msg/s)")
    print(f"slowdown: {ours_best / plain_best:.2f}x wall, {results['slowdown_cpu']:.2f}x CPU "
          f"({results['plain_cpu_s']:.3f} s vs {results['ours_cpu_s']:.3f} s); goal <= 1.5x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
