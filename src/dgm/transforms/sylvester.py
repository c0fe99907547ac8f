"""Sylvester normalizing flows.

van den Berg, Hasenclever, Tomczak & Welling (2018), "Sylvester Normalizing Flows for
Variational Inference": ``z' = z + Q R h(R̃ Qᵀ z + b)`` with ``h = tanh``, ``Q`` ``D x M`` with
orthonormal columns and ``R``, ``R̃`` upper triangular ``M x M``. Sylvester's determinant identity
gives ``det(I_D + Q R diag(h') R̃ Qᵀ) = det(I_M + diag(h') R̃ R) = Π_i (1 + r_ii r̃_ii h'_i)``;
the diagonals are ``tanh`` of free parameters (as in the paper's code), so ``r_ii r̃_ii > -1``
and the map is invertible (though without a closed-form inverse).

Three ways to get ``Q``: orthogonal (``M <= D``, the paper's iterative orthogonalisation),
Householder (a product of reflections, ``M = D``) and triangular (``M = D``, ``Q`` the identity
or the reversal permutation, alternated between layers).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.transforms.base import Bijection, FlowLayer
from dgm.transforms.householder import householder_matrix


def orthogonalize(q: Tensor, tol: float = 1e-6, max_steps: int = 100) -> Tensor:
    """Orthonormal columns from ``q`` ``[..., D, M]`` (``M <= D``), differentiably.

    The paper's iteration ``Q <- Q (I + (I - QᵀQ)/2)`` (Björck & Bowie), which converges to the
    closest matrix with orthonormal columns, the polar factor, when the singular values of ``Q``
    lie in ``(0, sqrt(3))``: ``q`` is first divided by its Frobenius norm (per matrix) so they
    are ``<= 1``. Runs until ``||QᵀQ - I||_F < tol`` for every matrix of the batch, then one more
    step (convergence is quadratic, so the error drops to about ``tol²``: the log-det formula
    assumes ``QᵀQ = I``), or ``max_steps`` steps. ``tol`` is raised to what the dtype can reach.
    """
    d, m = q.shape[-2:]
    if m > d:
        raise ValueError(f"orthogonalize needs M <= D columns, got q of shape {tuple(q.shape)}")
    tol = max(tol, 8 * m * torch.finfo(q.dtype).eps)
    eye = torch.eye(m, dtype=q.dtype, device=q.device)
    norm = torch.linalg.matrix_norm(q, keepdim=True)  # Frobenius, [..., 1, 1]
    q = q / norm.clamp_min(torch.finfo(q.dtype).tiny)
    for _ in range(max_steps):
        defect = eye - q.mT @ q  # [..., M, M]
        converged = bool((torch.linalg.matrix_norm(defect) < tol).all())
        q = q + 0.5 * (q @ defect)
        if converged:
            break
    return q


def _log_cosh(x: Tensor) -> Tensor:
    """``log cosh x`` without overflow."""
    ax = x.abs()
    return ax + F.softplus(-2 * ax) - math.log(2)


def _upper(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Upper-triangular ``[..., M, M]`` with diagonal ``tanh(diag(raw))``; and ``diag(raw)``."""
    diag = torch.diagonal(raw, dim1=-2, dim2=-1)  # [..., M]
    return torch.triu(raw, diagonal=1) + torch.diag_embed(torch.tanh(diag)), diag


def _mv(mat: Tensor, vec: Tensor) -> Tensor:
    """Batched matrix-vector product ``[..., N, M] x [B, M] -> [B, N]`` (broadcasting)."""
    return (mat @ vec.unsqueeze(-1)).squeeze(-1)


class SylvesterTransform(Bijection):
    """``z' = z + Q R tanh(R̃ Qᵀ z + b)``; forward only (no closed-form inverse).

    ``q``: ``[D, M]`` or per-example ``[B, D, M]`` with orthonormal columns (the log-det assumes
    ``QᵀQ = I``; the layers build it). ``r``, ``r_tilde``: unconstrained ``[M, M]`` or
    ``[B, M, M]``; their strictly lower parts are ignored and their diagonals pass through
    ``tanh`` (so any values give an invertible map). ``b``: ``[M]`` or ``[B, M]``.
    """

    def __init__(self, q: Tensor, r: Tensor, r_tilde: Tensor, b: Tensor) -> None:
        super().__init__(event_dim=1)
        m = q.shape[-1]
        if r.shape[-2:] != (m, m) or r_tilde.shape[-2:] != (m, m) or b.shape[-1] != m:
            raise ValueError(
                f"q [.., D, M] needs r, r_tilde [.., M, M] and b [.., M]; got q {tuple(q.shape)}, "
                f"r {tuple(r.shape)}, r_tilde {tuple(r_tilde.shape)}, b {tuple(b.shape)}"
            )
        self.q = q
        self.b = b
        self.r, a = _upper(r)
        self.r_tilde, c = _upper(r_tilde)
        self._diag = torch.tanh(a) * torch.tanh(c)  # r_ii r̃_ii in (-1, 1), [M] or [B, M]
        # 1 + tanh(a) tanh(c) = cosh(a + c) / (cosh a cosh c): stays > 0 where tanh saturates
        # and 1 + r_ii r̃_ii would round to 0
        self._one_plus_diag = torch.exp(_log_cosh(a + c) - _log_cosh(a) - _log_cosh(c))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        qtx = (x.unsqueeze(-2) @ self.q).squeeze(-2)  # Qᵀx, [B, M]
        t = torch.tanh(_mv(self.r_tilde, qtx) + self.b)  # [B, M]
        y = x + _mv(self.q, _mv(self.r, t))  # [B, D]
        # 1 + r r̃ h' = (1 + r r̃) - r r̃ t²: a sum of positive terms when r r̃ < 0, so no
        # cancellation as r r̃ -> -1
        return y, torch.log(self._one_plus_diag - self._diag * t * t).sum(-1)

    def __repr__(self) -> str:
        return f"SylvesterTransform(dim={self.q.shape[-2]}, m={self.q.shape[-1]})"


