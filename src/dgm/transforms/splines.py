"""Monotonic rational-quadratic splines (Durkan, Bekasov, Murray & Papamakarios 2019, "Neural
Spline Flows").

An elementwise map on ``[-B, B]`` made of ``K`` bins, each a ratio of two quadratics
(Gregory & Delbourgo 1982), monotone and differentiable, with an analytic inverse; outside
``[-B, B]`` it is the identity (the paper's linear tails). It is given ``3K - 1`` unconstrained
numbers per element:

- ``K`` bin widths and ``K`` bin heights, through a softmax, floored at ``min_bin_width`` /
  ``min_bin_height`` and scaled to ``2B`` (the knots run from ``(-B, -B)`` to ``(B, B)``);
- ``K - 1`` derivatives at the inner knots, through ``min_derivative + softplus``; the two
  boundary derivatives are 1, so the spline joins the identity tails with a continuous slope.

The softplus is shifted so that a zero input gives a derivative of exactly 1: all-zero
parameters (uniform bins, unit slopes) are then exactly the identity, which is where a flow
whose conditioner's last layer starts near zero should start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.mlp import LAST_INIT_SCALE
from dgm.transforms.base import Bijection, FlowLayer, sum_except_batch


def spline_params(k: int) -> int:
    """Unconstrained numbers per element of a ``k``-bin spline: ``3k - 1``."""
    return 3 * k - 1


def split_spline_params(p: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split the last dim (``3k - 1``) into widths ``[..., k]``, heights ``[..., k]`` and inner
    derivatives ``[..., k - 1]``."""
    if p.shape[-1] != spline_params(k):
        raise ValueError(f"a {k}-bin spline takes {spline_params(k)} params, got {p.shape[-1]}")
    return p[..., :k], p[..., k : 2 * k], p[..., 2 * k :]


def _positions(raw: Tensor, bound: float, minimum: float) -> Tensor:
    """Knot positions ``[..., K + 1]`` from unnormalised bin sizes ``[..., K]``."""
    k = raw.shape[-1]
    if minimum * k >= 1:
        raise ValueError(f"minimum bin size {minimum} is too large for {k} bins")
    size = minimum + (1 - minimum * k) * torch.softmax(raw, dim=-1)  # [..., K], sums to 1
    inner = torch.cumsum(size[..., :-1], dim=-1)  # [..., K - 1] in (0, 1)
    # the end knots are set, not summed: they must be exactly -B and B whatever the rounding
    one = torch.ones_like(raw[..., :1])
    return torch.cat([-bound * one, (2 * bound) * inner - bound, bound * one], dim=-1)


def spline_knots(
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    bound: float = 3.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor, Tensor]:
    """The knots ``(x_k, y_k)`` and the derivatives there, each ``[..., K + 1]``."""
    xk = _positions(widths, bound, min_bin_width)
    yk = _positions(heights, bound, min_bin_height)
    # softplus(raw + shift) + min = 1 at raw = 0 (see the module docstring)
    shift = math.log(math.expm1(1 - min_derivative))
    inner = min_derivative + F.softplus(derivatives + shift)  # [..., K - 1]
    one = torch.ones_like(inner[..., :1])
    return xk, yk, torch.cat([one, inner, one], dim=-1)


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    bound: float = 3.0,
    inverse: bool = False,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """The spline elementwise: ``x [...]`` with params ``[..., K]``, ``[..., K]``, ``[..., K-1]``
    (leading shapes equal to, or broadcastable with, ``x``'s).

    Returns the output and the elementwise log-derivative of the map computed, both of the
    (broadcast) shape of ``x``: ``log|dy/dx|`` forward; with ``inverse=True`` the input is ``y``
    and the output ``x = f^-1(y)``, with ``log|dx/dy| = -log|dy/dx|``.
    """
    k = widths.shape[-1]
    if heights.shape[-1] != k or derivatives.shape[-1] != k - 1:
        raise ValueError("widths, heights and derivatives must have K, K and K - 1 entries")
    shape = torch.broadcast_shapes(
        x.shape, widths.shape[:-1], heights.shape[:-1], derivatives.shape[:-1]
    )
    x = x.expand(shape)
    xk, yk, dk = spline_knots(
        widths.expand(*shape, k),
        heights.expand(*shape, k),
        derivatives.expand(*shape, k - 1),
        bound,
        min_bin_width,
        min_bin_height,
        min_derivative,
    )  # [..., K + 1] each

    inside = (x >= -bound) & (x <= bound)
    # the spline branch only ever sees [-B, B], so the tails (where the identity is chosen)
    # cannot put inf or nan into the gradients through torch.where
    xc = x.clamp(-bound, bound)
    knots = yk if inverse else xk
    # the bin: how many inner knots lie at or below the input (0..K-1)
    idx = (xc[..., None] >= knots[..., 1:-1]).sum(-1, keepdim=True)  # [..., 1]

    def at(t: Tensor, offset: int) -> Tensor:
        return t.gather(-1, idx + offset).squeeze(-1)

    x_lo, x_hi, y_lo, y_hi = at(xk, 0), at(xk, 1), at(yk, 0), at(yk, 1)
    d_lo, d_hi = at(dk, 0), at(dk, 1)
    w, h = x_hi - x_lo, y_hi - y_lo
    s = h / w  # the bin's slope
    bend = d_lo + d_hi - 2 * s

    if inverse:
        # the paper's quadratic a xi^2 + b xi + c = 0 (eqs. 6-8) and its root in the bin,
        # 2c / (-b - sqrt(b^2 - 4ac)). That form is stable for b >= 0 only: for b < 0 (near
        # the top of a flat bin whose end slope is steep) -b - sqrt(.) cancels, losing
        # ~d/s of the digits, so there the same root is taken as (-b + sqrt(.)) / 2a. Since
        # b < 0 implies a > h s > 0, neither division can fail where it is chosen.
        dy = xc - y_lo
        a = h * (s - d_lo) + dy * bend
        b = h * d_lo - dy * bend
        c = -s * dy
        root = (b * b - 4 * a * c).clamp_min(0).sqrt()  # >= 0 in exact arithmetic
        pos = b >= 0
        # the branch not taken gets a harmless denominator: no inf to poison the gradients
        lo_den = torch.where(pos, -b - root, -torch.ones_like(b))
        hi_den = torch.where(pos, torch.ones_like(a), 2 * a)
        xi = torch.where(pos, 2 * c / lo_den, (root - b) / hi_den)
        out = x_lo + xi * w
    else:
        xi = (xc - x_lo) / w
        out = y_lo + h * (s * xi**2 + d_lo * xi * (1 - xi)) / (s + bend * xi * (1 - xi))

    # log dy/dx at xi (eq. 5), the same expression in both directions
    one_m = 1 - xi
    num = d_hi * xi**2 + 2 * s * xi * one_m + d_lo * one_m**2
    den = s + bend * xi * one_m
    ladj = 2 * torch.log(s) + torch.log(num) - 2 * torch.log(den)
    if inverse:
        ladj = -ladj
    return torch.where(inside, out, x), torch.where(inside, ladj, torch.zeros_like(ladj))


