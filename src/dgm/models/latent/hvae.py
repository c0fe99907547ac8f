"""A hierarchical VAE with two stochastic layers (Tomczak & Welling 2018, "VAE with a
VampPrior", section 3.2 and their HVAE code; the two-layer ladder of Burda, Grosse &
Salakhutdinov 2016, "Importance Weighted Autoencoders").

Generative model z2 -> z1 -> x::

    p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2)

with p(z2) any of the VAE's priors (standard | mog | vampprior | flow; the VampPrior mixes the
top layer's posteriors q(z2 | u_c) at learnable pseudo-inputs u_c), p(z1 | z2) a diagonal
Gaussian whose parameters an MLP reads from z2, and p(x | z1, z2) the likelihood whose
parameters a decoder reads from the concatenation [z1, z2]. Inference runs bottom-up then
top-down as in the paper:

    q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2),

both diagonal Gaussians; q(z1 | x, z2) reads the encoder's features of x next to z2.

The ELBO is E_q[log p(x | z1, z2)] - E_q(z2)[KL(q(z1|x,z2) || p(z1|z2))] - KL(q(z2|x) || p(z2)):
the inner KL between two diagonal Gaussians is analytic at every draw of z2, the outer one
analytic for the standard prior and a one-sample Monte Carlo estimate otherwise.
``log_prob(x, num_samples=K)`` is the IWAE estimate over joint draws (z1_k, z2_k) ~ q, with
w_k = p(x, z1_k, z2_k) / q(z1_k, z2_k | x): a stochastic lower bound on log p(x), hence
``exact_likelihood = False``.

Differences from the paper's code: plain MLPs (the paper uses gated dense layers), the decoder
reads [z1, z2] concatenated (the paper maps each through its own layer before joining them,
which for the first layer is the same linear map), and q(z1 | x, z2) reads the shared encoder's
features rather than a second pass over x. The pieces (backbones, likelihoods, priors, the
Gaussian heads, the chunking of many importance samples) are those of :mod:`dgm.models.latent.vae`,
shared through :mod:`dgm.models.latent.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.latent.base import CHUNK, LatentModel, Prior, PriorConfig, Scorer, make_prior
from dgm.models.latent.networks import MLPEncoder
from dgm.models.latent.posteriors import (
    HALF_LOG_2PI,
    GaussianPosterior,
    diag_normal_log_prob,
    gaussian_kl,
)
from dgm.models.latent.priors import PriorName, StandardPrior
from dgm.registry import register


@dataclass
class HVAEConfig(PriorConfig):
    latent: int = opt(16, "dimensions of the lower code z1 (the decoder's first input)")
    hidden: int = opt(
        300, "units per hidden layer (conv: of the fully connected layer; also flow MADEs)"
    )
    layers: int = opt(
        2,
        "hidden layers of the mlp encoder and decoder and of the nets of q(z1|x,z2) and "
        "p(z1|z2) (0: linear)",
    )
    dropout: float = opt(0.0, "dropout after each hidden layer of the networks")
    prior: PriorName = opt(
        "standard", "p(z2): standard | mog (mixture of Gaussians) | vampprior | flow"
    )
    latent2: int = opt(16, "dimensions of the top code z2 (the prior's)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent2 < 1:
            raise ConfigError(f"latent2 must be >= 1, got {self.latent2}")


def gaussian_kl_between(mu: Tensor, log_std: Tensor, mu_p: Tensor, log_std_p: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(mu_p, sigma_p^2)) per dimension, analytic: ``[..., K]``."""
    r = torch.exp(log_std - log_std_p)  # sigma / sigma_p
    d = (mu - mu_p) * torch.exp(-log_std_p)
    return 0.5 * (r * r + d * d - 1) - (log_std - log_std_p)


