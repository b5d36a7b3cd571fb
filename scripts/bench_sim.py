"""Benchmark the simulated tasks: step overhead, rollout throughput and expert success.

Three measurements, printed as Markdown for BENCHMARKS.md:

1. Env step cost against raw `mj_step` with the same model and substeps, in the same process.
   Both replay the same expert episodes (the raw loop writes the recorded controls), episode by
   episode in alternation, so they simulate the same contacts and background load hits both
   alike. Time is CPU time of this process (`time.process_time`), which leaves out waiting for a
   core on a shared machine; the fastest of the repeats is reported (the least disturbed one),
   with the median ratio next to it. Goal: wrapper overhead <= 25 %.
2. Rollout throughput (episodes/s) of the pick_place expert with 1 and N worker processes.
   Goal: scaling efficiency (throughput N / (N * throughput 1)) >= 0.85.
3. Success rate of each scripted expert over 200 seeds on the nominal model, under the default
   randomization and on the stand-in reality profile. Goal: >= 95 % nominal, >= 90 % randomized.
   Then the success of each expert taking over after 30 steps of random actions.

Usage:
    python scripts/bench_sim.py                 # everything, 200 seeds
    python scripts/bench_sim.py --seeds 20 --skip-throughput
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import mujoco
import numpy as np

from ast_robot.config import load_config
from ast_robot.envs import make_env, make_expert
from ast_robot.envs.rollout import ExpertRolloutSpec, RolloutPool, default_workers, rollout_pool

STANDIN = "configs/reality/standin.yaml"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uptime unavailable"


def _record_episode(env, expert, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run the expert for one episode; return its actions and the controls each step wrote."""
    obs, info = env.reset(seed=seed)
    actions, controls = [], []
    while True:
        action = expert.act(obs, info)
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(action)
        controls.append(env.data.ctrl.copy())
        if terminated or truncated:
            return actions, controls


def bench_step_overhead(task: str, *, episodes: int, repeats: int) -> dict:
    """CPU seconds per control step of `env.step` and of raw `mj_step(nstep=substeps)`.

    Both replay the same expert episodes from the same reset state: the env through `step`, the
    raw loop by writing the recorded controls and calling `mj_step`, so both simulate the same
    contacts. Resets are not timed.
    """
    config = load_config(env=task)
    env = make_env(task, config.env, config.randomization)
    expert = make_expert(task, env)
    model, data = env.model, env.data
    recorded = [_record_episode(env, expert, seed) for seed in range(episodes)]
    steps = sum(len(actions) for actions, _ in recorded)

    env_times, raw_times = [], []
    for _ in range(repeats):
        env_s = raw_s = 0.0
        for seed, (actions, controls) in enumerate(recorded):
            env.reset(seed=seed)
            start = time.process_time()
            for action in actions:
                env.step(action)
            env_s += time.process_time() - start

            env.reset(seed=seed)
            start = time.process_time()
            for control in controls:
                data.ctrl[:] = control
                mujoco.mj_step(model, data, nstep=env.substeps)
            raw_s += time.process_time() - start
        env_times.append(env_s / steps)
        raw_times.append(raw_s / steps)

    env_s, raw_s = min(env_times), min(raw_times)
    return {
        "task": task,
        "substeps": env.substeps,
        "env_step_us": env_s * 1e6,
        "raw_step_us": raw_s * 1e6,
        "env_steps_per_s": 1.0 / env_s,
        "raw_steps_per_s": 1.0 / raw_s,
        "overhead": env_s / raw_s - 1.0,
        "median_overhead": float(np.median(np.array(env_times) / np.array(raw_times)) - 1.0),
    }


def bench_throughput(workers: int, episodes: int) -> dict:
    """Episodes per second of an open pool; process start and env builds are not timed.

    Also returns the CPU seconds per episode: the workers' own (`worker_cpu_s` in each episode)
    plus this process's (receiving and decoding episodes).
    """
    config = load_config(env="pick_place")
    spec = ExpertRolloutSpec("pick_place", config.env, config.randomization)
    with RolloutPool(spec, workers=workers) as pool:
        list(pool.run(range(2 * workers)))  # warm-up: every worker has run an episode
        start, start_cpu = time.perf_counter(), time.process_time()
        results = [episode for _, episode in pool.run(range(1000, 1000 + episodes))]
        elapsed, parent_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    steps = sum(len(episode) for episode in results)
    worker_cpu = sum(episode.info["worker_cpu_s"] for episode in results)
    if workers == 1:
        parent_cpu -= worker_cpu  # the single worker runs in this process
    return {"workers": workers, "episodes": episodes, "seconds": elapsed,
            "episodes_per_s": episodes / elapsed, "steps_per_s": steps / elapsed,
            "cpu_s_per_episode": (worker_cpu + parent_cpu) / episodes}


