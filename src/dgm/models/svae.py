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
:mod:`dgm.models.vae`; so are the training tricks (beta, linear KL warm-up), which change the
loss only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import kl_divergence

from dgm.config import opt
from dgm.distributions.base import LIKELIHOOD_HELP, MIXTURES_HELP, Likelihood, make_likelihood
from dgm.distributions.gaussian import Gaussian
from dgm.distributions.spherical import (
    HypersphericalUniform,
    PowerSpherical,
    VonMisesFisher,
    log_sphere_area,
)
from dgm.errors import ConfigError
from dgm.models.base import Batch, GenerativeModel, unpack
from dgm.models.vae import CHUNK, PARAMS_PER_PASS, VAELikelihood
from dgm.nn.causal import Activation
from dgm.nn.vae import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from dgm.registry import register

SphericalName = Literal["vmf", "power-spherical"]
Spherical = VonMisesFisher | PowerSpherical


@dataclass
class SVAEConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(
        17, "values per dimension, from the data (none: continuous data, Gaussian likelihood)"
    )
    latent: int = opt(10, "ambient dimension m of the code z on the sphere S^(m-1) (>= 2)")
    hidden: int = opt(300, "units per hidden layer (conv: of the fully connected layer)")
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
    distribution: SphericalName = opt(
        "vmf", "posterior: vmf (von Mises-Fisher) | power-spherical (De Cao & Aziz 2020)"
    )
    beta: float = opt(1.0, "KL weight in the training loss (beta-VAE); never in reported numbers")
    warmup_steps: int = opt(
        0, "training steps over which the KL weight rises linearly from 0 to beta (0: none)"
    )
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.0, "dropout after each hidden layer of the encoder and decoder")

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"levels must be >= 2 or none, got {self.levels}")
        if self.latent < 2:
            raise ConfigError(
                f"latent is the sphere's ambient dimension: need >= 2, got {self.latent}"
            )
        if self.hidden < 1 or self.channels < 1 or self.layers < 0:
            raise ConfigError("need hidden, channels >= 1 and layers >= 0")
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
        if self.beta < 0 or self.warmup_steps < 0:
            raise ConfigError("beta and warmup_steps must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


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
class SVAE(GenerativeModel):
    """``encoder`` (x -> h), ``loc_head`` and ``kappa_head`` (h -> q(z|x) on the sphere),
    ``decoder`` (z -> likelihood parameters) and ``likelihood`` (p(x|z)); the prior is the
    uniform distribution on the sphere, with no parameters."""

    Config = SVAEConfig
    exact_likelihood = False
    default_eval_samples = 5000  # `dgm eval`'s K, as the papers report
    config: SVAEConfig

    def __init__(self, config: SVAEConfig) -> None:
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
        # the paper's heads: a mean direction (normalised) and one concentration per example
        self.loc_head = nn.Linear(self.encoder.out_dim, c.latent)
        self.kappa_head = nn.Linear(self.encoder.out_dim, 1)
        # training steps taken, for the KL warm-up: plain state, not a buffer (as in the VAE)
        self._steps = 0

    # -- pieces -----------------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return self.loc_head.weight.dtype

    @property
    def log_prior(self) -> float:
        """log p(z) = -log area(S^{m-1}), the same everywhere on the sphere."""
        return -log_sphere_area(self.config.latent)

    def _prep(self, x: Tensor) -> Tensor:
        """What the encoder reads: discrete levels scaled to [-1, 1], continuous data as is."""
        x = x.to(self._dtype)
        if self.config.levels is None:
            return x
        return x * (2.0 / (self.config.levels - 1)) - 1.0

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
        The vMF's rejection sampler uses a random amount of randomness, so each sample is drawn
        by its own ``[B]`` call, in order: the same seed then gives the same draws (and
        numbers) whatever the chunk size.
        """
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        h = self.encoder(self._prep(x))  # [B, H]
        q = self._posterior(h)
        b, m = h.shape[0], self.config.latent
        row_params = self.likelihood.params_per_dim * math.prod(self.event_shape)
        rows = min(chunk, max(1, PARAMS_PER_PASS // row_params))
        per = max(1, rows // max(b, 1))  # samples per pass
        recon, log_q = [], []
        for start in range(0, num_samples, per):
            s = min(per, num_samples - start)
            z = torch.cat([q.rsample() for _ in range(s)])  # [s * B, m], sample-major
            xr = x.repeat(s, *([1] * (x.dim() - 1)))  # [s * B, *event]
            recon.append(self.likelihood.log_prob(self.decoder(z), xr).view(s, b))
            log_q.append(q.log_prob(z.view(s, b, m)))  # [s, B]
        return Draws(torch.cat(recon), torch.cat(log_q), q)

    # -- the bounds --------------------------------------------------------------------------
    def elbo(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """E_q[log p(x|z)] - KL(q(z|x) || p(z)) in nats, ``[B]``: the reconstruction by Monte
        Carlo over ``num_samples`` draws, the KL in closed form."""
        self.check_input(x)
        d = self.draws(x, num_samples, chunk)
        return d.recon.mean(0) - self.kl(d.q)

    def log_prob(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """The IWAE estimate log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), ``[B]`` (K =
        ``num_samples``; K = 1 is a one-sample ELBO): a lower bound on log p(x) in expectation."""
        self.check_input(x)
        d = self.draws(x, num_samples, chunk)
        log_w = d.recon + self.log_prior - d.log_q  # [K, B]
        return torch.logsumexp(log_w, dim=0) - math.log(num_samples)

    def likelihood_note(self, num_samples: int = 1) -> str:
        what = "the ELBO" if num_samples == 1 else "the IWAE bound"
        return (
            f"importance-sampled estimate with K={num_samples} samples ({what}, Burda et al. "
            "2016), a lower bound on log p(x): the NLL is an upper bound"
        )

    # -- training -------------------------------------------------------------------------
    def loss(self, batch: Batch) -> Tensor:
        """Negative ELBO (mean over the batch) with the KL weighted by :meth:`kl_weight`. Each
        call in training mode is one step of the warm-up."""
        x, _ = unpack(batch)
        self.check_input(x)
        w = self.kl_weight()
        if self.training:
            self._steps += 1
        d = self.draws(x, 1)
        return -d.recon.mean() + w * self.kl(d.q).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` = -ELBO (one draw: the cheap validation criterion) and ``elbo``, ``[B]``."""
        x, _ = unpack(batch)
        elbo = self.elbo(x)
        return {"nll": -elbo, "elbo": elbo}

    # -- generation and the compression view -------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """z uniform on the sphere, then x ~ p(x|z) (``temperature`` applies to the likelihood;
        0: its mode or mean): ``[n, *shape]`` in the data's space."""
        anchor = self.loc_head.weight
        z = self.uniform_prior(anchor).sample((n,))  # [n, m]
        return self.likelihood.sample(self.decoder(z), temperature)

    def encode(self, x: Tensor) -> Tensor:
        """A code per example ``[B, m]``: the posterior's mean direction (a unit vector)."""
        self.check_input(x)
        return self._params(self.encoder(self._prep(x)))[0]

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """The likelihood's most likely value (Gaussian: its mean) given ``z [B, m]``."""
        return self.likelihood.sample(self.decoder(z.to(self._dtype)), temperature=0)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``decode(encode(x))``: ``[B, *shape]``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decode ``steps`` evenly spaced points of the great-circle arc (:func:`slerp`) between
        the codes of ``x1`` and ``x2``: single examples ``[*shape]`` give ``[steps, *shape]``,
        batches ``[B, *shape]`` give ``[steps, B, *shape]``."""
        single = x1.dim() == len(self.event_shape)
        if single:
            x1, x2 = x1[None], x2[None]
        z1, z2 = self.encode(x1), self.encode(x2)  # [B, m]
        z = slerp(z1, z2, steps)  # [steps, B, m]
        out = self.decode(z.flatten(0, 1)).view(steps, z1.shape[0], *self.event_shape)
        return out[:, 0] if single else out


__all__ = ["SVAE", "Draws", "SVAEConfig", "concentration", "slerp"]
