"""Benchmark: time to a target success rate with PPO on reach and push, gate on vs off vs random.

Every (task, gate mode) pair is one `ast-robot train --algo ppo` run with the same seed and
settings. Runs go to separate processes (one torch thread each), several at a time. Success is
the nominal-simulation evaluation of the exported transformer policy alone on fixed seeds, the
same evaluation `ast-robot eval` runs. A random-action baseline is measured on the same seeds.

    python scripts/bench_rl.py                       # reach and push, on/off/random, in parallel
    python scripts/bench_rl.py --tasks reach --iterations 10 --parallel 3

Results: a table on stdout and ``results.json`` in the output directory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

DEFAULT_SETTINGS = [
    "policy.history=4",
    "policy.d_model=32",
    "policy.layers=1",
    "policy.heads=2",
    "policy.top_k=0",
    "rl.n_envs=8",
    "rl.steps_per_env=200",
    "train.eval_every=2",
    "train.eval_episodes=20",
    "train.eval_reality=null",
    "train.workers=0",
]
"""A small transformer and a short rollout, so that the six runs fit in minutes."""


def run_one(job: dict) -> dict:
    """Train one configuration in this (child) process and return its summary."""
    import logging

    import torch

    from ast_robot.rl import train_rl

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    name = {key: value for key, value in job.items() if key != "config"}
    try:
        summary = train_rl(job["config"], algo="ppo", run_dir=job["run_dir"], gate_mode=job["gate"], workers=0,
                           device=job["device"], progress=False)
    except Exception as error:  # one failed run should not lose the others' results
        logging.exception("run %s/%s failed", job["task"], job["gate"])
        return name | {"error": repr(error)}
    summary["process_wall_s"] = time.perf_counter() - started
    rows = [json.loads(line) for line in (Path(job["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    summary["success_curve"] = [
        (row["iteration"] + 1, round(row["time/wall_s"], 1), row["compute/env_steps_total"], row["eval/success_sim"])
        for row in rows if row.get("eval/success_sim") is not None
    ]
    (Path(job["run_dir"]) / "bench_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return name | {"summary": summary}


def random_success(config, episodes: int) -> float:
    """Success rate of uniformly random actions on the evaluation seeds."""
    import dataclasses

    import numpy as np

    from ast_robot.envs import make_env
    from ast_robot.train.curriculum import task_seed
    from ast_robot.train.evaluate import EVAL_SEED_STREAM

    env = make_env(config.env.task, config.env, dataclasses.replace(config.randomization, enabled=False))
    rng = np.random.default_rng(0)
    successes = []
    for index in range(episodes):
        env.reset(seed=task_seed(0, 0, index, stream=EVAL_SEED_STREAM))
        while True:
            _obs, _reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            if terminated or truncated:
                successes.append(bool(info["is_success"]))
                break
    env.close()
    return float(np.mean(successes))


def main() -> None:
    from ast_robot.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["reach", "push"])
    parser.add_argument("--gates", nargs="+", default=["on", "off", "random"])
    parser.add_argument("--iterations", type=int, default=30, help="PPO iterations per run")
    parser.add_argument("--target", type=float, default=0.8, help="target nominal sim success rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 1)),
                        help="runs at a time (each one process, one torch thread)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/bench_rl")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    args = parser.parse_args()

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; uptime: {uptime}")
    settings = [*DEFAULT_SETTINGS, f"train.iterations={args.iterations}", f"train.seed={args.seed}",
                f"train.target_success={args.target}", *args.set]
    print("settings:", " ".join(settings))
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    # Configs are loaded once here, so every run uses the same resolved settings.
    configs = {task: load_config(env=task, overrides=settings) for task in args.tasks}
    jobs = [
        {"task": task, "gate": gate, "config": configs[task], "device": args.device,
         "run_dir": str(out / f"{task}-{gate}")}
        for task in args.tasks for gate in args.gates
    ]
    started = time.perf_counter()
    # A process pool whose worker dies reports it (BrokenProcessPool) where multiprocessing.Pool would hang.
    with ProcessPoolExecutor(min(args.parallel, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, job) for job in jobs]
        results = []
        for job, future in zip(jobs, futures):
            try:
                results.append(future.result())
            except BrokenProcessPool as error:
                results.append({"task": job["task"], "gate": job["gate"], "error": f"worker process died: {error}"})
    total_s = time.perf_counter() - started
    baselines = {task: random_success(configs[task], 20) for task in args.tasks}

    header = (f"| task | gate | random-action success | time to {args.target:.0%} [s] | env steps to target "
              "| final success | best success | gradient steps | admitted steps | wall [s] |")
    print()
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for result in results:
        if "error" in result:
            print(f"| {result['task']} | {result['gate']} | failed: {result['error']} |")
            continue
        summary = result["summary"]
        target = summary["time_to_target"]
        totals = summary["totals"]
        admitted = totals["compute/admitted_steps_total"]
        share = admitted / max(1, admitted + totals["compute/skipped_steps_total"])
        to_target_s = "not reached" if target is None else f"{target['wall_s']:.0f}"
        to_target_steps = "-" if target is None else str(target["env_steps"])
        best = summary["best_success_sim"] if summary["best_success_sim"] is not None else float("nan")
        print(
            f"| {result['task']} | {result['gate']} | {baselines[result['task']]:.2f} "
            f"| {to_target_s} | {to_target_steps} "
            f"| {summary['final_eval'].get('success_sim', float('nan')):.2f} | {best:.2f} "
            f"| {totals['compute/gradient_steps_total']} | {admitted} ({share:.0%}) | {summary['wall_s']:.0f} |"
        )
    print(f"\nall runs: {total_s:.0f} s wall; uptime after: "
          f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"settings": settings, "baselines": baselines, "results": results,
                                                   "total_s": total_s, "uptime": uptime}, indent=2, default=str))
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
