"""Conditioner networks for flows: they map the untouched part of the input (and a context)
to the parameters of an elementwise bijection on the rest.

- :class:`MLP` for vectors (RealNVP on tabular data, Dinh et al. 2017);
- :class:`ConvConditioner`, Glow's three-layer net: 3x3 conv, 1x1 conv, 3x3 conv (Kingma &
  Dhariwal 2018), with optional residual blocks in between as in RealNVP's ResNets.

The last layer starts small (not zero, as Glow does) so that every coupling starts near the
identity while gradients still reach every parameter from the first step.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.nn.causal import activation

LAST_INIT_SCALE = 1e-2


def _shrink(layer: nn.Module, scale: float = LAST_INIT_SCALE) -> None:
    with torch.no_grad():
        layer.weight.mul_(scale)
        if layer.bias is not None:
            layer.bias.zero_()


def cat_context(x: Tensor, context: Tensor | None) -> Tensor:
    """Join a context to the input along dim 1; a vector context ``[B, C]`` is broadcast over
    an image's positions."""
    if context is None:
        return x
    if x.dim() > 2 and context.dim() == 2:
        context = context[(...,) + (None,) * (x.dim() - 2)].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, context.to(x.dtype)], dim=1)


class MLP(nn.Module):
    """``[B, in (+ context)] -> [B, out]`` through ``hidden`` layers."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        context_dim: int = 0,
        act: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        sizes = [in_features + context_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.last = nn.Linear(sizes[-1], out_features)
        _shrink(self.last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.last(self.body(cat_context(x, context)))


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
        _shrink(self.last)
        # channels-last weights: oneDNN's CPU convolutions run about 1.7x faster in that
        # layout (and cuDNN's are at least as fast); saved weights are made contiguous anyway
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.last(self.body(cat_context(x, context)))
