"""Benchmark the vision gate: time to a target validation accuracy with gate on, off and random.

Every mode trains the same sparse ViT from the same seed for the same number of epochs, in one
process, one after the other. For each run the script reports the validation accuracy after every
epoch, and the training time (validation excluded), epoch and FLOPs until the accuracy first
reached each target. It also reports the share of images that went through the ViT and the FLOPs
spent relative to gate off.

Data: ``--data-dir`` takes a CIFAR-10 python directory (cifar-10-batches-py). Without it the
script generates a SYNTHETIC 10-class dataset in the CIFAR-10 format (see
`ast_robot.vision.synthetic`), and every line of output says so: numbers on it say nothing about
CIFAR-10 accuracy.

Example (the CPU run recorded in BENCHMARKS.md):

    python scripts/bench_vision.py --train-count 4000 --test-count 1000 --epochs 10 \\
        --target-accuracy 0.8 0.9 --seeds 0 1 \\
        --modes off on on-soft on-unbalanced on-soft-unbalanced random
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ast_robot.config import load_config
from ast_robot.policy.device import select_device
from ast_robot.vision.data import load_cifar10
from ast_robot.vision.synthetic import make_synthetic_cifar10
from ast_robot.vision.trainer import train_vision

# Model and schedule used unless --set overrides them: small enough for a 2-core CPU.
CPU_SETTINGS = [
    "vision.embed_dim=64", "vision.depth=3", "vision.heads=4", "vision.mlp_ratio=2.0",
    "vision.proxy_width=8", "vision.batch_size=128", "vision.eval_batch_size=500",
    "vision.warmup_epochs=0.5", "vision.lr=2e-3",
]

# Run labels: the gate mode and the extra settings of each. "on-soft" samples admissions with
# probability sigmoid((score - threshold) / 0.1) and reweights admitted images by 1 / probability.
# "-unbalanced" gates on the raw score instead of its percentile within the image's class.
VARIANTS = {
    "off": ("off", []),
    "on": ("on", []),
    "on-soft": ("on", ["gate.temperature=0.1", "vision.importance_weighting=true"]),
    "on-unbalanced": ("on", ["vision.balance_classes=false"]),
    "on-soft-unbalanced": (
        "on", ["gate.temperature=0.1", "vision.importance_weighting=true", "vision.balance_classes=false"]
    ),
    "random": ("random", []),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="CIFAR-10 python directory; omitted: generate a synthetic dataset")
    parser.add_argument("--train-count", type=int, default=4000,
                        help="training images (the first N of the data, or N synthetic ones)")
    parser.add_argument("--test-count", type=int, default=1000, help="validation images")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per mode (the same budget for each)")
    parser.add_argument("--target-accuracy", type=float, nargs="+", default=[0.8, 0.9],
                        help="validation accuracies to time (one or more)")
    parser.add_argument("--rate", type=float, default=0.5, help="vision.gate_target_rate for on and random")
    parser.add_argument("--modes", nargs="+", default=["off", "on", "on-soft", "random"], choices=list(VARIANTS),
                        help="runs to compare; on-soft is gate on with temperature 0.1 and importance weights")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds; each mode runs once per seed")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic dataset")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads; 1 by default because on a shared 2-core VM one thread per process "
        "ran a training step about 4x faster than two",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override, applied after the CPU settings")
    parser.add_argument("--out", help="write the results as JSON to this file")
    return parser.parse_args(argv)


def machine_line() -> str:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"python {platform.python_version()}; uptime: {uptime}")


def time_to_target(rows: list[dict], target: float) -> tuple[float | None, int | None, float | None]:
    """Return when validation accuracy first reached `target`, or Nones if it never did.

    Returns:
        Training seconds (validation excluded), the epoch, and the FLOPs spent in units of one
        gate-off epoch (ViT forward + backward on every training image once).
    """
    elapsed = 0.0
    compute = 0.0
    for row in rows:
        elapsed += row["time/train_s"]
        compute += row["compute/flops_share"]
        if row["eval/accuracy"] >= target:
            return elapsed, row["epoch"], compute
    return None, None, None


def run_mode(variant: str, seed: int, args: argparse.Namespace, data, work: Path) -> dict:
    mode, extra = VARIANTS[variant]
    overrides = [
        *CPU_SETTINGS, f"vision.epochs={args.epochs}", f"vision.gate_target_rate={args.rate}",
        f"train.seed={seed}", *extra, *args.overrides,
    ]
    config = load_config(overrides=overrides)
    run_dir = work / f"run-{variant}-{seed}"
    summary = train_vision(config, data, run_dir=run_dir, device=select_device(args.device), gate_mode=mode)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seen = sum(row["compute/samples_seen"] for row in rows)
    return {
        "mode": variant,
        "seed": seed,
        "accuracy_per_epoch": [row["eval/accuracy"] for row in rows],
        "train_s_per_epoch": [row["time/train_s"] for row in rows],
        "best_accuracy": summary["best_accuracy"],
        "final_accuracy": summary["final_accuracy"],
        "train_time_s": summary["train_time_s"],
        "time_to_target_s": {f"{t:g}": time_to_target(rows, t)[0] for t in args.target_accuracy},
        "epoch_to_target": {f"{t:g}": time_to_target(rows, t)[1] for t in args.target_accuracy},
        "compute_to_target": {f"{t:g}": time_to_target(rows, t)[2] for t in args.target_accuracy},
        "flops_share_per_epoch": [row["compute/flops_share"] for row in rows],
        "vit_share": sum(row["compute/vit_forward"] for row in rows) / seen,
        "flops_share": sum(row["compute/flops_share"] * row["compute/samples_seen"] for row in rows) / seen,
        "flops_per_image": summary["flops_per_image"],
    }


def report(results: list[dict], args: argparse.Namespace, data_label: str) -> str:
    targets = [f"{t:g}" for t in args.target_accuracy]
    target_columns = "".join(f" to {100 * float(t):g}%: s (epoch, compute) |" for t in targets)
    lines = [
        f"data: {data_label}",
        f"budget: {args.epochs} epochs per mode, gate target rate {args.rate}, overrides {args.overrides}",
        "",
        f"| gate | seed | best acc | final acc |{target_columns} train time (s) | ViT images | FLOPs vs off |",
        "|---|---|---|---|" + "---|" * len(targets) + "---|---|---|",
    ]
    for r in results:
        cells = ""
        for t in targets:
            seconds, epoch, compute = r["time_to_target_s"][t], r["epoch_to_target"][t], r["compute_to_target"][t]
            cells += " not reached |" if seconds is None else f" {seconds:.1f} ({epoch}, {compute:.2f}) |"
        lines.append(
            f"| {r['mode']} | {r['seed']} | {100 * r['best_accuracy']:.1f}% | {100 * r['final_accuracy']:.1f}% |{cells} "
            f"{r['train_time_s']:.1f} | {100 * r['vit_share']:.0f}% | {100 * r['flops_share']:.0f}% |"
        )
    lines.append("")
    lines.append("compute: FLOPs spent until then, in gate-off epochs (torch FLOP counter, proxy included)")
    for r in results:
        curve = " ".join(f"{100 * a:.1f}" for a in r["accuracy_per_epoch"])
        lines.append(f"{r['mode']:>7} seed {r['seed']} accuracy per epoch (%): {curve}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"machine: {machine_line()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_vision_") as tmp:
        work = Path(tmp)
        if args.data_dir:
            data = load_cifar10(args.data_dir)
            data_label = f"CIFAR-10 from {args.data_dir}, first {args.train_count} training and {args.test_count} test images"
        else:
            root = make_synthetic_cifar10(work / "synthetic", train_count=args.train_count,
                                          test_count=args.test_count, seed=args.data_seed)
            data = load_cifar10(root)
            data_label = (f"SYNTHETIC stand-in in the CIFAR-10 format ({args.train_count} training, "
                          f"{args.test_count} test images), NOT CIFAR-10")
        data.train = data.train.subset(args.train_count)
        data.test = data.test.subset(args.test_count)
        print(f"data: {data_label}", flush=True)

        results = []
        for seed in args.seeds:
            for mode in args.modes:
                result = run_mode(mode, seed, args, data, work)
                print(f"{mode} seed {seed}: best {100 * result['best_accuracy']:.1f}%, train {result['train_time_s']:.1f} s, "
                      f"ViT images {100 * result['vit_share']:.0f}%", flush=True)
                results.append(result)

    text = report(results, args, data_label)
    print(text)
    print(f"machine after the run: {machine_line()}")
    if args.out:
        Path(args.out).write_text(json.dumps({"data": data_label, "args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
