"""Synthetic 2-D densities: pictures, tests, and mode-coverage checks.

``8-gaussians`` and ``25-gaussians`` follow the mode-collapse benchmarks of the GAN
literature (a ring of 8 modes of radius 2 with std 0.02, Metz et al. 2017; a 5x5 grid with
spacing 2 and std 0.05, Srivastava et al. 2017), so that "modes covered" and "samples within
3 sigma of a mode" mean what they mean there. ``two-moons``, ``rings`` and ``checkerboard``
are the usual flow-density pictures (Grathwohl et al. 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from dgm.data.base import Dataset, DataSpec, Split

SIZES = {"train": 20_000, "val": 5_000, "test": 5_000}
SEEDS = {"train": 0, "val": 1, "test": 2}  # fixed: every run sees the same points

Sampler = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray | None]]


def ring_modes(k: int = 8, radius: float = 2.0) -> np.ndarray:
    """Centres of ``k`` modes on a circle, ``[k, 2]``."""
    angle = 2 * math.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def grid_modes(side: int = 5, spacing: float = 2.0) -> np.ndarray:
    """Centres of a ``side x side`` grid of modes around the origin, ``[side**2, 2]``."""
    ticks = spacing * (np.arange(side) - (side - 1) / 2)
    return np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)


# mode centres and their standard deviation, for mode-coverage checks
MODES: dict[str, tuple[np.ndarray, float]] = {
    "8-gaussians": (ring_modes(8, 2.0), 0.02),
    "25-gaussians": (grid_modes(5, 2.0), 0.05),
}


def _mixture(name: str) -> Sampler:
    centres, std = MODES[name]

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mode = rng.integers(0, len(centres), n)
        return centres[mode] + std * rng.standard_normal((n, 2)), mode

    return sample


def _two_moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    label = rng.integers(0, 2, n)
    t = math.pi * rng.random(n)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x - 0.5, y - 0.25], axis=1) * 2
    return pts + 0.1 * rng.standard_normal((n, 2)), label


def _rings(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ring = rng.integers(0, 4, n)
    radius = 1.0 + ring  # radii 1, 2, 3, 4
    t = 2 * math.pi * rng.random(n)
    pts = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return pts + 0.08 * rng.standard_normal((n, 2)), ring


def _checkerboard(n: int, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    # 4x4 board on [-4, 4]^2; points fill the 8 squares where (row + col) is even
    x = rng.uniform(-4, 4, n)
    row = np.floor(x / 2) + 2  # 0..3
    offset = rng.integers(0, 2, n) * 2  # pick one of the two dark squares in the column
    col = (row % 2 + offset) % 4
    y = -4 + 2 * col + rng.uniform(0, 2, n)
    return np.stack([x, y], axis=1), None


SAMPLERS: dict[str, tuple[str, Sampler]] = {
    "two-moons": ("two interleaved half circles, 2-D (synthetic)", _two_moons),
    "rings": ("four concentric rings, 2-D (synthetic)", _rings),
    "8-gaussians": (
        "8 Gaussians on a circle of radius 2, std 0.02, 2-D (synthetic)",
        _mixture("8-gaussians"),
    ),
    "25-gaussians": (
        "5x5 grid of Gaussians, spacing 2, std 0.05, 2-D (synthetic)",
        _mixture("25-gaussians"),
    ),
    "checkerboard": ("uniform on 8 squares of a 4x4 board, 2-D (synthetic)", _checkerboard),
}


def load_toy(name: str) -> Dataset:
    """A synthetic 2-D dataset: 20,000 / 5,000 / 5,000 points drawn with fixed seeds."""
    _, sampler = SAMPLERS[name]
    splits = {}
    for split, n in SIZES.items():
        x, y = sampler(n, np.random.default_rng(SEEDS[split]))
        splits[split] = Split(
            torch.from_numpy(x.astype(np.float32)),
            None if y is None else torch.from_numpy(y.astype(np.int64)),
        )
    labels = [s.y for s in splits.values() if s.y is not None]
    x_all = torch.cat([s.x for s in splits.values()])
    spec = DataSpec(
        name=name,
        shape=(2,),
        levels=None,
        low=float(x_all.min()),
        high=float(x_all.max()),
        num_classes=int(torch.cat(labels).max()) + 1 if labels else None,
    )
    return Dataset(
        spec, splits["train"], splits["val"], test=splits["test"], source=f"synthetic:{name}"
    )
