"""Time significance scoring, gating and real-log feedback per batch size.

Usage:
    python scripts/bench_significance.py [--sizes 1000 10000] [--repeats 20]

Prints `uptime` (load on a shared machine affects the numbers) and a Markdown table of median
wall times. Inputs are synthetic with the shapes the trainer produces: the model's normalization
window and novelty memory are full before timing, so the numbers are for steady state.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import numpy as np

from ast_robot.config import SignificanceConfig, GateConfig
from ast_robot.episode import ACTION_DIM, OBS_GROUPS, Episode
from ast_robot.feedback import RealFeedbackIndex
from ast_robot.gate import SundewGate
from ast_robot.significance import SignificanceInputs, SignificanceModel


def random_inputs(rng: np.random.Generator, n: int, features: int) -> SignificanceInputs:
    return SignificanceInputs(
        learning_value=rng.gamma(2.0, 1.0, n),
        difficulty=rng.random(n),
        uncertainty=rng.random(n),
        novelty_features=rng.normal(size=(n, features)),
        physical=rng.random(n),
        context=rng.uniform(-0.3, 0.3, (n, 6)),
    )


def make_episode(rng: np.random.Generator, source: str, steps: int = 100) -> Episode:
    obs = {name: rng.normal(size=(steps, width)).astype(np.float32) for name, width in OBS_GROUPS.items()}
    return Episode(
        obs=obs,
        actions=rng.uniform(-1, 1, (steps, ACTION_DIM)).astype(np.float32),
        timestamps=np.arange(steps) * 0.05,
        source=source,
        context=rng.uniform(-0.1, 0.1, 6),
        success=bool(rng.random() < 0.6),
        interventions=rng.random(steps) < 0.02,
    )


def median_ms(function, repeats: int) -> tuple[float, float]:
    """Median wall time and median process CPU time of one call, in milliseconds."""
    function()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu))


def bench_scoring(sizes: list[int], repeats: int, features: int, modality: str) -> list[tuple]:
    rng = np.random.default_rng(0)
    cfg = SignificanceConfig()
    rows = []
    for n in sizes:
        model = SignificanceModel(cfg, modality=modality, has_real_feedback=modality == "robot")
        model.score(random_inputs(rng, cfg.window, features), progress=0.5)
        model.mark_trained(random_inputs(rng, 4 * cfg.novelty_memory, features))
        gate = SundewGate(GateConfig(), seed=0)
        batch = random_inputs(rng, n, features)

        score_ms, _ = median_ms(lambda: model.score(batch, progress=0.5), repeats)
        scores = model.score(batch, progress=0.5).score
        gate_ms, _ = median_ms(lambda: gate.decide(scores), repeats)
        total_ms, cpu_ms = median_ms(lambda: gate.decide(model.score(batch, progress=0.5).score), repeats)
        rows.append((f"score + gate, {modality}, F={features}", n, score_ms, gate_ms, total_ms, cpu_ms))
    return rows


def bench_feedback(sizes: list[int], repeats: int, real_count: int) -> list[tuple]:
    rng = np.random.default_rng(1)
    real = [make_episode(rng, "real") for _ in range(real_count)]
    index = RealFeedbackIndex.from_episodes(real, SignificanceConfig())
    rows = []
    for n in sizes:
        sims = [make_episode(rng, "sim") for _ in range(n)]
        total_ms, cpu_ms = median_ms(lambda: index.feedback(sims), max(3, repeats // 4))
        name = f"feedback from {real_count} real episodes (100 steps)"
        rows.append((name, n, float("nan"), float("nan"), total_ms, cpu_ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="batch sizes (items)")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats per measurement")
    parser.add_argument("--real-episodes", type=int, default=200, help="real episodes in the feedback index")
    args = parser.parse_args()

    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    rows = []
    rows += bench_scoring(args.sizes, args.repeats, features=12, modality="robot")
    rows += bench_scoring(args.sizes, args.repeats, features=64, modality="vision")
    rows += bench_feedback(args.sizes, args.repeats, args.real_episodes)

    print()
    print("| what | N | score ms | gate ms | total ms | total CPU ms | total ms per 1,000 |")
    print("|---|---|---|---|---|---|---|")
    for name, n, score_ms, gate_ms, total_ms, cpu_ms in rows:
        print(
            f"| {name} | {n} | {_cell(score_ms)} | {_cell(gate_ms)} | {total_ms:.2f} | {cpu_ms:.2f} "
            f"| {1000 * total_ms / n:.2f} |"
        )


def _cell(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.2f}"


if __name__ == "__main__":
    main()
