"""Likelihoods and samples through an ODE dy/dt = f(y, t): the probability-flow ODE of a score
SDE (Song et al. 2021, "Score-based generative modeling through stochastic differential
equations", sec. 4.3 and appendix D.2) and the velocity field of flow matching (Lipman et al.
2023) share this code.

Along a solution y(t) the log-density changes by the instantaneous change of variables
(Chen et al. 2018, "Neural ordinary differential equations", theorem 1):

    d log p_t(y(t)) / dt = - div f(y(t), t),   so
    log p_{t0}(y(t0)) = log p_{t1}(y(t1)) + int_{t0}^{t1} div f(y(t), t) dt,

integrated jointly with y from the data's time ``t0`` to the prior's ``t1`` by torchdiffeq's
adaptive Dormand-Prince solver (``dopri5``) at the stated tolerances. The divergence is
exact (D backward passes, batched) for small D, or Hutchinson's estimate E_eps[eps^T J eps]
with Rademacher probes held fixed along the path (Grathwohl et al. 2019, "FFJORD"): an
unbiased estimate of the ODE's log-likelihood, not a bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dgm.errors import ConfigError

Field = Callable[[Tensor, Tensor], Tensor]  # (y [B, *shape], t [B]) -> dy/dt [B, *shape]
ADAPTIVE = ("dopri5", "bosh3", "adaptive_heun")
FIXED = ("euler", "midpoint", "rk4")
EXACT_CHUNK = 64  # divergence columns per batched backward pass


@dataclass
class Solve:
    """How to solve: an adaptive method at tolerances, or a fixed one in ``steps`` steps."""

    method: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    steps: int = 100

    def __post_init__(self) -> None:
        if self.method not in ADAPTIVE + FIXED:
            raise ConfigError(
                f"unknown ODE solver {self.method!r}; choose one of {', '.join(ADAPTIVE + FIXED)}"
            )
        for name in ("rtol", "atol"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 (an ODE solver's tolerance)")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")


def _odeint(func: Callable, state: tuple[Tensor, ...], t0: float, t1: float, solve: Solve):
    from torchdiffeq import odeint

    ref = state[0]
    if solve.method in FIXED:  # the fixed grid itself: steps + 1 points
        times = torch.linspace(t0, t1, solve.steps + 1, device=ref.device, dtype=ref.dtype)
        return tuple(s[-1] for s in odeint(func, state, times, method=solve.method))
    times = torch.tensor([t0, t1], device=ref.device, dtype=ref.dtype)
    # step_t: the last step lands on t1 instead of stepping past it and interpolating, so the
    # field is never evaluated outside [t0, t1] (a VP SDE's std_t is undefined below t = 0)
    out = odeint(
        func, state, times, rtol=solve.rtol, atol=solve.atol, method=solve.method,
        options={"step_t": times},
    )  # fmt: skip
    return tuple(s[-1] for s in out)


def divergence_exact(f: Tensor, y: Tensor) -> Tensor:
    """sum_i df_i/dy_i ``[B]`` of ``f = field(y)`` (``y`` requires grad): the Jacobian's
    diagonal, ``EXACT_CHUNK`` columns per batched backward pass (vmap over the cotangents)."""
    b = y.shape[0]
    d = y[0].numel()
    eye = torch.eye(d, device=y.device, dtype=f.dtype)
    total = torch.zeros(b, device=y.device, dtype=f.dtype)
    for start in range(0, d, EXACT_CHUNK):
        rows = eye[start : start + EXACT_CHUNK]  # [c, D]
        c = rows.shape[0]
        cot = rows[:, None, :].expand(c, b, d).reshape(c, *f.shape)
        (g,) = torch.autograd.grad(f, y, cot, retain_graph=True, is_grads_batched=True)
        g = g.reshape(c, b, d)
        idx = torch.arange(c, device=y.device)
        total = total + g[idx, :, start + idx].sum(0)  # [B]: df_{s+j}/dy_{s+j} summed over j
    return total


def divergence_hutchinson(f: Tensor, y: Tensor, probes: Tensor) -> Tensor:
    """Hutchinson's estimate ``[B]``: the mean over probes ``[K, B, *shape]`` of eps^T J eps."""
    (g,) = torch.autograd.grad(f, y, probes, retain_graph=True, is_grads_batched=True)
    return (g * probes).flatten(2).sum(-1).mean(0)


def ode_log_prob(
    field: Field,
    y: Tensor,
    prior_log_prob: Callable[[Tensor], Tensor],
    *,
    t0: float,
    t1: float,
    solve: Solve,
    probes: int | None = None,
) -> Tensor:
    """log p_{t0}(y) ``[B]`` through the ODE: ``y`` at the data's time ``t0`` carried to the
    prior's time ``t1``, where ``prior_log_prob`` scores it. ``probes`` None: the exact
    divergence; K >= 1: Hutchinson's estimate with K Rademacher probes. Nothing is
    differentiated through the solve (evaluation)."""
    eps = None
    if probes is not None:
        if probes < 1:
            raise ConfigError(f"Hutchinson probes (--num-samples) must be >= 1, got {probes}")
        eps = torch.randint(0, 2, (probes, *y.shape), device=y.device).to(y.dtype) * 2 - 1

    def dynamics(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        yt = state[0].detach().requires_grad_(True)
        with torch.enable_grad():
            f = field(yt, t.expand(yt.shape[0]))
            div = divergence_exact(f, yt) if eps is None else divergence_hutchinson(f, yt, eps)
        return f.detach(), div.detach()

    zero = torch.zeros(y.shape[0], device=y.device, dtype=y.dtype)
    y1, integral = _odeint(dynamics, (y, zero), t0, t1, solve)
    return prior_log_prob(y1) + integral


@torch.no_grad()
def ode_sample(field: Field, y: Tensor, *, t0: float, t1: float, solve: Solve) -> Tensor:
    """Carry ``y`` from time ``t0`` to ``t1`` along the ODE (noise to data when sampling)."""

    def dynamics(t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        return (field(state[0], t.expand(state[0].shape[0])),)

    return _odeint(dynamics, (y,), t0, t1, solve)[0]
