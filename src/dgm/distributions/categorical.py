"""Categorical likelihood over K discrete levels per dimension."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.distributions.base import full_precision


class Categorical:
    """p(x_d | params) = softmax(logits_d)[x_d] for x_d in {0, ..., K-1}.

    ``logits`` have the level axis second: ``[B, K, *event]``; ``x`` is ``[B, *event]`` holding
    whole numbers. Used by autoregressive models and, later, as a VAE decoder likelihood.
    """

    def __init__(self, levels: int) -> None:
        if levels < 2:
            raise ValueError(f"a categorical likelihood needs at least 2 levels, got {levels}")
        self.levels = levels

    @property
    def params_per_dim(self) -> int:
        return self.levels

    def log_prob_per_dim(self, logits: Tensor, x: Tensor) -> Tensor:
        """log p(x_d) for each dimension: ``[B, *event]``."""
        return -F.cross_entropy(full_precision(logits), x.long(), reduction="none")

    def log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        """Sum over the event dimensions: ``[B]``, in nats."""
        return self.log_prob_per_dim(logits, x).flatten(1).sum(1)

    def sample(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        """Draw levels ``[B, *event]`` (float, like the data); temperature 0 takes the mode."""
        logits = full_precision(logits).movedim(1, -1)
        if temperature == 0:
            return logits.argmax(-1).float()
        probs = torch.softmax(logits / temperature, dim=-1)
        flat = probs.reshape(-1, self.levels)
        return torch.multinomial(flat, 1).view(probs.shape[:-1]).float()
