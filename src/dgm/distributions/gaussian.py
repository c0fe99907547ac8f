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


__all__ = ["Gaussian"]
