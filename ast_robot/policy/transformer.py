"""The sparse-attention transformer policy.

Tokens: one per observation group per control step, oldest step first, the groups of a step
next to each other (proprio, force, object, goal), after G learned global tokens:

    [g_0 ... g_{G-1}] [s_0 proprio, s_0 force, s_0 object, s_0 goal] [s_1 proprio, ...] ...

A group token is a linear embedding of the normalized group plus a group-type embedding and a
time embedding (the step's position in the H-step history). With the default block size of 4
tokens an attention block is one control step, so the indexer selects whole past steps.
The first global token, after the final layer norm, is the feature vector the Gaussian action
head reads.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from ast_robot.config import PolicyConfig
from ast_robot.episode import OBS_GROUPS
from ast_robot.policy.attention import SparseTransformerBlock, collect_indexer_loss
from ast_robot.policy.common import GaussianHead, PolicyBase, PolicyOutput, check_obs

logger = logging.getLogger(__name__)


class TransformerPolicy(PolicyBase):
    """Transformer over H steps of observation groups plus global tokens; see the module docstring.

    `forward(obs, pad_mask)` takes obs group -> (B, h, d) with h <= H (a shorter history takes
    the last h time embeddings) and pad_mask bool (B, h), True at padded steps.
    """

    kind = "transformer"

    def __init__(self, cfg: PolicyConfig):
        super().__init__(cfg)
        self.groups = list(OBS_GROUPS)
        dim = cfg.d_model
        num_tokens = cfg.global_tokens + len(self.groups) * cfg.history

        self.embed = nn.ModuleDict({name: nn.Linear(width, dim) for name, width in OBS_GROUPS.items()})
        self.group_embedding = nn.Parameter(torch.randn(len(self.groups), dim) * 0.02)
        self.time_embedding = nn.Parameter(torch.randn(cfg.history, dim) * 0.02)
        self.global_tokens = nn.Parameter(torch.randn(cfg.global_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(
            SparseTransformerBlock(
                dim,
                cfg.heads,
                mlp_ratio=cfg.mlp_ratio,
                num_global=cfg.global_tokens,
                block_size=cfg.block_size,
                window=cfg.window,
                top_k=cfg.top_k,
                indexer_heads=cfg.indexer_heads,
                indexer_dim=cfg.indexer_dim,
                indexer_queries=cfg.indexer_queries,
                backend=cfg.attention_backend,
                max_len=num_tokens if index == 0 else None,  # warn once, not per layer
            )
            for index in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = GaussianHead(dim, log_std_min=cfg.log_std_min, log_std_max=cfg.log_std_max)

    def forward(self, obs: dict[str, Tensor], pad_mask: Tensor | None = None) -> PolicyOutput:
        """Predict the action distribution for the latest step of each history.

        Args:
            obs: Group name -> raw observations (B, h, d), h <= H, oldest step first.
            pad_mask: bool (B, h), True at padded steps; None when nothing is padded.

        Returns:
            `PolicyOutput` with mean and log_std (B, 4) and features (B, d_model).
        """
        batch, steps, pad_mask = check_obs(obs, pad_mask, self.cfg.history)
        normalized = self.normalizer(obs, dtype=self.global_tokens.dtype)
        num_groups = len(self.groups)

        time = self.time_embedding[self.cfg.history - steps :]  # (h, D)
        group_tokens = torch.stack(
            [self.embed[name](normalized[name]) for name in self.groups], dim=2
        )  # (B, h, groups, D)
        group_tokens = group_tokens + self.group_embedding + time[:, None, :]
        group_tokens = group_tokens.reshape(batch, steps * num_groups, -1)  # step-major tokens
        global_tokens = self.global_tokens.expand(batch, -1, -1)  # (B, G, D)
        x = torch.cat([global_tokens, group_tokens], dim=1)  # (B, G + h * groups, D)

        token_pad = pad_mask.repeat_interleave(num_groups, dim=1)  # (B, h * groups)
        token_pad = torch.cat(
            [torch.zeros(batch, self.cfg.global_tokens, dtype=torch.bool, device=x.device), token_pad], 1
        )
        for block in self.blocks:
            x = block(x, token_pad)

        valid = ~pad_mask.all(dim=1)  # (B,)
        features = self.norm(x[:, 0])  # (B, D)
        mean, log_std = self.head(features)
        keep = valid[:, None].to(mean.dtype)
        return PolicyOutput(mean * keep, log_std * keep, features * keep, valid)

    def _indexer_loss(self) -> Tensor | None:
        return collect_indexer_loss(self)
