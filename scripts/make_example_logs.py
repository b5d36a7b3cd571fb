"""Regenerate examples/logs/: the small stand-in robot log set the quickstart trains on.

Usage: python scripts/make_example_logs.py [--out examples/logs] [--episodes 30] [--seed 0]

The bags come from `ast-robot record-standin` with a fixed seed: the scripted expert with
injected mistakes drives a simulator running configs/reality/standin.yaml, and a scripted
supervisor takes over when failure is imminent. The script refuses to leave a set above 5 MB,
the size limit for files committed to the repository.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="examples/logs", help="output directory (replaced)")
    parser.add_argument("--episodes", type=int, default=30, help="episodes to record")
    parser.add_argument("--seed", type=int, default=0, help="seed of the recording")
    parser.add_argument("--env", default="pick_place", help="task")
    args = parser.parse_args()

    from ast_robot.config import load_config
    from ast_robot.logging_setup import setup_logging
    from ast_robot.train.standin import record_standin

    setup_logging("INFO")
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    summary = record_standin(out, load_config(env=args.env), episodes=args.episodes, seed=args.seed)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    logging.getLogger("make_example_logs").info("%s: %d bytes, %s", out, size, summary)
    if size > MAX_BYTES:
        logging.getLogger("make_example_logs").error(
            "%s is %.1f MB, above the 5 MB limit; record fewer episodes", out, size / 2**20
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
