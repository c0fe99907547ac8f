"""What the VAE family shares (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"; Rezende,
Mohamed & Wierstra 2014): an encoder x -> h that a posterior reads, a decoder code -> parameters
of the likelihood p(x|z), and the bounds on log p(x) that importance sampling gives (Burda,
Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders"): with z_k ~ q(z|x) and
w_k = p(x, z_k) / q(z_k|x),

    log p(x) >= IWAE_K = E[log (1/K) sum_k w_k] >= ... >= IWAE_1 = ELBO.

:class:`LatentModel` builds the likelihood and the backbone, draws many importance samples in
passes of bounded memory, and turns a model's log weights and KL term into ``log_prob`` (the
IWAE estimate), ``elbo``, the KL-weighted training loss (beta-VAE, Higgins et al. 2017; linear
warm-up, Bowman et al. 2016) and the compression view (encode, decode, reconstruct,
interpolate). :class:`LatentConfig` holds the config fields every such model has;
:class:`PriorConfig` adds the choice of a learned prior (:mod:`dgm.models.latent.priors`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.distributions.base import (
    MIXTURES_HELP,
    Likelihood,
    LikelihoodName,
    make_likelihood,
)
from dgm.distributions.categorical import Categorical
from dgm.distributions.gaussian import Gaussian
from dgm.errors import ConfigError
from dgm.models.base import Batch, GenerativeModel, LikelihoodKind, check_num_samples, unpack
from dgm.models.capabilities import Autoencoder, DecoderMean, EvidenceBound, Scheduled
from dgm.models.latent.networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from dgm.models.latent.priors import (
    PRIORS,
    FlowPrior,
    MixturePrior,
    PriorName,
    StandardPrior,
    VampPrior,
)
from dgm.nn.activations import Activation

VAELikelihood = Literal[LikelihoodName, "gaussian"]
Prior = StandardPrior | MixturePrior | VampPrior | FlowPrior
# rows (examples x importance samples) decoded per pass of log_prob / elbo: bounds the memory
# of K = 5000 samples on a batch of 500. 2^12 rows keep a pass's blocks in cache: the 5000-
# sample NLL of an MLP VAE on MNIST ran 1.85x faster than with 2^14 (bench_vae_speed.py)
CHUNK = 1 << 12
# and at most this many likelihood parameters per pass (a 256-level categorical on 28x28 has
# 200k per row: 2^14 rows of them would take 13 GB)
PARAMS_PER_PASS = 1 << 26


@dataclass
class LatentConfig:
    """The fields of every VAE-family config: the data, the code, the backbone, the likelihood
    and the KL weighting of the loss. A model's config subclasses it (and may redeclare a
    field to give it its own default or help)."""

    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(
        17, "values per dimension, from the data (none: continuous data, Gaussian likelihood)"
    )
    latent: int = opt(16, "dimensions of the code z")
    hidden: int = opt(300, "units per hidden layer (conv: of the fully connected layer)")
    layers: int = opt(2, "mlp: hidden layers of the encoder and of the decoder (0: linear)")
    backbone: Literal["auto", "mlp", "conv"] = opt(
        "auto", "auto (conv for images, mlp otherwise) | mlp | conv (stride-2, DCGAN-like)"
    )
    channels: int = opt(32, "conv: channels after the first stride-2 layer, doubling after each")
    likelihood: VAELikelihood = opt(
        "auto",
        "auto (bernoulli for binary data, logistic-mixture for more levels, gaussian for "
        "continuous data) | categorical | bernoulli | logistic-mixture | gaussian",
    )
    mixtures: int = opt(5, MIXTURES_HELP)
    gaussian_scale: float = opt(
        0.0, "gaussian likelihood: 0 learns a log-scale per dimension from z; > 0 fixes the scale"
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
        if self.beta < 0 or self.warmup_steps < 0:
            raise ConfigError("beta and warmup_steps must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class PriorConfig(LatentConfig):
    """A latent config whose (top) code has a learned prior: :func:`make_prior` builds it."""

    prior: PriorName = opt("standard", "standard | mog (mixture of Gaussians) | vampprior | flow")
    components: int = opt(
        100, "mog: mixture components; vampprior: pseudo-inputs (the paper: 500 on MNIST)"
    )
    prior_flow: int = opt(4, "flow prior: MAF steps over a standard normal")
    prior_hidden: int = opt(
        64, "flow prior: units per hidden layer of its MADEs (small: a wide one overfits)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.components < 1 or self.prior_flow < 1 or self.prior_hidden < 1:
            raise ConfigError("components, prior_flow and prior_hidden must be >= 1")


def make_likelihood_for(c: LatentConfig) -> Likelihood | Gaussian:
    """p(x|z): a Gaussian for continuous data (``levels`` none), else the named discrete one.
    ``auto`` on more than two levels is the discretized logistic mixture (Salimans et al. 2017,
    PixelCNN++): its smooth shape over neighbouring levels generalises better from a decoder
    than a free categorical (1.6 nats better test -ELBO on digits, bench_vae_digits.py)."""
    if c.levels is None:
        return Gaussian(c.gaussian_scale or None)
    name = c.likelihood
    if name == "auto":
        name = "bernoulli" if c.levels == 2 else "logistic-mixture"
    return make_likelihood(name, c.levels, c.mixtures)


def make_backbone(
    c: LatentConfig, code_dim: int, params_per_dim: int
) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)``: conv for images (``backbone`` auto or conv), mlp otherwise; the
    decoder maps codes ``[B, code_dim]`` to ``params_per_dim`` parameters per dimension."""
    if c.backbone == "conv" or (c.backbone == "auto" and len(c.shape) == 3):
        return ConvEncoder(c), ConvDecoder(c, code_dim, params_per_dim)
    encoder = MLPEncoder(c.shape, c.hidden, c.layers, act=c.activation, dropout=c.dropout)
    return encoder, MLPDecoder(c, code_dim, params_per_dim)


