"""Amortised posteriors q(z|x) of a VAE, read from the encoder's features ``h [B, H]``.

- :class:`GaussianPosterior`: q(z|x) = N(mu(h), diag sigma(h)^2), reparameterised
  z = mu + sigma * eps (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").
- :class:`FlowPosterior`: z_0 ~ q_0(z|x) (the Gaussian above), then z_T = f_T o ... o f_1(z_0)
  with every step's parameters computed from ``h`` (Rezende & Mohamed 2015, "Variational
  Inference with Normalizing Flows"), so that

      log q(z_T|x) = log q_0(z_0|x) - sum_t log |det df_t/dz_{t-1}|.

  The steps are conditional :class:`dgm.transforms.FlowLayer` s (``context_dim = H``) used in
  their *forward* direction only: planar (Rezende & Mohamed 2015), Householder (Tomczak &
  Welling 2016, "Improving Variational Auto-Encoders using Householder Flow"), Sylvester (van
  den Berg et al. 2018, "Sylvester Normalizing Flows for Variational Inference") and IAF
  (Kingma et al. 2016, "Improved Variational Inference with Inverse Autoregressive Flow"; the
  forward of a gated :class:`~dgm.transforms.MaskedAutoregressive` is IAF's one-pass step).
  No inverse is needed: a posterior only samples and scores its own samples.

Both draw from given standard-normal noise ``eps`` when it is passed, so that a caller can fix
the draws (the VAE draws them per importance sample, making chunked estimates reproducible).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.transforms import (
    FlowLayer,
    FlowSequence,
    Householder,
    MaskedAutoregressive,
    Planar,
    SylvesterHouseholder,
    SylvesterOrthogonal,
    SylvesterTriangular,
)

if TYPE_CHECKING:
    from dgm.models.latent.vae import VAEConfig

PosteriorName = Literal[
    "gaussian",
    "planar",
    "householder",
    "sylvester-orthogonal",
    "sylvester-householder",
    "sylvester-triangular",
    "iaf",
]
POSTERIORS: tuple[str, ...] = PosteriorName.__args__  # type: ignore[attr-defined]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def log_softplus(raw: Tensor) -> Tensor:
    """``log(softplus(raw))`` without underflow: ``softplus(r) ~ e^r`` for very negative r."""
    # the unused branch is clamped: its gradient, though masked, must not be 0 * inf = NaN
    return torch.where(raw < -20, raw, torch.log(F.softplus(raw.clamp_min(-20))))


def diag_normal_log_prob(z: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    """log N(z; mu, diag exp(log_std)^2) summed over the last dim: ``[..., K] -> [...]``."""
    u = (z - mu) * torch.exp(-log_std)
    return (-0.5 * u * u - log_std - HALF_LOG_2PI).sum(-1)


def gaussian_kl(mu: Tensor, log_std: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension: ``[B, K] -> [B, K]`` (nats), analytic
    (Kingma & Welling 2014, appendix B)."""
    return 0.5 * (mu * mu + torch.exp(2 * log_std) - 1) - log_std


class GaussianPosterior(nn.Module):
    """q(z|x) = N(mu, diag sigma^2) with ``[mu, raw] = Linear(h)`` and ``sigma = softplus(raw)``
    (a softplus rather than exp(log-var) keeps the scale's growth linear, so early training
    cannot blow it up)."""

    def __init__(self, h_dim: int, latent: int) -> None:
        super().__init__()
        self.latent = latent
        self.net = nn.Linear(h_dim, 2 * latent)

    def gaussian_params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, H] -> (mu [B, K], log_std [B, K])``."""
        mu, raw = self.net(h).chunk(2, dim=-1)
        return mu, log_softplus(raw)

    def rsample(self, h: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A reparameterised draw and its log-density: ``[B, H] -> (z [B, K], log q [B])``."""
        mu, log_std = self.gaussian_params(h)
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + torch.exp(log_std) * eps
        # log N(z; mu, sigma) from eps itself: exact, no (z - mu) / sigma round trip
        return z, (-0.5 * eps * eps - log_std - HALF_LOG_2PI).sum(-1)

    def log_prob(self, z: Tensor, h: Tensor) -> Tensor:
        """log q(z|x) at any ``z [B, K]``: ``[B]``."""
        mu, log_std = self.gaussian_params(h)
        return diag_normal_log_prob(z, mu, log_std)

    def mean(self, h: Tensor) -> Tensor:
        """The posterior mean ``[B, K]``."""
        return self.gaussian_params(h)[0]


