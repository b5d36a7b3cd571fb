"""Benchmark rollout throughput of the local process pool against the Ray backend on this machine.

Both backends run the same rollout tasks with the same policy weights, in one process, one
iteration each in alternation, so load from other jobs on the machine hits both alike. Each
iteration gets freshly perturbed weights, as in training. Per backend the script reports:

- episodes/s and env steps/s over the timed iterations (the first iteration is a warm-up that
  creates the environments and imports torch and MuJoCo in every worker);
- the driver's CPU time per episode (`time.process_time` of this process), which is the serial
  cost that caps throughput however many nodes run rollouts;
- bytes sent per iteration: policy weights out and episodes back. The local pool pipes the
  weights to every worker process. Ray puts them into the object store once, and each node
  pulls one copy.

It checks that both backends returned identical episodes, then prints a throughput model for N
nodes built from the measured numbers and an assumed network bandwidth.

Usage:
    python scripts/bench_rollout.py                       # pick_place, 16 episodes, 3 timed iterations
    python scripts/bench_rollout.py --episodes 8 --iterations 2 --workers 2
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import platform
import statistics
import subprocess
import time

# A local Ray instance for a benchmark needs no other host: keep it on the loopback interface.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ast_robot.config import load_config  # noqa: E402
from ast_robot.policy import TransformerPolicy  # noqa: E402
from ast_robot.train.ray_pool import RayPool  # noqa: E402
from ast_robot.train.workers import LocalProcessPool, RolloutTask, serialize_policy  # noqa: E402


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uptime unavailable"


def make_tasks(iteration: int, count: int, expert_share: float) -> list[RolloutTask]:
    return [
        RolloutTask(index=i, seed=10_000 * (iteration + 1) + i, expert_share=expert_share)
        for i in range(count)
    ]


def perturbed_weights(policy: TransformerPolicy, iteration: int) -> bytes:
    """Serialize the policy after a small seeded change, so every iteration sends new weights."""
    generator = torch.Generator().manual_seed(iteration)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(1e-3 * torch.randn(parameter.shape, generator=generator))
    return serialize_policy(policy)


def run_iteration(backend, tasks: list[RolloutTask], weights: bytes) -> dict:
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    episodes = sorted(backend.collect(tasks, weights), key=lambda ep: ep.info["task_index"])
    wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {
        "wall_s": wall_s,
        "driver_cpu_s": cpu_s,
        "episodes": episodes,
        "steps": sum(len(ep) for ep in episodes),
        "episode_bytes": sum(len(pickle.dumps(ep.to_arrays(), protocol=pickle.HIGHEST_PROTOCOL)) for ep in episodes),
    }


def same_episodes(first, second) -> bool:
    for a, b in zip(first, second, strict=True):
        if not (np.array_equal(a.actions, b.actions) and np.array_equal(a.obs["object"], b.obs["object"])):
            return False
        if a.info != b.info or a.domain_params != b.domain_params:
            return False
    return True


def summarize(rows: list[dict]) -> dict:
    wall = sum(row["wall_s"] for row in rows)
    episodes = sum(len(row["episodes"]) for row in rows)
    return {
        "episodes_per_s": episodes / wall,
        "steps_per_s": sum(row["steps"] for row in rows) / wall,
        "iteration_s": statistics.median(row["wall_s"] for row in rows),
        "driver_cpu_ms_per_episode": 1e3 * sum(row["driver_cpu_s"] for row in rows) / episodes,
        "episode_bytes": statistics.median(row["episode_bytes"] for row in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pick_place", choices=["pick_place", "reach", "push"])
    parser.add_argument("--episodes", type=int, default=16, help="rollout tasks per iteration")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per backend")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes / actors")
    parser.add_argument("--expert-share", type=float, default=0.5, help="expert share of the DAgger mixture")
    parser.add_argument("--node-cpus", type=int, default=16, help="CPUs per node in the scaling model")
    parser.add_argument(
        "--bandwidth-mb-s", type=float, default=117.0,
        help="network bandwidth assumed by the scaling model, in MB/s (117 is about 1 Gbit/s)",
    )
    args = parser.parse_args()

    config = load_config(env=args.task)
    torch.manual_seed(0)
    policy = TransformerPolicy(config.policy)
    print(f"# rollout benchmark: {args.task}, {args.episodes} episodes/iteration, {args.workers} workers")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {platform.python_version()}")
    print(f"load before: {uptime()}")

    started = time.perf_counter()
    local = LocalProcessPool(config.env, config.randomization, config.policy, workers=args.workers)
    start_s = {"local": time.perf_counter() - started}
    started = time.perf_counter()
    ray_pool = RayPool(config.env, config.randomization, config.policy, workers=args.workers)
    start_s["ray"] = time.perf_counter() - started

    rows: dict[str, list[dict]] = {"local": [], "ray": []}
    weights_bytes = 0
    identical = True
    ray_nodes = 1
    with local, ray_pool:
        for iteration in range(args.iterations + 1):
            tasks = make_tasks(iteration, args.episodes, args.expert_share)
            weights = perturbed_weights(policy, iteration)
            weights_bytes = len(weights)
            local_row = run_iteration(local, tasks, weights)
            ray_row = run_iteration(ray_pool, tasks, weights)
            ray_nodes = ray_pool.last_stats.nodes
            identical &= same_episodes(local_row["episodes"], ray_row["episodes"])
            label = "warm-up" if iteration == 0 else f"iteration {iteration}"
            print(f"{label}: local {local_row['wall_s']:.2f} s, ray {ray_row['wall_s']:.2f} s")
            if iteration == 0:  # creates envs and imports torch and MuJoCo in every worker
                start_s["local"] += local_row["wall_s"]
                start_s["ray"] += ray_row["wall_s"]
            else:
                rows["local"].append(local_row)
                rows["ray"].append(ray_row)
    print(f"load after: {uptime()}")

    local_sum, ray_sum = summarize(rows["local"]), summarize(rows["ray"])
    print()
    print("| backend | startup + warm-up s | episodes/s | env steps/s | iteration s (median) | driver CPU ms/episode "
          "| weights out B/iteration | episodes back B/iteration |")
    print("|---|---|---|---|---|---|---|---|")
    for name, summary, key, weights_out in (
        ("local pool", local_sum, "local", weights_bytes * args.workers),
        ("ray", ray_sum, "ray", weights_bytes * ray_nodes),
    ):
        print(
            f"| {name} | {start_s[key]:.1f} | {summary['episodes_per_s']:.2f} | {summary['steps_per_s']:.0f} | "
            f"{summary['iteration_s']:.2f} | {summary['driver_cpu_ms_per_episode']:.1f} | "
            f"{weights_out:,} | {summary['episode_bytes']:,.0f} |"
        )
    ratio = ray_sum["episodes_per_s"] / local_sum["episodes_per_s"]
    print(f"\nray / local throughput: {ratio:.2f}; identical episodes: {identical}")
    print(f"policy weights: {weights_bytes:,} B; episode: {ray_sum['episode_bytes'] / args.episodes:,.0f} B")

    # With every worker busy, the local pool's throughput is workers / (seconds per episode).
    print_model(
        args, episode_s=args.workers / local_sum["episodes_per_s"],
        driver_s=ray_sum["driver_cpu_ms_per_episode"] / 1e3, weights_bytes=weights_bytes,
        episode_bytes=ray_sum["episode_bytes"] / args.episodes,
    )


def print_model(args, *, episode_s: float, driver_s: float, weights_bytes: int, episode_bytes: float) -> None:
    """Print the modelled rollout throughput for 1 to 64 nodes of `args.node_cpus` CPUs each.

    T(N) = N * weights / B + ceil(E / (N * c)) * t_episode + E * (episode / B + t_driver): the head
    sends the weights to each node, the N * c actors run the E episodes of an iteration in rounds,
    and the head receives and decodes every episode one at a time.
    """
    bandwidth = args.bandwidth_mb_s * 1e6
    cores = args.node_cpus
    sizes = sorted({args.episodes, 256, 1024})
    print(
        f"\nmodel inputs: t_episode {episode_s:.3f} s per actor, t_driver {1e3 * driver_s:.1f} ms per "
        f"episode (caps throughput at {1 / driver_s:.0f} episodes/s), weights {weights_bytes / 1e6:.2f} MB, "
        f"episode {episode_bytes / 1e3:.1f} kB, bandwidth {args.bandwidth_mb_s:.0f} MB/s (assumed), "
        f"{cores} CPUs per node"
    )
    print("\nmodelled episodes/s for E episodes per iteration:\n")
    print("| nodes | " + " | ".join(f"E={count}" for count in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for nodes in (1, 2, 4, 8, 16, 32, 64):
        cells = []
        for count in sizes:
            seconds = (
                nodes * weights_bytes / bandwidth
                + math.ceil(count / (nodes * cores)) * episode_s
                + count * (episode_bytes / bandwidth + driver_s)
            )
            cells.append(f"{count / seconds:.1f}")
        print(f"| {nodes} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