def make_prior(c: PriorConfig, dim: int, q0: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Prior:
    """p(z) over a ``dim``-dimensional code, as ``c.prior`` names it. The VampPrior mixes
    ``q0`` (a posterior's ``(mu, log_std)`` at encoder inputs) at its pseudo-inputs, which live
    where the encoder reads: [-1, 1] for discrete data."""
    if c.prior == "standard":
        return StandardPrior(dim)
    if c.prior == "mog":
        return MixturePrior(dim, c.components)
    if c.prior == "vampprior":
        return VampPrior(c.shape, c.components, q0, bounded=c.levels is not None)
    if c.prior == "flow":
        return FlowPrior(dim, c.prior_flow, c.prior_hidden, activation=c.activation)
    raise ConfigError(  # pragma: no cover - the Literal guards it
        f"unknown prior {c.prior!r}; use one of {', '.join(PRIORS)}"
    )


def warmed_up(beta: float, warmup_steps: int, step: int) -> float:
    """The KL weight at training step ``step``: ``beta``, reached linearly over the first
    ``warmup_steps`` steps (Bowman et al. 2016's annealing; 0 steps: ``beta`` from the start)."""
    if warmup_steps > 0:
        return beta * min(1.0, step / warmup_steps)
    return beta


def iwae_bound(log_w: Tensor) -> Tensor:
    """log (1/K) sum_k w_k from log weights ``[K, B]``: ``[B]`` (K = 1: a one-draw ELBO)."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


class DrawsLike(Protocol):
    """What every model's ``draws`` returns: at least log p(x|z_s), ``[S, B]``."""

    recon: Tensor


# a pass's scorer: codes [rows, code] -> log p(x|code) [rows] for the pass's copies of x
Scorer = Callable[[Tensor], Tensor]


def likelihood_mean(likelihood: Likelihood | Gaussian, params: Tensor) -> Tensor:
    """E[x] under the likelihood at ``params`` ``[B, P, *event]``: ``[B, *event]``, the mean
    for a Gaussian, the expected level sum_k k p(k) for discrete data (a real number)."""
    if isinstance(likelihood, Gaussian):
        return likelihood.sample(params, temperature=0)  # its mean
    if isinstance(likelihood, Categorical):  # one softmax instead of one pass per level
        probs = torch.softmax(params.float(), dim=1)  # [B, K, *event]
        levels = torch.arange(likelihood.levels, device=params.device, dtype=probs.dtype)
        return (probs * levels.view(1, -1, *([1] * (params.dim() - 2)))).sum(1)
    shape = params.shape[:1] + params.shape[2:]
    mean = torch.zeros(shape, dtype=torch.float32, device=params.device)
    for k in range(1, likelihood.levels):  # level 0 adds nothing
        level = torch.full(shape, float(k), dtype=params.dtype, device=params.device)
        mean += k * likelihood.log_prob_per_dim(params, level).float().exp()
    return mean


class LatentModel(GenerativeModel, Autoencoder, DecoderMean, EvidenceBound, Scheduled):
    """Base of the VAE family: builds ``likelihood`` (p(x|code)), ``encoder`` (x -> h) and
    ``decoder`` (code -> likelihood parameters). A subclass adds its posterior and prior and
    defines :meth:`draws`, :meth:`log_weights`, :meth:`kl_term` and :meth:`encode`; from them
    this class makes ``log_prob`` (the IWAE estimate), ``elbo``, the loss and the rest."""

    exact_likelihood = False
    default_eval_samples = 5000  # `dgm eval`'s K, as the papers report
    draw_name = "samples"  # what likelihood_note calls the importance samples
    config: LatentConfig

    def __init__(self, config: LatentConfig, code_dim: int) -> None:
        super().__init__(config)
        self.likelihood: Likelihood | Gaussian = make_likelihood_for(config)
        self.encoder: nn.Module
        self.decoder: nn.Module
        self.encoder, self.decoder = make_backbone(config, code_dim, self.likelihood.params_per_dim)
        # optimiser steps done, for the KL warm-up: the trainer's count (set_step), so a
        # resumed run continues its warm-up; plain state, never saved or averaged
        self._step = 0

    # -- what a model defines ------------------------------------------------------------------
    def draws(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> DrawsLike:
        """``num_samples`` reparameterised posterior draws per example and their terms."""
        raise NotImplementedError

    def log_weights(self, d: Any) -> Tensor:
        """log p(x, z) - log q(z|x) at the draws ``d``: ``[S, B]``."""
        raise NotImplementedError

    def kl_term(self, d: Any) -> Tensor:
        """KL(q(z|x) || p(z)) per example ``[B]`` (over the draws ``d`` where Monte Carlo)."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        """A code per example, as :meth:`decode` reads it."""
        raise NotImplementedError

    def prior_codes(self, n: int) -> Tensor:
        """``n`` codes z ~ p(z) as the decoder reads them ``[n, code]``."""
        raise NotImplementedError

    # -- pieces ---------------------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return next(self.decoder.parameters()).dtype

    def _prep(self, x: Tensor) -> Tensor:
        """What the encoder reads: discrete levels scaled to [-1, 1], continuous data as is."""
        x = x.to(self._dtype)
        if self.config.levels is None:
            return x
        return x * (2.0 / (self.config.levels - 1)) - 1.0

    def init_pseudo_inputs(self, x: Tensor, noise: float = 0.01) -> None:
        """VampPrior: start the pseudo-inputs at the first ``components`` examples of ``x``
        (data, ``[N, *shape]``) plus noise, as the paper's training-data initialisation."""
        prior = getattr(self, "prior", None)
        if not isinstance(prior, VampPrior):
            raise ConfigError("init_pseudo_inputs needs prior=vampprior")
        self.check_input(x)
        prior.init_from_data(self._prep(x), noise)

    def set_step(self, step: int) -> None:
        """The training step the KL warm-up is at (the trainer calls this before each step)."""
        self._step = int(step)

    def kl_weight(self) -> float:
        """The KL term's weight in the loss now: ``beta``, ramped up linearly over the first
        ``warmup_steps`` training steps (the step as :meth:`set_step` last gave it)."""
        return warmed_up(self.config.beta, self.config.warmup_steps, self._step)

    def _training_step(self, batch: Batch) -> tuple[Tensor, float]:
        """The batch's checked ``x`` and the KL weight."""
        x, _ = unpack(batch)
        self.check_input(x)
        return x, self.kl_weight()

    # -- many importance samples, in passes ----------------------------------------------------
    def samples_per_pass(self, batch: int, chunk: int = CHUNK) -> int:
        """Samples per example decoded in one pass: ``chunk`` rows (examples x samples), fewer
        where the likelihood has many parameters per row (``PARAMS_PER_PASS``), at least 1."""
        row_params = self.likelihood.params_per_dim * math.prod(self.event_shape)
        rows = min(chunk, max(1, PARAMS_PER_PASS // row_params))
        return max(1, rows // max(batch, 1))

    def _score(self, xr: Tensor, code: Tensor) -> Tensor:
        """log p(x|code) per row: ``[R, *event], [R, code] -> [R]``."""
        return self.likelihood.log_prob(self.decoder(code), xr)

    def draw_terms(
        self,
        x: Tensor,
        num_samples: int,
        chunk: int,
        draw: Callable[[int, Scorer], Sequence[Tensor]],
    ) -> list[Tensor]:
        """The terms of ``num_samples`` draws per example, each ``[num_samples, B]``.

        ``draw(s, score)`` makes ``s`` draws per example as sample-major rows ``[s * B, ...]``,
        scores its codes with ``score`` (log p(x|code), ``[s * B]``) and returns its terms, each
        ``[s * B]`` or ``[s, B]``. Passes of :meth:`samples_per_pass` samples bound the memory;
        a ``draw`` that makes its noise sample by sample, in order, gives the same numbers
        under the same seed whatever the chunk size.
        """
        check_num_samples(num_samples)
        b = x.shape[0]
        per = self.samples_per_pass(b, chunk)
        passes: list[list[Tensor]] = []
        for start in range(0, num_samples, per):
            s = min(per, num_samples - start)
            xr = x.repeat(s, *([1] * (x.dim() - 1)))  # [s * B, *event], sample-major
            passes.append([t.reshape(s, b) for t in draw(s, partial(self._score, xr))])
        return [torch.cat(terms) for terms in zip(*passes)]

    # -- the bounds ------------------------------------------------------------------------------
    def elbo(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """E_q[log p(x|z)] - KL(q(z|x) || p(z)) in nats, ``[B]``: Monte Carlo over
        ``num_samples`` draws, the KL as :meth:`kl_term` computes it."""
        self.check_input(x)
        d = self.draws(x, num_samples, chunk)
        return d.recon.mean(0) - self.kl_term(d)

    def log_prob(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """The IWAE estimate log (1/K) sum_k p(x, z_k) / q(z_k|x), ``[B]`` (K = ``num_samples``;
        K = 1 is a one-sample ELBO): a lower bound on log p(x) in expectation."""
        self.check_input(x)
        return iwae_bound(self.log_weights(self.draws(x, num_samples, chunk)))

    def likelihood_kind(self) -> LikelihoodKind:
        return "estimate"  # importance-sampled with K draws (the IWAE bound)

    def likelihood_note(self, num_samples: int = 1) -> str:
        what = "the ELBO" if num_samples == 1 else "the IWAE bound"
        return (
            f"importance-sampled estimate with K={num_samples} {self.draw_name} ({what}, Burda "
            "et al. 2016), a lower bound on log p(x): the NLL is an upper bound"
        )

    # -- training ------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> Tensor:
        """Negative ELBO (mean over the batch, one draw) with the KL weighted by
        :meth:`kl_weight`."""
        x, w = self._training_step(batch)
        d = self.draws(x, 1)
        return -d.recon.mean() + w * self.kl_term(d).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` = -ELBO (one draw: the cheap validation criterion) and ``elbo``, ``[B]``."""
        x, _ = unpack(batch)
        elbo = self.elbo(x)
        return {"nll": -elbo, "elbo": elbo}

    @torch.no_grad()
    def sample_mean(self, n: int) -> Tensor:
        """E[x|z] at ``n`` draws z ~ p(z) (:meth:`prior_codes`): ``[n, *shape]``."""
        return likelihood_mean(self.likelihood, self.decoder(self.prior_codes(n).to(self._dtype)))

    # -- the compression view ------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """The likelihood's most likely value (Gaussian: its mean) given codes ``z [B, code]``,
        as :meth:`encode` makes them."""
        return self.likelihood.sample(self.decoder(z.to(self._dtype)), temperature=0)

    def path(self, z1: Tensor, z2: Tensor, steps: int) -> Tensor:
        """``steps`` evenly spaced codes from ``z1`` to ``z2`` ``[B, code]``: the segment,
        ``[steps, B, code]``."""
        t = torch.linspace(0, 1, steps, device=z1.device, dtype=z1.dtype).view(steps, 1, 1)
        return (1 - t) * z1 + t * z2

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decode the :meth:`path` of ``steps`` codes between the codes of ``x1`` and ``x2``:
        single examples ``[*shape]`` give ``[steps, *shape]``, batches ``[B, *shape]`` give
        ``[steps, B, *shape]``."""
        single = x1.dim() == len(self.event_shape)
        if single:
            x1, x2 = x1[None], x2[None]
        z1, z2 = self.encode(x1), self.encode(x2)  # [B, code]
        z = self.path(z1, z2, steps)  # [steps, B, code]
        out = self.decode(z.flatten(0, 1)).view(steps, z1.shape[0], *self.event_shape)
        return out[:, 0] if single else out


__all__ = [
    "CHUNK",
    "PARAMS_PER_PASS",
    "DrawsLike",
    "LatentConfig",
    "LatentModel",
    "Prior",
    "PriorConfig",
    "Scorer",
    "VAELikelihood",
    "iwae_bound",
    "likelihood_mean",
    "make_backbone",
    "make_likelihood_for",
    "make_prior",
    "warmed_up",
]
