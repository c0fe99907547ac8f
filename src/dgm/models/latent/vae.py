"""The variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes";
Rezende, Mohamed & Wierstra 2014), with the usual extensions:

- importance-weighted likelihood estimates and training bound (Burda, Grosse & Salakhutdinov
  2016, "Importance Weighted Autoencoders"): with z_k ~ q(z|x), w_k = p(x, z_k) / q(z_k|x),

      log p(x) >= IWAE_K = E[log (1/K) sum_k w_k] >= ... >= IWAE_1 = ELBO,

  the bound tightening as K grows and reaching log p(x) as K -> infinity;
- priors (``dgm.models.latent.priors``): standard, mixture of Gaussians, VampPrior (Tomczak &
  Welling 2018, "VAE with a VampPrior"), a MAF flow;
- posteriors (``dgm.models.latent.posteriors``): diagonal Gaussian, or a Gaussian followed by planar
  (Rezende & Mohamed 2015), Householder (Tomczak & Welling 2016), Sylvester (van den Berg et
  al. 2018) or IAF (Kingma et al. 2016) steps conditioned on the encoder's features;
- training tricks, all of them in the *loss* only (``elbo``, ``log_prob`` and ``metrics``
  always report the unweighted bound): beta-VAE's KL weight (Higgins et al. 2017), a linear KL
  warm-up (Bowman et al. 2016; Sønderby et al. 2016), free bits (Kingma et al. 2016) and the
  IWAE objective.

``log_prob(x, num_samples=K)`` is the IWAE estimate, a stochastic lower bound on log p(x)
(hence ``exact_likelihood = False``): in nats per example, as for every model, so a VAE's
NLL is an *upper* bound comparable with the exact NLLs of autoregressive models.

The KL term is analytic when both the prior and the posterior are diagonal Gaussians without
flows (standard prior, ``posterior=gaussian``), and a one-sample Monte Carlo estimate
log q(z|x) - log p(z) at the posterior's draw otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.base import Batch
from dgm.models.latent.base import (
    CHUNK,
    PARAMS_PER_PASS,
    LatentModel,
    Prior,
    PriorConfig,
    Scorer,
    VAELikelihood,
    iwae_bound,
    make_prior,
)
from dgm.models.latent.posteriors import (
    POSTERIORS,
    GaussianPosterior,
    PosteriorName,
    gaussian_kl,
    make_posterior,
)
from dgm.models.latent.priors import StandardPrior
from dgm.registry import register


@dataclass
class VAEConfig(PriorConfig):
    hidden: int = opt(
        300, "units per hidden layer (conv: of the fully connected layer; also IAF/flow MADEs)"
    )
    posterior: PosteriorName = opt("gaussian", " | ".join(POSTERIORS))
    flow_length: int = opt(4, "flow posteriors: steps (householder: reflections)")
    sylvester_m: int = opt(0, "sylvester-orthogonal: columns of Q (0: latent // 2)")
    reflections: int = opt(4, "sylvester-householder: reflections per step")
    free_bits: float = opt(
        0.0,
        "nats per latent dimension of batch-mean KL left unpenalised (needs prior=standard, "
        "posterior=gaussian, objective=elbo)",
    )
    objective: Literal["elbo", "iwae"] = opt(
        "elbo", "training bound: the ELBO, or the IWAE bound with iwae_samples samples"
    )
    iwae_samples: int = opt(5, "importance samples of the iwae objective")
    kl_samples: int = opt(
        8,
        "elbo objective, KL without a closed form (learned priors, flow posteriors): draws of "
        "z for its Monte Carlo estimate in the loss; more cut the gradient noise that costs "
        "such priors ~2 nats on digits, with no extra decoder pass",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.flow_length < 1 or self.sylvester_m < 0 or self.reflections < 1:
            raise ConfigError("need flow_length, reflections >= 1 and sylvester_m >= 0")
        if self.free_bits < 0:
            raise ConfigError(f"free_bits must be >= 0, got {self.free_bits}")
        if self.free_bits > 0 and (
            self.prior != "standard" or self.posterior != "gaussian" or self.objective != "elbo"
        ):
            raise ConfigError(
                "free_bits acts on the analytic per-dimension KL: it needs prior=standard, "
                "posterior=gaussian and objective=elbo"
            )
        if self.iwae_samples < 1 or self.kl_samples < 1:
            raise ConfigError("iwae_samples and kl_samples must be >= 1")


class Draws(NamedTuple):
    """``S`` posterior draws per example: ``[S, B]`` terms, and q_0's parameters ``[B, K]``."""

    recon: Tensor  # log p(x|z_s)
    log_p: Tensor  # log p(z_s)
    log_q: Tensor  # log q(z_s|x)
    mu: Tensor  # q_0's mean
    log_std: Tensor  # q_0's log standard deviation


