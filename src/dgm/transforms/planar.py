"""Planar and radial flows.

Rezende & Mohamed (2015), "Variational Inference with Normalizing Flows", section 4.1, with
the invertibility constraints of its appendix A.1:

- planar: ``f(z) = z + û h(wᵀz + b)`` with ``h = tanh`` and
  ``û = u + (m(wᵀu) - wᵀu) w / ||w||²``, ``m(a) = -1 + softplus(a)``, so ``wᵀû > -1``;
- radial: ``f(z) = z + β̂ (z - z₀) / (α + r)``, ``r = ||z - z₀||``, with ``α = softplus(·) > 0``
  and ``β̂ = -α + softplus(·) > -α``.

Both log-dets are closed-form. The planar inverse is not: it reduces to one increasing scalar
equation in ``s = wᵀz``, solved here by a vectorised, bracketed (safeguarded) Newton iteration.
The radial inverse reduces to a quadratic in ``r``, solved in closed form. So a density flow
built from these layers can also sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.transforms.base import Bijection, FlowLayer


def _scalar_param(t: Tensor) -> Tensor:
    """A shared (``[]``, ``[1]``) or per-example (``[B]``, ``[B, 1]``) scalar as ``[1]``/``[B]``."""
    return t.reshape(-1)


def solve_increasing(
    fn: Callable[[Tensor], tuple[Tensor, Tensor]],
    lo: Tensor,
    hi: Tensor,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> Tensor:
    """Elementwise root of an increasing ``fn`` inside the bracket ``[lo, hi]``.

    ``fn(x) -> (g(x), g'(x))``; the root must lie in ``[lo, hi]``. Safeguarded Newton (``rtsafe``
    of Numerical Recipes): a Newton step that leaves the shrinking bracket, or that does not at
    least halve the step before last (a Newton cycle), is replaced by bisection, so it always
    converges, quadratically near the root. Stops when every Newton step, or bracket, is below
    ``tol * (1 + |x|)`` (``tol`` is raised to a few ulps in low precision) or after ``max_iter``
    steps. Not differentiable: call it under ``no_grad`` and take one Newton step with autograd
    on (implicit gradients).
    """
    tol = max(tol, 4 * torch.finfo(lo.dtype).eps)
    x = (lo + hi) / 2
    step = hi - lo
    step_old = step
    for _ in range(max_iter):
        g, dg = fn(x)
        # the sign of g says on which side of the root x lies: shrink the bracket
        lo = torch.where(g < 0, x, lo)
        hi = torch.where(g > 0, x, hi)
        newton_step = g / dg
        newton = x - newton_step
        # a Newton step below tolerance is the converged answer (it may round onto the
        # bracket's end, which must not send x back to the bracket's middle)
        done = (newton_step.abs() <= tol * (1 + x.abs())) | (hi - lo <= tol * (1 + x.abs()))
        use_newton = done | (
            (newton > lo) & (newton < hi) & (2 * newton_step.abs() <= step_old.abs())
        )
        x_new = torch.where(use_newton & torch.isfinite(newton), newton, (lo + hi) / 2)
        step_old, step = step, x_new - x
        x = x_new
        if bool(done.all()):
            break
    return x


class PlanarTransform(Bijection):
    """``f(z) = z + û tanh(wᵀz + b)``, invertible for any ``u, w`` (``wᵀû > -1``).

    ``u``, ``w``: unconstrained, shared ``[D]`` or per-example ``[B, D]``; ``b``: shared ``[]``/
    ``[1]`` or per-example ``[B]``. ``û`` (the constrained ``u``) is ``self.u_hat``.
    """

    def __init__(self, u: Tensor, w: Tensor, b: Tensor) -> None:
        super().__init__(event_dim=1)
        self.w = w
        self.b = _scalar_param(b)  # [1] or [B]
        wu = (w * u).sum(-1)  # [] or [B]
        # wᵀû = m(wᵀu) = -1 + softplus(wᵀu) > -1 keeps 1 + wᵀû h' > 0 (appendix A.1)
        self._softplus_wu = F.softplus(wu)
        self.wu_hat = self._softplus_wu - 1  # [] or [B]
        w_sq = (w * w).sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
        self.u_hat = u + ((self.wu_hat - wu).unsqueeze(-1) / w_sq) * w  # [D] or [B, D]

    def _one_plus_slope(self, t: Tensor) -> Tensor:
        """``1 + wᵀû h'(a)`` from ``t = tanh(a)``, written ``softplus(wᵀu) - wᵀû t²``.

        When ``wᵀû`` is near -1 both terms are positive, so there is no cancellation (``1 - 1·h'``
        would round to 0 and give an infinite log-det).
        """
        return self._softplus_wu - self.wu_hat * t * t

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a = (x * self.w).sum(-1) + self.b  # [B]
        t = torch.tanh(a)
        y = x + self.u_hat * t.unsqueeze(-1)  # [B, D]
        return y, torch.log(self._one_plus_slope(t))

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # wᵀ of f(x) = y gives s + c tanh(s + b) = wᵀy in s = wᵀx (c = wᵀû): increasing in s, as
        # its slope is 1 + c h' > 0; |tanh| <= 1 brackets s within |c| of wᵀy. The bracket is
        # widened by 1: where tanh saturates the root sits at its end, and Newton steps landing
        # there would be refused for bisection's slow ones.
        wy = (y * self.w).sum(-1)  # [B]
        c, sp, b = self.wu_hat, self._softplus_wu, self.b

        def g(s: Tensor, c: Tensor, sp: Tensor, b: Tensor, wy: Tensor) -> tuple[Tensor, Tensor]:
            t = torch.tanh(s + b)
            return s + c * t - wy, sp - c * t * t  # the slope as in _one_plus_slope

        with torch.no_grad():
            cd, spd, bd, wyd = c.detach(), sp.detach(), b.detach(), wy.detach()
            width = cd.abs() + 1
            s = solve_increasing(lambda s: g(s, cd, spd, bd, wyd), wyd - width, wyd + width)
        # one Newton step with autograd on: at the root its gradient is the implicit-function
        # one, ds/dθ = -(∂g/∂θ) / (∂g/∂s), so sampling through the inverse is differentiable
        # (a slope that underflowed to 0, for wᵀu < -745, takes no step rather than NaN)
        val, slope = g(s, c, sp, b, wy)
        positive = slope > 0
        s = s - torch.where(positive, val / torch.where(positive, slope, 1.0), 0.0)
        t = torch.tanh(s + b)
        x = y - self.u_hat * t.unsqueeze(-1)  # [B, D]
        return x, -torch.log(self._one_plus_slope(t))

    def __repr__(self) -> str:
        return f"PlanarTransform(dim={self.w.shape[-1]})"


class RadialTransform(Bijection):
    """``f(z) = z + β̂ (z - z₀) / (α + ||z - z₀||)``, invertible for any raw ``alpha, beta``.

    ``z0``: shared ``[D]`` or per-example ``[B, D]``; ``alpha``, ``beta``: *unconstrained*
    scalars, shared ``[]``/``[1]`` or per-example ``[B]``: ``α = softplus(alpha) > 0`` and
    ``β̂ = -α + softplus(beta) > -α`` (appendix A.2).
    """

    def __init__(self, z0: Tensor, alpha: Tensor, beta: Tensor) -> None:
        super().__init__(event_dim=1)
        self.z0 = z0
        self.alpha = F.softplus(_scalar_param(alpha))  # [1] or [B]
        # α + β̂ = softplus(beta) > 0; the log-det is written with it to stay positive termwise
        self._alpha_plus_beta = F.softplus(_scalar_param(beta))  # [1] or [B]
        self.beta_hat = self._alpha_plus_beta - self.alpha

    def _ladj(self, r: Tensor, dim: int) -> Tensor:
        """``(D-1) log(1 + β̂h) + log(1 + β̂h + β̂h'r)`` at radius ``r`` ``[B]``, term by term > 0."""
        alpha, apb = self.alpha, self._alpha_plus_beta
        log_ar = torch.log(alpha + r)
        # 1 + β̂/(α + r) = (r + α + β̂)/(α + r);  1 + αβ̂/(α + r)² = (r(2α + r) + α(α + β̂))/(α + r)²
        return (dim - 1) * (torch.log(r + apb) - log_ar) + (
            torch.log(r * (2 * alpha + r) + alpha * apb) - 2 * log_ar
        )

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        diff = x - self.z0  # [B, D]
        r = torch.linalg.vector_norm(diff, dim=-1)  # [B]
        y = x + (self.beta_hat / (self.alpha + r)).unsqueeze(-1) * diff
        return y, self._ladj(r, x.shape[-1])

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # y - z₀ = (1 + β̂/(α + r)) (x - z₀) with a positive factor, so ρ = ||y - z₀|| solves
        # ρ = r + β̂r/(α + r), i.e. r² + (α + β̂ - ρ) r - αρ = 0: one root >= 0 (product <= 0)
        diff = y - self.z0  # [B, D]
        rho = torch.linalg.vector_norm(diff, dim=-1)  # [B]
        p = self._alpha_plus_beta - rho
        q = self.alpha * rho
        disc = torch.sqrt(p * p + 4 * q)
        # the two forms of the positive root that avoid cancellation (p > 0: -p + disc cancels);
        # the unused branch's denominator is kept away from 0 so its gradient is not NaN
        pos = p > 0
        r = torch.where(pos, 2 * q / torch.where(pos, p + disc, torch.ones_like(p)), (disc - p) / 2)
        # x - z₀ = (y - z₀)(α + r)/(α + β̂ + r): well-defined at ρ = r = 0 too
        scale = (self.alpha + r) / (self._alpha_plus_beta + r)
        x = self.z0 + scale.unsqueeze(-1) * diff
        return x, -self._ladj(r, y.shape[-1])

    def __repr__(self) -> str:
        return f"RadialTransform(dim={self.z0.shape[-1]})"


class _SmallLayer(FlowLayer):
    """A layer of a few parameter vectors: its own (``context_dim = 0``), initialised uniformly
    in ``±1/sqrt(D)`` as in Pyro, or, conditional, one Linear of the context ``[B, C]`` that
    gives them per example."""

    def __init__(self, dim: int, context_dim: int, sizes: dict[str, int]) -> None:
        super().__init__()
        self.dim, self.context_dim, self.sizes = dim, context_dim, sizes
        if context_dim > 0:
            self.net = nn.Linear(context_dim, sum(sizes.values()))
        else:
            bound = dim**-0.5
            for name, size in sizes.items():
                self.register_parameter(
                    name, nn.Parameter(torch.empty(size).uniform_(-bound, bound))
                )

    def parameters_for(self, context: Tensor | None) -> list[Tensor]:
        """The vectors in ``sizes``' order: the layer's own, or ``[B, size]`` each from the
        context."""
        if self.context_dim == 0:
            return [getattr(self, name) for name in self.sizes]
        if context is None:
            raise ValueError(
                f"this {type(self).__name__} layer is conditional: pass a context [B, context_dim]"
            )
        return list(self.net(context).split(list(self.sizes.values()), dim=-1))


class Planar(_SmallLayer):
    """A planar flow layer; conditional (``context_dim > 0``): ``u, w, b`` from a Linear.

    Unconditional parameters start near, not at, the identity (at ``u = 0`` one has
    ``û ≠ 0``, as ``m(0) ≠ 0``).
    """

    def __init__(self, dim: int, context_dim: int = 0) -> None:
        super().__init__(dim, context_dim, {"u": dim, "w": dim, "b": 1})

    def forward(self, context: Tensor | None = None) -> PlanarTransform:
        return PlanarTransform(*self.parameters_for(context))  # u [B, D], w [B, D], b [B, 1]


class Radial(_SmallLayer):
    """A radial flow layer; conditional (``context_dim > 0``): ``z₀, α, β`` from a Linear."""

    def __init__(self, dim: int, context_dim: int = 0) -> None:
        super().__init__(dim, context_dim, {"z0": dim, "alpha": 1, "beta": 1})

    def forward(self, context: Tensor | None = None) -> RadialTransform:
        return RadialTransform(*self.parameters_for(context))  # z0 [B, D], alpha, beta [B, 1]


__all__ = ["Planar", "PlanarTransform", "Radial", "RadialTransform", "solve_increasing"]
