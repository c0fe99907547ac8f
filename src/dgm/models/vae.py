"""The variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes";
Rezende, Mohamed & Wierstra 2014), with the usual extensions:

- importance-weighted likelihood estimates and training bound (Burda, Grosse & Salakhutdinov
  2016, "Importance Weighted Autoencoders"): with z_k ~ q(z|x), w_k = p(x, z_k) / q(z_k|x),

      log p(x) >= IWAE_K = E[log (1/K) sum_k w_k] >= ... >= IWAE_1 = ELBO,

  the bound tightening as K grows and reaching log p(x) as K -> infinity;
- priors (``dgm.models.priors``): standard, mixture of Gaussians, VampPrior (Tomczak & Welling
  2018, "VAE with a VampPrior"), a MAF flow;
- posteriors (``dgm.models.posteriors``): diagonal Gaussian, or a Gaussian followed by planar
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

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.distributions.base import (
    LIKELIHOOD_HELP,
    MIXTURES_HELP,
    Likelihood,
    LikelihoodName,
    make_likelihood,
)
from dgm.distributions.gaussian import Gaussian
from dgm.errors import ConfigError
from dgm.models.base import Batch, GenerativeModel, unpack
from dgm.models.posteriors import (
    POSTERIORS,
    GaussianPosterior,
    PosteriorName,
    gaussian_kl,
    make_posterior,
)
from dgm.models.priors import (
    PRIORS,
    FlowPrior,
    MixturePrior,
    PriorName,
    StandardPrior,
    VampPrior,
)
from dgm.nn.causal import Activation
from dgm.nn.vae import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from dgm.registry import register

VAELikelihood = Literal[LikelihoodName, "gaussian"]
# rows (examples x importance samples) decoded per pass of log_prob / elbo: bounds the memory
# of K = 5000 samples on a batch of 500 (the default conv decoder on binary 28x28 images peaks
# at ~1.4 GB per pass of 2^14 rows, under no_grad)
CHUNK = 1 << 14
# and at most this many likelihood parameters per pass (a 256-level categorical on 28x28 has
# 200k per row: 2^14 rows of them would take 13 GB)
PARAMS_PER_PASS = 1 << 26


@dataclass
class VAEConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(
        17, "values per dimension, from the data (none: continuous data, Gaussian likelihood)"
    )
    latent: int = opt(16, "dimensions of the code z")
    hidden: int = opt(
        300, "units per hidden layer (conv: of the fully connected layer; also IAF/flow MADEs)"
    )
    layers: int = opt(2, "mlp: hidden layers of the encoder and of the decoder (0: linear)")
    backbone: Literal["auto", "mlp", "conv"] = opt(
        "auto", "auto (conv for images, mlp otherwise) | mlp | conv (stride-2, DCGAN-like)"
    )
    channels: int = opt(32, "conv: channels after the first stride-2 layer, doubling after each")
    likelihood: VAELikelihood = opt(
        "auto", LIKELIHOOD_HELP + " | gaussian (continuous data; what auto picks for it)"
    )
    mixtures: int = opt(5, MIXTURES_HELP)
    gaussian_scale: float = opt(
        0.0, "gaussian likelihood: 0 learns a log-scale per dimension from z; > 0 fixes the scale"
    )
    prior: PriorName = opt("standard", "standard | mog (mixture of Gaussians) | vampprior | flow")
    components: int = opt(
        100, "mog: mixture components; vampprior: pseudo-inputs (the paper: 500 on MNIST)"
    )
    prior_flow: int = opt(4, "flow prior: MAF steps over a standard normal")
    posterior: PosteriorName = opt("gaussian", " | ".join(POSTERIORS))
    flow_length: int = opt(4, "flow posteriors: steps (householder: reflections)")
    sylvester_m: int = opt(0, "sylvester-orthogonal: columns of Q (0: latent // 2)")
    reflections: int = opt(4, "sylvester-householder: reflections per step")
    beta: float = opt(1.0, "KL weight in the training loss (beta-VAE); never in reported numbers")
    warmup_steps: int = opt(
        0, "training steps over which the KL weight rises linearly from 0 to beta (0: none)"
    )
    free_bits: float = opt(
        0.0,
        "nats per latent dimension of batch-mean KL left unpenalised (needs prior=standard, "
        "posterior=gaussian, objective=elbo)",
    )
    objective: Literal["elbo", "iwae"] = opt(
        "elbo", "training bound: the ELBO, or the IWAE bound with iwae_samples samples"
    )
    iwae_samples: int = opt(5, "importance samples of the iwae objective")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.0, "dropout after each hidden layer of the encoder and decoder")

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"levels must be >= 2 or none, got {self.levels}")
        if self.latent < 1 or self.hidden < 1 or self.channels < 1 or self.layers < 0:
            raise ConfigError("need latent, hidden, channels >= 1 and layers >= 0")
        if self.backbone == "conv" and len(self.shape) != 3:
            raise ConfigError(f"backbone=conv needs images (C, H, W), got shape {self.shape}")
        if self.levels is None and self.likelihood not in ("auto", "gaussian"):
            raise ConfigError(
                f"likelihood={self.likelihood} models discrete levels, but the data are "
                "continuous (levels none); use likelihood=gaussian (or auto)"
            )
        if self.levels is not None and self.likelihood == "gaussian":
            raise ConfigError(
                "likelihood=gaussian is for continuous data; discrete levels need a discrete "
                "likelihood (auto, categorical, bernoulli or logistic-mixture)"
            )
        if self.gaussian_scale < 0:
            raise ConfigError(f"gaussian_scale must be >= 0, got {self.gaussian_scale}")
        if self.components < 1 or self.prior_flow < 1 or self.flow_length < 1:
            raise ConfigError("components, prior_flow and flow_length must be >= 1")
        if self.sylvester_m < 0 or self.reflections < 1:
            raise ConfigError("need sylvester_m >= 0 and reflections >= 1")
        if self.beta < 0 or self.warmup_steps < 0 or self.free_bits < 0:
            raise ConfigError("beta, warmup_steps and free_bits must be >= 0")
        if self.free_bits > 0 and (
            self.prior != "standard" or self.posterior != "gaussian" or self.objective != "elbo"
        ):
            raise ConfigError(
                "free_bits acts on the analytic per-dimension KL: it needs prior=standard, "
                "posterior=gaussian and objective=elbo"
            )
        if self.iwae_samples < 1:
            raise ConfigError(f"iwae_samples must be >= 1, got {self.iwae_samples}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


class Draws(NamedTuple):
    """``S`` posterior draws per example: ``[S, B]`` terms, and q_0's parameters ``[B, K]``."""

    recon: Tensor  # log p(x|z_s)
    log_p: Tensor  # log p(z_s)
    log_q: Tensor  # log q(z_s|x)
    mu: Tensor  # q_0's mean
    log_std: Tensor  # q_0's log standard deviation


