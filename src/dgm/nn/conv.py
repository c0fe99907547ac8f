"""Convolutional conditioner networks for flows on images: they map the untouched part of an
image (and a context) to the parameters of an elementwise bijection on the rest. Glow's
three-layer net, 3x3 conv, 1x1 conv, 3x3 conv (Kingma & Dhariwal 2018), with optional residual
blocks in between as in RealNVP's ResNets (Dinh et al. 2017).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dgm.nn.activations import activation
from dgm.nn.mlp import cat_context, shrink_last


class ResidualConvBlock(nn.Module):
    """``x + conv3x3(act(conv3x3(act(x))))`` with ActNorm-free GroupNorm(1) for stability."""

    def __init__(self, channels: int, act: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(1, channels),
            activation(act),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(1, channels),
            activation(act),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class ConvConditioner(nn.Module):
    """``[B, C_in (+ context), H, W] -> [B, C_out, H, W]``: Glow's 3x3 -> 1x1 -> 3x3 net, with
    ``blocks`` residual blocks before the last conv (RealNVP's ResNet) when ``blocks > 0``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        blocks: int = 0,
        context_channels: int = 0,
        act: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels + context_channels, hidden, 3, padding=1),
            activation(act),
            nn.Conv2d(hidden, hidden, 1),
            activation(act),
        ]
        layers += [ResidualConvBlock(hidden, act, dropout) for _ in range(blocks)]
        self.body = nn.Sequential(*layers)
        self.last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        shrink_last(self.last)
        # channels-last weights: oneDNN's CPU convolutions run about 1.7x faster in that
        # layout (and cuDNN's are at least as fast); saved weights are made contiguous anyway
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.last(self.body(cat_context(x, context)))
