"""Autoregressive model with causal 1-D convolutions over the flattened image.

p(x) = prod_d p(x_d | x_<d), each conditional a categorical over the data's K levels whose
logits come from a causal convolutional network (Tomczak 2022, "Deep Generative Modeling",
ch. 2; van den Oord et al. 2016, "WaveNet"). Pixels are read in raster order.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.autoregressive.base import AutoregressiveModel, InputEncoding
from dgm.models.base import DiscreteConfig
from dgm.models.capabilities import ReceptiveField
from dgm.nn.activations import Activation, activation
from dgm.nn.causal import CausalConv1d
from dgm.registry import register


class CausalBlock(nn.Module):
    """Inclusive causal conv -> activation -> dropout, with an optional residual connection
    (``c.hidden`` channels, ``c.kernel_size`` taps ``dilation`` apart)."""

    def __init__(self, c: ARMConfig, dilation: int) -> None:
        super().__init__()
        self.conv = CausalConv1d(c.hidden, c.hidden, c.kernel_size, dilation=dilation)
        self.act = activation(c.activation)
        self.drop = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.residual = c.residual

    def forward(self, h: Tensor) -> Tensor:  # [B, C, L] -> [B, C, L]
        out = self.drop(self.act(self.conv(h)))
        return h + out if self.residual else out


class CausalConvNet(nn.Module):
    """Exclusive first layer, ``c.layers - 2`` inclusive hidden blocks, inclusive output layer.

    ``[B, C_in, L] -> [B, C_out, L]`` where output ``t`` depends on inputs ``< t`` only.
    Dilations grow as ``growth ** i`` for hidden block ``i`` (cycling after ``cycle`` blocks)
    so the receptive field grows exponentially with depth, as in WaveNet.
    """

    def __init__(self, in_channels: int, out_channels: int, c: ARMConfig) -> None:
        super().__init__()
        if c.layers < 2:
            raise ValueError("a causal conv net needs at least 2 layers (input and output)")
        self.first = CausalConv1d(in_channels, c.hidden, c.kernel_size, exclusive=True)
        self.act = activation(c.activation)
        cycle = max(c.dilation_cycle, 1)
        self.blocks = nn.ModuleList(
            CausalBlock(c, c.dilation_growth ** (i % cycle)) for i in range(c.layers - 2)
        )
        self.last = CausalConv1d(c.hidden, out_channels, c.kernel_size)

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
class ARMConfig(DiscreteConfig):
    hidden: int = opt(64, "channels of the hidden layers")
    layers: int = opt(8, "causal conv layers, the first (exclusive) and last included")
    kernel_size: int = opt(5, "kernel width of every layer")
    dilation_growth: int = opt(2, "hidden block i has dilation growth**(i % cycle); 1 = none")
    dilation_cycle: int = opt(4, "blocks after which the dilation starts again at 1")
    activation: Activation = opt("gelu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.3, "dropout after each hidden block")
    residual: bool = opt(True, "residual connections around hidden blocks")
    input: InputEncoding = opt(
        "onehot", "pixels enter as one channel per level, or as one scaled value (the notebook's)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden < 1 or self.layers < 2 or self.kernel_size < 1:
            raise ConfigError("need hidden >= 1, layers >= 2 and kernel_size >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dilation_growth < 1:
            raise ConfigError("dilation_growth must be >= 1")


@register("arm", "autoregressive", "causal 1-D convolutions over the flattened image (ARM)")
class ARM(AutoregressiveModel, ReceptiveField):
    """ARM(net, likelihood): exact log-likelihood, ancestral sampling in raster order (each
    step a pass over the prefix: causal convs pad on the left only)."""

    Config = ARMConfig
    config: ARMConfig

    def __init__(self, config: ARMConfig) -> None:
        super().__init__(config)
        c = config
        in_channels = c.levels if c.input == "onehot" else 1
        self.net = CausalConvNet(in_channels, self.likelihood.params_per_dim, c)

    def logits(self, flat: Tensor) -> Tensor:
        """Parameters of every conditional: ``[B, L] -> [B, P, L]``; output d sees x_<d only."""
        return self.net(self.encode_sequence(flat))

    @property
    def receptive_field(self) -> int:
        return self.net.receptive_field