def measure_experts(tasks: list[str], seeds: int, workers: int) -> list[dict]:
    rows = []
    for task in tasks:
        config = load_config(env=task)
        for mode in ("nominal", "randomized", "standin"):
            spec = ExpertRolloutSpec(
                task,
                config.env,
                config.randomization if mode != "nominal" else None,
                reality=STANDIN if mode == "standin" else None,
            )
            start = time.perf_counter()
            results = dict(rollout_pool(spec, range(seeds), workers=workers, progress=False))
            failures = sorted(seed for seed, episode in results.items() if not episode.success)
            flagged = sum(1 for e in results.values() if e.flags.get("unstable") or e.flags.get("nan_sensor"))
            rows.append({
                "task": task,
                "mode": mode,
                "seeds": seeds,
                "success_rate": 1.0 - len(failures) / seeds,
                "failed_seeds": failures[:20],
                "blow_ups": flagged,
                "mean_length": float(np.mean([len(e) for e in results.values()])),
                "seconds": time.perf_counter() - start,
            })
            print(f"  {task:10s} {mode:10s} success {rows[-1]['success_rate']:.3f}  "
                  f"failed seeds {failures[:10]}", flush=True)
    return rows


def measure_recovery(task: str, *, seeds: int, random_steps: int, max_steps: int) -> float:
    """Success of the expert taking over after `random_steps` of uniform random actions.

    This is the situation of a DAgger teacher: it must finish from wherever another policy left
    the robot and the cube (the episode limit is raised to `max_steps` to leave time for that).
    """
    config = load_config(env=task, overrides=[f"env.max_steps={max_steps}"])
    env = make_env(task, config.env, config.randomization)
    expert = make_expert(task, env)
    successes = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        obs, info = env.reset(seed=seed)
        for step in range(max_steps):
            if step < random_steps:
                action = rng.uniform(-1.0, 1.0, 4).astype(np.float32)
            else:
                action = expert.act(obs, info)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        successes += bool(info["is_success"])
    return successes / seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200, help="seeds per expert measurement")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    parser.add_argument("--overhead-episodes", type=int, default=4, help="expert episodes replayed per timing")
    parser.add_argument("--repeats", type=int, default=10, help="timings per side")
    parser.add_argument("--episodes", type=int, default=60, help="episodes per throughput measurement")
    parser.add_argument("--tasks", nargs="+", default=["pick_place", "reach", "push"])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-experts", action="store_true")
    parser.add_argument("--json", help="also write all results to this JSON file")
    args = parser.parse_args()
    workers = args.workers or default_workers()

    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                                f"MuJoCo {mujoco.__version__}", "uptime_start": uptime()}
    print(f"# bench_sim  ({results['machine']})")
    print(f"uptime at start: {results['uptime_start']}\n")

    print("## Env step against raw mj_step (CPU time, fastest block of each)\n")
    print("| task | substeps | raw mj_step steps/s | env steps/s | overhead (fastest) | overhead (median) |")
    print("|---|---|---|---|---|---|")
    results["step"] = []
    for task in args.tasks:
        row = bench_step_overhead(task, episodes=args.overhead_episodes, repeats=args.repeats)
        results["step"].append(row)
        print(f"| {task} | {row['substeps']} | {row['raw_steps_per_s']:.0f} | {row['env_steps_per_s']:.0f} | "
              f"{row['overhead']:+.1%} | {row['median_overhead']:+.1%} |", flush=True)

    if not args.skip_throughput:
        print(f"\n## Rollout throughput, pick_place expert, randomized ({args.episodes} episodes)\n")
        one = bench_throughput(1, args.episodes)
        many = bench_throughput(workers, args.episodes)
        efficiency = many["episodes_per_s"] / (workers * one["episodes_per_s"])
        cpu_ratio = one["cpu_s_per_episode"] / many["cpu_s_per_episode"]
        results["throughput"] = {"one": one, "many": many, "scaling_efficiency": efficiency,
                                 "cpu_efficiency": cpu_ratio}
        print("| workers | episodes/s | control steps/s | CPU ms per episode |")
        print("|---|---|---|---|")
        for row in (one, many):
            print(f"| {row['workers']} | {row['episodes_per_s']:.1f} | {row['steps_per_s']:.0f} | "
                  f"{row['cpu_s_per_episode'] * 1e3:.1f} |")
        print(f"\nscaling efficiency with {workers} workers (wall clock): {efficiency:.2f}")
        print(f"CPU cost per episode, 1 worker / {workers} workers: {cpu_ratio:.2f} "
              "(1.0 means the pool adds no CPU work; the wall-clock efficiency can only reach this "
              "on cores nobody else uses)")

    if not args.skip_experts:
        print(f"\n## Scripted expert success over {args.seeds} seeds\n")
        rows = measure_experts(args.tasks, args.seeds, workers)
        results["experts"] = rows
        print("\n| task | nominal | randomized | stand-in profile |")
        print("|---|---|---|---|")
        for task in args.tasks:
            rates = {r["mode"]: r["success_rate"] for r in rows if r["task"] == task}
            print(f"| {task} | {rates['nominal']:.1%} | {rates['randomized']:.1%} | {rates['standin']:.1%} |")

        recovery_seeds = min(args.seeds, 100)
        print(f"\n## Expert takeover after 30 random steps (randomized, 150-step limit, {recovery_seeds} seeds)\n")
        print("| task | success |")
        print("|---|---|")
        results["recovery"] = {}
        for task in args.tasks:
            rate = measure_recovery(task, seeds=recovery_seeds, random_steps=30, max_steps=150)
            results["recovery"][task] = rate
            print(f"| {task} | {rate:.1%} |", flush=True)

    results["uptime_end"] = uptime()
    print(f"\nuptime at end: {results['uptime_end']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    sys.exit(main())