def gaussian_draw(mu: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """z = mu + sigma eps and log N(z; mu, sigma) (from eps itself): ``[B, K] -> [B, K], [B]``."""
    z = mu + torch.exp(log_std) * eps
    return z, (-0.5 * eps * eps - log_std - HALF_LOG_2PI).sum(-1)


class Draws(NamedTuple):
    """``S`` joint posterior draws per example: ``[S, B]`` terms, q(z2|x)'s parameters
    ``[B, latent2]``."""

    recon: Tensor  # log p(x | z1, z2)
    log_p2: Tensor  # log p(z2)
    log_q2: Tensor  # log q(z2 | x)
    log_p1: Tensor  # log p(z1 | z2)
    log_q1: Tensor  # log q(z1 | x, z2)
    kl1: Tensor  # KL(q(z1 | x, z2) || p(z1 | z2)) at the draw of z2, analytic
    mu2: Tensor
    log_std2: Tensor

    @property
    def log_w(self) -> Tensor:
        """log p(x, z1, z2) - log q(z1, z2 | x): ``[S, B]``."""
        return self.recon + self.log_p1 + self.log_p2 - self.log_q1 - self.log_q2


@register("hvae", "latent", "hierarchical VAE, two stochastic layers z2 -> z1 -> x (VampPrior)")
class HVAE(LatentModel):
    """``encoder`` (x -> h), ``q2`` (h -> q(z2|x)), ``q1_net`` + ``q1`` ([h, z2] -> q(z1|x,z2)),
    ``prior`` (p(z2)), ``p1_net`` + ``p1`` (z2 -> p(z1|z2)), ``decoder`` ([z1, z2] -> likelihood
    parameters) and ``likelihood`` (p(x|z1,z2)). The Gaussian heads are the VAE's
    :class:`~dgm.models.latent.posteriors.GaussianPosterior` (a Linear to mean and softplus
    scale)."""

    Config = HVAEConfig
    config: HVAEConfig
    draw_name = "joint draws of (z1, z2)"

    def __init__(self, config: HVAEConfig) -> None:
        c = config
        super().__init__(config, c.latent + c.latent2)  # the decoder reads [z1, z2]
        h_dim = self.encoder.out_dim
        # q(z2 | x): a Gaussian head on the encoder's features
        self.q2 = GaussianPosterior(h_dim, c.latent2)
        # q(z1 | x, z2) and p(z1 | z2): MLPs (the identity when layers = 0) then Gaussian heads
        self.q1_net = MLPEncoder(
            (h_dim + c.latent2,), c.hidden, c.layers, act=c.activation, dropout=c.dropout
        )
        self.q1 = GaussianPosterior(self.q1_net.out_dim, c.latent)
        self.p1_net = MLPEncoder(
            (c.latent2,), c.hidden, c.layers, act=c.activation, dropout=c.dropout
        )
        self.p1 = GaussianPosterior(self.p1_net.out_dim, c.latent)
        # a VampPrior mixes the top layer's posteriors at its pseudo-inputs, as in the paper
        self.prior: Prior = make_prior(c, c.latent2, self._q2)

    @property
    def analytic_kl(self) -> bool:
        """Whether KL(q(z2|x) || p(z2)) is computed in closed form (the standard prior)."""
        return isinstance(self.prior, StandardPrior)

    def _q2(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """q(z2|u)'s ``(mu, log_std)`` at encoder inputs ``u`` (the VampPrior's components)."""
        return self.q2.gaussian_params(self.encoder(u))

    def _q1(self, h: Tensor, z2: Tensor) -> tuple[Tensor, Tensor]:
        """q(z1 | x, z2)'s ``(mu, log_std)`` ``[B, latent]`` from features ``h`` and ``z2``."""
        return self.q1.gaussian_params(self.q1_net(torch.cat([h, z2], dim=-1)))

    def _p1(self, z2: Tensor) -> tuple[Tensor, Tensor]:
        """p(z1 | z2)'s ``(mu, log_std)`` ``[B, latent]``."""
        return self.p1.gaussian_params(self.p1_net(z2))

    # -- joint posterior draws and the bounds' terms -----------------------------------------
    def draws(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Draws:
        """``num_samples`` reparameterised joint draws (z1, z2) ~ q per example and their terms.

        The encoder runs once; the draws are decoded in passes of bounded memory
        (:meth:`~dgm.models.latent.LatentModel.draw_terms`). Each sample's noise is drawn in
        order, ``[B, latent2]`` for z2 then ``[B, latent]`` for z1, so the same seed gives the
        same draws (and numbers) whatever the chunk size.
        """
        c = self.config
        h = self.encoder(self._prep(x))  # [B, H]
        b = h.shape[0]
        mu2, log_std2 = self.q2.gaussian_params(h)  # [B, K2] each

        def draw(s: int, score: Scorer) -> tuple[Tensor, ...]:
            noise = [
                (
                    torch.randn(b, c.latent2, device=h.device, dtype=h.dtype),
                    torch.randn(b, c.latent, device=h.device, dtype=h.dtype),
                )
                for _ in range(s)
            ]
            eps2 = torch.cat([e for e, _ in noise])  # [s * B, K2], sample-major
            eps1 = torch.cat([e for _, e in noise])  # [s * B, K1]
            z2, lq2 = gaussian_draw(mu2.repeat(s, 1), log_std2.repeat(s, 1), eps2)
            mu1, log_std1 = self._q1(h.repeat(s, 1), z2)  # [s * B, K1] each
            z1, lq1 = gaussian_draw(mu1, log_std1, eps1)
            pm1, pls1 = self._p1(z2)
            return (
                score(torch.cat([z1, z2], dim=-1)),
                self.prior.log_prob(z2),
                lq2,
                diag_normal_log_prob(z1, pm1, pls1),
                lq1,
                gaussian_kl_between(mu1, log_std1, pm1, pls1).sum(-1),
            )

        recon, log_p2, log_q2, log_p1, log_q1, kl1 = self.draw_terms(x, num_samples, chunk, draw)
        return Draws(
            recon, log_p2, log_q2, log_p1=log_p1, log_q1=log_q1, kl1=kl1, mu2=mu2, log_std2=log_std2
        )

    def log_weights(self, d: Draws) -> Tensor:
        """log p(x, z1, z2) - log q(z1, z2 | x): ``[S, B]``."""
        return d.log_w

    def kl_term(self, d: Draws) -> Tensor:
        """E_q(z2)[KL(q(z1|x,z2) || p(z1|z2))] + KL(q(z2|x) || p(z2)), ``[B]``: the inner KL
        analytic at every draw of z2, the outer one analytic for the standard prior and the
        Monte Carlo mean of log q(z2|x) - log p(z2) otherwise."""
        if self.analytic_kl:
            kl2 = gaussian_kl(d.mu2, d.log_std2).sum(-1)
        else:
            kl2 = (d.log_q2 - d.log_p2).mean(0)
        return d.kl1.mean(0) + kl2

    # -- generation and the compression view -------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """z2 ~ p(z2), z1 ~ p(z1|z2), then x ~ p(x|z1,z2) (``temperature`` applies to the
        likelihood; 0: its mode or mean): ``[n, *shape]`` in the data's space."""
        return self.likelihood.sample(self.decoder(self.prior_codes(n)), temperature)

    def prior_codes(self, n: int) -> Tensor:
        """z2 ~ p(z2), z1 ~ p(z1|z2): ``[n, latent + latent2]``, z1 first as :meth:`decode`
        reads it."""
        z2 = self.prior.sample(n).to(self._dtype)  # [n, K2]
        mu1, log_std1 = self._p1(z2)
        z1 = mu1 + torch.exp(log_std1) * torch.randn_like(mu1)  # [n, K1]
        return torch.cat([z1, z2], -1)

    def encode(self, x: Tensor) -> Tensor:
        """A code per example ``[B, latent + latent2]``: ``[mean of q(z1 | x, z2 = m2), m2]``
        with ``m2`` the mean of q(z2 | x) (z1 first, the layout :meth:`decode` reads)."""
        self.check_input(x)
        h = self.encoder(self._prep(x))
        mu2 = self.q2.mean(h)
        return torch.cat([self._q1(h, mu2)[0], mu2], dim=-1)


__all__ = ["HVAE", "Draws", "HVAEConfig", "gaussian_draw", "gaussian_kl_between"]
