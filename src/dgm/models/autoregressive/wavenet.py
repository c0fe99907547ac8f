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
from typing import Any

import torch
from torch import Tensor

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.autoregressive.base import AutoregressiveModel, InputEncoding
from dgm.models.autoregressive.wavenet_stack import WaveNet as WaveNetStack
from dgm.models.base import DiscreteConfig
from dgm.models.capabilities import ReceptiveField
from dgm.registry import register


@dataclass
class WaveNetConfig(DiscreteConfig):
    hidden: int = opt(64, "residual channels of the dilated stack")
    skip_channels: int = opt(128, "channels of the skip connections")
    head_channels: int = opt(128, "channels of the 1x1 output head")
    kernel_size: int = opt(2, "kernel width of the causal convolutions")
    max_dilation: int = opt(32, "dilations double 1, 2, 4, ... up to this")
    stacks: int = opt(2, "times the dilation cycle repeats")
    input: InputEncoding = opt(
        "onehot", "values enter as one channel per level, or as one scaled value"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.hidden, self.skip_channels, self.head_channels) < 1:
            raise ConfigError("hidden, skip_channels and head_channels must be >= 1")
        if self.kernel_size < 1 or self.max_dilation < 1 or self.stacks < 1:
            raise ConfigError("need kernel_size >= 1, max_dilation >= 1 and stacks >= 1")


@register(
    "wavenet",
    "autoregressive",
    "WaveNet: gated dilated causal convolutions over the flattened sequence, cached sampling",
)
class WaveNet(AutoregressiveModel, ReceptiveField):
    """WaveNet(stack, likelihood): exact log-likelihood, cached ancestral sampling."""

    Config = WaveNetConfig
    config: WaveNetConfig

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__(config)
        c = config
        self.in_channels = c.levels if c.input == "onehot" else 1
        self.net = WaveNetStack(self.in_channels, self.likelihood.params_per_dim, c)

    @property
    def receptive_field(self) -> int:
        """Number of past values each conditional sees (of ``dim`` in the sequence)."""
        return self.net.receptive_field

    def extra_repr(self) -> str:
        return f"sequence_length={self.dim}, receptive_field={self.receptive_field}"

    def logits(self, flat: Tensor) -> Tensor:
        """Parameters of every conditional: ``[B, L] -> [B, P, L]``; output t sees x_<t only."""
        return self.net(self.encode_sequence(flat))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, cache: bool = True) -> Tensor:
        """Ancestral sampling in sequence order.

        ``cache=True``: the Fast WaveNet queues, O(layers) per step. ``cache=False``: each
        step runs the whole network on the prefix. Both draw with the same calls in the same
        order, so one seed gives the same samples either way.
        """
        queues = self.net.start(n, self._dtype, self.device) if cache else None
        return self.ancestral(n, temperature, state=queues).view(n, *self.config.shape)

    def conditional_params(self, x: Tensor, t: int, state: Any = None) -> Tensor:
        """p(x_t | x_<t)'s parameters ``[n, P, 1]``: one queue step with ``state`` (the
        queues hold the past), else a pass over the prefix."""
        if state is None:
            return super().conditional_params(x, t)
        # the input layer's queue takes x_{t-1}; before the sequence, the zero padding
        n = x.shape[0]
        prev = (
            self.encode_sequence(x[:, t - 1 : t])[..., 0]
            if t > 0
            else torch.zeros(n, self.in_channels, dtype=self._dtype, device=self.device)
        )
        return self.net.step(prev, state).unsqueeze(-1)  # [n, P, 1]
