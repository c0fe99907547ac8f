"""The hyperspherical VAE (Davidson, Falorsi, De Cao, Kipf & Tomczak 2018, "Hyperspherical
Variational Auto-Encoders"): the code z lives on the unit sphere S^{m-1} in R^m (m = ``latent``),

    p(z) = uniform on S^{m-1},   q(z|x) = vMF(z; mu(x) / ||mu(x)||, kappa(x)),

with kappa = softplus(.) + 1 as in the paper's code, or the Power Spherical distribution of De
Cao & Aziz (2020), "The Power Spherical distribution", in place of the von Mises-Fisher
(``distribution=power-spherical``): same parameters, sampled without rejection. A uniform prior
has no location or scale for the posterior to collapse onto, which is the paper's point for
low-dimensional codes and data on a hypersphere.

The KL term KL(q(z|x) || U(S^{m-1})) is in closed form (``torch.distributions.kl_divergence``
with the KLs registered in :mod:`dgm.distributions.spherical`), so the ELBO's only Monte Carlo
term is the reconstruction. ``log_prob(x, num_samples=K)`` is the IWAE estimate (Burda,
Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders") with w_k = p(x|z_k) p(z_k) /
q(z_k|x), log p(z) = -log area(S^{m-1}): a stochastic lower bound on log p(x), hence
``exact_likelihood = False``. Gradients w.r.t. kappa are the implicit reparameterisation
gradients of the distributions (exact; see :class:`~dgm.distributions.spherical.VonMisesFisher`),
not the paper's rejection-sampler gradient with its correction term.

The backbones, likelihoods and the chunking of many importance samples are those of
:mod:`dgm.models.latent.vae`, shared through :mod:`dgm.models.latent.base`; so are the training
tricks (beta, linear KL warm-up), which change the loss only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import kl_divergence

from dgm.config import opt
from dgm.distributions.spherical import (
    HypersphericalUniform,
    PowerSpherical,
    VonMisesFisher,
    log_sphere_area,
)
from dgm.errors import ConfigError
from dgm.models.latent.base import CHUNK, LatentConfig, LatentModel, Scorer
from dgm.registry import register

SphericalName = Literal["vmf", "power-spherical"]
Spherical = VonMisesFisher | PowerSpherical


@dataclass
class SVAEConfig(LatentConfig):
    latent: int = opt(10, "ambient dimension m of the code z on the sphere S^(m-1) (>= 2)")
    distribution: SphericalName = opt(
        "vmf", "posterior: vmf (von Mises-Fisher) | power-spherical (De Cao & Aziz 2020)"
    )

    def __post_init__(self) -> None:
        if self.latent < 2:  # checked first: the shared check would only ask for >= 1
            raise ConfigError(
                f"latent is the sphere's ambient dimension: need >= 2, got {self.latent}"
            )
        super().__post_init__()


def concentration(raw: Tensor) -> Tensor:
    """kappa = softplus(raw) + 1, the paper code's map (the +1 keeps early posteriors from
    spreading over the whole sphere, where the decoder would see pure noise)."""
    return F.softplus(raw) + 1


def slerp(z1: Tensor, z2: Tensor, steps: int) -> Tensor:
    """Spherical linear interpolation between unit vectors: ``[B, m], [B, m] -> [steps, B, m]``.

    Walks the great circle from ``z1`` to ``z2`` at constant speed, z(t) = cos(t W) z1 +
    sin(t W) v with v the unit vector of z2's part orthogonal to z1 and W = atan2(|.|, z1.z2)
    the angle (atan2 stays accurate for near-equal and near-opposite codes, where arccos does
    not). Opposite codes have no unique great circle: any v orthogonal to z1 serves, taken from
    the coordinate axis least aligned with z1. Every point is renormalised against rounding.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    dot = (z1 * z2).sum(-1, keepdim=True)  # [B, 1]
    perp = z2 - dot * z1  # [B, m]
    sin_w = torch.linalg.vector_norm(perp, dim=-1, keepdim=True)
    angle = torch.atan2(sin_w, dot)  # [B, 1] in [0, pi]
    # fallback direction for (near-)opposite codes: the least aligned axis, minus its z1 part
    axis = F.one_hot(z1.abs().argmin(-1), z1.shape[-1]).to(z1.dtype)  # [B, m]
    other = axis - (axis * z1).sum(-1, keepdim=True) * z1
    tiny = torch.finfo(z1.dtype).eps
    v = torch.where(sin_w > tiny, perp / sin_w.clamp_min(tiny), F.normalize(other, dim=-1))
    t = torch.linspace(0, 1, steps, device=z1.device, dtype=z1.dtype).view(steps, 1, 1)
    z = torch.cos(t * angle) * z1 + torch.sin(t * angle) * v  # [steps, B, m]
    return F.normalize(z, dim=-1)


