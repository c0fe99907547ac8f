"""What every autoregressive model shares: p(x) = prod_d p(x_d | x_<d) over the D values of an
example of discrete levels, each conditional a likelihood (categorical over the levels,
Bernoulli, or a discretized logistic mixture; ``dgm.distributions``) whose parameters a
causal network computes from x_<d (Tomczak 2022, "Deep Generative Modeling", ch. 2).

- the config fields (:class:`~dgm.models.base.DiscreteConfig`: shape, levels, likelihood,
  mixtures);
- the input encoding: one channel per level (one-hot) or one scaled value in [-1, 1];
- the likelihood head: ``log_prob`` sums log p(x_d | x_<d) over the flattened example, from
  the parameters :meth:`AutoregressiveModel.logits` gives for every position at once;
- the sampling loop: ancestral, one value at a time in the model's order, each from the
  parameters :meth:`AutoregressiveModel.conditional_params` gives for that position (by
  default a pass over the prefix; models with a cache, a queue or a mask pass their own
  ``state``).

A model says how its network computes the parameters and, where it has one, how it samples
faster; the rest is here once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm import progress
from dgm.distributions import make_likelihood
from dgm.models.base import GenerativeModel

# how values enter a network: one channel per level, or one value scaled to [-1, 1]
InputEncoding = Literal["onehot", "scalar"]


class AutoregressiveModel(GenerativeModel):
    """Base of the autoregressive family; ``config`` is a
    :class:`~dgm.models.base.DiscreteConfig` (with ``input`` where the model encodes its
    inputs as one-hot or scalar channels)."""

    discrete_only = True
    config: Any

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.dim = math.prod(config.shape)  # D values per example
        self.likelihood = make_likelihood(config.likelihood, config.levels, config.mixtures)

    # -- the input encoding ------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def encode_inputs(self, x: Tensor) -> Tensor:
        """Levels ``[B, C, *S]`` -> network inputs ``[B, C * C_in, *S]``: one channel per level
        (colour c's levels contiguous) or one value scaled to [-1, 1], as ``config.input``."""
        c = self.config
        if c.input == "onehot":
            return F.one_hot(x.long(), c.levels).movedim(-1, 2).flatten(1, 2).to(self._dtype)
        return (x * (2.0 / (c.levels - 1)) - 1.0).to(self._dtype)

    def encode_sequence(self, flat: Tensor) -> Tensor:
        """Levels ``[B, L]`` -> ``[B, C_in, L]`` (a sequence is one channel of length L)."""
        return self.encode_inputs(flat.unsqueeze(1))

    # -- the likelihood head -----------------------------------------------------------------
    def logits(self, flat: Tensor) -> Tensor:
        """The parameters of every conditional: ``[B, L] -> [B, P, L]``, output d from x_<d."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)  # [B, D]
        return self.likelihood.log_prob(self.logits(flat), flat)

    # -- ancestral sampling ------------------------------------------------------------------
    def conditional_params(self, x: Tensor, d: int, state: Any = None) -> Tensor:
        """The parameters of p(x_d | x_<d) ``[n, P, 1]`` given the values drawn so far (``x``
        ``[n, D]``, filled before d in the model's order). By default a pass over the prefix
        ``x[:, :d+1]``: a causal network's output at d does not depend on what follows, so the
        prefix gives the whole sequence's numbers for a fraction of the work."""
        return self.logits(x[:, : d + 1])[..., d : d + 1]

    def ancestral(
        self,
        n: int,
        temperature: float = 1.0,
        state: Any = None,
        order: Iterable[int] | None = None,
        length: int | None = None,
    ) -> Tensor:
        """``n`` draws ``[n, D]``, value by value in ``order`` (default 0..D-1), each from
        :meth:`conditional_params` with ``state``. Every model draws with the same calls in the same
        order, so one seed gives the same samples with or without a cache. ``length``: draw
        sequences of that many values instead of D (audio, whose length is free)."""
        size = self.dim if length is None else length
        x = torch.zeros(n, size, device=self.device)
        steps = range(size) if order is None else order
        # one network pass per value: minutes for big images, so shown where the CLI asks
        for d in progress.track(steps, "sampling", total=size, unit="values"):
            params = self.conditional_params(x, d, state)  # [n, P, 1]
            x[:, d] = self.likelihood.sample(params, temperature)[:, 0]
        return x

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """Ancestral sampling: ``[n, *event_shape]`` levels."""
        return self.ancestral(n, temperature).view(n, *self.config.shape)


__all__ = ["AutoregressiveModel", "InputEncoding"]
