"""Discretized mixture of logistics (Salimans et al. 2017, "PixelCNN++", section 2.1).

Level k of K sits at the centre c_k = 2k/(K-1) - 1 of a bin of half-width h = 1/(K-1) in
[-1, 1]. A mixture of M logistics with means mu_i and scales s_i gives

    P(x = c_k) = sum_i pi_i [sigma((c_k + h - mu_i) / s_i) - sigma((c_k - h - mu_i) / s_i)],

where the edge bins take the whole tails (sigma(-inf) = 0 at k = 0, sigma(+inf) = 1 at
k = K-1), so the K probabilities sum to exactly 1. Unlike a categorical, the levels are
ordered: a network needs 3M numbers per dimension however large K is (K = 256 for 8-bit data).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.distributions.base import full_precision
from dgm.errors import ConfigError

# the paper clamps log-scales here: a logistic narrower than e^-7 puts essentially all of its
# mass in one bin for any K <= 256 and only makes the loss sharper
MIN_LOG_SCALE = -7.0
# standardized bin width below which the interval probability is replaced by the density at
# the bin centre times the width (midpoint rule, relative error ~ width^2 / 24 < 1e-11)
NARROW_BIN = 1e-5


def log_sigmoid_difference(lo: Tensor, hi: Tensor, width: Tensor) -> Tensor:
    """log(sigma(hi) - sigma(lo)) for ``hi - lo = width > 0``, free of cancellation.

    sigma(b) - sigma(a) = sigma(b) sigma(-a) (1 - e^-(b-a)), so in log space it is
    -softplus(-b) - softplus(a) + log(-expm1(-(b - a))): no difference of two numbers close
    to 1 (the paper's ``cdf_plus - cdf_min``) even far in the tails. ``width`` must be > 0.
    """
    return -F.softplus(-hi) - F.softplus(lo) + torch.log(-torch.expm1(-width))


class DiscretizedLogisticMixture:
    """p(x_d | params_d), params ``[B, 3M, *event]``: M mixture logits, M means, M log-scales.

    Means and scales live in the [-1, 1] coordinates of the bin centres; data ``x`` are levels
    ``0..K-1`` (floats holding whole numbers), like every other likelihood in the package.
    """

    def __init__(self, levels: int, mixtures: int = 5) -> None:
        if levels < 2:
            raise ConfigError(
                f"a logistic mixture likelihood needs at least 2 levels, got {levels}"
            )
        if mixtures < 1:
            raise ConfigError(f"mixtures must be >= 1, got {mixtures}")
        self.levels = levels
        self.mixtures = mixtures
        self.half_width = 1.0 / (levels - 1)

    @property
    def params_per_dim(self) -> int:
        return 3 * self.mixtures

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, 3M, *event]`` -> logits, means, clamped log-scales, each ``[B, M, *event]``."""
        params = full_precision(params)
        if params.shape[1] != self.params_per_dim:
            raise ValueError(
                f"expected {self.params_per_dim} params per dimension (3 x {self.mixtures} "
                f"mixtures), got {params.shape[1]}"
            )
        logits, means, log_scales = params.split(self.mixtures, dim=1)
        return logits, means, log_scales.clamp(min=MIN_LOG_SCALE)

    def _centre(self, level: Tensor) -> Tensor:
        """Level k -> bin centre 2k/(K-1) - 1."""
        return level * (2.0 * self.half_width) - 1.0

    def _component_log_prob(
        self, means: Tensor, log_scales: Tensor, level: Tensor
    ) -> Tensor:  # [B, M, *event]
        """log P(x = level | component i) for every component, edges taking the tails."""
        h = self.half_width
        inv_scale = torch.exp(-log_scales)  # <= e^7 thanks to the clamp
        centred = self._centre(level.to(means.dtype)).unsqueeze(1) - means  # [B, M, *event]
        lo = inv_scale * (centred - h)  # standardized left edge of the bin
        hi = inv_scale * (centred + h)  # standardized right edge
        width = (2.0 * h) * inv_scale  # hi - lo, computed without cancellation

        log_left_tail = -F.softplus(-hi)  # log sigma(hi): the k = 0 bin
        log_right_tail = -F.softplus(lo)  # log(1 - sigma(lo)): the k = K-1 bin

        # interior bins; the width only underflows for a scale far wider than [-1, 1]: there
        # the density is flat over the bin and the midpoint rule is accurate to ~1e-11
        narrow = width < NARROW_BIN
        safe_width = torch.where(narrow, torch.ones_like(width), width)  # no inf*0 in backward
        log_interval = log_sigmoid_difference(lo, hi, safe_width)
        mid = inv_scale * centred
        log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid)  # logistic log-density at c_k
        log_interior = torch.where(narrow, log_pdf_mid + math.log(2.0 * h), log_interval)

        k = level.long().unsqueeze(1)
        return torch.where(
            k == 0,
            log_left_tail,
            torch.where(k == self.levels - 1, log_right_tail, log_interior),
        )

    def log_prob_per_dim(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x_d | params_d): ``[B, 3M, *event], [B, *event] -> [B, *event]``."""
        logits, means, log_scales = self._split(params)
        log_mix = torch.log_softmax(logits, dim=1)  # [B, M, *event]
        return torch.logsumexp(log_mix + self._component_log_prob(means, log_scales, x), dim=1)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Summed over the event: ``[B]``, in nats."""
        return self.log_prob_per_dim(params, x).flatten(1).sum(1)

    def _to_level(self, value: Tensor) -> Tensor:
        """A point of the real line -> the level whose bin holds it (tails to the edges)."""
        return torch.round((value + 1.0) / (2.0 * self.half_width)).clamp(0, self.levels - 1)

    def sample(self, params: Tensor, temperature: float = 1.0) -> Tensor:
        """Draw levels ``[B, *event]`` (floats in the params' dtype).

        Temperature T divides the mixture logits and multiplies the logistic scales; T = 0
        takes the mean (= mode) of the most likely component, rounded to its level. Rounding
        the continuous draw to the nearest bin centre is exactly sampling the discretized
        distribution that ``log_prob`` scores.
        """
        logits, means, log_scales = self._split(params)
        if temperature == 0:
            pick = logits.argmax(dim=1, keepdim=True)  # [B, 1, *event]
            return self._to_level(means.gather(1, pick).squeeze(1))
        # Gumbel-max picks component i with probability softmax(logits / T)_i
        u = torch.rand_like(logits).clamp_min(torch.finfo(logits.dtype).tiny)
        pick = (logits / temperature - torch.log(-torch.log(u))).argmax(dim=1, keepdim=True)
        mean = means.gather(1, pick).squeeze(1)  # [B, *event]
        scale = log_scales.gather(1, pick).squeeze(1).exp() * temperature
        # inverse CDF of the logistic; u = 0 gives -inf, which lands in the k = 0 tail as it should
        noise = torch.logit(torch.rand_like(mean))
        return self._to_level(mean + scale * noise)
