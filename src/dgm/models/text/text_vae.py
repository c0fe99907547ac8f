"""The sentence VAE (Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio 2016, "Generating
sentences from a continuous space"), with the dilated-CNN decoder of Yang, Hu, Salakhutdinov &
Berg-Kirkpatrick 2017 ("Improved variational autoencoders for text modeling using dilated
convolutions") and the training aids the literature brought against posterior collapse.

A sentence x is encoded by an LSTM (:class:`~dgm.models.text.networks.SentenceEncoder`, one
direction or two) into a diagonal Gaussian posterior q(z|x) = N(mu, sigma^2); the decoder
p(x|z) = prod_t p(x_t | x_<t, z) reads the previous token's embedding concatenated with z at
every step, through an LSTM (``decoder=lstm``) or residual stacks of dilated causal
convolutions (``decoder=dilated-cnn``, the paper's ``small``/``medium``/``large``/``very-large``
schedules, ``cnn``). The prior p(z) is N(0, I) or, by config, a learned mixture of Gaussians or
a MAF flow (``dgm.models.latent.priors``). The decoder's head is the text family's
(:mod:`dgm.models.text.base`): p(x|z) sums to 1 over all sentences for every z.

``log_prob(x, num_samples=K)`` is the importance-weighted estimate (Burda et al. 2016)
log 1/K sum_k p(x, z_k) / q(z_k|x), K = 500 by default in ``dgm eval`` as He et al. 2019, drawn
in passes of bounded memory; ``elbo`` the bound trained on. The training aids change the loss
only, never a reported number:

- KL annealing (Bowman et al. 2016): the KL weight rises linearly from 0 to ``beta`` over the
  first ``warmup_steps`` steps;
- word dropout (Bowman et al. 2016): each word the decoder reads becomes ``<unk>`` with
  probability ``word_dropout``, so it must lean on z;
- free bits (Kingma et al. 2016, "Improved variational inference with inverse autoregressive
  flow"): a batch-mean KL below ``free_bits`` nats costs nothing, per latent dimension
  (``free_bits_per=dimension``, the paper's groups of one) or for the whole code (``total``);
- aggressive inference-network training (He et al. 2019, "Lagging inference networks and
  posterior collapse in variational autoencoders"): the trainer runs it through
  :class:`~dgm.models.capabilities.AggressiveInference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.data.text import BOS, EOS, PAD, UNK
from dgm.errors import ConfigError
from dgm.models.base import Batch, LikelihoodKind, check_num_samples, unpack
from dgm.models.capabilities import (
    AggressiveInference,
    EvidenceBound,
    Scheduled,
    StochasticAutoencoder,
)
from dgm.models.latent.base import CHUNK, PARAMS_PER_PASS, iwae_bound, warmed_up
from dgm.models.latent.posteriors import GaussianPosterior, gaussian_kl
from dgm.models.latent.priors import (
    FlowPrior,
    MixturePrior,
    PriorName,
    StandardPrior,
)
from dgm.models.text.base import TextBase, TextConfig, check_dropout
from dgm.models.text.diagnostics import active_units, mutual_information
from dgm.models.text.networks import (
    CNN_SCHEDULES,
    CNNSize,
    DilatedCNNDecoder,
    GRUDecoder,
    LSTMDecoder,
    SentenceEncoder,
)
from dgm.registry import register

TextPrior = StandardPrior | MixturePrior | FlowPrior
# examples per pass of the diagnostics' encoder
DIAGNOSTICS_BATCH = 500


@dataclass
class TextVAEConfig(TextConfig):
    latent: int = opt(32, "dimensions of the code z")
    embed: int = opt(
        256, "width of the token embeddings (the encoder and decoder each have theirs)"
    )
    hidden: int = opt(256, "units of the encoder's LSTM (per direction)")
    bidirectional: bool = opt(False, "encoder: an LSTM each way, their last states joined")
    decoder: Literal["lstm", "dilated-cnn"] = opt(
        "lstm", "lstm (Bowman et al. 2016) | dilated-cnn (Yang et al. 2017)"
    )
    decoder_hidden: int = opt(256, "lstm decoder: units of its LSTM")
    cnn: CNNSize = opt(
        "large",
        "dilated-cnn decoder, Yang et al.'s schedules: small (dilations 1,2,4), medium "
        "(1..16), large (1..16 twice), very-large (1..16 three times); kernel 3",
    )
    channels: int = opt(256, "dilated-cnn decoder: width of its residual stream")
    kernel_size: int = opt(3, "dilated-cnn decoder: width of each dilated convolution")
    dropout: float = opt(0.5, "dropout on the embeddings and before the decoder's output layer")
    prior: PriorName = opt("standard", "standard | mog (mixture of Gaussians) | flow (MAF)")
    components: int = opt(10, "mog prior: mixture components")
    prior_flow: int = opt(4, "flow prior: MAF steps over a standard normal")
    prior_hidden: int = opt(64, "flow prior: units per hidden layer of its MADEs")
    beta: float = opt(1.0, "KL weight in the training loss; never in reported numbers")
    warmup_steps: int = opt(
        0,
        "KL annealing (Bowman et al. 2016): training steps over which the KL weight rises "
        "linearly from 0 to beta (0: none)",
    )
    word_dropout: float = opt(
        0.0,
        "word dropout (Bowman et al. 2016): probability that a word the decoder reads in "
        "training is replaced by <unk>",
    )
    free_bits: float = opt(
        0.0,
        "free bits (Kingma et al. 2016): nats of batch-mean KL left unpenalised, per latent "
        "dimension or in total (free_bits_per)",
    )
    free_bits_per: Literal["dimension", "total"] = opt(
        "dimension",
        "free bits: dimension (each dimension's batch-mean KL counts as at least free_bits; "
        "needs prior=standard) | total (the whole code's batch-mean KL)",
    )
    aggressive: bool = opt(
        False,
        "He et al. 2019: before each step, encoder-only updates until the loss stops falling, "
        "then one decoder update; until I(x;z) on the validation data stops rising",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prior == "vampprior":
            raise ConfigError(
                "prior=vampprior mixes the posterior at learned pseudo-inputs, which for text "
                "would be sentences of discrete tokens: use prior=standard, mog or flow"
            )
        sizes = (self.latent, self.embed, self.hidden, self.decoder_hidden, self.channels)
        if min(sizes) < 1 or self.kernel_size < 2:
            raise ConfigError(
                "need latent, embed, hidden, decoder_hidden, channels >= 1 and kernel_size >= 2"
            )
        if self.components < 1 or self.prior_flow < 1 or self.prior_hidden < 1:
            raise ConfigError("components, prior_flow and prior_hidden must be >= 1")
        check_dropout("dropout", self.dropout)
        check_dropout("word_dropout", self.word_dropout)
        if self.beta < 0 or self.warmup_steps < 0 or self.free_bits < 0:
            raise ConfigError("beta, warmup_steps and free_bits must be >= 0")
        if self.free_bits > 0 and self.free_bits_per == "dimension" and self.prior != "standard":
            raise ConfigError(
                "free_bits per dimension acts on the analytic per-dimension KL, which needs "
                "prior=standard; use free_bits_per=total with a learned prior"
            )


class Draws(NamedTuple):
    """``S`` posterior draws per example: ``[S, B]`` terms."""

    recon: Tensor  # log p(x|z_s)
    log_p: Tensor  # log p(z_s)
    log_q: Tensor  # log q(z_s|x)


@register(
    "text-vae",
    "text",
    "sentence VAE: LSTM encoder, LSTM or dilated-CNN decoder fed z at every step",
)
class TextVAE(TextBase, StochasticAutoencoder, EvidenceBound, Scheduled, AggressiveInference):
    """``encoder_embedding`` -> ``encoder`` (LSTM) -> ``posterior`` (Gaussian) -> z;
    ``prior`` p(z); ``decoder_embedding`` + z -> ``decoder`` (LSTM or dilated CNN) -> the
    text head."""

    Config = TextVAEConfig
    config: TextVAEConfig
    exact_likelihood = False
    default_eval_samples = 500  # He et al. 2019's K

    def __init__(self, config: TextVAEConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder_embedding = nn.Embedding(c.levels, c.embed)
        self.encoder = self.make_encoder(c)
        self.posterior = GaussianPosterior(self.encoder.out_dim, c.latent)
        self.prior: TextPrior = self._make_prior(c)
        self.decoder_embedding = nn.Embedding(c.levels, c.embed)
        self.drop = nn.Dropout(c.dropout)
        self.decoder = self.make_decoder(c)
        # optimiser steps done, for the KL annealing: the trainer's count (set_step)
        self._step = 0

    def make_encoder(self, c: TextVAEConfig) -> nn.Module:
        """Embeddings ``[B, T, E]`` and lengths ``[B]`` -> features ``[B, out_dim]``: an LSTM
        (one direction or two). A subclass may build another."""
        return SentenceEncoder(c.embed, c.hidden, c.bidirectional)

    def make_decoder(self, c: TextVAEConfig) -> LSTMDecoder | DilatedCNNDecoder | GRUDecoder:
        """The decoder ``c.decoder`` names (``features``, ``out`` and, recurrent, ``step``)."""
        if c.decoder == "lstm":
            return LSTMDecoder(c.embed, c.latent, c.decoder_hidden, c.levels, c.dropout)
        return DilatedCNNDecoder(
            embed=c.embed,
            latent=c.latent,
            channels=c.channels,
            vocab=c.levels,
            schedule=c.cnn,
            kernel_size=c.kernel_size,
            dropout=c.dropout,
        )

    @staticmethod
    def _make_prior(c: TextVAEConfig) -> TextPrior:
        if c.prior == "mog":
            return MixturePrior(c.latent, c.components)
        if c.prior == "flow":
            return FlowPrior(c.latent, c.prior_flow, c.prior_hidden)
        return StandardPrior(c.latent)

    @property
    def analytic_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) has a closed form (the standard prior)."""
        return isinstance(self.prior, StandardPrior)

    @property
    def cnn_schedule(self) -> tuple[int, ...]:
        """The dilated-CNN decoder's dilations (Yang et al.'s schedule ``cnn``)."""
        return CNN_SCHEDULES[self.config.cnn]

    # -- the two halves ------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """The encoder's features of sentences ``[B, T]``: ``[B, H]``."""
        e = self.drop(self.encoder_embedding(x.long()))
        return self.encoder(e, self.token_counts(x))

    def gaussian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x)'s ``(mu, log_std)``, ``[B, K]`` each."""
        return self.posterior.gaussian_params(self.features(x))

    def decoder_logits(self, tokens: Tensor, z: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` of every position from the tokens read ``[B, T]`` (``<s>``
        and the sentence shifted right) and codes ``z [B, K]``."""
        return self.decoder(self.drop(self.decoder_embedding(tokens)), z)

    def recon(self, x: Tensor, z: Tensor, tokens: Tensor | None = None) -> Tensor:
        """log p(x|z) ``[B]`` (``tokens`` what the decoder reads, by default ``shifted(x)``)."""
        tokens = self.shifted(x) if tokens is None else tokens
        t = self.trim(x).shape[1]  # the positions after every sentence's end: padding only
        x, tokens = x[:, :t], tokens[:, :t]

        def score(xr: Tensor, zr: Tensor, tr: Tensor) -> Tensor:
            h = self.decoder.features(self.drop(self.decoder_embedding(tr)), zr)
            return self.score(h, xr, self.decoder.out)

        return self.in_passes(score, x, z, tokens)

    def word_dropped(self, x: Tensor) -> Tensor:
        """What the decoder reads in training: ``shifted(x)`` with each word (not ``<s>``, the
        end token or padding) replaced by ``<unk>`` with probability ``word_dropout``."""
        tokens = self.shifted(x)
        p = self.config.word_dropout
        if not self.training or p == 0:
            return tokens
        words = (tokens != BOS) & (tokens != PAD) & (tokens != EOS)
        drop = (torch.rand(tokens.shape, device=tokens.device) < p) & words
        return torch.where(drop, torch.full_like(tokens, UNK), tokens)

    # -- many importance samples, in passes ----------------------------------------------------
    def samples_per_pass(self, batch: int, chunk: int = CHUNK) -> int:
        """Samples per example decoded in one pass: at most ``chunk`` rows and
        ``PARAMS_PER_PASS`` logits."""
        rows = min(chunk, max(1, PARAMS_PER_PASS // (self.max_len * self.config.levels)))
        return max(1, rows // max(batch, 1))

    def draws(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Draws:
        """``num_samples`` reparameterised draws z ~ q(z|x) per example and their terms. The
        encoder runs once; each sample's noise is drawn as its own ``[B, K]`` tensor, in
        order, so one seed gives the same numbers whatever the passes."""
        check_num_samples(num_samples)
        x = self.trim(x)  # the encoder and the decoder skip the padding after every sentence
        h = self.features(x)
        b, k = x.shape[0], self.config.latent
        per = self.samples_per_pass(b, chunk)
        terms: list[tuple[Tensor, Tensor, Tensor]] = []
        tokens = self.shifted(x)
        for start in range(0, num_samples, per):
            s = min(per, num_samples - start)
            eps = torch.cat([torch.randn(b, k, device=h.device, dtype=h.dtype) for _ in range(s)])
            z, log_q = self.posterior.rsample(h.repeat(s, 1), eps)  # [s * B, K], [s * B]
            recon = self.recon(x.repeat(s, 1), z, tokens.repeat(s, 1))
            terms.append((recon.view(s, b), self.prior.log_prob(z).view(s, b), log_q.view(s, b)))
        recon, log_p, log_q = (torch.cat(t) for t in zip(*terms))
        return Draws(recon, log_p, log_q)

    # -- the bounds ------------------------------------------------------------------------------
    def log_prob(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> Tensor:
        """The IWAE estimate log 1/K sum_k p(x, z_k) / q(z_k|x) in nats ``[B]`` (K =
        ``num_samples``; K = 1 is a one-draw ELBO): a lower bound on log p(x) in expectation."""
        d = self.draws(x, num_samples, chunk)
        return iwae_bound(d.recon + d.log_p - d.log_q)

    def kl(self, mu: Tensor, log_std: Tensor, d: Draws | None = None) -> Tensor:
        """KL(q(z|x) || p(z)) ``[B]``: analytic for the standard prior, else the Monte Carlo
        mean of log q(z|x) - log p(z) over the draws ``d``."""
        if self.analytic_kl:
            return gaussian_kl(mu, log_std).sum(-1)
        if d is None:
            raise ValueError("a learned prior's KL needs draws")
        return (d.log_q - d.log_p).mean(0)

    def elbo(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """E_q[log p(x|z)] - KL(q(z|x) || p(z)) in nats ``[B]``, Monte Carlo over
        ``num_samples`` draws, the KL in closed form where it has one."""
        return self.elbo_and_kl(x, num_samples)[0]

    def elbo_and_kl(self, x: Tensor, num_samples: int = 1) -> tuple[Tensor, Tensor]:
        mu, log_std = self.gaussian(x)
        d = self.draws(x, num_samples)
        kl = self.kl(mu, log_std, d)
        return d.recon.mean(0) - kl, kl

    def likelihood_kind(self) -> LikelihoodKind:
        return "estimate"  # importance-sampled with K draws (the IWAE bound)

    def likelihood_note(self, num_samples: int = 1) -> str:
        what = "the ELBO" if num_samples == 1 else "the IWAE bound"
        return (
            f"importance-sampled estimate with K={num_samples} samples ({what}, Burda et al. "
            "2016), a lower bound on log p(x): the NLL is an upper bound"
        )

    # -- training ----------------------------------------------------------------------------------
    def set_step(self, step: int) -> None:
        """The training step the KL annealing is at (the trainer calls this before each step)."""
        self._step = int(step)

    def kl_weight(self) -> float:
        """The KL term's weight now: ``beta``, ramped up linearly over ``warmup_steps``."""
        return warmed_up(self.config.beta, self.config.warmup_steps, self._step)

    def _loss(self, batch: Batch, hold_encoder: bool) -> Tensor:
        return self.vae_loss(batch, hold_encoder)[0]

    def vae_loss(self, batch: Batch, hold_encoder: bool = False) -> tuple[Tensor, Tensor]:
        """The training loss of :meth:`loss` and the codes ``z [B, K]`` it drew (a joint
        model's other heads read them)."""
        x, _ = unpack(batch)
        x = self.trim(x)
        c = self.config
        mu, log_std = self.gaussian(x)
        if hold_encoder:  # He et al.'s decoder update: no gradient reaches the encoder
            mu, log_std = mu.detach(), log_std.detach()
        eps = torch.randn_like(mu)
        z = mu + torch.exp(log_std) * eps
        recon = self.recon(x, z, self.word_dropped(x))
        if self.analytic_kl:
            kl_dims = gaussian_kl(mu, log_std)  # [B, K]
            if c.free_bits > 0 and c.free_bits_per == "dimension":
                kl = kl_dims.mean(0).clamp_min(c.free_bits).sum()
            else:
                kl = kl_dims.sum(-1).mean()
        else:
            log_q = (-0.5 * eps * eps - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
            kl = (log_q - self.prior.log_prob(z)).mean()
        if c.free_bits > 0 and c.free_bits_per == "total":
            kl = kl.clamp_min(c.free_bits)
        return -recon.mean() + self.kl_weight() * kl, z

    def loss(self, batch: Batch) -> Tensor:
        """The negative ELBO (mean over the batch, one draw) with the KL weighted by
        :meth:`kl_weight` and floored by free bits, the decoder reading word-dropped input."""
        return self._loss(batch, hold_encoder=False)

    @property
    def aggressive(self) -> bool:
        return self.config.aggressive

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The inference network: the encoder's embedding, LSTM(s) and posterior layer."""
        parts = (self.encoder_embedding, self.encoder, self.posterior)
        return [p for m in parts for p in m.parameters()]

    def decoder_loss(self, batch: Batch) -> Tensor:
        """:meth:`loss` with the encoder held fixed (He et al. 2019's decoder update)."""
        return self._loss(batch, hold_encoder=True)

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` = -ELBO (one draw, the validation criterion), ``elbo``, ``kl`` and the real
        ``tokens``, ``[B]``."""
        x, _ = unpack(batch)
        elbo, kl = self.elbo_and_kl(x)
        return {"nll": -elbo, "elbo": elbo, "kl": kl, "tokens": self.token_counts(x).float()}

    # -- the collapse diagnostics ------------------------------------------------------------------
    @torch.no_grad()
    def diagnostics(self, x: Tensor) -> dict[str, float]:
        """Over the sentences ``x [N, T]``: ``kl`` (mean KL(q(z|x) || p(z)), nats), ``mi``
        (I(x; z), He et al. 2019's estimate) and ``active_units`` (Burda et al. 2016)."""
        training = self.training
        self.eval()
        try:
            parts = [
                self.gaussian(x[i : i + DIAGNOSTICS_BATCH])
                for i in range(0, len(x), DIAGNOSTICS_BATCH)
            ]
        finally:
            self.train(training)
        mu = torch.cat([p[0] for p in parts]).float()
        log_std = torch.cat([p[1] for p in parts]).float()
        z = mu + torch.exp(log_std) * torch.randn_like(mu)
        if self.analytic_kl:
            kl = gaussian_kl(mu, log_std).sum(-1)
        else:
            eps = (z - mu) / torch.exp(log_std)
            log_q = (-0.5 * eps * eps - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
            kl = log_q - self.prior.log_prob(z)
        return {
            "kl": float(kl.mean()),
            "mi": mutual_information(mu, log_std, z),
            "active_units": float(active_units(mu)),
        }

    # -- generation and the compression view -------------------------------------------------------
    def decode_codes(self, z: Tensor, temperature: float, top_p: float = 1.0) -> Tensor:
        """Sentences ``[n, max_len]`` from codes ``z [n, K]``, token by token."""
        z = z.to(next(self.decoder.parameters()).dtype)
        if isinstance(self.decoder, LSTMDecoder | GRUDecoder):  # recurrent: carry the state
            decoder = self.decoder
            state: list[Any] = [None]

            def step(t: int, fed: Tensor) -> Tensor:
                e = self.drop(self.decoder_embedding(fed[:, None]))
                logits, state[0] = decoder.step(e, z, state[0])
                return logits

        else:
            read: list[Tensor] = []

            def step(t: int, fed: Tensor) -> Tensor:
                # a causal stack: the prefix gives position t's numbers (no cache needed at
                # sentence lengths)
                read.append(fed)
                return self.decoder_logits(torch.stack(read, 1), z)[:, -1]

        return self.generate(z.shape[0], step, temperature, top_p)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, top_p: float = 1.0) -> Tensor:
        """z ~ p(z), then a sentence from p(x|z) token by token (``temperature`` and ``top_p``
        apply to the tokens; 0: the most likely token at each step): ``[n, max_len]`` ids."""
        return self.decode_codes(self.prior.sample(n), temperature, top_p)

    def encode(self, x: Tensor) -> Tensor:
        """A code per sentence ``[B, K]``: the posterior mean."""
        return self.gaussian(x)[0]

    @torch.no_grad()
    def encode_draw(self, x: Tensor) -> Tensor:
        """A draw z ~ q(z|x) per sentence ``[B, K]``."""
        mu, log_std = self.gaussian(x)
        return mu + torch.exp(log_std) * torch.randn_like(mu)

    @torch.no_grad()
    def decode_draw(self, z: Tensor) -> Tensor:
        """A sentence drawn from p(x|z) per code (temperature 1): ``[B, max_len]`` ids."""
        training = self.training
        self.eval()
        try:
            return self.decode_codes(z, temperature=1.0)
        finally:
            self.train(training)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """The greedy sentence of each code ``z [B, K]``: ``[B, max_len]`` ids."""
        training = self.training
        self.eval()
        try:
            return self.decode_codes(z, temperature=0)
        finally:
            self.train(training)

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """The greedy sentences of ``steps`` evenly spaced codes from the posterior mean of
        ``x1`` to that of ``x2`` (Bowman et al. 2016's homotopy): single sentences ``[T]`` give
        ``[steps, T]``, batches ``[B, T]`` give ``[steps, B, T]``."""
        single = x1.dim() == 1
        if single:
            x1, x2 = x1[None], x2[None]
        z1, z2 = self.encode(x1), self.encode(x2)  # [B, K]
        t = torch.linspace(0, 1, steps, device=z1.device, dtype=z1.dtype).view(steps, 1, 1)
        z = (1 - t) * z1 + t * z2  # [steps, B, K]
        out = self.decode(z.flatten(0, 1)).view(steps, z1.shape[0], self.max_len)
        return out[:, 0] if single else out


__all__ = ["TextVAE", "TextVAEConfig"]