class _SylvesterLayer(FlowLayer):
    """Shared parts: the triangles ``R``, ``R̃`` and ``b``, learnt or from a Linear of the context.

    Only the ``M(M+1)/2`` upper-triangular entries are parameters, so every parameter (and every
    output of the conditioner) reaches the map. Subclasses say how many numbers make ``Q``
    (``q_size``) and build it (``_build_q``).
    """

    def __init__(self, dim: int, m: int, q_size: int, context_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.m = m
        self.context_dim = context_dim
        rows, cols = torch.triu_indices(m, m)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        n_tri = m * (m + 1) // 2
        self._sizes = [n_tri, n_tri, m, q_size]
        if context_dim > 0:
            self.net = nn.Linear(context_dim, sum(self._sizes))
        else:
            # small random triangles: near the identity, yet gradients reach Q and b at once
            self.r = nn.Parameter(0.1 * torch.randn(n_tri))
            self.r_tilde = nn.Parameter(0.1 * torch.randn(n_tri))
            self.b = nn.Parameter(torch.zeros(m))
            self.q_params = nn.Parameter(torch.randn(q_size)) if q_size > 0 else None

    def _triangle(self, flat: Tensor) -> Tensor:
        """``[..., M(M+1)/2] -> [..., M, M]`` upper-triangular."""
        out = flat.new_zeros(*flat.shape[:-1], self.m, self.m)
        out[..., self._rows, self._cols] = flat
        return out

    def _build_q(self, q_params: Tensor | None) -> Tensor:
        raise NotImplementedError

    def forward(self, context: Tensor | None = None) -> SylvesterTransform:
        if self.context_dim == 0:
            r, r_tilde, b, q_params = self.r, self.r_tilde, self.b, self.q_params
        else:
            if context is None:
                raise ValueError(
                    f"this {type(self).__name__} layer is conditional: pass a context "
                    "[B, context_dim]"
                )
            r, r_tilde, b, q_params = self.net(context).split(self._sizes, dim=-1)
        q = self._build_q(q_params)
        return SylvesterTransform(q, self._triangle(r), self._triangle(r_tilde), b=b)


class SylvesterOrthogonal(_SylvesterLayer):
    """Orthogonal Sylvester flow: ``Q`` ``D x M`` (``M <= D``) by :func:`orthogonalize`."""

    def __init__(self, dim: int, m: int, context_dim: int = 0) -> None:
        if not 1 <= m <= dim:
            raise ValueError(f"need 1 <= m <= dim, got m={m}, dim={dim}")
        super().__init__(dim, m, dim * m, context_dim)

    def _build_q(self, q_params: Tensor | None) -> Tensor:
        assert q_params is not None
        return orthogonalize(q_params.reshape(*q_params.shape[:-1], self.dim, self.m))


class SylvesterHouseholder(_SylvesterLayer):
    """Householder Sylvester flow: ``Q = H_K ... H_1`` (``M = D``), ``K = reflections``."""

    def __init__(self, dim: int, reflections: int, context_dim: int = 0) -> None:
        if reflections < 1:
            raise ValueError(f"reflections must be >= 1, got {reflections}")
        super().__init__(dim, dim, reflections * dim, context_dim)
        self.reflections = reflections

    def _build_q(self, q_params: Tensor | None) -> Tensor:
        assert q_params is not None
        v = q_params.reshape(*q_params.shape[:-1], self.reflections, self.dim)  # [.., K, D]
        return householder_matrix(v)


class SylvesterTriangular(_SylvesterLayer):
    """Triangular Sylvester flow: ``Q`` the identity, or the reversal permutation if ``reverse``.

    Alternate ``reverse`` between layers so that both triangles' orders get used.
    """

    def __init__(self, dim: int, reverse: bool, context_dim: int = 0) -> None:
        super().__init__(dim, dim, 0, context_dim)
        self.reverse = reverse
        q = torch.eye(dim)
        self.register_buffer("_q", q.flip(-1) if reverse else q, persistent=False)

    def _build_q(self, q_params: Tensor | None) -> Tensor:
        return self._q


__all__ = [
    "SylvesterHouseholder",
    "SylvesterOrthogonal",
    "SylvesterTransform",
    "SylvesterTriangular",
    "orthogonalize",
]
