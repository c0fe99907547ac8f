"""Generative adversarial networks (Goodfellow et al. 2014, "Generative Adversarial Nets").

A generator G maps noise z ~ N(0, I) to a sample; a discriminator (critic) D scores inputs as
real or generated. The two play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

by alternating gradient steps; ``objective`` chooses the game's losses
(:mod:`dgm.models.gan.objectives`): the original ``minimax``, the ``non-saturating`` G loss of
the same paper, the Wasserstein critic with a gradient penalty (``wgan-gp``, Gulrajani et al.
2017, "Improved Training of Wasserstein GANs") or the ``hinge`` loss (Lim & Ye 2017; Miyato et
al. 2018, "Spectral Normalization for Generative Adversarial Networks"). Options: spectral
normalisation of D, two time-scale learning rates (Heusel et al. 2017), several critic steps
per generator step, a class-conditional variant (G reads a label embedding, D is a
projection discriminator: Miyato & Koyama 2018), and packing (``pack`` = m: D judges m samples
at once, all real or all generated, which penalises a G that lacks modes: Lin et al. 2018,
"PacGAN: The power of two samples in generative adversarial networks").

Discrete data: D sees real examples dequantised to ``(x + u) / L`` in [0, 1) and G's
``sigmoid`` output in the same interval, so D cannot win on the data's discreteness alone;
``sample`` returns ``floor(L v)``, exact draws of the discrete model that G's density defines.
Continuous data enter both players scaled from the data's [low, high] to [-1, 1].

A GAN has no likelihood: ``log_prob`` raises and names the annealed importance sampling
estimate of Wu et al. (2017), "On the quantitative analysis of decoder-based generative models",
for G with a Gaussian observation model x = g(z) + sigma eps
(:func:`dgm.evaluation.ais.model_ais_log_prob`, which reads G through
:meth:`GAN.generator_mean`).

Training: the trainer calls :meth:`GAN.adversarial_step` once per batch, one D update and,
every ``d_steps`` batches, one G update on fresh noise; after each epoch :meth:`GAN.collapsed`
tells whether D has won outright (its loss ~0, so G gets no signal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.errors import ConfigError, DataError
from dgm.models.base import Batch, GenerativeModel, unpack
from dgm.models.capabilities import (
    Adversarial,
    ImplicitGenerator,
    LabelConditional,
    Player,
    Update,
)
from dgm.models.gan.measures import mmd
from dgm.models.gan.networks import make_gan_nets
from dgm.models.gan.objectives import (
    OBJECTIVES,
    d_real_fake_stats,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    natural_units,
    r1_penalty,
)
from dgm.nn.activations import Activation
from dgm.registry import register

if TYPE_CHECKING:
    from dgm.data.base import DataSpec

Objective = Literal["minimax", "non-saturating", "wgan-gp", "hinge"]


def vector_defaults(dim: int) -> dict[str, Any]:
    """The players for vectors of ``dim`` values (see :meth:`GAN.for_data`): PacGAN's pairs
    (m = 2) cover every mode of the 8 Gaussians in 3 seeds of 3 where m = 1 missed one."""
    return {"hidden": 128, "layers": 2, "latent": min(32, max(8, dim)), "pack": 2}


# training on vectors (2-D toys, CSV rows): a 10x larger lr on 4x larger batches than DCGAN's
# images (at 2e-4 / 64 the 8 Gaussians stayed at 0 of 8 modes for 10k steps in 2 seeds of 3),
# and 60 epochs: the validation MMD of the 8 Gaussians stops falling after ~50 (80 s, 1 thread)
VECTOR_TRAINING: dict[str, Any] = {"lr": 2e-3, "batch_size": 256, "epochs": 60}

# an epoch whose mean D loss is this close to 0 counts as D winning outright
COLLAPSE_LOSS = 1e-3


@dataclass
class GANConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(17, "values per dimension, from the data (none: continuous)")
    num_classes: int | None = opt(None, "number of classes, from the data (None: unlabelled)")
    low: float = opt(0.0, "smallest value in the data, from the data (continuous data: scaling)")
    high: float = opt(1.0, "largest value in the data, from the data (continuous data: scaling)")
    latent: int = opt(32, "dimensions of the noise z ~ N(0, I)")
    objective: Objective = opt(
        "non-saturating", "minimax | non-saturating | wgan-gp (gradient penalty) | hinge"
    )
    backbone: Literal["auto", "mlp", "conv"] = opt(
        "auto", "auto (DCGAN convs for images of 8x8 and up, mlp otherwise) | mlp | conv"
    )
    hidden: int = opt(256, "mlp: units per hidden layer of G and D")
    layers: int = opt(3, "mlp: hidden layers of G and D")
    channels: int = opt(64, "conv: base channels of G and D (DCGAN)")
    activation: Activation = opt("relu", "G's activation (mlp); D uses leaky_relu")
    spectral_norm: bool = opt(False, "spectral normalisation of D's layers (Miyato et al. 2018)")
    dropout: float = opt(0.0, "dropout in D's hidden layers")
    conditional: bool = opt(False, "class-conditional G and projection D (needs labelled data)")
    pack: int = opt(1, "samples D judges together (PacGAN; 2-4 against missing modes)")
    d_steps: int = opt(0, "D updates per G update; 0: 5 for wgan-gp, else 1")
    gp_weight: float = opt(10.0, "wgan-gp: weight of the gradient penalty")
    r1: float = opt(
        0.0, "weight gamma of the R1 penalty on D's gradient at real data (not wgan-gp); 0: off"
    )
    d_lr: float = opt(0.0, "D's learning rate; 0: the training lr (two time-scale: larger)")
    beta1: float | None = opt(None, "Adam's beta1 (both players); none: 0.5, or 0.0 for wgan-gp")
    beta2: float | None = opt(None, "Adam's beta2 (both players); none: 0.999, or 0.9 for wgan-gp")

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"levels must be >= 2 or none, got {self.levels}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}"
            )
        if min(self.latent, self.hidden, self.layers, self.channels) < 1:
            raise ConfigError("latent, hidden, layers and channels must be >= 1")
        if self.d_steps < 0 or self.gp_weight < 0 or self.d_lr < 0 or self.r1 < 0:
            raise ConfigError("d_steps, gp_weight, r1 and d_lr must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("beta1", "beta2"):
            b = getattr(self, name)
            if b is not None and not 0 <= b < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {b}")
        if not self.high > self.low:
            raise ConfigError(f"need high > low, got low={self.low}, high={self.high}")
        if self.pack < 1:
            raise ConfigError(f"pack must be >= 1, got {self.pack}")
        if self.pack > 1 and self.conditional:
            raise ConfigError("pack > 1 (PacGAN) and conditional=true do not combine: choose one")
        if self.conditional and not self.num_classes:
            raise ConfigError(
                "conditional=true needs num_classes: train on labelled data or set num_classes"
            )


@register("gan", "gan", "GAN: minimax, non-saturating, WGAN-GP or hinge; EMA generator")
class GAN(GenerativeModel, Adversarial, ImplicitGenerator, LabelConditional):
    """``GAN(generator, discriminator, objective)``; see the module docstring.

    The trainer calls :meth:`adversarial_step` once per batch, which updates D and, once per
    :attr:`d_steps` batches, G, with the optimiser groups of :meth:`players`.
    """

    Config = GANConfig
    config: GANConfig
    DATA_FIELDS = ("shape", "levels", "num_classes", "low", "high")
    exact_likelihood = False
    has_likelihood: ClassVar[bool] = False
    averaged_player: ClassVar[str] = "generator"  # samples come from G's moving average
    # vector data: the MMD of samples to validation data picks the weights to keep
    monitor: ClassVar[str] = "mmd"
    divergence_advice: ClassVar[str] = (
        "lower the learning rates (--set lr=..., --set d_lr=...), try --set spectral_norm=true "
        "or objective=wgan-gp"
    )
    # the usual GAN recipe (Radford et al. 2016): a small lr, no clipping, no early stopping
    # on a likelihood it does not have, a slow EMA of G for samples (Yazici et al. 2019)
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 2e-4,
        "optimizer": "adam",
        "grad_clip": 0.0,
        "patience": 0,
        "ema": 0.999,
        "epochs": 100,
    }

    def __init__(self, config: GANConfig) -> None:
        super().__init__(config)
        self.generator: nn.Module
        self.discriminator: nn.Module
        self.generator, self.discriminator = make_gan_nets(config)

    @classmethod
    def train_defaults_for(cls, spec: DataSpec) -> dict[str, Any]:
        """``train_defaults`` (DCGAN's for images), with :data:`VECTOR_TRAINING` for vectors."""
        vectors = VECTOR_TRAINING if len(spec.shape) == 1 else {}
        return {**cls.train_defaults, **vectors}

    @classmethod
    def for_data(cls, spec: DataSpec, **overrides: Any) -> GenerativeModel:
        """A GAN sized for ``spec``; vector data (2-D toys, CSV rows) get the players of the
        toy-GAN literature (Metz et al. 2017; Lin et al. 2018: two hidden layers of ~128-400
        units, a few latent dimensions, PacGAN's packing) unless set: the image-sized
        defaults (3 x 256 units, 32 latents) mode-hop for minutes on the 8 Gaussians."""
        if len(spec.shape) == 1:
            overrides = {**vector_defaults(spec.shape[0]), **overrides}
        return super().for_data(spec, **overrides)

    # -- construction -------------------------------------------------------------------
    @property
    def sample_monitor(self) -> str | None:
        """``mmd`` for vector data (:meth:`metrics`); None for images, whose samples are
        judged after training in a feature space (the latest weights are kept)."""
        return self.monitor if len(self.config.shape) == 1 else None

    @property
    def d_steps(self) -> int:
        """D updates per G update (the WGAN papers' n_critic)."""
        c = self.config
        return c.d_steps or (5 if c.objective == "wgan-gp" else 1)

    def players(self, lr: float) -> dict[str, Player]:
        """Adam settings per player: ``{"generator": {...}, "discriminator": {...}}``, each
        with ``params``, ``lr`` and ``betas`` (0.5, 0.999 as DCGAN; 0.0, 0.9 for WGAN-GP)."""
        c = self.config
        wgan = c.objective == "wgan-gp"
        betas = (
            c.beta1 if c.beta1 is not None else (0.0 if wgan else 0.5),
            c.beta2 if c.beta2 is not None else (0.9 if wgan else 0.999),
        )
        return {
            "generator": {"params": list(self.generator.parameters()), "lr": lr, "betas": betas},
            "discriminator": {
                "params": list(self.discriminator.parameters()),
                "lr": c.d_lr or lr,
                "betas": betas,
            },
        }

    # -- data <-> the players' space ------------------------------------------------------
    def _batch(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        x, y = unpack(batch)
        self.check_input(x)
        if not self.config.conditional:
            return x, None
        if y is None:
            raise DataError("a conditional gan trains on (x, y) batches: the data has no labels")
        return x, y.to(x.device).long()

    def _real(self, x: Tensor) -> Tensor:
        """Data -> the players' space: discrete levels dequantised to ``(x + u) / L`` in
        [0, 1); continuous data scaled from [low, high] to [-1, 1] (a grid of modes 4 units
        apart is hard to hit to 0.05 from a network's unit-scale outputs)."""
        dtype = next(self.discriminator.parameters()).dtype
        x = x.to(dtype)
        c = self.config
        if c.levels is None:
            return (x - 0.5 * (c.low + c.high)) * (2.0 / (c.high - c.low))
        return (x + torch.rand_like(x)) / c.levels

    def _to_data(self, v: Tensor) -> Tensor:
        """Continuous data: the players' [-1, 1] back to [low, high] (the inverse of _real)."""
        c = self.config
        return v * (0.5 * (c.high - c.low)) + 0.5 * (c.low + c.high)

    def _fake(self, z: Tensor, y: Tensor | None) -> Tensor:
        """G's output in D's input space: ``sigmoid`` into (0, 1) for discrete data."""
        h = self.generator(z, y)
        return torch.sigmoid(h) if self.config.levels is not None else h

    def _noise(self, n: int) -> Tensor:
        p = next(self.generator.parameters())
        return torch.randn(n, self.config.latent, device=p.device, dtype=p.dtype)

    # -- the generator as a decoder, for AIS (dgm.evaluation.ais) ----------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent

    def generator_mean(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """g(z) in the data's units: the Gaussian observation model's mean for AIS. For
        discrete levels, ``L v - 1/2``: the centre of the level a dequantised v falls in."""
        v = self._fake(z, labels)
        return v * self.config.levels - 0.5 if self.config.levels is not None else self._to_data(v)

    # -- the game ---------------------------------------------------------------------------
    def _pack(self, v: Tensor) -> Tensor:
        """``[B, C, ...] -> [B / m, m C, ...]``: m consecutive samples side by side along the
        first axis of the event (PacGAN stacks images by channel, vectors end to end); a
        remainder of the batch that fills no pack is left out."""
        m = self.config.pack
        if m == 1:
            return v
        b = v.shape[0] - v.shape[0] % m
        if b == 0:
            raise DataError(f"pack={m} needs batches of at least {m} examples, got {v.shape[0]}")
        return v[:b].reshape(b // m, m * v.shape[1], *v.shape[2:])

    def discriminator_step(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss on a real batch and as many fakes (G frozen), with the gradient penalty
        for wgan-gp (on whole packs: the critic is a function of the pack), and D's mean
        outputs on both for the log."""
        x, y = self._batch(batch)
        real = self._pack(self._real(x))
        with torch.no_grad():
            fake = self._pack(self._fake(self._noise(x.shape[0]), y))
        d_real, d_fake = self.discriminator(real, y), self.discriminator(fake, y)
        loss = discriminator_loss(self.config.objective, d_real, d_fake)
        if self.config.objective == "wgan-gp":
            loss = loss + gradient_penalty(
                self.discriminator, real, fake, y, weight=self.config.gp_weight
            )
        elif self.config.r1 > 0:
            loss = loss + r1_penalty(self.discriminator, real, y, weight=self.config.r1)
        return loss, d_real_fake_stats(self.config.objective, d_real.detach(), d_fake.detach())

    def generator_step(self, batch: Batch) -> Tensor:
        """G's loss on a batch of fakes (as many as the real batch, with its labels)."""
        x, y = self._batch(batch)
        fake = self._pack(self._fake(self._noise(x.shape[0]), y))
        return generator_loss(self.config.objective, self.discriminator(fake, y))

    def adversarial_step(self, batch: Batch, step: int, update: Update) -> dict[str, Tensor]:
        """One D update and, on every ``d_steps``-th batch (``step`` batches done before this
        one), one G update on fresh noise, so each critic step sees new real data. Returns
        both losses, both gradient norms and D's mean outputs on real and fake data."""
        d_loss, stats = self.discriminator_step(batch)
        out = {"d_loss": d_loss.detach(), "d_grad_norm": update("discriminator", d_loss), **stats}
        if (step + 1) % self.d_steps == 0:
            g_loss = self.generator_step(batch)
            out["g_grad_norm"] = update("generator", g_loss)
            out["g_loss"] = g_loss.detach()
        return out

    def collapsed(self, epoch_means: dict[str, float]) -> str | None:
        """D wins outright when its mean loss over an epoch is ~0: G then gets no signal and
        only degrades. A Wasserstein critic's loss is no probability and may sit anywhere, so
        wgan-gp is not judged."""
        mean = epoch_means.get("d_loss")
        if mean is None or self.config.objective == "wgan-gp" or abs(mean) >= COLLAPSE_LOSS:
            return None
        return (
            f"the discriminator's loss is ~0 ({mean:.2e}): D wins outright and G gets no "
            "signal. Try --set spectral_norm=true, dropout=0.3, a smaller d_lr, or "
            "objective=wgan-gp"
        )

    def loss(self, batch: Batch) -> Tensor:
        """Both players' losses summed: one scalar that reaches every parameter, for checks.
        Training does not minimise it; the trainer alternates the two steps."""
        d_loss, _ = self.discriminator_step(batch)
        return d_loss + self.generator_step(batch)

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """D's outputs on validation data and on as many fakes, ``[B]`` each (``[B / pack]``
        packs), in the objective's units (probabilities for minimax and non-saturating): a D
        that separates validation from training data is memorising. For vector data also
        ``mmd``: the multi-scale MMD between the batch and as many samples, in the players'
        space ([-1, 1] for continuous data; see :mod:`dgm.models.gan.measures`), repeated
        ``[B]`` so that the epoch's mean weighs batches by their size."""
        x, y = self._batch(batch)
        real, fake = self._real(x), self._fake(self._noise(x.shape[0]), y)
        d_real = self.discriminator(self._pack(real), y)
        d_fake = self.discriminator(self._pack(fake), y)
        objective = self.config.objective
        out = {
            "d_real": natural_units(objective, d_real),
            "d_fake": natural_units(objective, d_fake),
        }
        if self.sample_monitor is not None and x.shape[0] >= 2:
            out["mmd"] = mmd(fake, real).to(real.dtype).expand(x.shape[0])
        return out

    # -- the contract ---------------------------------------------------------------------
    def log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor:
        raise NotImplementedError(
            "a GAN has no likelihood; use its annealed importance sampling estimate under a "
            "Gaussian observation model (Wu et al. 2017): "
            "dgm.evaluation.ais.model_ais_log_prob(model, x, sigma) in Python, or dgm eval RUN "
            "--metrics ais"
        )

    def likelihood_note(self, num_samples: int = 1) -> str:
        return "no likelihood (a GAN): see dgm.evaluation.ais.model_ais_log_prob"

    @torch.no_grad()
    def sample(self, n: int, labels: Any = None, temperature: float = 1.0) -> Tensor:
        """``n`` samples ``[n, *shape]``: whole levels ``floor(L v)`` for discrete data.
        ``temperature`` scales the noise (< 1: the truncation trick's milder cousin)."""
        y = self.labels_for(n, labels)
        v = self._fake(self._noise(n) * temperature, y)
        if self.config.levels is None:
            return self._to_data(v).float()
        return (v * self.config.levels).floor().clamp(0, self.config.levels - 1).float()


__all__ = ["GAN", "GANConfig", "Objective"]
