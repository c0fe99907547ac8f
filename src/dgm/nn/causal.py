"""Causal 1-D convolutions over a sequence (a flattened image, audio, text).

Output ``t`` of an *exclusive* (mask A) layer sees inputs ``< t``; of an *inclusive* (mask B)
layer, inputs ``<= t``. One exclusive layer followed by inclusive ones makes a network whose
output ``t`` depends only on inputs ``< t``: the conditionals of an autoregressive model
(van den Oord et al. 2016, "WaveNet"; Tomczak 2022, "Deep Generative Modeling", ch. 2).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

Activation = Literal["leaky_relu", "relu", "gelu", "elu", "tanh"]


def activation(name: str) -> nn.Module:
    return {
        "leaky_relu": nn.LeakyReLU,
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "elu": nn.ELU,
        "tanh": nn.Tanh,
    }[name]()


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution padded on the left only, so no output sees the future."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        exclusive: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.exclusive = exclusive
        # one more step of padding shifts the output right by one: output t sees inputs < t
        self.left_pad = (kernel_size - 1) * dilation + int(exclusive)

    def forward(self, x: Tensor) -> Tensor:  # [B, C_in, L] -> [B, C_out, L]
        length = x.shape[-1]
        return super().forward(F.pad(x, (self.left_pad, 0)))[..., :length]

    @property
    def reach(self) -> int:
        """How many steps back the layer looks (its receptive field minus one)."""
        return self.left_pad


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
