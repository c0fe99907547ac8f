"""A two-sample statistic that says how far a GAN's samples are from the data, cheap enough to
compute on every validation batch: the maximum mean discrepancy (Gretton et al. 2012, "A
Kernel Two-Sample Test") with a sum of Gaussian kernels of fixed bandwidths,

    MMD^2 = sum_s  E k_s(X, X') + E k_s(Y, Y') - 2 E k_s(X, Y),
    k_s(a, b) = exp(-|a - b|^2 / (2 s^2)),   s in BANDWIDTHS * sqrt(D / 2),

on data scaled to the unit box (a GAN's players' space: [-1, 1] per coordinate). It is >= 0
and 0 only when the two distributions agree. One bandwidth alone misses what lies at other
scales: a wide kernel (or the energy distance, which weighs large distances most) scores a
generator that blurs every mode of the 8 Gaussians into a ring better than one that draws 7
of the 8 modes sharply; the narrow kernels here (0.01 of the box: the size of those modes)
see the blur and the wide ones a missing mode or a shifted mean. Each kernel's term lies in
[0, 2], so every scale counts alike. ``sqrt(D / 2)`` keeps the scales where distances are in
``D`` dimensions (the toys are 2-D).

The estimate is the unbiased one (U-statistics: each set's pairs of a point with itself are
left out), so the mean over validation batches is unbiased too and two samples of one
distribution score ~0 (at times slightly below) at any batch size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.errors import DataError

# bandwidths as fractions of the unit box (per coordinate; see the module docstring)
BANDWIDTHS = (0.01, 0.03, 0.1, 0.3, 1.0)


def mmd(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] = BANDWIDTHS) -> Tensor:
    """The unbiased squared MMD between samples ``x [N, ...]`` and ``y [M, ...]`` (rows
    flattened to ``D`` values) under the sum of Gaussian kernels of ``bandwidths * sqrt(D/2)``:
    a scalar tensor (float64 inside). Needs 2 or more rows each; holds ``(N + M)^2`` distances
    at once, so subsample beyond a few thousand rows."""
    if x.dim() < 1 or y.dim() < 1 or x.shape[0] < 2 or y.shape[0] < 2:
        raise DataError(
            f"mmd needs at least 2 examples on each side, got shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    if not bandwidths or not all(math.isfinite(s) and s > 0 for s in bandwidths):
        raise DataError(f"mmd bandwidths must be positive numbers, got {bandwidths}")
    a, b = x.detach().flatten(1).double(), y.detach().flatten(1).double()
    if a.shape[1] != b.shape[1]:
        raise DataError(f"mmd: the examples' sizes differ, {a.shape[1]} and {b.shape[1]}")
    n, m, dim = a.shape[0], b.shape[0], a.shape[1]
    d_aa, d_bb, d_ab = (torch.cdist(p, q).square() for p, q in ((a, a), (b, b), (a, b)))
    total = a.new_zeros(())
    for s in bandwidths:
        g = -0.5 / (s * s * dim / 2)
        # the diagonal of a set's own kernel matrix is exp(0) = 1: n of them left out
        k_aa = (torch.exp(g * d_aa).sum() - n) / (n * (n - 1))
        k_bb = (torch.exp(g * d_bb).sum() - m) / (m * (m - 1))
        total = total + k_aa + k_bb - 2 * torch.exp(g * d_ab).mean()
    return total


__all__ = ["BANDWIDTHS", "mmd"]
