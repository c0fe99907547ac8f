"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation
Learning"): a deterministic encoder maps an image to a grid of discrete codes c = codes(x)
(``[h, w]`` indices into a codebook of ``num_codes`` vectors, see :mod:`dgm.models.latent.vq`),
a decoder maps the quantised code vectors back to the parameters of p(x | c), and an autoregressive
prior p(c) over the code grid (a gated PixelCNN, van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders") gives the model a likelihood and samples.

The paper fits the prior after the autoencoder; here it is trained jointly, on the code
indices (no gradient reaches the encoder through the prior), so one run trains everything:

    loss = mean_x [ -log p(x | z_q(x)) + commitment (+ codebook) - log p(codes(x)) ]   (nats)

Likelihood. The model's distribution is p(x) = sum_c p(c) p(x | c). With a deterministic
encoder, ``log_prob(x)`` reports the one term at the encoder's code map,

    log p(codes(x)) + log p(x | decoder(e_codes(x))) <= log p(x),

a lower bound on log p(x) (the sum holds that term and others, all >= 0), so the reported NLL
is an upper bound, and ``exact_likelihood = False``. It is deterministic: ``num_samples`` is
accepted, as for other latent models, and changes nothing.

Sampling is ancestral: c ~ p(c) code by code in raster order (h * w prior passes), then
x ~ p(x | c).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.distributions.base import (
    make_likelihood,
)
from dgm.distributions.categorical import Categorical
from dgm.errors import ConfigError, DataError
from dgm.models.base import Batch, DiscreteConfig, GenerativeModel, check_num_samples, unpack
from dgm.models.capabilities import Autoencoder, DecoderMean
from dgm.models.latent.base import likelihood_mean
from dgm.models.latent.vq import VectorQuantizer, VQDecoder, VQEncoder, auto_downsample
from dgm.models.latent.vqvae_audio import AudioVQVAE
from dgm.nn.activations import Activation
from dgm.nn.pixelcnn import GatedPixelCNNNet
from dgm.registry import register

NOTE = "lower bound: p(codes(x)) p(x|codes(x)), one term of the sum over code maps"


@dataclass
class VQVAEConfig(DiscreteConfig):
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape (C, H, W), from the data")
    num_codes: int = opt(64, "codebook size K (the paper: 512)")
    code_dim: int = opt(16, "dimensions D of each code vector (the paper: 64)")
    hidden: int = opt(64, "channels of the encoder and decoder (the paper: 256)")
    blocks: int = opt(2, "residual blocks in the encoder and in the decoder")
    downsample: int | None = opt(
        None, "stride-2 halvings to the code grid (none: auto, 8x8 -> 4x4, 28x28 -> 7x7)"
    )
    commitment: float = opt(0.25, "beta, weight of the commitment loss ||z_e - sg[e]||^2")
    ema: bool = opt(True, "codebook by exponential moving averages (else by the codebook loss)")
    decay: float = opt(0.99, "ema: decay gamma of the codebook's moving averages")
    dead_threshold: float = opt(
        1.0, "restart codes used fewer times per batch than this (running average; 0: never)"
    )
    prior_hidden: int = opt(64, "channels of the gated PixelCNN prior over the code grid")
    prior_layers: int = opt(4, "gated layers of the prior after its input layer")
    prior_kernel: int = opt(5, "kernel size of the prior's input layer (odd)")
    prior_dropout: float = opt(0.0, "dropout on the prior's gated features")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.shape) != 3:
            raise ConfigError(f"vqvae models images (C, H, W), got shape {self.shape}")
        if min(self.num_codes, self.code_dim, self.hidden, self.prior_hidden) < 1:
            raise ConfigError("num_codes, code_dim, hidden and prior_hidden must be >= 1")
        if self.blocks < 0 or self.prior_layers < 0:
            raise ConfigError("blocks and prior_layers must be >= 0")
        if self.prior_kernel < 1 or self.prior_kernel % 2 == 0:
            raise ConfigError(f"prior_kernel must be odd and >= 1, got {self.prior_kernel}")
        _, h, w = self.shape
        if self.downsample is not None:
            n = self.downsample
            if n < 0 or h % 2**n or w % 2**n:
                raise ConfigError(
                    f"downsample={n}: the image sides {h}x{w} must be divisible by 2^{n}"
                )
        if self.commitment < 0 or self.dead_threshold < 0:
            raise ConfigError("commitment and dead_threshold must be >= 0")
        if not 0 <= self.decay < 1:
            raise ConfigError(f"decay must be in [0, 1), got {self.decay}")
        if not 0 <= self.prior_dropout < 1:
            raise ConfigError(f"prior_dropout must be in [0, 1), got {self.prior_dropout}")


