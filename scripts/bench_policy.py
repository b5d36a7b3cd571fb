"""Measure the default policies: batch-1 action latency, FLOPs per action and training-step time.

Usage:
    python scripts/bench_policy.py [--threads N] [--calls 2000] [--batch 128]

Latency is the wall time of `policy.act(history)` (numpy in, numpy out, no autograd) for a full
H-step history, fastest and median over many calls after a warm-up, plus the mean process CPU
time per call (with one thread, the figure that load from other jobs disturbs least). FLOPs come from
`torch.utils.flop_counter.FlopCounterMode` on one forward pass of batch 1 (matrix products and
attention; element-wise work is not counted). The training step is forward + backward + AdamW
on a batch of random histories.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ast_robot.config import PolicyConfig
from ast_robot.episode import ACTION_DIM, OBS_GROUPS
from ast_robot.policy import ProxyPolicy, TransformerPolicy
from ast_robot.policy.attention import resolve_backend


def act_latency(policy, history: dict[str, np.ndarray], calls: int) -> tuple[float, float, float]:
    """Return the fastest and median wall seconds per `act` call, and the mean CPU seconds."""
    for _ in range(50):
        policy.act(history)
    times = []
    cpu_start = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        policy.act(history)
        times.append(time.perf_counter() - start)
    cpu_per_call = (time.process_time() - cpu_start) / calls
    return min(times), statistics.median(times), cpu_per_call


def flops_per_action(policy, cfg: PolicyConfig) -> int:
    obs = {name: torch.randn(1, cfg.history, width) for name, width in OBS_GROUPS.items()}
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        policy(obs)
    return counter.get_total_flops()


def train_step_time(policy, cfg: PolicyConfig, batch: int, steps: int) -> float:
    """Return the median seconds of one forward + backward + AdamW step."""
    obs = {name: torch.randn(batch, cfg.history, width) for name, width in OBS_GROUPS.items()}
    target = torch.rand(batch, ACTION_DIM) * 2 - 1
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    policy.train()
    times = []
    for index in range(steps + 2):
        start = time.perf_counter()
        loss, _ = policy.loss(obs, None, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if index >= 2:
            times.append(time.perf_counter() - start)
    policy.eval()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128, help="training batch (history windows)")
    parser.add_argument("--train-steps", type=int, default=20)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}; uptime: {uptime}"
    )
    cfg = PolicyConfig()
    tokens = cfg.global_tokens + len(OBS_GROUPS) * cfg.history
    print(
        f"default policy: d_model {cfg.d_model}, {cfg.layers} layers, {cfg.heads} heads, "
        f"H = {cfg.history} -> {tokens} tokens; auto attention backend on CPU: "
        f"{resolve_backend('auto', torch.device('cpu'), tokens, cfg.block_size)}"
    )
    print()

    rng = np.random.default_rng(0)
    history = {name: rng.normal(size=(cfg.history, width)).astype(np.float32) for name, width in OBS_GROUPS.items()}
    rows = {}
    for cls in (TransformerPolicy, ProxyPolicy):
        torch.manual_seed(0)
        policy = cls(cfg).eval()
        fastest, median, cpu = act_latency(policy, history, args.calls)
        rows[cls.kind] = {
            "params": sum(p.numel() for p in policy.parameters()),
            "fastest": fastest,
            "median": median,
            "cpu": cpu,
            "flops": flops_per_action(policy, cfg),
            "train": train_step_time(policy, cfg, args.batch, args.train_steps),
        }

    print(
        "| model | parameters | act() fastest | act() median | act() CPU time | FLOPs per action "
        f"| train step (batch {args.batch}) |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind, row in rows.items():
        print(
            f"| {kind} | {row['params']:,} | {row['fastest'] * 1e3:.3f} ms | {row['median'] * 1e3:.3f} ms "
            f"| {row['cpu'] * 1e3:.3f} ms | {row['flops']:,} | {row['train'] * 1e3:.1f} ms |"
        )
    ratio = rows["transformer"]["flops"] / rows["proxy"]["flops"]
    print()
    print(f"proxy FLOPs per action: {ratio:.0f}x fewer than the transformer")


if __name__ == "__main__":
    main()
