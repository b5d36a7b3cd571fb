"""Benchmark the significance gate: time to a target success rate with gate on, off and random.

Usage:
    python scripts/bench_gate.py [--env pick_place] [--seeds 3] [--real-log examples/logs]
        [--iterations N] [--set key=value ...] [--out runs/bench_gate] [--skip-real-log-ablation]

For every gate mode and seed it trains one run with the same loop, config and budget accounting
(only `gate.mode` differs). It reads from each run's summary:

- time to target: wall-clock seconds, transformer gradient FLOPs (measured per sample with
  torch's FlopCounterMode) and simulated rollouts until nominal sim success first reaches
  `train.target_success` (evaluated every `train.eval_every` iterations);
- final success in simulation (nominal and randomized) and on the reality profile.

Then, unless skipped, the real-log ablation: gate on with and without --real-log, the same seeds
and a fixed number of iterations (no early stop, so both arms simulate the same rollouts),
compared on reality-profile success.

Results go to <out>/results.json and a Markdown table on stdout, with `uptime` so a loaded
machine shows. Runs execute one after another on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_one(args, base_config, *, mode: str, seed: int, real_log: str | None, name: str) -> dict:
    import dataclasses

    from ast_robot.train.trainer import train

    config = dataclasses.replace(base_config, train=dataclasses.replace(base_config.train, seed=seed))
    run_dir = Path(args.out) / name
    finished = run_dir / "summary.json"
    if args.reuse and finished.is_file():
        summary = json.loads(finished.read_text())
        if not summary["interrupted"] and summary["gate_mode"] == mode and summary["seed"] == seed:
            return _with_activation(summary, run_dir)
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    started = time.perf_counter()
    summary = train(
        config, real_log=real_log, run_dir=run_dir, gate_mode=mode, workers=args.workers,
        device=args.device, progress=False,
    )
    summary["bench_elapsed_s"] = time.perf_counter() - started
    return _with_activation(summary, run_dir)


def _with_activation(summary: dict, run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    summary["activation_rate_mean"] = statistics.fmean(row["gate/activation_rate"] for row in rows)
    return summary


def describe(values: list[float | None]) -> str:
    """Mean +- standard deviation over the runs that have a value, and how many do."""
    present = [v for v in values if v is not None]
    if not present:
        return f"not reached (0/{len(values)})"
    mean = statistics.fmean(present)
    spread = statistics.pstdev(present) if len(present) > 1 else 0.0
    suffix = "" if len(present) == len(values) else f" ({len(present)}/{len(values)} reached)"
    return f"{mean:.3g} +- {spread:.2g}{suffix}"


def reached(summary: dict, key: str) -> float | None:
    target = summary.get("time_to_target")
    return None if target is None else target[key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pick_place")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["on", "off", "random"])
    parser.add_argument("--real-log", default="examples/logs")
    parser.add_argument("--iterations", type=int, help="override train.iterations")
    parser.add_argument("--workers", type=int, help="rollout processes per run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="runs/bench_gate")
    parser.add_argument("--skip-real-log-ablation", action="store_true")
    parser.add_argument(
        "--ablation-iterations", type=int, default=8,
        help="iterations of each real-log ablation run; these runs never stop early, so both arms get "
        "the same rollouts",
    )
    parser.add_argument("--ablation-seeds", type=int, default=2)
    parser.add_argument(
        "--reuse", action="store_true",
        help="keep finished runs already under --out (same mode and seed) instead of training them again",
    )
    args = parser.parse_args()

    from ast_robot.config import load_config
    from ast_robot.logging_setup import setup_logging

    setup_logging("WARNING")
    overrides = list(args.overrides)
    if args.iterations:
        overrides.append(f"train.iterations={args.iterations}")
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    # Configs are loaded once, so edits to the task files while the benchmark runs change nothing.
    config = load_config(env=args.env, overrides=overrides)
    ablation_config = load_config(
        env=args.env,
        overrides=[*overrides, f"train.iterations={args.ablation_iterations}", "train.stop_at_target=false"],
    )

    results: dict[str, list[dict]] = {}
    for mode in args.modes:
        for seed in range(args.seeds):
            print(f"gate {mode}, seed {seed} ...", file=sys.stderr, flush=True)
            summary = run_one(args, config, mode=mode, seed=seed, real_log=args.real_log, name=f"{mode}-seed{seed}")
            results.setdefault(mode, []).append(summary)
    if not args.skip_real_log_ablation:
        for seed in range(args.ablation_seeds):
            for label, real_log in (("ablation-with-real-log", args.real_log), ("ablation-no-real-log", None)):
                print(f"{label}, seed {seed} ...", file=sys.stderr, flush=True)
                summary = run_one(args, ablation_config, mode="on", seed=seed, real_log=real_log, name=f"{label}-seed{seed}")
                results.setdefault(label, []).append(summary)
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join(sys.argv),
        "uptime_before": uptime_before,
        "uptime_after": uptime_after,
        "results": results,
    }
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")

    print(f"uptime before: {uptime_before}")
    print(f"uptime after:  {uptime_after}")
    print()
    print("| gate | activation rate | time to target [s] | transformer FLOPs to target | rollouts to target "
          "| final sim success | final reality success | total wall [s] |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, runs in results.items():
        print(
            f"| {mode} | {describe([r['activation_rate_mean'] for r in runs])} "
            f"| {describe([reached(r, 'wall_s') for r in runs])} "
            f"| {describe([reached(r, 'policy_flops') for r in runs])} "
            f"| {describe([reached(r, 'rollouts') for r in runs])} "
            f"| {describe([r['final_eval'].get('success_sim') for r in runs])} "
            f"| {describe([r['final_eval'].get('success_reality') for r in runs])} "
            f"| {describe([r['wall_s'] for r in runs])} |"
        )
    skipped = {
        mode: describe([r["totals"]["compute/rollouts_skipped_total"] for r in runs]) for mode, runs in results.items()
    }
    print()
    print("rollouts skipped before simulation (pre-simulation gate):", skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
