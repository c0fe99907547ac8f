"""The standard normal over an event shape: the base distribution of flows (and the standard
prior of VAEs). A module, so that it follows the model to its device and dtype."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dgm.distributions.base import full_precision


class StandardNormal(nn.Module):
    """N(0, I) over ``shape``: ``log_prob [B, *shape] -> [B]`` (nats), ``sample(n)``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        # a buffer only to know the device and dtype samples should have
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        d = math.prod(self.shape)
        z = full_precision(z)  # a bf16 sum over D squares would be off by nats
        return -0.5 * z.reshape(z.shape[0], -1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``[n, *shape]``; ``temperature`` scales the standard deviation (Glow's trick)."""
        a = self._anchor
        return torch.randn(n, *self.shape, device=a.device, dtype=a.dtype) * temperature

    def rsample_and_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        z = self.sample(n)
        return z, self.log_prob(z)