class FlowPosterior(nn.Module):
    """z_0 ~ ``base`` (a :class:`GaussianPosterior`), z_T = ``flow(h)`` (z_0): the log-density
    follows by the change of variables. ``flow`` is a conditional layer (context ``h``)."""

    def __init__(self, base: GaussianPosterior, flow: FlowLayer) -> None:
        super().__init__()
        self.base, self.flow = base, flow
        self.latent = base.latent

    def gaussian_params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The base Gaussian q_0's parameters (what a VampPrior mixes)."""
        return self.base.gaussian_params(h)

    def rsample(self, h: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z0, log_q0 = self.base.rsample(h, eps)
        z, ladj = self.flow(h).call_and_ladj(z0)  # [B, K], [B]
        return z, log_q0 - ladj

    def mean(self, h: Tensor) -> Tensor:
        """The flow applied to q_0's mean (a central code, not E[z_T])."""
        return self.flow(h).call_and_ladj(self.base.mean(h))[0]


def made_steps(
    latent: int, n: int, hidden: int, activation: str, **options: Any
) -> list[MaskedAutoregressive]:
    """``n`` MADE-parameterised autoregressive steps on ``[B, latent]`` with two hidden layers
    of ``hidden`` units, in alternating orders (natural, reverse) so every dimension gets to
    depend on every other: a flow prior's MAF (forward: density in one pass) or, with the
    ``options`` ``context_dim`` (features) and ``gated=True``, a posterior's IAF steps."""
    return [
        MaskedAutoregressive(
            latent,
            (hidden, hidden),
            order="reverse" if i % 2 else "natural",
            activation=activation,
            **options,
        )
        for i in range(n)
    ]


def make_posterior(c: VAEConfig, h_dim: int) -> GaussianPosterior | FlowPosterior:
    """The posterior ``c.posterior`` names (see :data:`PosteriorName`) over ``c.latent``
    dimensions, read from ``h_dim`` encoder features.

    ``c.flow_length`` steps of the named flow; for ``householder`` it is the number of
    reflections of one chained Householder flow (the paper's T, each ``v_t`` a Linear of
    ``v_{t-1}``). ``c.sylvester_m``: the orthogonal Sylvester flow's M (0: ``latent // 2``);
    ``c.reflections``: Householder reflections per Sylvester step; ``c.hidden``: the width of
    the two hidden layers of each IAF step's MADE. Orderings alternate between steps
    (Sylvester-triangular: identity/reversal; IAF: natural/reverse) so every dimension gets to
    depend on every other.
    """
    name, latent, n = c.posterior, c.latent, c.flow_length
    base = GaussianPosterior(h_dim, latent)
    if name == "gaussian":
        return base
    if n < 1:
        raise ValueError(f"posterior={name} needs flow_length >= 1, got {n}")
    layers: list[FlowLayer]
    if name == "planar":
        layers = [Planar(latent, context_dim=h_dim) for _ in range(n)]
    elif name == "householder":
        layers = [Householder(latent, reflections=n, context_dim=h_dim)]
    elif name == "sylvester-orthogonal":
        m = c.sylvester_m if c.sylvester_m > 0 else max(1, latent // 2)
        layers = [SylvesterOrthogonal(latent, min(m, latent), context_dim=h_dim) for _ in range(n)]
    elif name == "sylvester-householder":
        layers = [SylvesterHouseholder(latent, c.reflections, context_dim=h_dim) for _ in range(n)]
    elif name == "sylvester-triangular":
        layers = [SylvesterTriangular(latent, i % 2 == 1, context_dim=h_dim) for i in range(n)]
    elif name == "iaf":
        layers = made_steps(latent, n, c.hidden, c.activation, context_dim=h_dim, gated=True)
    else:
        raise ValueError(f"unknown posterior {name!r}; use one of {', '.join(POSTERIORS)}")
    return FlowPosterior(base, FlowSequence(layers))


__all__ = [
    "POSTERIORS",
    "FlowPosterior",
    "GaussianPosterior",
    "PosteriorName",
    "diag_normal_log_prob",
    "gaussian_kl",
    "log_softplus",
    "made_steps",
    "make_posterior",
]
