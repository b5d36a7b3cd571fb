"""A synthetic 10-class image dataset in the CIFAR-10 format, for tests and offline benchmarks.

CIFAR-10 itself cannot be downloaded at run time, so tests and the benchmark can generate a
stand-in that has the same files, shapes and dtypes. It is NOT CIFAR-10, and accuracies measured
on it do not predict CIFAR-10 accuracies.

Each class is a sinusoidal grating with its own orientation and spatial frequency, drawn inside a
soft disc at a random position, with a random phase, a class-tinted colour with strong random
jitter, a random background and pixel noise. The noise level varies per image (most images are
clean, a tail is very noisy) and a small share of labels is flipped, so samples differ in
difficulty the way real data does and a per-sample gate has something to choose between.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ast_robot.vision.data import NUM_CLASSES, Split, write_cifar10

SIZE = 32


def make_synthetic_split(count: int, *, seed: int, label_noise: float = 0.02) -> Split:
    """Generate `count` images (uint8 (N, 3, 32, 32)) and labels (int64 (N,)), balanced over classes.

    The same `seed` gives the same images. The class layout (orientations, frequencies, tints)
    is fixed, so splits made with different seeds share their classes.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % NUM_CLASSES
    rng.shuffle(labels)

    # Class layout: five orientations x two frequencies (cycles per image), one tint per class.
    # Orientations stay in [0, 90) degrees so a horizontal flip (which mirrors an orientation to
    # 180 degrees minus it) never turns one class into another.
    orientation_rad = (labels % 5) * (np.pi / 10)
    frequency = np.where(labels < 5, 2.5, 5.0)
    tint = np.random.default_rng(1234).uniform(0.2, 0.9, size=(NUM_CLASSES, 3))[labels]  # (N, 3)

    ys, xs = np.meshgrid(np.arange(SIZE) / SIZE, np.arange(SIZE) / SIZE, indexing="ij")  # (32, 32)
    phase = rng.uniform(0, 2 * np.pi, size=count)
    along = xs[None] * np.cos(orientation_rad)[:, None, None] + ys[None] * np.sin(orientation_rad)[:, None, None]
    grating = 0.5 + 0.5 * np.sin(2 * np.pi * frequency[:, None, None] * along + phase[:, None, None])  # (N, 32, 32)

    center = rng.uniform(0.3, 0.7, size=(count, 2))
    radius = rng.uniform(0.25, 0.45, size=count)
    distance = np.hypot(xs[None] - center[:, 0, None, None], ys[None] - center[:, 1, None, None])
    disc = 1.0 / (1.0 + np.exp((distance - radius[:, None, None]) / 0.03))  # (N, 32, 32), soft edge

    colour = np.clip(tint + rng.normal(0.0, 0.2, size=(count, 3)), 0.0, 1.0)  # (N, 3)
    background = rng.uniform(0.0, 1.0, size=(count, 3))
    foreground = grating[:, None] * colour[:, :, None, None]  # (N, 3, 32, 32)
    image = disc[:, None] * foreground + (1.0 - disc[:, None]) * background[:, :, None, None]

    noise_std = 0.05 + 0.5 * rng.beta(0.5, 3.0, size=count)  # most images clean, a noisy tail
    image = image + rng.normal(size=image.shape) * noise_std[:, None, None, None]
    images = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)

    flip = rng.random(count) < label_noise
    labels = np.where(flip, rng.integers(0, NUM_CLASSES, size=count), labels).astype(np.int64)
    return Split(images, labels)


def make_synthetic_cifar10(root: str | Path, *, train_count: int, test_count: int, seed: int = 0) -> Path:
    """Write a synthetic dataset as a CIFAR-10 python directory at `root` and return `root`."""
    train = make_synthetic_split(train_count, seed=seed)
    test = make_synthetic_split(test_count, seed=seed + 1, label_noise=0.0)
    return write_cifar10(root, train, test)
