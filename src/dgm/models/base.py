"""The model contract every family follows (docs/architecture.md, "The model contract").

What a model can do beyond it is declared with the classes of :mod:`dgm.models.capabilities`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from dgm import config as cfg_
from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.distributions.base import LIKELIHOOD_HELP, MIXTURES_HELP, LikelihoodName
from dgm.errors import ConfigError, DataError, option
from dgm.models.capabilities import Waveform

# what kind of number log_prob is (GenerativeModel.likelihood_kind)
LikelihoodKind = Literal["exact", "bound", "estimate", "none"]

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
        name = option("--num-samples", "num_samples")
        raise ConfigError(f"{name} must be >= 1, got {k}")


# -- the guard on the public contract -------------------------------------------------------
# log_prob and sample are what users call from Python, with whatever they have at hand (a numpy
# array, x / 255, a model fresh from dgm.create in training mode). Every subclass's own
# log_prob and sample are wrapped once, when the class is made (GenerativeModel.__init_subclass__):
# inputs become tensors and are checked against the model's shape and levels, sample runs in
# eval mode. Inner calls (a hybrid's parts, super().log_prob) and the trainer's batches, which
# were checked when the data loaded, skip the checks: a plain flag, which torch.compile reads
# as a constant, rather than a per-batch min/max that would sync a GPU every step.
_trusted = 0


@contextmanager
def trusted_inputs() -> Iterator[None]:
    """Calls inside take their inputs as given: no conversion, no checks, no mode switch (the
    trainer's batches, checked once when the data loaded)."""
    global _trusted
    _trusted += 1
    try:
        yield
    finally:
        _trusted -= 1


def as_examples(model: GenerativeModel, x: Any, what: str | None = None) -> Tensor:
    """``x`` (a tensor, numpy array or nested list ``[B, *event_shape]``) as a float tensor on
    the model's device, checked: shape, finite values and, for discrete data, whole numbers in
    ``0..levels-1``. The one check of a user's examples (the CLI's too: ``what`` names where
    they came from, such as ``--out mnist``, in place of the model's name)."""
    who = what or model.name
    batch = f"[B, {', '.join(map(str, model.event_shape))}]"
    if isinstance(x, np.ndarray | list | tuple):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as e:
            raise DataError(f"{model.name}: examples must be numbers {batch} ({e})") from None
    if not isinstance(x, Tensor):
        raise DataError(
            f"{model.name}: examples must be a tensor, numpy array or list of shape {batch}, "
            f"got {type(x).__name__}"
        )
    if not x.is_floating_point():
        x = x.float()
    if tuple(x.shape) == model.event_shape:
        raise DataError(
            f"{model.name} scores a batch {batch}; got one example of shape "
            f"{tuple(x.shape)}: pass x[None]"
        )
    model.check_input(x)
    if not x.numel():
        return x.to(model.device)
    low, high = x.min().item(), x.max().item()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DataError(f"{model.name}: the examples hold NaN or infinite values")
    levels = model.levels
    if levels is not None:
        span = f"[{low:g}, {high:g}]"
        if low < 0 or high > levels - 1:
            raise DataError(
                f"{who}: values span {span} but {model.name} models {levels} levels (whole "
                f"numbers 0..{levels - 1})"
            )
        if bool((x != x.round()).any()):
            raise DataError(
                f"{who}: values span {span} and are not whole numbers, but {model.name} models "
                f"{levels} levels (whole numbers 0..{levels - 1}): pass the levels themselves, "
                "not a rescaled copy (such as x / 255)"
            )
    return x.to(model.device)


def check_sample_args(model: GenerativeModel, n: Any, temperature: Any) -> None:
    """``n`` a whole number >= 1, ``temperature`` >= 0 (0: the most likely value where the
    model's draws have one)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"{model.name}.sample: n must be a whole number >= 1, got {n!r}")
    if temperature is not None and not (isinstance(temperature, int | float) and temperature >= 0):
        raise ConfigError(f"{model.name}.sample: temperature must be >= 0, got {temperature!r}")


def _guard_log_prob(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    @functools.wraps(fn)
    def log_prob(self: GenerativeModel, x: Any, *args: Any, **kwargs: Any) -> Tensor:
        if _trusted:
            return fn(self, x, *args, **kwargs)
        x = as_examples(self, x)
        with trusted_inputs():
            return fn(self, x, *args, **kwargs)

    log_prob.guarded = True  # type: ignore[attr-defined]
    return log_prob


def _guard_sample(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def sample(self: GenerativeModel, *args: Any, **kwargs: Any) -> Tensor:
        if _trusted:
            return fn(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs).arguments
        check_sample_args(self, bound.get("n"), bound.get("temperature"))
        training = self.training
        self.eval()  # dropout off, batch-norm statistics frozen: draws of the model itself
        try:
            with trusted_inputs():
                return fn(self, *args, **kwargs)
        finally:
            self.train(training)

    sample.guarded = True  # type: ignore[attr-defined]
    return sample


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
    # the fewest draws that make a usable number where a command asks for few (the test NLL at
    # the end of training): 1 is the bound trained on; an averaged estimator (below) of many
    # terms needs more to be more than noise
    min_eval_samples: ClassVar[int] = 1
    # False: log_prob(x, num_samples=K) importance-weights K draws, log (1/K) sum_k w_k, a bound
    # that tightens with K (IWAE, dequantisation). True: it averages K Monte Carlo estimates
    # (of a bound's terms, of a Hutchinson trace), whose variance falls with K and whose mean
    # does not move (diffusion models); parts of K then join by their mean
    averaged_samples: ClassVar[bool] = False
    # True for models of discrete levels (autoregressive models with categorical outputs...)
    discrete_only: ClassVar[bool] = False
    # True for models of token sequences (dgm.models.text): they take text data only, and
    # every other model refuses text (check_spec)
    text: ClassVar[bool] = False
    # models of molecules only (dgm.models.molecules): their data loads as molecules, and a
    # dataset of anything else is refused with what molecules are
    molecules: ClassVar[bool] = False
    # models of audio only (vqvae-audio): a dataset of anything else is refused
    audio: ClassVar[bool] = False
    # data options the family reads unless the user gives them (mol-vae: the properties its
    # head predicts); kept with the run's data like the user's own
    data_defaults: ClassVar[dict[str, Any]] = {}
    # False for models without log_prob (GANs): evaluation reports sample quality instead
    has_likelihood: ClassVar[bool] = True
    # the validation metric (of ``metrics``, lower is better) that picks the best epoch, stops
    # early and drives the plateau schedule; a hybrid's is its objective, not the NLL alone
    monitor: ClassVar[str] = "nll"
    # True where tests/test_precision.py finds bf16 mixed precision equal to float32 (validation
    # NLL within 1% after the same steps): --precision auto may then train it in bf16
    bf16_proven: ClassVar[bool] = False
    # what sized_defaults changes, in words, for `dgm list` ("" when nothing)
    sizing_note: ClassVar[str] = ""
    # training settings this family needs by default (the user's --set wins), e.g. a GAN's lr
    train_defaults: ClassVar[dict[str, Any]] = {}
    # models this name builds for other kinds of data (``for_data`` picks one: vqvae on audio
    # is vqvae-audio); their options are accepted under this name too
    also_builds: ClassVar[tuple[type[GenerativeModel], ...]] = ()
    # what the trainer suggests when the loss turns NaN or infinite
    divergence_advice: ClassVar[str] = (
        "lower the learning rate (the option lr) or clip gradients (grad_clip=1)"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a family's own log_prob / sample get the checks of the public contract (see above)
        for name, guard in (("log_prob", _guard_log_prob), ("sample", _guard_sample)):
            fn = cls.__dict__.get(name)
            if callable(fn) and not vars(fn).get("guarded"):
                setattr(cls, name, guard(fn))

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
        return cls.from_config({**cls.sized_defaults(spec), **cls.data_config(spec), **overrides})

    @classmethod
    def sized_defaults(cls, spec: DataSpec) -> dict[str, Any]:
        """Config defaults sized for the data, under the user's own values: the config's
        defaults suit the 8x8 digits; a family whose defaults would crawl on bigger data (a
        flow's full-resolution networks on 28x28 images) names smaller ones here, and says so
        in ``sizing_note`` (``dgm list``)."""
        return {}

    @classmethod
    def train_defaults_for(cls, spec: DataSpec) -> dict[str, Any]:
        """The family's training defaults for data like ``spec`` (the user's settings win):
        ``train_defaults``, unless the family's kinds of data need different ones (a GAN's
        lr and batch on vectors)."""
        return dict(cls.train_defaults)

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        """Raise a DataError if this model cannot model data described by ``spec``."""
        if cls.text and not spec.is_text:
            kind = "an image dataset" if spec.is_image else "a dataset of vectors"
            raise DataError(
                f"{cls.name} models text; {spec.name} is {kind}: give it a text dataset (ptb, "
                "tinyshakespeare) or a .txt file"
            )
        if spec.is_molecules and not cls.text:
            raise DataError(
                f"{cls.name} models arrays; {spec.name} is molecules (strings of "
                f"{spec.tokenizer.upper()} tokens): use mol-vae, char-rnn or a text model "
                "(lstm-lm, transformer-lm, text-vae)"
            )
        if spec.is_audio and not issubclass(cls, Waveform):
            raise DataError(
                f"{cls.name} models arrays of a fixed shape; {spec.name} is audio (utterances at "
                f"{spec.sample_rate} Hz): use wavenet"
            )
        if spec.is_text and not cls.text:
            raise DataError(
                f"{cls.name} models arrays; {spec.name} is text: use lstm-lm, transformer-lm "
                "or text-vae"
            )
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

    def picture_log_prob(self, x: Tensor) -> Tensor:
        """log p(x) for a picture of a 2-D density on a grid (``density.png``): ``log_prob``,
        unless the model has a cheaper way that a picture cannot tell apart (an ODE model's
        looser solver tolerance)."""
        return self.log_prob(x)

    def likelihood_note(self, num_samples: int = 1) -> str:
        """What ``log_prob`` reports, for eval output: exact, or which bound/estimate."""
        return "exact log-likelihood"

    def likelihood_kind(self) -> LikelihoodKind:
        """What kind of number ``log_prob`` is, in one word (``likelihood_note`` says it in
        full): ``exact``; ``bound`` (a deterministic or averaged lower bound on log p, so the
        NLL is an upper bound: dequantised flows, diffusion bounds, a VQ-VAE's one term);
        ``estimate`` (importance-sampled with K draws, a bound in expectation that tightens
        with K: VAEs; or Hutchinson's unbiased trace); ``none`` (no likelihood: GANs). Reports
        put numbers of different kinds side by side only with their kinds."""
        if not self.has_likelihood:
            return "none"
        return "exact" if self.exact_likelihood else "bound"

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