@register("vae", "latent", "variational autoencoder: ELBO/IWAE, VampPrior and flow posteriors")
class VAE(GenerativeModel):
    """``encoder`` (x -> h), ``posterior`` (h -> z, log q(z|x)), ``prior`` (p(z)), ``decoder``
    (z -> likelihood parameters) and ``likelihood`` (p(x|z))."""

    Config = VAEConfig
    exact_likelihood = False
    default_eval_samples = 5000  # `dgm eval`'s K, as the papers report
    config: VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        c = config
        self.likelihood: Likelihood | Gaussian = (
            Gaussian(c.gaussian_scale or None)
            if c.levels is None
            else make_likelihood(c.likelihood, c.levels, c.mixtures)
        )
        p = self.likelihood.params_per_dim
        self.encoder: nn.Module
        self.decoder: nn.Module
        if c.backbone == "conv" or (c.backbone == "auto" and len(c.shape) == 3):
            self.encoder = ConvEncoder(c.shape, c.channels, c.hidden, c.activation, c.dropout)
            self.decoder = ConvDecoder(
                c.latent, c.shape, p, c.channels, c.hidden, c.activation, c.dropout
            )
        else:
            self.encoder = MLPEncoder(c.shape, c.hidden, c.layers, c.activation, c.dropout)
            self.decoder = MLPDecoder(
                c.latent, c.shape, p, c.hidden, c.layers, c.activation, c.dropout
            )
        self.posterior = make_posterior(
            c.posterior,
            self.encoder.out_dim,
            c.latent,
            c.flow_length,
            c.sylvester_m,
            c.reflections,
            c.hidden,
            c.activation,
        )
        self.prior: StandardPrior | MixturePrior | VampPrior | FlowPrior
        if c.prior == "standard":
            self.prior = StandardPrior(c.latent)
        elif c.prior == "mog":
            self.prior = MixturePrior(c.latent, c.components)
        elif c.prior == "vampprior":
            # pseudo-inputs live where the encoder reads: [-1, 1] for discrete data
            self.prior = VampPrior(c.shape, c.components, self._q0, bounded=c.levels is not None)
        elif c.prior == "flow":
            self.prior = FlowPrior(c.latent, c.prior_flow, c.hidden, c.activation)
        else:  # pragma: no cover - the Literal guards it
            raise ConfigError(f"unknown prior {c.prior!r}; use one of {', '.join(PRIORS)}")
        # training steps taken, for the KL warm-up: plain state, not a buffer, so the trainer's
        # weight averaging never blends it (a resumed run starts the warm-up again)
        self._steps = 0

    # -- pieces -----------------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return next(self.posterior.parameters()).dtype

    @property
    def analytic_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) is computed in closed form (both diagonal Gaussians)."""
        return isinstance(self.prior, StandardPrior) and isinstance(
            self.posterior, GaussianPosterior
        )

    def _prep(self, x: Tensor) -> Tensor:
        """What the encoder reads: discrete levels scaled to [-1, 1], continuous data as is."""
        x = x.to(self._dtype)
        if self.config.levels is None:
            return x
        return x * (2.0 / (self.config.levels - 1)) - 1.0

    def _q0(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """q_0's ``(mu, log_std)`` at encoder inputs ``u`` (the VampPrior's components)."""
        return self.posterior.gaussian_params(self.encoder(u))

    def init_pseudo_inputs(self, x: Tensor, noise: float = 0.01) -> None:
        """VampPrior: start the pseudo-inputs at the first ``components`` examples of ``x``
        (data, ``[N, *shape]``) plus noise, as the paper's training-data initialisation."""
        if not isinstance(self.prior, VampPrior):
            raise ConfigError("init_pseudo_inputs needs prior=vampprior")
        self.check_input(x)
        self.prior.init_from_data(self._prep(x), noise)

    def kl_weight(self) -> float:
        """The KL term's weight in the loss now: ``beta``, ramped up over ``warmup_steps``."""
        c = self.config
        if c.warmup_steps > 0:
            return c.beta * min(1.0, self._steps / c.warmup_steps)
        return c.beta

    def draws(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Draws:
        """``num_samples`` reparameterised draws z ~ q(z|x) per example and their terms.

        The encoder runs once; the draws are decoded ``chunk`` rows (examples x samples) per
        pass (fewer where the likelihood has many parameters per row: ``PARAMS_PER_PASS``).
        The noise of each sample is drawn as its own ``[B, K]`` tensor, in order, so the same
        seed gives the same draws (and numbers) whatever the chunk size.
        """
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        h = self.encoder(self._prep(x))  # [B, H]
        b, k = h.shape[0], self.config.latent
        mu, log_std = self.posterior.gaussian_params(h)  # [B, K] each
        row_params = self.likelihood.params_per_dim * math.prod(self.event_shape)
        rows = min(chunk, max(1, PARAMS_PER_PASS // row_params))
        per = max(1, rows // max(b, 1))  # samples per pass
        recon, log_p, log_q = [], [], []
        for start in range(0, num_samples, per):
            s = min(per, num_samples - start)
            eps = torch.cat([torch.randn(b, k, device=h.device, dtype=h.dtype) for _ in range(s)])
            z, lq = self.posterior.rsample(h.repeat(s, 1), eps)  # [s * B, K], [s * B]
            xr = x.repeat(s, *([1] * (x.dim() - 1)))  # [s * B, *event], sample-major
            recon.append(self.likelihood.log_prob(self.decoder(z), xr).view(s, b))
            log_p.append(self.prior.log_prob(z).view(s, b))
            log_q.append(lq.view(s, b))
        return Draws(torch.cat(recon), torch.cat(log_p), torch.cat(log_q), mu, log_std)

    # -- the bounds --------------------------------------------------------------------------
    def elbo(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """E_q[log p(x|z) + log p(z) - log q(z|x)] in nats, ``[B]``: Monte Carlo over
        ``num_samples`` draws, with the KL in closed form where it has one."""
        self.check_input(x)
        d = self.draws(x, num_samples, chunk)
        if self.analytic_kl:
            return d.recon.mean(0) - gaussian_kl(d.mu, d.log_std).sum(-1)
        return (d.recon + d.log_p - d.log_q).mean(0)

    def log_prob(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """The IWAE estimate log (1/K) sum_k p(x, z_k) / q(z_k|x), ``[B]`` (K = ``num_samples``;
        K = 1 is a one-sample ELBO): a lower bound on log p(x) in expectation."""
        self.check_input(x)
        d = self.draws(x, num_samples, chunk)
        log_w = d.recon + d.log_p - d.log_q  # [K, B]
        return torch.logsumexp(log_w, dim=0) - math.log(num_samples)

    def likelihood_note(self, num_samples: int = 1) -> str:
        what = "the ELBO" if num_samples == 1 else "the IWAE bound"
        return (
            f"importance-sampled estimate with K={num_samples} samples ({what}, Burda et al. "
            "2016), a lower bound on log p(x): the NLL is an upper bound"
        )

    # -- training -------------------------------------------------------------------------
    def loss(self, batch: Batch) -> Tensor:
        """Negative training bound (mean over the batch): the ELBO with its KL weighted by
        :meth:`kl_weight` (free bits: each latent dimension's batch-mean KL counts as at least
        ``free_bits`` nats, so codes below it get no push towards the prior), or the IWAE
        bound with weights p(x|z) (p(z)/q(z|x))^w. Each call in training mode is one step of
        the warm-up."""
        x, _ = unpack(batch)
        self.check_input(x)
        c = self.config
        w = self.kl_weight()
        if self.training:
            self._steps += 1
        if c.objective == "iwae":
            d = self.draws(x, c.iwae_samples)
            log_w = d.recon + w * (d.log_p - d.log_q)  # [K, B]
            return -(torch.logsumexp(log_w, dim=0) - math.log(c.iwae_samples)).mean()
        d = self.draws(x, 1)
        if self.analytic_kl:
            kl_dims = gaussian_kl(d.mu, d.log_std)  # [B, K]
            if c.free_bits > 0:
                kl = kl_dims.mean(0).clamp_min(c.free_bits).sum()
            else:
                kl = kl_dims.sum(-1).mean()
        else:
            kl = (d.log_q - d.log_p).mean()
        return -d.recon.mean() + w * kl

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` = -ELBO (one draw: the cheap validation criterion) and ``elbo``, ``[B]``."""
        x, _ = unpack(batch)
        elbo = self.elbo(x)
        return {"nll": -elbo, "elbo": elbo}

    # -- generation and the compression view -------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """z ~ p(z), then x ~ p(x|z) (``temperature`` applies to the likelihood; 0: its mode
        or mean): ``[n, *shape]`` in the data's space."""
        z = self.prior.sample(n).to(self._dtype)
        return self.likelihood.sample(self.decoder(z), temperature)

    def encode(self, x: Tensor) -> Tensor:
        """A code per example ``[B, K]``: the posterior mean (flows: the flow of q_0's mean)."""
        self.check_input(x)
        return self.posterior.mean(self.encoder(self._prep(x)))

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """The likelihood's most likely value (Gaussian: its mean) given ``z [B, K]``."""
        return self.likelihood.sample(self.decoder(z.to(self._dtype)), temperature=0)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``decode(encode(x))``: ``[B, *shape]``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decode ``steps`` evenly spaced points of the segment between the codes of ``x1`` and
        ``x2``: single examples ``[*shape]`` give ``[steps, *shape]``, batches ``[B, *shape]``
        give ``[steps, B, *shape]``."""
        single = x1.dim() == len(self.event_shape)
        if single:
            x1, x2 = x1[None], x2[None]
        z1, z2 = self.encode(x1), self.encode(x2)  # [B, K]
        t = torch.linspace(0, 1, steps, device=z1.device, dtype=z1.dtype).view(steps, 1, 1)
        z = (1 - t) * z1 + t * z2  # [steps, B, K]
        out = self.decode(z.flatten(0, 1)).view(steps, z1.shape[0], *self.event_shape)
        return out[:, 0] if single else out


__all__ = ["CHUNK", "VAE", "Draws", "VAEConfig"]