class Draws(NamedTuple):
    """``S`` posterior draws per example: ``[S, B]`` terms, and the posterior itself."""

    recon: Tensor  # log p(x|z_s)
    log_q: Tensor  # log q(z_s|x)
    q: Spherical  # q(z|x), batch [B]


@register("svae", "latent", "hyperspherical VAE: vMF or Power Spherical codes, uniform prior")
class SVAE(LatentModel):
    """``encoder`` (x -> h), ``loc_head`` and ``kappa_head`` (h -> q(z|x) on the sphere),
    ``decoder`` (z -> likelihood parameters) and ``likelihood`` (p(x|z)); the prior is the
    uniform distribution on the sphere, with no parameters."""

    Config = SVAEConfig
    config: SVAEConfig

    def __init__(self, config: SVAEConfig) -> None:
        super().__init__(config, config.latent)
        # the paper's heads: a mean direction (normalised) and one concentration per example
        self.loc_head = nn.Linear(self.encoder.out_dim, config.latent)
        self.kappa_head = nn.Linear(self.encoder.out_dim, 1)

    # -- the posterior and the prior -----------------------------------------------------------
    @property
    def log_prior(self) -> float:
        """log p(z) = -log area(S^{m-1}), the same everywhere on the sphere."""
        return -log_sphere_area(self.config.latent)

    def _params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc [B, m], kappa [B])`` from the encoder's features ``h [B, H]``."""
        loc = F.normalize(self.loc_head(h), dim=-1)
        return loc, concentration(self.kappa_head(h)).squeeze(-1)

    def posterior(self, x: Tensor) -> Spherical:
        """q(z|x) for a batch ``[B, *shape]``: a distribution with batch shape ``[B]``."""
        self.check_input(x)
        return self._posterior(self.encoder(self._prep(x)))

    def _posterior(self, h: Tensor) -> Spherical:
        loc, kappa = self._params(h)
        cls = VonMisesFisher if self.config.distribution == "vmf" else PowerSpherical
        # loc is unit by construction: skip the validation's norm check (a device sync)
        return cls(loc, kappa, validate_args=False)

    def uniform_prior(self, like: Tensor) -> HypersphericalUniform:
        """p(z): uniform on S^{m-1}, on ``like``'s device and dtype."""
        return HypersphericalUniform(self.config.latent, device=like.device, dtype=like.dtype)

    def kl(self, q: Spherical) -> Tensor:
        """KL(q(z|x) || p(z)) in closed form, ``[B]``."""
        return kl_divergence(q, self.uniform_prior(q.loc))

    # -- posterior draws and the bounds' terms -------------------------------------------------
    def draws(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Draws:
        """``num_samples`` reparameterised draws z ~ q(z|x) per example and their terms.

        The encoder runs once; the draws are decoded in passes of bounded memory
        (:meth:`~dgm.models.latent.LatentModel.draw_terms`). The vMF's rejection sampler uses
        a random amount of randomness, so each sample is drawn by its own ``[B]`` call, in
        order: the same seed then gives the same draws (and numbers) whatever the chunk size.
        """
        h = self.encoder(self._prep(x))  # [B, H]
        q = self._posterior(h)
        b, m = h.shape[0], self.config.latent

        def draw(s: int, score: Scorer) -> tuple[Tensor, Tensor]:
            z = torch.cat([q.rsample() for _ in range(s)])  # [s * B, m], sample-major
            return score(z), q.log_prob(z.view(s, b, m))  # [s * B], [s, B]

        recon, log_q = self.draw_terms(x, num_samples, chunk, draw)
        return Draws(recon, log_q, q)

    def log_weights(self, d: Draws) -> Tensor:
        """log p(x|z) + log p(z) - log q(z|x): ``[S, B]``."""
        return d.recon + self.log_prior - d.log_q

    def kl_term(self, d: Draws) -> Tensor:
        """KL(q(z|x) || p(z)) in closed form, ``[B]``: the ELBO's only Monte Carlo term is the
        reconstruction."""
        return self.kl(d.q)

    # -- generation and the compression view -------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """z uniform on the sphere, then x ~ p(x|z) (``temperature`` applies to the likelihood;
        0: its mode or mean): ``[n, *shape]`` in the data's space."""
        return self.likelihood.sample(self.decoder(self.prior_codes(n)), temperature)

    def prior_codes(self, n: int) -> Tensor:
        """z uniform on the sphere: ``[n, m]``."""
        return self.uniform_prior(self.loc_head.weight).sample((n,))

    def encode(self, x: Tensor) -> Tensor:
        """A code per example ``[B, m]``: the posterior's mean direction (a unit vector)."""
        self.check_input(x)
        return self._params(self.encoder(self._prep(x)))[0]

    def path(self, z1: Tensor, z2: Tensor, steps: int) -> Tensor:
        """The great-circle arc (:func:`slerp`) from ``z1`` to ``z2``: ``[steps, B, m]``."""
        return slerp(z1, z2, steps)


__all__ = ["SVAE", "Draws", "SVAEConfig", "concentration", "slerp"]
