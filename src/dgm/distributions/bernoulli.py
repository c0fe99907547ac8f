"""Bernoulli likelihood for binary data."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.distributions.base import full_precision


class Bernoulli:
    """p(x_d = 1) = sigmoid(logit_d); ``params`` are ``[B, 1, *event]`` logits."""

    levels = 2
    params_per_dim = 1

    def log_prob_per_dim(self, params: Tensor, x: Tensor) -> Tensor:
        logits = full_precision(params)[:, 0]
        return -F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_per_dim(params, x).flatten(1).sum(1)

    def sample(self, params: Tensor, temperature: float = 1.0) -> Tensor:
        logits = full_precision(params)[:, 0]
        if temperature == 0:
            return (logits > 0).to(logits.dtype)
        return torch.bernoulli(torch.sigmoid(logits / temperature))
