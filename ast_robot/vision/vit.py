"""The sparse vision transformer: patch tokens through the policy's block-sparse attention.

A 32x32 image is cut into (32 / p)^2 patches of p x p pixels (64 patches for p = 4), each
embedded as one token in row-major order. A class token and optional register tokens lead the
sequence as global tokens: they attend to every patch and every patch attends to them. Patch
tokens attend, per block of ``block_size`` consecutive tokens (with p = 4 and block size 8, one
block is one row of patches), to the blocks in their local window and to the ``top_k`` further
blocks a learned indexer selects, exactly as the robot policy's transformer does, because both
use `SparseTransformerBlock` from `ast_robot.policy.attention`.
"""

from __future__ import annotations

import torch
from torch import nn

from ast_robot.config import VisionConfig
from ast_robot.policy.attention import SparseTransformerBlock, collect_indexer_loss

IMAGE_SIZE = 32


class SparseViT(nn.Module):
    """Vision transformer classifier with block-sparse attention.

    Args:
        patch_size: Patch side in pixels; must divide 32.
        embed_dim: Token width D.
        depth: Transformer blocks.
        heads: Attention heads.
        mlp_ratio: MLP hidden width over D.
        registers: Register tokens after the class token.
        num_classes: Output classes.
        **attention_kwargs: Passed to every `SparseAttention` (block_size, window, top_k,
            indexer_heads, indexer_dim, indexer_queries, backend).
    """

    def __init__(
        self,
        *,
        patch_size: int = 4,
        embed_dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 2.0,
        registers: int = 0,
        num_classes: int = 10,
        **attention_kwargs,
    ):
        super().__init__()
        if IMAGE_SIZE % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide the image side {IMAGE_SIZE}")
        self.patch_size = patch_size
        self.num_patches = (IMAGE_SIZE // patch_size) ** 2
        self.num_global = 1 + registers
        seq_len = self.num_global + self.num_patches

        self.patch_embed = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, embed_dim))
        self.global_tokens = nn.Parameter(torch.zeros(1, self.num_global, embed_dim))
        self.blocks = nn.ModuleList(
            SparseTransformerBlock(
                embed_dim, heads, mlp_ratio=mlp_ratio, num_global=self.num_global, max_len=seq_len,
                **attention_kwargs,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.global_tokens, std=0.02)

    @classmethod
    def from_config(cls, cfg: VisionConfig, *, num_classes: int = 10) -> SparseViT:
        return cls(
            patch_size=cfg.patch_size,
            embed_dim=cfg.embed_dim,
            depth=cfg.depth,
            heads=cfg.heads,
            mlp_ratio=cfg.mlp_ratio,
            registers=cfg.registers,
            num_classes=num_classes,
            block_size=cfg.block_size,
            window=cfg.window,
            top_k=cfg.top_k,
            indexer_heads=cfg.indexer_heads,
            indexer_dim=cfg.indexer_dim,
            indexer_queries=cfg.indexer_queries,
            backend=cfg.attention_backend,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) for normalized images (B, 3, 32, 32)."""
        patches = self.patch_embed(images)  # (B, D, 32/p, 32/p)
        patches = patches.flatten(2).transpose(1, 2) + self.pos_embed  # (B, P, D), row-major patches
        tokens = torch.cat([self.global_tokens.expand(len(images), -1, -1), patches], dim=1)  # (B, G + P, D)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens[:, 0]))  # class token (B, D) -> (B, classes)

    def indexer_loss(self) -> torch.Tensor | None:
        """Mean auxiliary loss of the attention indexers after a training forward pass, or None."""
        return collect_indexer_loss(self)
