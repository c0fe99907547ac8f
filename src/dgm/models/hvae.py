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
Gaussian heads, the chunking of many importance samples) are those of :mod:`dgm.models.vae`.
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
    make_likelihood,
)
from dgm.distributions.gaussian import Gaussian
from dgm.errors import ConfigError
from dgm.models.base import Batch, GenerativeModel, unpack
from dgm.models.posteriors import (
    HALF_LOG_2PI,
    GaussianPosterior,
    diag_normal_log_prob,
    gaussian_kl,
)
from dgm.models.priors import (
    PRIORS,
    FlowPrior,
    MixturePrior,
    PriorName,
    StandardPrior,
    VampPrior,
)
from dgm.models.vae import CHUNK, PARAMS_PER_PASS, VAELikelihood
from dgm.nn.causal import Activation
from dgm.nn.vae import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from dgm.registry import register


@dataclass
class HVAEConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(
        17, "values per dimension, from the data (none: continuous data, Gaussian likelihood)"
    )
    latent: int = opt(16, "dimensions of the lower code z1 (the decoder's first input)")
    latent2: int = opt(16, "dimensions of the top code z2 (the prior's)")
    hidden: int = opt(
        300, "units per hidden layer (conv: of the fully connected layer; also flow MADEs)"
    )
    layers: int = opt(
        2,
        "hidden layers of the mlp encoder and decoder and of the nets of q(z1|x,z2) and "
        "p(z1|z2) (0: linear)",
    )
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
    prior: PriorName = opt(
        "standard", "p(z2): standard | mog (mixture of Gaussians) | vampprior | flow"
    )
    components: int = opt(
        100, "mog: mixture components; vampprior: pseudo-inputs (the paper: 500 on MNIST)"
    )
    prior_flow: int = opt(4, "flow prior: MAF steps over a standard normal")
    beta: float = opt(1.0, "KL weight in the training loss (beta-VAE); never in reported numbers")
    warmup_steps: int = opt(
        0, "training steps over which the KL weight rises linearly from 0 to beta (0: none)"
    )
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.0, "dropout after each hidden layer of the networks")

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"levels must be >= 2 or none, got {self.levels}")
        if min(self.latent, self.latent2, self.hidden, self.channels) < 1 or self.layers < 0:
            raise ConfigError("need latent, latent2, hidden, channels >= 1 and layers >= 0")
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
        if self.components < 1 or self.prior_flow < 1:
            raise ConfigError("components and prior_flow must be >= 1")
        if self.beta < 0 or self.warmup_steps < 0:
            raise ConfigError("beta and warmup_steps must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


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
class HVAE(GenerativeModel):
    """``encoder`` (x -> h), ``q2`` (h -> q(z2|x)), ``q1_net`` + ``q1`` ([h, z2] -> q(z1|x,z2)),
    ``prior`` (p(z2)), ``p1_net`` + ``p1`` (z2 -> p(z1|z2)), ``decoder`` ([z1, z2] -> likelihood
    parameters) and ``likelihood`` (p(x|z1,z2)). The Gaussian heads are the VAE's
    :class:`~dgm.models.posteriors.GaussianPosterior` (a Linear to mean and softplus scale)."""

    Config = HVAEConfig
    exact_likelihood = False
    default_eval_samples = 5000  # `dgm eval`'s K, as the papers report
    config: HVAEConfig

    def __init__(self, config: HVAEConfig) -> None:
        super().__init__(config)
        c = config
        self.likelihood: Likelihood | Gaussian = (
            Gaussian(c.gaussian_scale or None)
            if c.levels is None
            else make_likelihood(c.likelihood, c.levels, c.mixtures)
        )
        p = self.likelihood.params_per_dim
        both = c.latent + c.latent2  # the decoder reads [z1, z2]
        self.encoder: nn.Module
        self.decoder: nn.Module
        if c.backbone == "conv" or (c.backbone == "auto" and len(c.shape) == 3):
            self.encoder = ConvEncoder(c.shape, c.channels, c.hidden, c.activation, c.dropout)
            self.decoder = ConvDecoder(
                both, c.shape, p, c.channels, c.hidden, c.activation, c.dropout
            )
        else:
            self.encoder = MLPEncoder(c.shape, c.hidden, c.layers, c.activation, c.dropout)
            self.decoder = MLPDecoder(both, c.shape, p, c.hidden, c.layers, c.activation, c.dropout)
        h_dim = self.encoder.out_dim
        # q(z2 | x): a Gaussian head on the encoder's features
        self.q2 = GaussianPosterior(h_dim, c.latent2)
        # q(z1 | x, z2) and p(z1 | z2): MLPs (the identity when layers = 0) then Gaussian heads
        self.q1_net = MLPEncoder((h_dim + c.latent2,), c.hidden, c.layers, c.activation, c.dropout)
        self.q1 = GaussianPosterior(self.q1_net.out_dim, c.latent)
        self.p1_net = MLPEncoder((c.latent2,), c.hidden, c.layers, c.activation, c.dropout)
        self.p1 = GaussianPosterior(self.p1_net.out_dim, c.latent)
        self.prior: StandardPrior | MixturePrior | VampPrior | FlowPrior
        if c.prior == "standard":
            self.prior = StandardPrior(c.latent2)
        elif c.prior == "mog":
            self.prior = MixturePrior(c.latent2, c.components)
        elif c.prior == "vampprior":
            # the top layer's posteriors at the pseudo-inputs, as in the paper's HVAE
            self.prior = VampPrior(c.shape, c.components, self._q2, bounded=c.levels is not None)
        elif c.prior == "flow":
            self.prior = FlowPrior(c.latent2, c.prior_flow, c.hidden, c.activation)
        else:  # pragma: no cover - the Literal guards it
            raise ConfigError(f"unknown prior {c.prior!r}; use one of {', '.join(PRIORS)}")
        # training steps taken, for the KL warm-up: plain state, not a buffer (as in the VAE)
        self._steps = 0

    # -- pieces -----------------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return next(self.q2.parameters()).dtype

    @property
    def analytic_kl(self) -> bool:
        """Whether KL(q(z2|x) || p(z2)) is computed in closed form (the standard prior)."""
        return isinstance(self.prior, StandardPrior)

    def _prep(self, x: Tensor) -> Tensor:
        """What the encoder reads: discrete levels scaled to [-1, 1], continuous data as is."""
        x = x.to(self._dtype)
        if self.config.levels is None:
            return x
        return x * (2.0 / (self.config.levels - 1)) - 1.0

    def _q2(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """q(z2|u)'s ``(mu, log_std)`` at encoder inputs ``u`` (the VampPrior's components)."""
        return self.q2.gaussian_params(self.encoder(u))

    def _q1(self, h: Tensor, z2: Tensor) -> tuple[Tensor, Tensor]:
        """q(z1 | x, z2)'s ``(mu, log_std)`` ``[B, latent]`` from features ``h`` and ``z2``."""
        return self.q1.gaussian_params(self.q1_net(torch.cat([h, z2], dim=-1)))

    def _p1(self, z2: Tensor) -> tuple[Tensor, Tensor]:
        """p(z1 | z2)'s ``(mu, log_std)`` ``[B, latent]``."""
        return self.p1.gaussian_params(self.p1_net(z2))

    def init_pseudo_inputs(self, x: Tensor, noise: float = 0.01) -> None:
        """VampPrior: start the pseudo-inputs at the first ``components`` examples of ``x``
        (data, ``[N, *shape]``) plus noise, as the paper's training-data initialisation."""
        if not isinstance(self.prior, VampPrior):
            raise ConfigError("init_pseudo_inputs needs prior=vampprior")
        self.check_input(x)
        self.prior.init_from_data(self._prep(x), noise)

    def kl_weight(self) -> float:
        """The KL terms' weight in the loss now: ``beta``, ramped up over ``warmup_steps``."""
        c = self.config
        if c.warmup_steps > 0:
            return c.beta * min(1.0, self._steps / c.warmup_steps)
        return c.beta

    def draws(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Draws:
        """``num_samples`` reparameterised joint draws (z1, z2) ~ q per example and their terms.

        The encoder runs once; the draws are decoded ``chunk`` rows (examples x samples) per
        pass (fewer where the likelihood has many parameters per row: ``PARAMS_PER_PASS``).
        Each sample's noise is drawn in order, ``[B, latent2]`` for z2 then ``[B, latent]`` for
        z1, so the same seed gives the same draws (and numbers) whatever the chunk size.
        """
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        c = self.config
        h = self.encoder(self._prep(x))  # [B, H]
        b = h.shape[0]
        mu2, log_std2 = self.q2.gaussian_params(h)  # [B, K2] each
        row_params = self.likelihood.params_per_dim * math.prod(self.event_shape)
        rows = min(chunk, max(1, PARAMS_PER_PASS // row_params))
        per = max(1, rows // max(b, 1))  # samples per pass
        terms: list[list[Tensor]] = [[] for _ in range(6)]
        for start in range(0, num_samples, per):
            s = min(per, num_samples - start)
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
            xr = x.repeat(s, *([1] * (x.dim() - 1)))  # [s * B, *event]
            params = self.decoder(torch.cat([z1, z2], dim=-1))
            for out, t in zip(
                terms,
                (
                    self.likelihood.log_prob(params, xr),
                    self.prior.log_prob(z2),
                    lq2,
                    diag_normal_log_prob(z1, pm1, pls1),
                    lq1,
                    gaussian_kl_between(mu1, log_std1, pm1, pls1).sum(-1),
                ),
            ):
                out.append(t.view(s, b))
        recon, log_p2, log_q2, log_p1, log_q1, kl1 = (torch.cat(t) for t in terms)
        return Draws(recon, log_p2, log_q2, log_p1, log_q1, kl1, mu2, log_std2)

    def _elbo_terms(self, d: Draws) -> tuple[Tensor, Tensor]:
        """(E log p(x|z1,z2), E KL1 + KL2) per example ``[B]`` from the draws ``d``."""
        recon = d.recon.mean(0)
        if self.analytic_kl:
            kl2 = gaussian_kl(d.mu2, d.log_std2).sum(-1)
        else:
            kl2 = (d.log_q2 - d.log_p2).mean(0)
        return recon, d.kl1.mean(0) + kl2

    # -- the bounds --------------------------------------------------------------------------
    def elbo(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """E_q[log p(x|z1,z2)] - E_q[KL_1] - KL_2 in nats, ``[B]``: Monte Carlo over
        ``num_samples`` joint draws, the KLs in closed form where they have one."""
        self.check_input(x)
        recon, kl = self._elbo_terms(self.draws(x, num_samples, chunk))
        return recon - kl

    def log_prob(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """The IWAE estimate log (1/K) sum_k p(x, z1_k, z2_k) / q(z1_k, z2_k | x), ``[B]``
        (K = ``num_samples``): a lower bound on log p(x) in expectation."""
        self.check_input(x)
        log_w = self.draws(x, num_samples, chunk).log_w  # [K, B]
        return torch.logsumexp(log_w, dim=0) - math.log(num_samples)

    def likelihood_note(self, num_samples: int = 1) -> str:
        what = "the ELBO" if num_samples == 1 else "the IWAE bound"
        return (
            f"importance-sampled estimate with K={num_samples} joint draws of (z1, z2) ({what}, "
            "Burda et al. 2016), a lower bound on log p(x): the NLL is an upper bound"
        )

    # -- training -------------------------------------------------------------------------
    def loss(self, batch: Batch) -> Tensor:
        """Negative ELBO (mean over the batch, one joint draw) with both layers' KL terms
        weighted by :meth:`kl_weight`. Each call in training mode is one step of the warm-up."""
        x, _ = unpack(batch)
        self.check_input(x)
        w = self.kl_weight()
        if self.training:
            self._steps += 1
        recon, kl = self._elbo_terms(self.draws(x, 1))
        return -recon.mean() + w * kl.mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` = -ELBO (one draw: the cheap validation criterion) and ``elbo``, ``[B]``."""
        x, _ = unpack(batch)
        elbo = self.elbo(x)
        return {"nll": -elbo, "elbo": elbo}

    # -- generation and the compression view -------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """z2 ~ p(z2), z1 ~ p(z1|z2), then x ~ p(x|z1,z2) (``temperature`` applies to the
        likelihood; 0: its mode or mean): ``[n, *shape]`` in the data's space."""
        z2 = self.prior.sample(n).to(self._dtype)  # [n, K2]
        mu1, log_std1 = self._p1(z2)
        z1 = mu1 + torch.exp(log_std1) * torch.randn_like(mu1)  # [n, K1]
        return self.likelihood.sample(self.decoder(torch.cat([z1, z2], -1)), temperature)

    def encode(self, x: Tensor) -> Tensor:
        """A code per example ``[B, latent + latent2]``: ``[mean of q(z1 | x, z2 = m2), m2]``
        with ``m2`` the mean of q(z2 | x) (z1 first, the layout :meth:`decode` reads)."""
        self.check_input(x)
        h = self.encoder(self._prep(x))
        mu2 = self.q2.mean(h)
        return torch.cat([self._q1(h, mu2)[0], mu2], dim=-1)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """The likelihood's most likely value (Gaussian: its mean) given codes
        ``z = [z1, z2]`` ``[B, latent + latent2]``, as :meth:`encode` makes them."""
        return self.likelihood.sample(self.decoder(z.to(self._dtype)), temperature=0)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``decode(encode(x))``: ``[B, *shape]``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decode ``steps`` evenly spaced points of the segment between the codes ([z1, z2])
        of ``x1`` and ``x2``: single examples ``[*shape]`` give ``[steps, *shape]``, batches
        ``[B, *shape]`` give ``[steps, B, *shape]``."""
        single = x1.dim() == len(self.event_shape)
        if single:
            x1, x2 = x1[None], x2[None]
        a, b = self.encode(x1), self.encode(x2)  # [B, K1 + K2]
        t = torch.linspace(0, 1, steps, device=a.device, dtype=a.dtype).view(steps, 1, 1)
        z = (1 - t) * a + t * b  # [steps, B, K1 + K2]
        out = self.decode(z.flatten(0, 1)).view(steps, a.shape[0], *self.event_shape)
        return out[:, 0] if single else out


__all__ = ["HVAE", "Draws", "HVAEConfig", "gaussian_draw", "gaussian_kl_between"]