@register(
    "vqvae",
    "latent",
    "VQ-VAE: discrete codes, EMA codebook, gated PixelCNN code prior; on audio, vqvae-audio",
)
class VQVAE(GenerativeModel, Autoencoder, DecoderMean):
    """``encoder`` (x -> z_e ``[B, D, h, w]``), ``quantizer`` (z_e -> codes, z_q), ``decoder``
    (z_q -> likelihood parameters), ``likelihood`` (p(x | codes)) and ``prior`` (a gated
    PixelCNN over one-hot codes, ``[B, K, h, w] -> [B, K, h, w]`` logits)."""

    Config = VQVAEConfig
    exact_likelihood = False
    default_eval_samples = 1  # log_prob is deterministic: more samples change nothing
    discrete_only = True
    config: VQVAEConfig
    also_builds = (AudioVQVAE,)  # on audio, `vqvae` is the paper's audio model

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        c = config
        _, height, width = c.shape
        n = auto_downsample(height, width) if c.downsample is None else c.downsample
        self.code_shape = (height // 2**n, width // 2**n)
        self.likelihood = make_likelihood(c.likelihood, c.levels, c.mixtures)
        p = self.likelihood.params_per_dim
        self.encoder = VQEncoder(
            c.shape, c.hidden, c.code_dim, n=n, blocks=c.blocks, act=c.activation
        )
        self.quantizer = VectorQuantizer(
            c.num_codes,
            c.code_dim,
            c.commitment,
            ema=c.ema,
            decay=c.decay,
            dead_threshold=c.dead_threshold,
        )
        self.decoder = VQDecoder(
            c.code_dim, c.shape, p, hidden=c.hidden, n=n, blocks=c.blocks, act=c.activation
        )
        self.prior = GatedPixelCNNNet(
            c.num_codes,
            c.prior_hidden,
            c.num_codes,
            layers=c.prior_layers,
            first_kernel=c.prior_kernel,
            kernel_size=3,
            head=c.prior_hidden,
            dropout=c.prior_dropout,
        )
        self._codes = Categorical(c.num_codes)

    @classmethod
    def for_data(cls, spec: DataSpec, **overrides: Any) -> GenerativeModel:
        """The image VQ-VAE, or on audio the paper's audio model (``vqvae-audio``)."""
        if spec.is_audio:
            return AudioVQVAE.for_data(spec, **overrides)
        return super().for_data(spec, **overrides)

    @classmethod
    def train_defaults_for(cls, spec: DataSpec) -> dict[str, Any]:
        if spec.is_audio:
            return AudioVQVAE.train_defaults_for(spec)
        return super().train_defaults_for(spec)

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        super().check_spec(spec)
        if len(spec.shape) != 3:
            raise DataError(f"vqvae models images (C, H, W), but {spec.name} has {spec.shape}")

    # -- pieces -----------------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return next(self.decoder.parameters()).dtype

    def pre_quantize(self, x: Tensor) -> Tensor:
        """The encoder's continuous output z_e ``[B, D, h, w]`` (levels scaled to [-1, 1])."""
        self.check_input(x)
        u = x.to(self._dtype) * (2.0 / (self.config.levels - 1)) - 1.0
        return self.encoder(u)

    def prior_logits(self, codes: Tensor) -> Tensor:
        """Logits of p(c_ij | c_<ij) at every cell: ``[B, h', w'] -> [B, K, h', w']`` (any
        number of rows h' <= h: row i only sees rows <= i)."""
        onehot = F.one_hot(codes.long(), self.config.num_codes)  # [B, h, w, K]
        return self.prior(onehot.permute(0, 3, 1, 2).to(self._dtype))

    def log_prior(self, codes: Tensor) -> Tensor:
        """log p(c) of code maps ``[B, h, w]``: ``[B]`` nats."""
        return self._codes.log_prob(self.prior_logits(codes), codes)

    def _recon(self, codes: Tensor, x: Tensor) -> Tensor:
        """log p(x | codes): ``[B]`` nats."""
        z_q = self.quantizer.lookup(codes).to(self._dtype)  # [B, D, h, w]
        return self.likelihood.log_prob(self.decoder(z_q), x)

    # -- the contract -----------------------------------------------------------------------
    def log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """log p(codes(x)) + log p(x | codes(x)), ``[B]`` nats: a lower bound on log p(x)
        (one term of sum_c p(c) p(x|c)); deterministic, so ``num_samples`` is unused."""
        check_num_samples(num_samples)
        codes = self.encode(x)
        return self._recon(codes, x) + self.log_prior(codes)

    def likelihood_note(self, num_samples: int = 1) -> str:
        return NOTE

    def loss(self, batch: Batch) -> Tensor:
        """-log p(x | z_q) + commitment (+ codebook loss without EMA) - log p(codes), mean
        over the batch in nats. In training mode the quantiser restarts dead codes and
        updates its usage (and EMA codebook)."""
        x, _ = unpack(batch)
        q = self.quantizer(self.pre_quantize(x))
        recon = self.likelihood.log_prob(self.decoder(q.z_q), x)  # [B]
        # the prior reads the indices: no gradient to the encoder, the codebook or the decoder
        prior = self.log_prior(q.codes)  # [B]
        return (-recon + q.loss - prior).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``[B]`` each: ``nll`` = -log_prob(x); ``recon`` = -log p(x | codes(x)) and
        ``prior_nll`` = -log p(codes(x)), its two parts; ``perplexity`` of the batch's code
        usage (the same number for every example)."""
        x, _ = unpack(batch)
        codes = self.encode(x)
        recon = self._recon(codes, x)
        prior = self.log_prior(codes)
        perplexity = self.quantizer.perplexity(codes).to(recon.dtype).expand(x.shape[0])
        return {
            "nll": -(recon + prior),
            "recon": -recon,
            "prior_nll": -prior,
            "perplexity": perplexity,
        }

    @torch.no_grad()
    def sample_codes(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` code maps ``[n, h, w]`` from the prior, cell by cell in raster order (the
        prior recomputed on the rows drawn so far); temperature 0 takes each cell's mode."""
        h, w = self.code_shape
        codes = torch.zeros(n, h, w, dtype=torch.long, device=self.device)
        for i in range(h):
            for j in range(w):
                logits = self.prior_logits(codes[:, : i + 1])[:, :, i, j]  # [n, K]
                if temperature == 0:
                    codes[:, i, j] = logits.argmax(1)
                else:
                    probs = torch.softmax(logits.float() / temperature, dim=1)
                    codes[:, i, j] = torch.multinomial(probs, 1)[:, 0]
        return codes

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """c ~ p(c), then x ~ p(x | c): ``[n, *shape]`` levels. ``temperature`` scales both
        the prior's and the likelihood's logits; 0 takes the mode of each in turn."""
        codes = self.sample_codes(n, temperature)
        params = self.decoder(self.quantizer.lookup(codes).to(self._dtype))
        return self.likelihood.sample(params, temperature)

    @torch.no_grad()
    def sample_mean(self, n: int) -> Tensor:
        """E[x | c] at ``n`` code maps c ~ p(c): ``[n, *shape]`` expected levels."""
        params = self.decoder(self.quantizer.lookup(self.sample_codes(n)).to(self._dtype))
        return likelihood_mean(self.likelihood, params)

    # -- the compression view ---------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The code map of each example: ``[B, *shape] -> [B, h, w]`` indices (long)."""
        return self.quantizer.quantize(self.pre_quantize(x))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """The likelihood's most likely value given code maps ``[B, h, w]``: ``[B, *shape]``."""
        if tuple(codes.shape[1:]) != self.code_shape:
            raise DataError(f"expected code maps of shape {self.code_shape}, got {codes.shape}")
        params = self.decoder(self.quantizer.lookup(codes.long()).to(self._dtype))
        return self.likelihood.sample(params, temperature=0)

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decode ``steps`` evenly spaced points between the encoder outputs z_e of ``x1`` and
        ``x2``, each quantised to its nearest codes: single examples ``[*shape]`` give
        ``[steps, *shape]``, batches ``[B, *shape]`` give ``[steps, B, *shape]``."""
        single = x1.dim() == len(self.event_shape)
        if single:
            x1, x2 = x1[None], x2[None]
        z1, z2 = self.pre_quantize(x1), self.pre_quantize(x2)  # [B, D, h, w]
        t = torch.linspace(0, 1, steps, device=z1.device, dtype=z1.dtype).view(-1, 1, 1, 1, 1)
        z = ((1 - t) * z1 + t * z2).flatten(0, 1)  # [steps * B, D, h, w]
        out = self.decode(self.quantizer.quantize(z)).view(steps, z1.shape[0], *self.event_shape)
        return out[:, 0] if single else out


__all__ = ["NOTE", "VQVAE", "VQVAEConfig"]
