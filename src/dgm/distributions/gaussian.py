"""Diagonal Gaussian likelihood for continuous data: the decoder of a VAE on real-valued data
(Kingma & Welling 2014, "Auto-Encoding Variational Bayes", appendix C.2).

Same interface as the discrete likelihoods (``dgm.distributions.base.Likelihood``), with
``levels = None``: log p(x) is a *density* in nats, so it may be positive and is comparable
only with other densities on the same data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.distributions.base import full_precision

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Gaussian:
    """p(x_d | params_d) = N(x_d; mean_d, scale_d^2).

    Learned scale (``scale=None``): ``params`` are ``[B, 2, *event]``, mean and log-scale (a
    function of z, so the decoder may make it depend on the code). Fixed scale (``scale > 0``):
    ``params`` are ``[B, 1, *event]`` means and every dimension has standard deviation
    ``scale``. The learned log-scale is not bounded: as for any Gaussian model of continuous
    data, the likelihood is unbounded when a scale collapses onto a data point.
    """

    levels = None

    def __init__(self, scale: float | None = None) -> None:
        if scale is not None and not scale > 0:
            raise ValueError(f"a fixed Gaussian scale must be > 0, got {scale}")
        self.scale = scale

    @property
    def params_per_dim(self) -> int:
        return 2 if self.scale is None else 1

    def mean_and_log_scale(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, P, *event] -> ([B, *event], [B, *event] or a 0-d tensor)``."""
        params = full_precision(params)
        if self.scale is None:
            return params[:, 0], params[:, 1]
        return params[:, 0], params.new_tensor(math.log(self.scale))

    def log_prob_per_dim(self, params: Tensor, x: Tensor) -> Tensor:
        mean, log_scale = self.mean_and_log_scale(params)
        z = (x.to(mean.dtype) - mean) * torch.exp(-log_scale)
        return -0.5 * z * z - log_scale - HALF_LOG_2PI

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_per_dim(params, x).flatten(1).sum(1)

    def sample(self, params: Tensor, temperature: float = 1.0) -> Tensor:
        """Draw ``[B, *event]``; ``temperature`` scales the standard deviation (0: the mean)."""
        mean, log_scale = self.mean_and_log_scale(params)
        if temperature == 0:
            return mean
        return mean + temperature * torch.exp(log_scale) * torch.randn_like(mean)


def log_difference_of_cdfs(lo: Tensor, hi: Tensor) -> Tensor:
    """log(Phi(hi) - Phi(lo)) for standardized ``lo < hi``, stable in both tails: in the upper
    tail it is computed as log(Phi(-lo) - Phi(-hi)), where the two terms are not both near 1."""
    upper = lo > 0  # both edges in the upper tail: use the mirror image
    a = torch.where(upper, -hi, lo)
    b = torch.where(upper, -lo, hi)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    # log(e^log_b - e^log_a) = log_b + log(1 - e^(log_a - log_b)), log_a < log_b
    return log_b + torch.log(-torch.expm1(log_a - log_b).clamp(max=-1e-30))


def discretized_gaussian_log_prob(
    x: Tensor, mean: Tensor, log_scale: Tensor, levels: int
) -> Tensor:
    """log P(x) per dimension for levels ``x`` in ``0..levels-1`` under a Gaussian N(mean,
    scale^2) on [-1, 1] cut into ``levels`` equal cells (the decoder of DDPM, Ho et al. 2020,
    eq. 13, and VDM): level k is the cell centred on ``(2k + 1) / levels - 1``, half-width
    ``1 / levels``, the first and last cells reaching to -inf and +inf, so the levels' masses
    sum to 1. ``[B, *event]`` each (``log_scale`` may broadcast) -> ``[B, *event]``."""
    mean, log_scale = full_precision(mean), full_precision(log_scale)
    centre = (2 * x.to(mean.dtype) + 1) / levels - 1
    inv = torch.exp(-log_scale)
    lo = (centre - 1.0 / levels - mean) * inv
    hi = (centre + 1.0 / levels - mean) * inv
    lo = torch.where(x <= 0, torch.full_like(lo, -math.inf), lo)
    hi = torch.where(x >= levels - 1, torch.full_like(hi, math.inf), hi)
    return log_difference_of_cdfs(lo, hi)


__all__ = ["Gaussian", "discretized_gaussian_log_prob", "log_difference_of_cdfs"]
