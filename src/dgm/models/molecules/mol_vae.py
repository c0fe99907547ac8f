"""The chemical VAE (Gomez-Bombarelli, Wei, Duvenaud, Hernandez-Lobato, Sanchez-Lengeling,
Sheberla, Aguilera-Iparraguirre, Hirzel, Adams & Aspuru-Guzik 2018, "Automatic chemical design
using a data-driven continuous representation of molecules").

A molecule's string x (SMILES tokens, or SELFIES symbols: every decoded string is then a
molecule) is encoded by 1-D convolutions over its embedded tokens, flattened and a dense layer
(``encoder=conv``, the paper's; or a GRU, ``encoder=gru``) into q(z|x) = N(mu, sigma^2); the
decoder p(x|z) = prod_t p(x_t | x_<t, z) is a stack of GRUs reading the previous token and z at
every step. It is the text family's sentence VAE (:class:`~dgm.models.text.text_vae.TextVAE`:
its IWAE estimate, priors, KL annealing) with these networks, plus the paper's joint model: a
property head, an MLP on z trained with the VAE to predict the data's properties (standardised;
``properties=logp,qed,sa`` by default), so that the latent space orders molecules by them and
can be searched (``dgm optimize``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.data.text import PAD
from dgm.errors import ConfigError
from dgm.models.base import Batch, unpack
from dgm.models.capabilities import PropertyPredictor
from dgm.models.molecules.base import check_molecules
from dgm.models.text.networks import (
    ConvEncoder,
    DilatedCNNDecoder,
    GRUDecoder,
    GRUEncoder,
    LSTMDecoder,
)
from dgm.models.text.text_vae import TextVAE, TextVAEConfig
from dgm.registry import register

DEFAULT_PROPERTIES = ("logp", "qed", "sa")  # the paper's joint model on ZINC


@dataclass
class MolVAEConfig(TextVAEConfig):
    latent: int = opt(56, "dimensions of the code z (56 as the grammar VAE's comparison)")
    embed: int = opt(64, "width of the token embeddings (the paper feeds one-hot tokens)")
    encoder: Literal["conv", "gru"] = opt(
        "conv", "conv (the paper's 1-D convolutions) | gru (a GRU over the tokens)"
    )
    conv_channels: tuple[int, ...] = opt((9, 9, 10), "conv encoder: filters of each layer")
    conv_kernels: tuple[int, ...] = opt((9, 9, 11), "conv encoder: kernel width of each layer")
    hidden: int = opt(435, "encoder: the dense layer after the convolutions (or the GRU's units)")
    decoder: Literal["gru", "lstm", "dilated-cnn"] = opt(
        "gru", "gru (the paper's, 3 layers) | lstm | dilated-cnn (the text VAE's)"
    )
    decoder_hidden: int = opt(488, "gru decoder: units of each GRU layer (the paper: 488)")
    decoder_layers: int = opt(3, "gru decoder: stacked GRU layers (the paper: 3)")
    dropout: float = opt(0.1, "dropout on the embeddings and before the decoder's output")
    warmup_steps: int = opt(
        2000, "KL annealing: steps over which the KL weight rises from 0 to beta (the paper's)"
    )
    property_hidden: int = opt(256, "property head: units of its two hidden layers")
    property_weight: float = opt(
        1.0, "weight of the property head's squared error (standardised units) in the loss"
    )
    # from the data (DataSpec): what the head predicts and how to standardise it
    properties: tuple[str, ...] | None = opt(None, "properties the head predicts, from the data")
    property_mean: tuple[float, ...] | None = opt(None, "their training means, from the data")
    property_std: tuple[float, ...] | None = opt(None, "their training std, from the data")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        self.conv_kernels = tuple(int(k) for k in self.conv_kernels)
        for key in ("properties", "property_mean", "property_std"):
            if getattr(self, key) is not None:
                setattr(self, key, tuple(getattr(self, key)))
        if len(self.conv_channels) != len(self.conv_kernels) or not self.conv_channels:
            raise ConfigError("conv_channels and conv_kernels need one entry per layer, alike")
        if min(self.conv_channels) < 1 or min(self.conv_kernels) < 1:
            raise ConfigError("conv_channels and conv_kernels must be >= 1")
        if self.decoder_layers < 1 or self.property_hidden < 1 or self.property_weight < 0:
            raise ConfigError("need decoder_layers, property_hidden >= 1, property_weight >= 0")
        n = len(self.properties or ())
        if len(self.property_mean or ()) != n or len(self.property_std or ()) != n:
            raise ConfigError("properties, property_mean and property_std must be of one length")


@register(
    "mol-vae",
    "molecules",
    "chemical VAE: conv encoder, GRU decoder fed z at every step, property head on z",
)
class MolVAE(TextVAE, PropertyPredictor):
    """``encoder_embedding`` -> ``encoder`` (conv or GRU) -> ``posterior`` -> z; ``decoder``
    (GRU) -> the text head; ``property_head`` z -> the data's properties (standardised)."""

    Config = MolVAEConfig  # type: ignore[assignment]
    config: MolVAEConfig  # type: ignore[assignment]
    DATA_FIELDS: ClassVar[tuple[str, ...]] = (
        "shape", "levels", "properties", "property_mean", "property_std",
    )  # fmt: skip
    molecules = True
    # the GRU decoder and conv encoder are not yet in tests/test_precision.py: float32 until then
    bf16_proven = False
    # K of dgm eval's NLL estimate (the IWAE bound): QM9's 13,077 test molecules take about 12
    # CPU-minutes at K = 10 and two hours at 100 (--num-samples 100 for the tighter bound)
    default_eval_samples = 10
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 1e-3, "batch_size": 256}
    # the data options it reads unless told otherwise: the properties of the joint model
    data_defaults: ClassVar[dict[str, Any]] = {"properties": ",".join(DEFAULT_PROPERTIES)}

    def __init__(self, config: MolVAEConfig) -> None:
        super().__init__(config)
        c = config
        p = len(c.properties or ())
        self.property_head = (
            nn.Sequential(
                nn.Linear(c.latent, c.property_hidden),
                nn.Tanh(),
                nn.Linear(c.property_hidden, c.property_hidden),
                nn.Tanh(),
                nn.Linear(c.property_hidden, p),
            )
            if p
            else None
        )
        self.register_buffer(
            "property_mean", torch.tensor(c.property_mean or (), dtype=torch.float32), False
        )
        self.register_buffer(
            "property_std", torch.tensor(c.property_std or (), dtype=torch.float32), False
        )

    def make_encoder(self, c: TextVAEConfig) -> nn.Module:
        assert isinstance(c, MolVAEConfig)
        if c.encoder == "gru":
            return GRUEncoder(c.embed, c.hidden)
        return ConvEncoder(c.embed, c.shape[0], c.conv_channels, c.conv_kernels, c.hidden)

    def make_decoder(self, c: TextVAEConfig) -> LSTMDecoder | DilatedCNNDecoder | GRUDecoder:
        assert isinstance(c, MolVAEConfig)
        if c.decoder == "gru":
            return GRUDecoder(
                c.embed, c.latent, c.decoder_hidden, c.levels, c.dropout, c.decoder_layers
            )
        return super().make_decoder(c)

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        check_molecules(cls.name, spec)
        super().check_spec(spec)

    # -- the encoder reads whole rows ----------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """The encoder's features ``[B, H]``; the conv encoder reads every row to its full
        length (trimmed batches are padded back), so a molecule's code never depends on the
        batch it came in."""
        if self.config.encoder == "conv" and x.shape[1] < self.max_len:
            x = nn.functional.pad(x, (0, self.max_len - x.shape[1]), value=float(PAD))
        e = self.drop(self.encoder_embedding(x.long()))
        return self.encoder(e, self.token_counts(x))

    # -- the joint model -----------------------------------------------------------------------
    @property
    def property_names(self) -> tuple[str, ...]:
        return tuple(self.config.properties or ())

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent)

    def standardized_properties(self, z: Tensor) -> Tensor:
        """The head's output ``[B, P]`` in standard units of the training data."""
        if self.property_head is None:
            raise ConfigError(
                f"{self.name} was trained without properties, so it has no property head; "
                "train it with --set properties=logp,qed,sa"
            )
        return self.property_head(z)

    def predict_properties(self, z: Tensor) -> Tensor:
        return self.standardized_properties(z) * self.property_std + self.property_mean

    def property_error(self, z: Tensor, y: Tensor) -> Tensor:
        """Squared error of the head in standard units, mean over properties: ``[B]``."""
        target = (y.to(z.dtype) - self.property_mean) / self.property_std
        return (self.standardized_properties(z) - target).pow(2).mean(-1)

    def _loss(self, batch: Batch, hold_encoder: bool) -> Tensor:
        loss, z = self.vae_loss(batch, hold_encoder)
        _, y = unpack(batch)
        if self.property_head is None or y is None or self.config.property_weight == 0:
            return loss
        return loss + self.config.property_weight * self.property_error(z, y).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """The text VAE's numbers and, with a head, ``property_mse`` at the posterior mean."""
        out = super().metrics(batch)
        _, y = unpack(batch)
        if self.property_head is not None and y is not None:
            x, _ = unpack(batch)
            out["property_mse"] = self.property_error(self.encode(x), y)
        return out


__all__ = ["DEFAULT_PROPERTIES", "MolVAE", "MolVAEConfig"]
