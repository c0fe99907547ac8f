"""Householder flow: volume-preserving products of reflections.

Tomczak & Welling (2016), "Improving Variational Auto-Encoders using Householder Flow":
``z' = H_K ... H_1 z`` with ``H = I - 2 v vᵀ / ||v||²``. Each ``H`` is orthogonal and symmetric,
so ``log|det| = 0`` and the inverse applies the same reflections in reverse order. Conditional
(the paper's VAE posterior): ``v_1`` is a Linear of the encoder's hidden vector and
``v_{t+1} = Linear(v_t)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dgm.transforms.base import Bijection, FlowLayer, zeros_like_batch


def _reflect(x: Tensor, v: Tensor) -> Tensor:
    """``(I - 2 v vᵀ/||v||²) x`` on the last dim; ``v`` broadcasts against ``x`` ``[..., D]``."""
    vx = (x * v).sum(-1, keepdim=True)
    vv = (v * v).sum(-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    return x - (2 * vx / vv) * v


def _as_reflections(v: Tensor) -> Tensor:
    """``[D] -> [1, D]``; ``[K, D]`` and ``[B, K, D]`` unchanged."""
    if v.dim() not in (1, 2, 3):
        raise ValueError(f"v must be [D], [K, D] or [B, K, D], got {tuple(v.shape)}")
    return v.unsqueeze(0) if v.dim() == 1 else v


def householder_matrix(v: Tensor) -> Tensor:
    """``Q = H_K...H_1``, orthogonal: ``[D]``/``[K, D] -> [D, D]``, ``[B, K, D] -> [B, D, D]``."""
    v = _as_reflections(v)
    d = v.shape[-1]
    # Qᵀ = H_1 ... H_K is built row by row: Qᵀ <- Qᵀ H_k reflects each row (H_k is symmetric)
    qt = torch.eye(d, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], d, d)
    for k in range(v.shape[-2]):
        qt = _reflect(qt, v[..., k : k + 1, :])  # [.., 1, D] broadcasts over the rows
    return qt.mT


class HouseholderTransform(Bijection):
    """``z' = H_K ... H_1 z`` (``H_1`` applied first); ``log|det| = 0``.

    ``v``: one reflection ``[D]``, ``K`` shared reflections ``[K, D]``, or per-example
    ``[B, K, D]``.
    """

    def __init__(self, v: Tensor) -> None:
        super().__init__(event_dim=1)
        self.v = _as_reflections(v)  # [K, D] or [B, K, D]

    @property
    def matrix(self) -> Tensor:
        """``Q = H_K ... H_1``: ``[D, D]`` or per-example ``[B, D, D]``."""
        return householder_matrix(self.v)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        for k in range(self.v.shape[-2]):
            x = _reflect(x, self.v[..., k, :])
        return x, zeros_like_batch(x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # each reflection is its own inverse; the product is undone in reverse order
        for k in reversed(range(self.v.shape[-2])):
            y = _reflect(y, self.v[..., k, :])
        return y, zeros_like_batch(y)

    def __repr__(self) -> str:
        return f"HouseholderTransform(dim={self.v.shape[-1]}, reflections={self.v.shape[-2]})"


class Householder(FlowLayer):
    """``reflections`` Householder reflections.

    Unconditional: ``v`` ``[K, D]`` learnt directly (random init: a reflection is never the
    identity). Conditional (``context_dim > 0``): ``v_1 = Linear(context)``, ``v_{t+1} =
    Linear(v_t)``, as in Tomczak & Welling (2016), giving per-example ``[B, K, D]``.
    """

    def __init__(self, dim: int, reflections: int = 1, context_dim: int = 0) -> None:
        super().__init__()
        if reflections < 1:
            raise ValueError(f"reflections must be >= 1, got {reflections}")
        self.dim = dim
        self.reflections = reflections
        self.context_dim = context_dim
        if context_dim > 0:
            self.first = nn.Linear(context_dim, dim)
            self.chain = nn.ModuleList(nn.Linear(dim, dim) for _ in range(reflections - 1))
        else:
            self.v = nn.Parameter(torch.randn(reflections, dim))

    def forward(self, context: Tensor | None = None) -> HouseholderTransform:
        if self.context_dim == 0:
            return HouseholderTransform(self.v)
        if context is None:
            raise ValueError(
                "this Householder layer is conditional: pass a context [B, context_dim]"
            )
        vs = [self.first(context)]  # [B, D]
        for linear in self.chain:
            vs.append(linear(vs[-1]))
        return HouseholderTransform(torch.stack(vs, dim=-2))  # [B, K, D]


__all__ = ["Householder", "HouseholderTransform", "householder_matrix"]
