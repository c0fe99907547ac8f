"""Masked autoregressive transforms: MAF (Papamakarios, Pavlakou & Murray 2017, "Masked
Autoregressive Flow for Density Estimation") and IAF (Kingma, Salimans, Jozefowicz, Chen,
Sutskever & Welling 2016, "Improved Variational Inference with Inverse Autoregressive Flow").

One elementwise bijection per dimension, its parameters computed by a MADE (Germain et al.
2015) from the dimensions *before* it in an ordering, so the Jacobian is triangular in that
order and the log-det is a sum of elementwise terms. The network reads its *input*, so:

- the forward ``x -> z`` is one network pass: all parameters come from ``x`` at once;
- the inverse ``z -> x`` is sequential: the parameters of the dimension at step ``i`` need
  the ``x`` of steps ``< i``, so it takes D passes, one per step of the ordering.

Which direction is cheap decides the use:

- **MAF** (density estimation): the forward is the normalising direction, so log p(x) costs
  one pass and sampling D passes. ``MaskedAutoregressive(...)`` as it is.
- **IAF as a density flow**: ``Inverted(MaskedAutoregressive(...))``, whose normalising
  direction is the sequential one: sampling (noise -> data) is one pass, density D passes.
- **IAF as a VAE posterior** (Kingma et al.'s use): the posterior draws ``z_0`` from the
  encoder's Gaussian and pushes it through ``z_t = f_t(z_{t-1})`` with each step's
  parameters computed from its input ``z_{t-1}`` (and the encoder's context ``h``), tracking
  ``log q(z_t) = log q(z_{t-1}) - log|det df_t/dz|``. That is exactly the forward of
  ``MaskedAutoregressive(..., context_dim=H)``: one pass per step, the log-det alongside;
  the data-to-noise reading of "forward" is immaterial there, as the posterior only ever
  samples and scores its own samples. ``gated=True`` gives the paper's update.

The elementwise maps (``kind``), with ``[a, b]`` the network's raw outputs for a dimension:

- ``"affine"`` (MAF): ``z = (x - mu) * exp(-alpha)``, ``log|dz/dx| = -alpha``, where ``mu = a``
  and ``alpha = c * tanh(b / c)`` (``c = log_scale_bound``, 3 by default). The soft clamp
  keeps every scale within ``[e^-c, e^c]`` per layer, so one layer can neither blow up nor
  collapse a dimension early in training, while staying smooth and near ``b`` for small
  ``b``;
- ``"gated"`` (IAF's LSTM-like update, the paper's eqs. 11-14): ``z = sigma * x + (1 - sigma) * m``
  with ``sigma = sigmoid(s)``, ``[m, s] = [a, b]``: an affine map with scale ``sigma`` and
  shift ``(1 - sigma) m``, i.e. the affine form above with ``alpha = -log sigma =
  softplus(-s)`` and ``mu = -m e^-s``. It is computed directly: ``log sigma = -softplus(-s)``
  is stable for every ``s``, and the scale never exceeds 1. As the paper advises, ``s``
  starts near +2 (``sigma ~ 0.88``) so that each step moves ``x`` only a little;
- ``"spline"`` (Durkan et al. 2019): ``z_d`` is a rational-quadratic spline of ``x_d`` on
  ``[-bound, bound]`` (identity outside) with ``3K - 1`` parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.nn.made import MADENet, MaskOrder
from dgm.nn.mlp import LAST_INIT_SCALE
from dgm.transforms.base import Bijection, FlowLayer
from dgm.transforms.splines import rational_quadratic_spline, spline_params, split_spline_params

Kind = Literal["affine", "gated", "spline"]

# the raw s of the gated update starts here: sigmoid(2) ~ 0.88, a small first step (IAF, sec. 4)
GATE_INIT = 2.0


def params_per_dim(kind: str, bins: int = 8) -> int:
    """Conditioner outputs per dimension: 2 for ``affine``/``gated``, ``3K - 1`` for ``spline``."""
    if kind in ("affine", "gated"):
        return 2
    if kind == "spline":
        return spline_params(bins)
    raise ValueError(f"unknown kind {kind!r}: affine | gated | spline")


class MaskedAutoregressiveTransform(Bijection):
    """``z_d = tau(x_d; theta_d(x_<d))`` for vectors ``[B, D]``.

    ``conditioner`` maps ``x [B, D] -> [B, D, P]`` (``P = params_per_dim(kind, bins)``) such
    that the parameters of dimension ``order[i]`` depend only on ``x[:, order[:i]]``; ``order``
    ``[D]`` (long) lists the dimensions in generation order. The forward is one conditioner
    call; the inverse is D calls (see the module docstring).
    """

    def __init__(
        self,
        conditioner: Callable[[Tensor], Tensor],
        kind: Kind = "affine",
        order: Tensor | None = None,
        bins: int = 8,
        bound: float = 3.0,
        log_scale_bound: float = 3.0,
    ) -> None:
        super().__init__(event_dim=1)
        params_per_dim(kind, bins)  # validates kind
        self.conditioner, self.kind, self.order = conditioner, kind, order
        self.bins, self.bound, self.log_scale_bound = bins, bound, log_scale_bound

    def _log_scale(self, raw: Tensor) -> Tensor:
        c = self.log_scale_bound
        return c * torch.tanh(raw / c)  # the soft clamp: |alpha| < c, ~raw near 0

    def _map(self, x: Tensor, p: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        """The elementwise map with parameters ``p [B, D, P]``: output and elementwise
        log-derivative ``[B, D]`` of the direction computed."""
        if self.kind == "spline":
            w, h, d = split_spline_params(p, self.bins)
            return rational_quadratic_spline(x, w, h, d, self.bound, inverse=inverse)
        a, b = p[..., 0], p[..., 1]  # [B, D] each
        if self.kind == "affine":
            alpha = self._log_scale(b)
            if inverse:
                return x * alpha.exp() + a, alpha
            return (x - a) * torch.exp(-alpha), -alpha
        log_sigma = -F.softplus(-b)  # gated: log sigmoid(s), stable for any s
        sigma = log_sigma.exp()
        if inverse:
            return (x - (1 - sigma) * a) / sigma, -log_sigma
        return sigma * x + (1 - sigma) * a, log_sigma

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, ladj = self._map(x, self.conditioner(x), inverse=False)
        return z, ladj.sum(-1)

    def inverse_and_ladj(self, z: Tensor) -> tuple[Tensor, Tensor]:
        dim = z.shape[-1]
        order = (
            self.order
            if self.order is not None
            else torch.arange(dim, device=z.device)  # natural order by default
        )
        x = torch.zeros_like(z)
        for i in range(dim):
            # x[:, order[:i]] are final, hence so are the parameters of order[i]; the values
            # not yet final only reach the parameters of later dimensions
            full, ladj = self._map(z, self.conditioner(x), inverse=True)
            if i == dim - 1:
                # the last pass saw every final input, so every parameter (and the log-det)
                # is exact: D passes in all, none spent only on the log-det
                return full, ladj.sum(-1)
            d = order[i : i + 1]  # [1]
            x = x.index_copy(-1, d, full.index_select(-1, d))
        return x, z.new_zeros(z.shape[0])  # D = 0: nothing to invert

    def __repr__(self) -> str:
        return f"MaskedAutoregressiveTransform(kind={self.kind!r})"


class MaskedAutoregressive(FlowLayer):
    """A MAF layer on vectors ``[B, dim]`` with a MADE conditioner (see the module docstring).

    ``kind="affine"`` (``gated=True`` for IAF's gated update) or ``"spline"`` (``bins``,
    ``bound``); ``order`` is the MADE ordering (``"random"`` drawn from ``seed``, which also
    draws the hidden connectivity); ``context_dim > 0`` makes the layer conditional, the
    context ``[B, context_dim]`` entering every hidden layer of the MADE.

    The MADE's last layer starts scaled down (by ``LAST_INIT_SCALE``) rather than zeroed, so
    the layer starts near the identity (the gated update near ``z = sigmoid(2) x``) while the
    first step's gradients reach every parameter.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        kind: Literal["affine", "spline"] = "affine",
        bins: int = 8,
        bound: float = 3.0,
        order: MaskOrder = "natural",
        seed: int = 0,
        context_dim: int = 0,
        activation: str = "relu",
        gated: bool = False,
        log_scale_bound: float = 3.0,
    ) -> None:
        super().__init__()
        if kind not in ("affine", "spline"):
            raise ValueError(f"unknown kind {kind!r}: affine | spline")
        if gated and kind != "affine":
            raise ValueError("gated=True is IAF's gated affine update; it needs kind='affine'")
        self.kind: Kind = "gated" if gated else kind
        self.dim, self.bins, self.bound = dim, bins, bound
        self.context_dim, self.log_scale_bound = context_dim, log_scale_bound
        self.num_params = params_per_dim(self.kind, bins)
        self.net = MADENet(
            dim,
            1,
            self.num_params,
            hidden_sizes=hidden,
            order=order,
            seed=seed,
            act=activation,
            context_dim=context_dim,
        )
        with torch.no_grad():
            self.net.last.weight.mul_(LAST_INIT_SCALE)
            self.net.last.bias.zero_()
            if self.kind == "gated":
                self.net.last.bias[dim : 2 * dim] = GATE_INIT  # output p * D + d: s is p = 1

    def conditioner(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``[B, D] (, [B, C]) -> [B, D, P]``: the parameters of every dimension."""
        out = self.net(x, 0, context)  # [B, P * D], unit p * D + d
        return out.view(x.shape[0], self.num_params, self.dim).transpose(1, 2)

    def forward(self, context: Tensor | None = None) -> MaskedAutoregressiveTransform:
        if self.context_dim > 0:
            if context is None:
                raise ValueError(f"this layer has context_dim={self.context_dim}: pass a context")

            def cond(x: Tensor) -> Tensor:
                return self.conditioner(x, context)
        else:  # unconditional: any context is ignored

            def cond(x: Tensor) -> Tensor:
                return self.conditioner(x)

        return MaskedAutoregressiveTransform(
            cond,
            self.kind,
            order=self.net.order(0),
            bins=self.bins,
            bound=self.bound,
            log_scale_bound=self.log_scale_bound,
        )


__all__ = ["MaskedAutoregressive", "MaskedAutoregressiveTransform", "params_per_dim"]
