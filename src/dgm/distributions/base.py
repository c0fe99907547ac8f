"""The likelihood interface every autoregressive and decoder network plugs into.

A network emits ``params`` of shape ``[B, P, *event]`` (``P = params_per_dim`` numbers per
data dimension); a likelihood turns them into log p(x) and samples. Discrete data holds the
levels ``0..K-1`` as floats, the same as the datasets.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor

from dgm.errors import ConfigError


def full_precision(t: Tensor) -> Tensor:
    """Half-precision params (under autocast) are scored in float32; float64 stays float64."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Likelihood(Protocol):
    levels: int

    @property
    def params_per_dim(self) -> int: ...

    def log_prob_per_dim(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x_d | params_d): ``[B, P, *event], [B, *event] -> [B, *event]``."""
        ...

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Summed over the event: ``[B]``, in nats."""
        ...

    def sample(self, params: Tensor, temperature: float = 1.0) -> Tensor:
        """Draw ``[B, *event]`` levels; temperature 0 takes the most likely value."""
        ...


LikelihoodName = Literal["auto", "categorical", "bernoulli", "logistic-mixture"]
# the help of the `likelihood` and `mixtures` config fields every model with a likelihood has
LIKELIHOOD_HELP = (
    "auto (bernoulli for binary data, else categorical) | categorical | bernoulli | "
    "logistic-mixture"
)
MIXTURES_HELP = "components of the logistic mixture likelihood"
LIKELIHOODS = ("auto", "categorical", "bernoulli", "logistic-mixture")


def make_likelihood(name: str, levels: int, mixtures: int = 5) -> Likelihood:
    """Build a likelihood by name; ``auto`` is Bernoulli for binary data, else categorical."""
    from dgm.distributions.bernoulli import Bernoulli
    from dgm.distributions.categorical import Categorical

    if name == "auto":
        name = "bernoulli" if levels == 2 else "categorical"
    if name == "categorical":
        return Categorical(levels)
    if name == "bernoulli":
        if levels != 2:
            raise ConfigError(f"a bernoulli likelihood needs binary data, got {levels} levels")
        return Bernoulli()
    if name == "logistic-mixture":
        from dgm.distributions.logistic import DiscretizedLogisticMixture

        return DiscretizedLogisticMixture(levels, mixtures)
    raise ConfigError(f"unknown likelihood {name!r}; use one of {', '.join(LIKELIHOODS)}")
