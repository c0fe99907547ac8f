"""Encoder and decoder networks of a VAE (Kingma & Welling 2014, "Auto-Encoding Variational
Bayes"): an encoder maps a (preprocessed) example to a feature vector ``h [B, H]`` that the
posterior reads; a decoder maps a code ``z [B, K]`` to likelihood parameters ``[B, P, *event]``.

- :class:`MLPEncoder` / :class:`MLPDecoder`: fully connected, on the flattened example (the
  paper's MNIST networks); with ``layers=0`` both are linear (the encoder is the identity).
- :class:`ConvEncoder` / :class:`ConvDecoder`: a small DCGAN-like pair (Radford et al. 2016):
  stride-2 4x4 convolutions halve the image while the channels double, then a fully connected
  layer; the decoder mirrors it with stride-2 transposed convolutions, the last of which emits
  the parameters. The number of halvings comes from the shape (see
  :func:`halvings`): two for 8x8 and 28x28 images.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

from dgm.nn.activations import activation

if TYPE_CHECKING:
    from dgm.models.latent.base import LatentConfig


def _mlp(sizes: Sequence[int], act: str, dropout: float) -> nn.Sequential:
    """Linear -> activation (-> dropout) for every consecutive pair of ``sizes``."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def halvings(height: int, width: int, most: int = 3) -> int:
    """How many stride-2 layers an image takes: halve while both sides are even and >= 4.

    8x8 -> 4x4 -> 2x2 and 28x28 -> 14x14 -> 7x7 both give 2; 32x32 gives 3; odd sides give 0.
    """
    n = 0
    while n < most and height % 2 == 0 and width % 2 == 0 and min(height, width) >= 4:
        height, width, n = height // 2, width // 2, n + 1
    return n


class MLPEncoder(nn.Module):
    """``[B, *event] -> [B, H]``: ``layers`` hidden layers of ``hidden`` units on the flattened
    example; ``layers=0`` passes the flattened example through (``H = D``)."""

    def __init__(
        self,
        shape: Sequence[int],
        hidden: int,
        layers: int,
        act: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dim = math.prod(shape)
        self.net = _mlp([dim] + [hidden] * layers, act, dropout)
        self.out_dim = hidden if layers > 0 else dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """``[B, K] -> [B, P, *event]``: ``c.layers`` hidden layers of ``c.hidden`` units, then a
    linear output layer (``layers=0``: a linear decoder)."""

    def __init__(self, c: LatentConfig, code_dim: int, params_per_dim: int) -> None:
        super().__init__()
        self.shape, self.params_per_dim = tuple(c.shape), params_per_dim
        self.body = _mlp([code_dim] + [c.hidden] * c.layers, c.activation, c.dropout)
        width = c.hidden if c.layers > 0 else code_dim
        self.last = nn.Linear(width, params_per_dim * math.prod(self.shape))

    def forward(self, z: Tensor) -> Tensor:
        out = self.last(self.body(z))  # [B, P * D], unit p * D + d
        return out.view(z.shape[0], self.params_per_dim, *self.shape)


class ConvEncoder(nn.Module):
    """``[B, C, H, W] -> [B, hidden]``: ``n`` stride-2 4x4 convolutions with ``channels * 2^i``
    channels (a 3x3 convolution when the image cannot be halved), then a fully connected layer."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        channels, act = config.channels, config.activation
        c, h, w = config.shape
        n = halvings(h, w)
        layers: list[nn.Module] = []
        if n == 0:
            layers += [nn.Conv2d(c, channels, 3, padding=1), activation(act)]
            out_c = channels
        for i in range(n):
            out_c = channels * 2**i
            layers += [nn.Conv2d(c, out_c, 4, stride=2, padding=1), activation(act)]
            c = out_c
        self.convs = nn.Sequential(*layers)
        flat = out_c * (h // 2**n) * (w // 2**n)
        self.fc = _mlp([flat, config.hidden], act, config.dropout)
        self.out_dim = config.hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x).flatten(1))


class ConvDecoder(nn.Module):
    """``[B, K] -> [B, P, C, H, W]``: fully connected layers to the encoder's smallest feature
    map, then ``n`` stride-2 4x4 transposed convolutions back to ``H x W``, the last of which
    emits the ``P * C`` parameter maps (as DCGAN's generator; no full-resolution hidden maps,
    which keeps the many-sample likelihood estimates light). A 3x3 convolution when ``n = 0``."""

    def __init__(self, config: LatentConfig, code_dim: int, params_per_dim: int) -> None:
        super().__init__()
        channels, act = config.channels, config.activation
        self.shape, self.params_per_dim = tuple(config.shape), params_per_dim
        c, h, w = self.shape
        n = halvings(h, w)
        chans = [channels * 2**i for i in range(n)] or [channels]  # per encoder stage
        self.start = (chans[-1], h // 2**n, w // 2**n)
        self.fc = _mlp([code_dim, config.hidden, math.prod(self.start)], act, config.dropout)
        out = params_per_dim * c
        layers: list[nn.Module] = []
        for i in reversed(range(1, n)):
            layers += [
                nn.ConvTranspose2d(chans[i], chans[i - 1], 4, stride=2, padding=1),
                activation(act),
            ]
        layers.append(
            nn.ConvTranspose2d(chans[0], out, 4, stride=2, padding=1)
            if n > 0
            else nn.Conv2d(channels, out, 3, padding=1)
        )
        self.convs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        out = self.convs(self.fc(z).view(z.shape[0], *self.start))  # [B, P * C, H, W]
        return out.view(z.shape[0], self.params_per_dim, *self.shape)


__all__ = ["ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder", "halvings"]
