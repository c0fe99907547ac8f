"""Dequantisation: noise ``u`` in [0, 1)^D added to integer data so a continuous density can model
it, with a bound on the discrete log-likelihood (Theis et al. 2016; Ho et al. 2019, "Flow++").

For levels ``x`` in {0..L-1}^D and ``v = (x + u) / L`` in [0, 1)^D, Jensen's inequality gives

    log P(x) >= E_{u ~ q(u|x)} [ log p(v) - D log L - log q(u|x) ]

- uniform dequantisation: q(u|x) = U[0, 1)^D, log q = 0;
- variational dequantisation (Flow++): q(u|x) = sigmoid(g(eps; h(x))), eps ~ N(0, I), with
  ``g`` a conditional flow whose context ``h(x)`` is a small network on ``x``; trained jointly
  with the model, it tightens the bound.
Either way the model's samples are the floor of ``L v``: exactly draws from the discrete
model P(x) = int_{cell of x} p(v) dv.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dgm.distributions.normal import StandardNormal
from dgm.nn.activations import activation
from dgm.transforms.base import FlowSequence
from dgm.transforms.coupling import Coupling
from dgm.transforms.elementwise import SigmoidTransform


class UniformDequantizer(nn.Module):
    """q(u|x) = U[0, 1)^D: ``x -> (u, log q(u|x) = 0)``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.rand_like(x), x.new_zeros(x.shape[0])


class VariationalDequantizer(nn.Module):
    """Flow++'s q(u|x): affine couplings on Gaussian noise, conditioned on features of ``x``,
    squashed into (0, 1) by a sigmoid. ``x -> (u, log q(u|x))``."""

    def __init__(
        self,
        shape: tuple[int, ...],
        levels: int,
        hidden: int = 32,
        layers: int = 4,
        context: int = 16,
    ) -> None:
        super().__init__()
        shape = tuple(shape)
        self.levels = levels
        image = len(shape) == 3
        if image:
            self.embed: nn.Module = nn.Sequential(
                nn.Conv2d(shape[0], hidden, 3, padding=1),
                activation("elu"),
                nn.Conv2d(hidden, context, 3, padding=1),
            )
            # one channel: channel masks cannot split it, so checkerboards
            mask = "channel" if shape[0] > 1 else "checkerboard"
        else:
            self.embed = nn.Sequential(
                nn.Linear(shape[0], hidden), activation("elu"), nn.Linear(hidden, context)
            )
            mask = "half" if shape[0] > 1 else "parity"
        self.flow = FlowSequence(
            Coupling(shape, mask, flip=i % 2 == 1, hidden=hidden, layers=1, context_dim=context)
            for i in range(layers)
        )
        self.noise = StandardNormal(shape)
        self.squash = SigmoidTransform(event_dim=len(shape))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.embed(x * (2.0 / (self.levels - 1)) - 1.0)  # levels -> [-1, 1]
        eps = torch.randn_like(x)
        v, ladj = self.flow(h).call_and_ladj(eps)
        u, ladj_sigmoid = self.squash.call_and_ladj(v)
        return u, self.noise.log_prob(eps) - ladj - ladj_sigmoid


def dequantize_bound_offset(dim: int, levels: int) -> float:
    """``D log L``: the log-volume factor between [0, L)^D and [0, 1)^D."""
    return dim * math.log(levels)
