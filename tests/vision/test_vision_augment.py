"""Batched crop-and-flip augmentation, checked image by image against a plain search."""

import numpy as np
import torch

from ast_robot.vision.augment import channel_stats, normalize, random_crop_flip


def _batch(count=6, size=8):
    return torch.arange(count * 3 * size * size, dtype=torch.float32).view(count, 3, size, size)


def _matching_crops(source, output, padding):
    """Every (top, left, flipped) whose crop of the zero-padded source equals output."""
    padded = torch.nn.functional.pad(source, (padding,) * 4)
    size = source.shape[-1]
    found = []
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top : top + size, left : left + size]
            for flipped in (False, True):
                candidate = crop.flip(-1) if flipped else crop
                if torch.equal(candidate, output):
                    found.append((top, left, flipped))
    return found


def test_no_padding_no_flip_is_identity():
    images = _batch()
    out = random_crop_flip(images, padding=0, flip=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, images)


def test_each_output_is_a_crop_of_its_input():
    images = _batch(count=16)
    out = random_crop_flip(images, padding=2, flip=True, generator=torch.Generator().manual_seed(3))
    assert out.shape == images.shape
    offsets = set()
    for source, result in zip(images, out):
        matches = _matching_crops(source, result, padding=2)
        assert len(matches) == 1
        offsets.add(matches[0])
    # Offsets differ between images: the batch is not cropped as one.
    assert len(offsets) > 1


def test_flip_only_flips_some_images():
    images = _batch(count=32)
    out = random_crop_flip(images, padding=0, flip=True, generator=torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < len(images)


def test_same_seed_same_augmentation():
    images = _batch()
    first = random_crop_flip(images, padding=4, flip=True, generator=torch.Generator().manual_seed(7))
    second = random_crop_flip(images, padding=4, flip=True, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


def test_normalize_with_channel_stats():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 3, 4, 4), dtype=np.uint8)
    mean, std = channel_stats(images)
    floats = torch.from_numpy(images).float() / 255.0
    out = normalize(floats, torch.from_numpy(mean), torch.from_numpy(std))
    np.testing.assert_allclose(out.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(dim=(0, 2, 3), unbiased=False).numpy(), 1.0, atol=1e-4)
