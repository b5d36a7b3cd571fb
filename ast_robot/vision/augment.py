"""Batched image preprocessing and augmentation on the training device.

Images travel to the device as uint8 and are converted, normalized and augmented there in one
batch, so the host does no per-image work.
"""

from __future__ import annotations

import numpy as np
import torch


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images (N, 3, H, W), on the [0, 1] scale.

    Returns:
        mean (3,) and std (3,) as float32.
    """
    scaled = images.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 2, 3))
    std = scaled.std(axis=(0, 2, 3))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 images (B, 3, H, W) with values 0..255 to float32 in [0, 1]."""
    return images.to(torch.float32) / 255.0


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Normalize float images (B, 3, H, W) per channel with mean (3,) and std (3,)."""
    return (images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def random_crop_flip(
    images: torch.Tensor,
    *,
    padding: int,
    flip: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """Randomly crop each image from its zero-padded copy and flip half of them horizontally.

    Every image gets its own offset in [0, 2 * padding] along each axis and its own coin for the
    flip, drawn from `generator` (which must live on the images' device). The whole batch is one
    gather, with no loop over images.

    Args:
        images: (B, C, H, W), any float dtype.
        padding: Zero padding on each side in pixels; 0 disables cropping.
        flip: Whether to flip horizontally with probability 0.5.
        generator: Source of the random offsets and flips.

    Returns:
        (B, C, H, W), the augmented batch.
    """
    batch, channels, height, width = images.shape
    device = images.device
    out = images

    if padding > 0:
        padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
        top = torch.randint(0, 2 * padding + 1, (batch,), device=device, generator=generator)
        left = torch.randint(0, 2 * padding + 1, (batch,), device=device, generator=generator)
        rows = top[:, None] + torch.arange(height, device=device)  # (B, H)
        cols = left[:, None] + torch.arange(width, device=device)  # (B, W)
        batch_index = torch.arange(batch, device=device)[:, None, None, None]
        channel_index = torch.arange(channels, device=device)[None, :, None, None]
        # Broadcast to (B, C, H, W): each output pixel reads its own shifted source pixel.
        out = padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]

    if flip:
        coin = torch.rand(batch, device=device, generator=generator) < 0.5
        out = torch.where(coin[:, None, None, None], out.flip(3), out)
    return out
