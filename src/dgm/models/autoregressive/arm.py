"""Autoregressive model with causal 1-D convolutions over the flattened image.

p(x) = prod_d p(x_d | x_<d), each conditional a categorical over the data's K levels whose
logits come from a causal convolutional network (Tomczak 2022, "Deep Generative Modeling",
ch. 2; van den Oord et al. 2016, "WaveNet"). Pixels are read in raster order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.config import opt
from dgm.distributions import make_likelihood
from dgm.distributions.base import LIKELIHOOD_HELP, MIXTURES_HELP, LikelihoodName
from dgm.errors import ConfigError
from dgm.models.base import GenerativeModel, check_discrete_config
from dgm.models.capabilities import ReceptiveField
from dgm.nn.activations import Activation, activation
from dgm.nn.causal import CausalConv1d
from dgm.registry import register


class CausalBlock(nn.Module):
    """Inclusive causal conv -> activation -> dropout, with an optional residual connection."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        dilation: int,
        act: str,
        dropout: float,
        residual: bool,
    ) -> None:
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel_size, dilation)
        self.act = activation(act)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual

    def forward(self, h: Tensor) -> Tensor:  # [B, C, L] -> [B, C, L]
        out = self.drop(self.act(self.conv(h)))
        return h + out if self.residual else out


class CausalConvNet(nn.Module):
    """Exclusive first layer, inclusive hidden blocks, inclusive output layer.

    ``[B, C_in, L] -> [B, C_out, L]`` where output ``t`` depends on inputs ``< t`` only.
    Dilations grow as ``growth ** i`` for hidden block ``i`` (cycling after ``cycle`` blocks)
    so the receptive field grows exponentially with depth, as in WaveNet.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        out_channels: int,
        layers: int = 4,
        kernel_size: int = 7,
        dilation_growth: int = 1,
        dilation_cycle: int = 4,
        act: str = "leaky_relu",
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError("a causal conv net needs at least 2 layers (input and output)")
        self.first = CausalConv1d(in_channels, hidden, kernel_size, exclusive=True)
        self.act = activation(act)
        self.blocks = nn.ModuleList(
            CausalBlock(
                hidden,
                kernel_size,
                dilation_growth ** (i % max(dilation_cycle, 1)),
                act,
                dropout,
                residual,
            )
            for i in range(layers - 2)
        )
        self.last = CausalConv1d(hidden, out_channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.first(x))
        for block in self.blocks:
            h = block(h)
        return self.last(h)

    @property
    def receptive_field(self) -> int:
        """Number of past inputs an output can see."""
        return (
            self.first.reach
            + sum(b.conv.reach for b in self.blocks)  # type: ignore[union-attr]
            + self.last.reach
        )


@dataclass
class ARMConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int = opt(17, "values per pixel, from the data")
    hidden: int = opt(64, "channels of the hidden layers")
    layers: int = opt(8, "causal conv layers, the first (exclusive) and last included")
    kernel_size: int = opt(5, "kernel width of every layer")
    dilation_growth: int = opt(2, "hidden block i has dilation growth**(i % cycle); 1 = none")
    dilation_cycle: int = opt(4, "blocks after which the dilation starts again at 1")
    activation: Activation = opt("gelu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.3, "dropout after each hidden block")
    residual: bool = opt(True, "residual connections around hidden blocks")
    input: Literal["onehot", "scalar"] = opt(
        "onehot", "pixels enter as one channel per level, or as one scaled value (the notebook's)"
    )
    likelihood: LikelihoodName = opt("auto", LIKELIHOOD_HELP)
    mixtures: int = opt(5, MIXTURES_HELP)

    def __post_init__(self) -> None:
        check_discrete_config(self)
        if self.hidden < 1 or self.layers < 2 or self.kernel_size < 1:
            raise ConfigError("need hidden >= 1, layers >= 2 and kernel_size >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dilation_growth < 1:
            raise ConfigError("dilation_growth must be >= 1")


@register("arm", "autoregressive", "causal 1-D convolutions over the flattened image (ARM)")
class ARM(GenerativeModel, ReceptiveField):
    """ARM(net, likelihood): exact log-likelihood, ancestral sampling."""

    Config = ARMConfig
    discrete_only = True
    config: ARMConfig

    def __init__(self, config: ARMConfig) -> None:
        super().__init__(config)
        c = config
        self.dim = int(torch.tensor(c.shape).prod())
        in_channels = c.levels if c.input == "onehot" else 1
        self.likelihood = make_likelihood(c.likelihood, c.levels, c.mixtures)
        self.net = CausalConvNet(
            in_channels,
            c.hidden,
            self.likelihood.params_per_dim,
            layers=c.layers,
            kernel_size=c.kernel_size,
            dilation_growth=c.dilation_growth,
            dilation_cycle=c.dilation_cycle,
            act=c.activation,
            dropout=c.dropout,
            residual=c.residual,
        )

    def _encode(self, x: Tensor) -> Tensor:  # [B, L] levels -> [B, C_in, L]
        if self.config.input == "onehot":
            return F.one_hot(x.long(), self.config.levels).movedim(-1, 1).to(self._dtype)
        return (x * (2.0 / (self.config.levels - 1)) - 1.0).unsqueeze(1).to(self._dtype)

    @property
    def _dtype(self) -> torch.dtype:
        return self.net.first.weight.dtype

    def logits(self, x: Tensor) -> Tensor:
        """Parameters of every conditional: ``[B, L] -> [B, P, L]``; output d sees x_<d only."""
        return self.net(self._encode(x))

    def log_prob(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)  # [B, D]
        return self.likelihood.log_prob(self.logits(flat), flat)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """Ancestral sampling, one pixel at a time in raster order."""
        x = torch.zeros(n, self.dim, device=self.device)
        for d in range(self.dim):
            # causal convs pad on the left only, so the prefix x[:, :d+1] gives the same
            # logits at position d as the whole sequence, for a fraction of the work
            logits = self.logits(x[:, : d + 1])[..., d : d + 1]  # [n, P, 1]
            x[:, d] = self.likelihood.sample(logits, temperature)[:, 0]
        return x.view(n, *self.config.shape)

    @property
    def receptive_field(self) -> int:
        return self.net.receptive_field
