"""Time sparse-attention backends against dense scaled-dot-product attention.

For each sequence length, measures forward + backward of the attention core (queries, keys and
values in, attention output out) for plain `scaled_dot_product_attention` on the full sequence
with no mask ("sdpa"), and for each backend of `ast_robot.policy.attention` on the same inputs
and the same block selection. Also times the selection step (indexer + top-k) separately, and a
whole `SparseAttention` layer with ``auto`` against a layer whose core is plain SDPA.

Usage:
    python scripts/bench_attention.py                      # CPU, L = 64 ... 16384
    python scripts/bench_attention.py --clock cpu          # CPU time on one thread
    python scripts/bench_attention.py --device cuda --lengths 1024 4096 8192 16384

Prints a markdown table (x = sdpa time / backend time; above 1 means faster than dense).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import torch
import torch.nn.functional as F

from ast_robot.policy.attention import SparseAttention, attend, resolve_backend


def time_round_robin(
    calls: dict, *, device: torch.device, repeats: int, clock=time.perf_counter
) -> dict[str, float]:
    """Return the fastest seconds per call of each named call.

    The calls take turns after one warm-up each, so load from other jobs on a shared machine
    hits every call alike. The minimum is the figure least disturbed by such load.
    """
    for fn in calls.values():
        fn()
    best = {name: float("inf") for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = clock()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], clock() - start)
    return best


def bench_length(args, seq_len: int, device: torch.device) -> dict[str, float]:
    """Time every backend at one sequence length; return name -> seconds."""
    torch.manual_seed(0)
    dim = args.heads * args.head_dim
    layer = SparseAttention(
        dim, args.heads, num_global=args.num_global, block_size=args.block_size,
        window=args.window, top_k=args.top_k,
    ).to(device)  # fmt: skip
    x = torch.randn(args.batch, seq_len, dim, device=device)
    key_valid = torch.ones(args.batch, seq_len, dtype=torch.bool, device=device)
    with torch.no_grad():
        selection, _ = layer.select(x, key_valid)
    repeats = args.repeats if seq_len <= 4096 else max(1, args.repeats // 3)

    shape = (args.batch, seq_len, args.heads, args.head_dim)
    q, k, v = (torch.randn(shape, device=device, requires_grad=True) for _ in range(3))

    def run_sdpa():
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out.sum().backward()

    def run_backend(name):
        def run():
            attend(q, k, v, selection, key_valid, name).sum().backward()

        return run

    def run_select():
        with torch.no_grad():
            layer.select(x, key_valid)

    calls = {"sdpa": run_sdpa}
    # auto runs right after dense: after gather its first touches would find colder caches.
    backends = ["dense", "auto", "gather"] + (["flex"] if device.type == "cuda" else [])
    for name in backends:
        if name == "dense" and seq_len > args.max_dense_mask_len:
            continue  # the (B, L, L) boolean mask alone would not fit comfortably
        calls[name] = run_backend(name)
    calls["select"] = run_select
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    results = time_round_robin(calls, device=device, repeats=repeats, clock=clock)
    results["auto_is"] = resolve_backend("auto", device, seq_len, args.block_size)
    return results


def machine_line() -> str:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}; uptime: {uptime}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 2048, 4096, 16384])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--num-global", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--window", type=int, default=64, help="local half-width in tokens")
    parser.add_argument("--top-k", type=int, default=2, help="selected key blocks per query block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-dense-mask-len", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: process CPU time on one thread, which load from other "
        "jobs on a shared machine disturbs far less",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.clock == "cpu":
        if device.type != "cpu":
            parser.error("--clock cpu measures CPU work; use it with --device cpu")
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"machine: {machine_line()}")
    print(
        f"batch {args.batch}, heads {args.heads}, head dim {args.head_dim}, globals "
        f"{args.num_global}, block {args.block_size}, window {args.window}, top-k {args.top_k}; "
        f"forward + backward, fastest of the repeats, {args.clock} clock, ms"
    )
    print()
    print("| L | sdpa ms | dense (masked) | gather | auto (picks) | flex | selection ms |")
    print("|---|---|---|---|---|---|---|")
    for seq_len in args.lengths:
        r = bench_length(args, seq_len, device)

        def cell(name):
            if name not in r:
                return "-"
            return f"{r[name] * 1e3:.1f} ms ({r['sdpa'] / r[name]:.2f}x)"

        print(
            f"| {seq_len} | {r['sdpa'] * 1e3:.1f} | {cell('dense')} | {cell('gather')} | "
            f"{cell('auto')} ({r['auto_is']}) | {cell('flex')} | {r['select'] * 1e3:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
