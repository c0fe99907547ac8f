"""The model contract every family follows (docs/architecture.md, "The model contract").

What a model can do beyond it is declared with the classes of :mod:`dgm.models.capabilities`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from dgm import config as cfg_
from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.distributions.base import LIKELIHOOD_HELP, MIXTURES_HELP, LikelihoodName
from dgm.errors import ConfigError, DataError

Batch = Tensor | tuple[Tensor, Tensor | None] | list


def check_discrete_config(c: Any) -> None:
    """What every config of a discrete-data model checks: a tuple shape and >= 2 levels."""
    c.shape = tuple(c.shape)
    if c.levels < 2:
        raise ConfigError(f"levels must be >= 2, got {c.levels}")


@dataclass
class DiscreteConfig:
    """The config fields of a model of discrete levels with a likelihood head (the
    autoregressive models, the VQ-VAE); a model's config subclasses it."""

    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int = opt(17, "values per dimension, from the data")
    likelihood: LikelihoodName = opt("auto", LIKELIHOOD_HELP)
    mixtures: int = opt(5, MIXTURES_HELP)

    def __post_init__(self) -> None:
        check_discrete_config(self)


def check_num_samples(k: int) -> None:
    """The one check of K, the importance samples of an estimated log p(x)."""
    if k < 1:
        raise ConfigError(f"num_samples (--num-samples) must be >= 1, got {k}")


def unpack(batch: Batch) -> tuple[Tensor, Tensor | None]:
    """A batch is ``x`` or ``(x, y)``; return ``(x, y)`` with ``y`` possibly None."""
    if isinstance(batch, Tensor):
        return batch, None
    x, y = batch
    return x, y


class GenerativeModel(nn.Module):
    """Base class: a model is built from a typed config and follows the contract.

    Subclasses set ``Config`` (a dataclass) and implement ``log_prob`` and ``sample``;
    ``loss`` defaults to the mean negative log-likelihood in nats.
    """

    name: ClassVar[str] = "model"
    Config: ClassVar[type]
    # config fields that come from the dataset (``DataSpec``) rather than from the user
    DATA_FIELDS: ClassVar[tuple[str, ...]] = ("shape", "levels")
    # False for latent-variable models, whose log_prob(x, num_samples=K) is an estimate
    exact_likelihood: ClassVar[bool] = True
    # importance samples `dgm eval` uses when log_prob is an estimate (exact_likelihood False)
    default_eval_samples: ClassVar[int] = 1
    # True for models of discrete levels (autoregressive models with categorical outputs...)
    discrete_only: ClassVar[bool] = False
    # False for models without log_prob (GANs): evaluation reports sample quality instead
    has_likelihood: ClassVar[bool] = True
    # the validation metric (of ``metrics``, lower is better) that picks the best epoch, stops
    # early and drives the plateau schedule; a hybrid's is its objective, not the NLL alone
    monitor: ClassVar[str] = "nll"
    # training settings this family needs by default (the user's --set wins), e.g. a GAN's lr
    train_defaults: ClassVar[dict[str, Any]] = {}
    # what the trainer suggests when the loss turns NaN or infinite
    divergence_advice: ClassVar[str] = (
        "lower the learning rate (--set lr=...) or clip gradients (--set grad_clip=1)"
    )

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, values: dict[str, Any]) -> GenerativeModel:
        return cls(cfg_.build(cls.Config, values, what=cls.name))

    @classmethod
    def data_config(cls, spec: DataSpec) -> dict[str, Any]:
        """The config values this model takes from a dataset."""
        fields = cfg_.field_types(cls.Config)
        return {k: getattr(spec, k) for k in cls.DATA_FIELDS if k in fields}

    @classmethod
    def for_data(cls, spec: DataSpec, **overrides: Any) -> GenerativeModel:
        """Build a model sized for ``spec``; ``overrides`` may not touch the data's fields."""
        clash = sorted(set(overrides) & set(cls.data_config(spec)))
        if clash:
            raise ConfigError(
                f"{clash[0]!r} comes from the data ({spec.name}) and cannot be set; "
                "choose other data instead"
            )
        cls.check_spec(spec)
        if "conditional" in cfg_.field_types(cls.Config):  # class-conditional families
            try:  # values may be strings from the command line; a bad one fails in the config
                conditional = cfg_.coerce(overrides.get("conditional", False), bool)
            except ValueError:
                conditional = False
            if conditional and not spec.num_classes:
                raise DataError(
                    f"conditional=true needs labelled data, but {spec.name} has no labels; "
                    "drop conditional or choose labelled data"
                )
        return cls.from_config({**cls.data_config(spec), **overrides})

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        """Raise a DataError if this model cannot model data described by ``spec``."""
        if cls.discrete_only and spec.levels is None:
            raise DataError(
                f"{cls.name} models discrete data, but {spec.name} is continuous; quantize it "
                "to whole numbers first"
            )

    def config_dict(self) -> dict[str, Any]:
        return cfg_.to_dict(self.config)

    # -- the contract ---------------------------------------------------------------------
    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.config.shape)

    @property
    def levels(self) -> int | None:
        """Values per dimension of the discrete data modelled (0..levels-1); None: continuous."""
        return self.config.levels

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats, one value per example: ``[B, *event_shape] -> [B]``."""
        raise NotImplementedError

    def likelihood_note(self, num_samples: int = 1) -> str:
        """What ``log_prob`` reports, for eval output: exact, or which bound/estimate."""
        return "exact log-likelihood"

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` samples ``[n, *event_shape]`` in the data's own space and scale; ``temperature``
        scales the model's randomness where it has a sense (1: the model itself)."""
        raise NotImplementedError

    def loss(self, batch: Batch) -> Tensor:
        """The training objective (a scalar to minimise): mean NLL in nats by default."""
        x, _ = unpack(batch)
        return -self.log_prob(x).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """Per-example validation numbers (``[B]`` each); ``nll`` drives early stopping."""
        x, _ = unpack(batch)
        return {"nll": -self.log_prob(x)}

    # -- conveniences ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check_input(self, x: Tensor) -> None:
        """Raise a DataError if ``x`` is not a batch this model can score."""
        if tuple(x.shape[1:]) != self.event_shape:
            raise DataError(
                f"{self.name} expects examples of shape {self.event_shape}, "
                f"got {tuple(x.shape[1:])}"
            )

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``config.json`` + ``model.safetensors`` to folder ``path``."""
        from dgm.io import save_model

        save_model(self, path, extra)
