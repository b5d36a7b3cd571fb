"""The small CNN proxy: cheap per-sample loss and entropy for scoring, trained on what the ViT skips."""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(in_channels: int, out_channels: int, *, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class CnnProxy(nn.Module):
    """Three stride-2 conv blocks, global average pooling and a linear classifier.

    With `width` channels in the first block it costs a few percent of the ViT's compute per
    image at the default sizes (the trainer measures both and logs the ratio).
    """

    def __init__(self, *, width: int = 32, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(3, width, stride=2),  # 32x32 -> 16x16
            _conv_block(width, 2 * width, stride=2),  # 16x16 -> 8x8
            _conv_block(2 * width, 4 * width, stride=2),  # 8x8 -> 4x4
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) for normalized images (B, 3, 32, 32)."""
        pooled = self.features(images).mean(dim=(2, 3))  # (B, 4w, 4, 4) -> (B, 4w)
        return self.head(pooled)