@register("vae", "latent", "variational autoencoder: ELBO/IWAE, VampPrior and flow posteriors")
class VAE(LatentModel):
    """``encoder`` (x -> h), ``posterior`` (h -> z, log q(z|x)), ``prior`` (p(z)), ``decoder``
    (z -> likelihood parameters) and ``likelihood`` (p(x|z))."""

    Config = VAEConfig
    bf16_proven = True  # tests/test_precision.py
    config: VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config, config.latent)
        c = config
        self.posterior = make_posterior(c, self.encoder.out_dim)
        # a VampPrior mixes q_0 at its pseudo-inputs
        self.prior: Prior = make_prior(c, c.latent, self._q0)

    @property
    def analytic_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) is computed in closed form (both diagonal Gaussians)."""
        return isinstance(self.prior, StandardPrior) and isinstance(
            self.posterior, GaussianPosterior
        )

    def _q0(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """q_0's ``(mu, log_std)`` at encoder inputs ``u`` (the VampPrior's components)."""
        return self.posterior.gaussian_params(self.encoder(u))

    # -- posterior draws and the bounds' terms ---------------------------------------------
    def draws(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Draws:
        """``num_samples`` reparameterised draws z ~ q(z|x) per example and their terms.

        The encoder runs once; the draws are decoded in passes of bounded memory
        (:meth:`~dgm.models.latent.LatentModel.draw_terms`). The noise of each sample is drawn
        as its own ``[B, K]`` tensor, in order, so the same seed gives the same draws (and
        numbers) whatever the chunk size.
        """
        h = self.encoder(self._prep(x))  # [B, H]
        b, k = h.shape[0], self.config.latent
        mu, log_std = self.posterior.gaussian_params(h)  # [B, K] each

        def draw(s: int, score: Scorer) -> tuple[Tensor, Tensor, Tensor]:
            eps = torch.cat([torch.randn(b, k, device=h.device, dtype=h.dtype) for _ in range(s)])
            z, lq = self.posterior.rsample(h.repeat(s, 1), eps)  # [s * B, K], [s * B]
            return score(z), self.prior.log_prob(z), lq

        recon, log_p, log_q = self.draw_terms(x, num_samples, chunk, draw)
        return Draws(recon, log_p, log_q, mu=mu, log_std=log_std)

    def log_weights(self, d: Draws) -> Tensor:
        """log p(x|z) + log p(z) - log q(z|x): ``[S, B]``."""
        return d.recon + d.log_p - d.log_q

    def kl_term(self, d: Draws) -> Tensor:
        """KL(q(z|x) || p(z)), ``[B]``: analytic when both are diagonal Gaussians, otherwise
        the Monte Carlo mean of log q(z|x) - log p(z) over the draws."""
        if self.analytic_kl:
            return gaussian_kl(d.mu, d.log_std).sum(-1)
        return (d.log_q - d.log_p).mean(0)

    def elbo(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """E_q[log p(x|z) + log p(z) - log q(z|x)] in nats, ``[B]``: Monte Carlo over
        ``num_samples`` draws, with the KL in closed form where it has one."""
        if self.analytic_kl:
            return super().elbo(x, num_samples, chunk)
        self.check_input(x)
        return self.log_weights(self.draws(x, num_samples, chunk)).mean(0)

    # -- training -------------------------------------------------------------------------
    def loss(self, batch: Batch) -> Tensor:
        """Negative training bound (mean over the batch): the ELBO with its KL weighted by
        :meth:`kl_weight` (a Monte Carlo KL averages ``kl_samples`` draws; free bits: each
        latent dimension's batch-mean KL counts as at least ``free_bits`` nats, so codes below
        it get no push towards the prior), or the IWAE bound with weights p(x|z)
        (p(z)/q(z|x))^w."""
        c = self.config
        mc_kl = not self.analytic_kl and c.kl_samples > 1
        if c.objective == "elbo" and c.free_bits == 0 and not mc_kl:
            return super().loss(batch)
        x, w = self._training_step(batch)
        if c.objective == "elbo" and mc_kl:
            # one decoded draw for the reconstruction, kl_samples cheap draws for the KL
            # (both unbiased; the KL's noise, not its mean, is what the extra draws cut)
            h = self.encoder(self._prep(x))  # [B, H]
            b, k = h.shape[0], c.latent
            eps = torch.randn((1 + c.kl_samples) * b, k, device=h.device, dtype=h.dtype)
            z, log_q = self.posterior.rsample(h.repeat(1 + c.kl_samples, 1), eps)  # [(1+S)B, .]
            recon = self._score(x, z[:b])  # [B]
            kl = (log_q[b:] - self.prior.log_prob(z[b:])).view(c.kl_samples, b).mean(0)  # [B]
            return -recon.mean() + w * kl.mean()
        if c.objective == "iwae":
            d = self.draws(x, c.iwae_samples)
            return -iwae_bound(d.recon + w * (d.log_p - d.log_q)).mean()  # log_w [K, B]
        d = self.draws(x, 1)
        kl = gaussian_kl(d.mu, d.log_std).mean(0).clamp_min(c.free_bits).sum()  # free bits
        return -d.recon.mean() + w * kl

    # -- generation and the compression view -------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """z ~ p(z), then x ~ p(x|z) (``temperature`` applies to the likelihood; 0: its mode
        or mean): ``[n, *shape]`` in the data's space."""
        z = self.prior_codes(n).to(self._dtype)
        return self.likelihood.sample(self.decoder(z), temperature)

    def prior_codes(self, n: int) -> Tensor:
        """z ~ p(z): ``[n, K]``."""
        return self.prior.sample(n)

    def encode(self, x: Tensor) -> Tensor:
        """A code per example ``[B, K]``: the posterior mean (flows: the flow of q_0's mean)."""
        self.check_input(x)
        return self.posterior.mean(self.encoder(self._prep(x)))


__all__ = ["CHUNK", "PARAMS_PER_PASS", "VAE", "Draws", "VAEConfig", "VAELikelihood"]