class SplineTransform(Bijection):
    """An elementwise rational-quadratic spline with parameters ``[..., *event, 3K - 1]``:
    shared (``[D, 3K - 1]``) or per example (``[B, D, 3K - 1]``)."""

    def __init__(
        self, params: Tensor, bins: int = 8, bound: float = 3.0, event_dim: int = 1
    ) -> None:
        super().__init__(event_dim)
        self.params, self.bins, self.bound = params, bins, bound
        self.w, self.h, self.d = split_spline_params(params, bins)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, ladj = rational_quadratic_spline(x, self.w, self.h, self.d, self.bound)
        return y, sum_except_batch(ladj)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x, ladj = rational_quadratic_spline(y, self.w, self.h, self.d, self.bound, inverse=True)
        return x, sum_except_batch(ladj)

    def __repr__(self) -> str:
        return f"SplineTransform(bins={self.bins}, bound={self.bound})"


class ElementwiseSpline(FlowLayer):
    """A learnable spline per dimension of a vector ``[B, D]``.

    Unconditional: free parameters ``[D, 3K - 1]``, starting at zero, i.e. exactly at the
    identity. Conditional (``context_dim > 0``): a linear map from the context
    ``[B, context_dim]`` to per-example parameters ``[B, D, 3K - 1]``, its weight scaled down
    (not zeroed) so the layer starts near the identity while the context (an encoder's
    output, say) receives gradients from the first step.
    """

    def __init__(self, dim: int, bins: int = 8, bound: float = 3.0, context_dim: int = 0) -> None:
        super().__init__()
        self.dim, self.bins, self.bound, self.context_dim = dim, bins, bound, context_dim
        n = spline_params(bins)
        if context_dim > 0:
            self.net: nn.Linear | None = nn.Linear(context_dim, dim * n)
            with torch.no_grad():
                self.net.weight.mul_(LAST_INIT_SCALE)
                self.net.bias.zero_()
            self.params = None
        else:
            self.net = None
            self.params = nn.Parameter(torch.zeros(dim, n))

    def forward(self, context: Tensor | None = None) -> SplineTransform:
        if self.net is None:  # unconditional: any context is ignored
            return SplineTransform(self.params, self.bins, self.bound)
        if context is None:
            raise ValueError(f"this layer has context_dim={self.context_dim}: pass a context")
        p = self.net(context.to(self.net.weight.dtype))  # [B, D * (3K - 1)]
        p = p.view(-1, self.dim, spline_params(self.bins))  # [B, D, 3K - 1]
        return SplineTransform(p, self.bins, self.bound)


__all__ = [
    "ElementwiseSpline",
    "SplineTransform",
    "rational_quadratic_spline",
    "spline_knots",
    "spline_params",
    "split_spline_params",
]
