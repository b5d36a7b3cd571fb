"""The proxy policy: a small MLP on the current step only, with the transformer's action head.

It trains on the episodes the gate keeps away from the transformer, at a small fraction of the
compute: at the default sizes about 4.0k FLOPs per action against about 4.6M for the transformer
(measured with `torch.utils.flop_counter` in scripts/bench_policy.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ast_robot.config import PolicyConfig
from ast_robot.episode import OBS_GROUPS
from ast_robot.policy.common import GaussianHead, PolicyBase, PolicyOutput, check_obs


class ProxyPolicy(PolicyBase):
    """MLP on the latest non-padded step of the history; same interface as `TransformerPolicy`."""

    kind = "proxy"

    def __init__(self, cfg: PolicyConfig):
        super().__init__(cfg)
        hidden = cfg.proxy_hidden
        self.mlp = nn.Sequential(
            nn.Linear(sum(OBS_GROUPS.values()), hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
        )
        self.head = GaussianHead(hidden, log_std_min=cfg.log_std_min, log_std_max=cfg.log_std_max)

    def forward(self, obs: dict[str, Tensor], pad_mask: Tensor | None = None) -> PolicyOutput:
        """Predict the action distribution from the latest valid step.

        Args:
            obs: Group name -> raw observations (B, h, d), h <= H; earlier steps are ignored.
            pad_mask: bool (B, h), True at padded steps.

        Returns:
            `PolicyOutput` with mean and log_std (B, 4) and features (B, proxy_hidden).
        """
        batch, steps, pad_mask = check_obs(obs, pad_mask, self.cfg.history)
        valid_steps = ~pad_mask  # (B, h)
        # Index of the last valid step: the first True when scanning from the end.
        last = steps - 1 - valid_steps.flip(1).to(torch.int8).argmax(dim=1)  # (B,)
        rows = torch.arange(batch, device=last.device)
        current = {name: obs[name][rows, last] for name in OBS_GROUPS}  # group -> (B, d)

        normalized = self.normalizer(current, dtype=self.head.linear.weight.dtype)
        features = self.mlp(torch.cat([normalized[name] for name in OBS_GROUPS], dim=-1))  # (B, hidden)
        mean, log_std = self.head(features)

        valid = valid_steps.any(dim=1)  # (B,)
        keep = valid[:, None].to(mean.dtype)
        return PolicyOutput(mean * keep, log_std * keep, features * keep, valid)
