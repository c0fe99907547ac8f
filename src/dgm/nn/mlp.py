"""The multilayer perceptron every family uses (conditioners of flows, classifier heads,
posterior and prior networks), and how a context joins an input.

The last layer starts small (not zero, as Glow does) so that a conditioner starts near the
identity while gradients still reach every parameter from the first step.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.nn.activations import activation

LAST_INIT_SCALE = 1e-2


def shrink_last(layer: nn.Module, scale: float = LAST_INIT_SCALE) -> None:
    """Scale a last layer's weights down and zero its bias: the net starts near a constant."""
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
        shrink_last(self.last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.last(self.body(cat_context(x, context)))
