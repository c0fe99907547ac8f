"""WaveNet: an autoregressive model of dilated causal convolutions over any 1-D sequence.

p(x) = prod_t p(x_t | x_<t) over the flattened example (a raster-order image now; audio or
text later), each conditional's parameters from a WaveNet stack: gated residual blocks of
dilated causal convolutions with skip connections (van den Oord et al. 2016, "WaveNet: A
generative model for raw audio"). Sampling is ancestral; with ``cache=True`` each step reuses
per-layer queues of past activations (Paine et al. 2016, "Fast WaveNet generation algorithm"),
so a step costs O(layers) rather than a full pass over the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.config import opt
from dgm.distributions import make_likelihood
from dgm.distributions.base import LIKELIHOOD_HELP, MIXTURES_HELP, LikelihoodName
from dgm.errors import ConfigError
from dgm.models.autoregressive.wavenet_stack import WaveNet as WaveNetStack
from dgm.models.base import GenerativeModel, check_discrete_config
from dgm.models.capabilities import ReceptiveField
from dgm.registry import register


@dataclass
class WaveNetConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int = opt(17, "values per pixel, from the data")
    hidden: int = opt(64, "residual channels of the dilated stack")
    skip_channels: int = opt(128, "channels of the skip connections")
    head_channels: int = opt(128, "channels of the 1x1 output head")
    kernel_size: int = opt(2, "kernel width of the causal convolutions")
    max_dilation: int = opt(32, "dilations double 1, 2, 4, ... up to this")
    stacks: int = opt(2, "times the dilation cycle repeats")
    input: Literal["onehot", "scalar"] = opt(
        "onehot", "values enter as one channel per level, or as one scaled value"
    )
    likelihood: LikelihoodName = opt("auto", LIKELIHOOD_HELP)
    mixtures: int = opt(5, MIXTURES_HELP)

    def __post_init__(self) -> None:
        check_discrete_config(self)
        if min(self.hidden, self.skip_channels, self.head_channels) < 1:
            raise ConfigError("hidden, skip_channels and head_channels must be >= 1")
        if self.kernel_size < 1 or self.max_dilation < 1 or self.stacks < 1:
            raise ConfigError("need kernel_size >= 1, max_dilation >= 1 and stacks >= 1")


@register(
    "wavenet",
    "autoregressive",
    "WaveNet: gated dilated causal convolutions over the flattened sequence, cached sampling",
)
class WaveNet(GenerativeModel, ReceptiveField):
    """WaveNet(stack, likelihood): exact log-likelihood, cached ancestral sampling."""

    Config = WaveNetConfig
    discrete_only = True
    config: WaveNetConfig

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__(config)
        c = config
        self.dim = int(torch.tensor(c.shape).prod())
        self.in_channels = c.levels if c.input == "onehot" else 1
        self.likelihood = make_likelihood(c.likelihood, c.levels, c.mixtures)
        self.net = WaveNetStack(
            self.in_channels,
            self.likelihood.params_per_dim,
            hidden=c.hidden,
            skip_channels=c.skip_channels,
            head_channels=c.head_channels,
            kernel_size=c.kernel_size,
            max_dilation=c.max_dilation,
            stacks=c.stacks,
        )

    @property
    def receptive_field(self) -> int:
        """Number of past values each conditional sees (of ``dim`` in the sequence)."""
        return self.net.receptive_field

    def extra_repr(self) -> str:
        return f"sequence_length={self.dim}, receptive_field={self.receptive_field}"

    @property
    def _dtype(self) -> torch.dtype:
        return self.net.first.weight.dtype

    def _encode(self, x: Tensor) -> Tensor:  # [B, L] levels -> [B, C_in, L]
        if self.config.input == "onehot":
            return F.one_hot(x.long(), self.config.levels).movedim(-1, 1).to(self._dtype)
        return (x * (2.0 / (self.config.levels - 1)) - 1.0).unsqueeze(1).to(self._dtype)

    def logits(self, x: Tensor) -> Tensor:
        """Parameters of every conditional: ``[B, L] -> [B, P, L]``; output t sees x_<t only."""
        return self.net(self._encode(x))

    def log_prob(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)  # [B, D]
        return self.likelihood.log_prob(self.logits(flat), flat)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, cache: bool = True) -> Tensor:
        """Ancestral sampling in sequence order.

        ``cache=True``: the Fast WaveNet queues, O(layers) per step. ``cache=False``: each
        step runs the whole network on the prefix. Both draw with the same calls in the same
        order, so one seed gives the same samples either way.
        """
        x = torch.zeros(n, self.dim, device=self.device)
        queues = self.net.start(n, self._dtype, self.device) if cache else None
        for t in range(self.dim):
            if queues is not None:
                # the input layer's queue takes x_{t-1}; before the sequence, the zero padding
                prev = (
                    self._encode(x[:, t - 1 : t])[..., 0]
                    if t > 0
                    else torch.zeros(n, self.in_channels, dtype=self._dtype, device=self.device)
                )
                params = self.net.step(prev, queues).unsqueeze(-1)  # [n, P, 1]
            else:
                # causal convs pad on the left only: the prefix gives the same output at t
                params = self.logits(x[:, : t + 1])[..., t : t + 1]  # [n, P, 1]
            x[:, t] = self.likelihood.sample(params, temperature)[:, 0]
        return x.view(n, *self.config.shape)
