"""Golden outputs of the default policies for a fixed seed.

Regenerate (after an intended change to initialization, architecture or defaults) with:

    python tests/policy/policy_golden.py --write

and commit tests/policy/golden_outputs.json together with the change that explains it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ast_robot.config import PolicyConfig
from ast_robot.episode import OBS_GROUPS
from ast_robot.policy import ProxyPolicy, TransformerPolicy

GOLDEN_PATH = Path(__file__).with_name("golden_outputs.json")
SEED = 1234


def golden_inputs() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Three histories of H = 8 steps: full, left-padded by 3 steps, and fully padded."""
    rng = np.random.default_rng(SEED)
    history = PolicyConfig().history
    obs = {
        name: torch.from_numpy(rng.normal(size=(3, history, width)).astype(np.float32))
        for name, width in OBS_GROUPS.items()
    }
    pad_mask = torch.zeros(3, history, dtype=torch.bool)
    pad_mask[1, :3] = True
    pad_mask[2] = True
    return obs, pad_mask


def golden_outputs() -> dict[str, dict[str, list]]:
    """Build each default policy from the seed, fit its normalizer, and run the inputs."""
    results = {}
    for cls in (TransformerPolicy, ProxyPolicy):
        torch.manual_seed(SEED)
        policy = cls(PolicyConfig()).eval()
        rng = np.random.default_rng(SEED + 1)
        policy.update_normalizer(
            {name: 2.0 + 3.0 * rng.normal(size=(64, width)) for name, width in OBS_GROUPS.items()}
        )
        obs, pad_mask = golden_inputs()
        with torch.no_grad():
            output = policy(obs, pad_mask)
        results[cls.kind] = {
            "mean": output.mean.tolist(),
            "log_std": output.log_std.tolist(),
            "features_norm": output.features.norm(dim=-1).tolist(),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {GOLDEN_PATH.name}")
    args = parser.parse_args()
    results = golden_outputs()
    text = json.dumps(results, indent=1) + "\n"
    if args.write:
        GOLDEN_PATH.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
