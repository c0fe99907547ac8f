"""What every diffusion model shares: the data side, the network, the sampling options.

**The data in model space.** Diffusion runs on real vectors y of order 1:

- discrete levels ``x`` in ``0..L-1`` become the centres of L equal cells of [-1, 1],
  ``y = (2x + 1) / L - 1`` (Ho et al. 2020 scale pixels to [-1, 1] the same way); a sample
  in model space goes back to the level whose cell holds it. The bound models (``ddpm``,
  ``vdm``) score the levels with a discretised Gaussian decoder over those cells
  (:func:`~dgm.distributions.gaussian.discretized_gaussian_log_prob`), so their NLL is a bound
  on the discrete log-likelihood in nats, comparable with an ARM's exact NLL. The ODE models
  (``score-sde``, ``flow-matching``) model densities and score discrete data through uniform
  dequantisation, ``y = 2 (x + u) / L - 1`` with u ~ U[0, 1)^D, a lower bound
  log P(x) >= E_u log p(y) + D log(2 / L) (Theis et al. 2016), as the flows do; the cells are
  the same.
- continuous data are mapped affinely onto [-1, 1] by the data's range (``low``, ``high``,
  from the dataset): ``y = (x - centre) / half``, and densities in data space carry
  ``- D log half``.

**Sampling** takes a sampler and a number of steps (:class:`IterativeSampler`), both from the
config unless a call names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.errors import ConfigError
from dgm.models.base import GenerativeModel, LikelihoodKind, check_num_samples
from dgm.models.capabilities import IterativeSampler
from dgm.models.diffusion.networks import network
from dgm.models.diffusion.ode import ADAPTIVE, FIXED, Solve, ode_log_prob, ode_sample


@dataclass
class DiffusionConfig:
    """The fields every diffusion model has; a model's config subclasses it (and sets the
    defaults and choices of ``sampler``)."""

    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(17, "values per dimension, from the data (none: continuous data)")
    low: float = opt(0.0, "the data's smallest value, from the data (continuous data)")
    high: float = opt(16.0, "the data's largest value, from the data (continuous data)")
    hidden: int = opt(32, "the U-Net's channels at full resolution, or the MLP's width")
    blocks: int = opt(1, "residual blocks per U-Net resolution, or the MLP's blocks")
    attention: bool = opt(True, "self-attention at the U-Net's lowest resolution")
    dropout: float = opt(0.1, "dropout in the residual blocks")
    steps: int = opt(1000, "sampling steps (the sampler's discretisation)")
    sampler: str = opt("ancestral", "how samples are drawn")

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"levels must be >= 2 or none, got {self.levels}")
        if self.levels is None and not self.high > self.low:
            raise ConfigError(
                f"the data's range must have high > low, got [{self.low}, {self.high}]"
            )
        if self.hidden < 1 or self.blocks < 1:
            raise ConfigError("hidden and blocks must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")


def check_tolerance(name: str, value: float) -> None:
    """An ODE solver's tolerance must be > 0."""
    if not value > 0:
        raise ConfigError(f"{name} must be > 0 (an ODE solver's tolerance), got {value}")


class DiffusionModel(GenerativeModel, IterativeSampler):
    """The data side of a diffusion model, its network and its sampling options; a registered
    model sets ``samplers`` and ``outputs`` (values per dimension its network predicts) and
    implements the maths in model space."""

    config: Any
    DATA_FIELDS = ("shape", "levels", "low", "high")
    # the sampler names a model accepts (its config's ``sampler`` and ``sample(sampler=)``)
    samplers: ClassVar[tuple[str, ...]] = ("ancestral",)
    # values per dimension the network predicts (2: a mean and a variance interpolation)
    outputs: ClassVar[int] = 1
    sizing_note = (
        "vectors and 2-D data: an MLP of width 256 with 3 blocks; 28x28 images: 2 blocks per "
        "resolution"
    )
    # a slow average of the weights (Ho et al. 2020: 0.9999 over 800k steps; here runs are
    # thousands of steps); sample grids less often (a grid is T network passes, a minute on a
    # CPU); more patience, as the validation bound is an estimate whose noise (a few nats on
    # the digits) hides slow progress
    train_defaults: ClassVar[dict[str, Any]] = {"ema": 0.999, "sample_every": 50, "patience": 50}
    # a diffusion model's bound or ODE log-likelihood is estimated by averaging draws (of the
    # time, of Hutchinson's probes, of the dequantisation noise), not importance-weighted
    averaged_samples = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        c = config
        if c.sampler not in self.samplers:
            raise ConfigError(
                f"unknown sampler {c.sampler!r} for {self.name}; choose one of "
                f"{', '.join(self.samplers)}"
            )
        self.dim = math.prod(c.shape)
        self.net = self.build_network(c)
        # the affine map of continuous data onto [-1, 1] (buffers: they move with the model)
        centre, half = (c.low + c.high) / 2, (c.high - c.low) / 2
        self.register_buffer("_centre", torch.tensor(float(centre)), persistent=False)
        self.register_buffer("_half", torch.tensor(float(half)), persistent=False)

    def build_network(self, c: Any) -> nn.Module:
        return network(
            c.shape, self.outputs, hidden=c.hidden, blocks=c.blocks, attention=c.attention,
            dropout=c.dropout,
        )  # fmt: skip

    @classmethod
    def sized_defaults(cls, spec: DataSpec) -> dict[str, Any]:
        if len(spec.shape) == 1:
            return {"hidden": 256, "blocks": 3}
        if len(spec.shape) == 3 and min(spec.shape[1:]) >= 16:
            return {"blocks": 2}
        return {}

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        super().check_spec(spec)
        if len(spec.shape) not in (1, 3):
            raise ConfigError(
                f"{cls.name} takes images (C, H, W) or vectors (D,); {spec.name} has shape "
                f"{spec.shape}"
            )

    # -- the data side -------------------------------------------------------------------
    @property
    def discrete(self) -> bool:
        return self.config.levels is not None

    def to_model(self, x: Tensor) -> Tensor:
        """Data -> model space: levels to their cells' centres, continuous data onto [-1, 1]."""
        if self.discrete:
            return (2 * x + 1) / self.config.levels - 1
        return (x - self._centre) / self._half

    def to_data(self, y: Tensor) -> Tensor:
        """Model space -> data: the level whose cell holds ``y``, or the affine map back."""
        if self.discrete:
            levels = self.config.levels
            return torch.floor((y + 1) * (levels / 2)).clamp(0, levels - 1)
        return y * self._half + self._centre

    def dequantize(self, x: Tensor) -> tuple[Tensor, float]:
        """``x`` -> (``y`` in model space, the log-volume term in nats per example): for
        discrete data one draw of uniform dequantisation, ``y = 2 (x + u) / L - 1`` and
        ``D log(2 / L)`` (log P(x) >= E_u log p(y) + that); for continuous data the affine map
        and its ``- D log half``."""
        if self.discrete:
            levels = self.config.levels
            y = 2 * (x + torch.rand_like(x)) / levels - 1
            return y, self.dim * math.log(2 / levels)
        return self.to_model(x), -self.dim * math.log(float(self._half))

    # -- sampling ------------------------------------------------------------------------
    def sampling(self, steps: int | None, sampler: str | None) -> tuple[int, str]:
        """A call's ``steps`` and ``sampler``, the config's where not given, checked."""
        steps = self.config.steps if steps is None else steps
        sampler = self.config.sampler if sampler is None else sampler
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"{self.name}: steps must be a whole number >= 1, got {steps!r}")
        if sampler not in self.samplers:
            raise ConfigError(
                f"unknown sampler {sampler!r} for {self.name}; choose one of "
                f"{', '.join(self.samplers)}"
            )
        return steps, sampler

    def prior_noise(self, n: int, temperature: float) -> Tensor:
        """``n`` draws of N(0, temperature^2 I) in model space ``[n, *shape]``."""
        return temperature * torch.randn(n, *self.config.shape, device=self.device)


# -- models whose likelihood goes through an ODE --------------------------------------------
# divergence "auto": exact up to this many dimensions (2-D data). The exact divergence costs
# D backward passes per function evaluation: on the 64-dimensional digits about 47 times
# Hutchinson's one, half an hour per 100 test digits on one CPU thread
EXACT_MAX_DIM = 16
PICTURE_TOLERANCE = 1e-3  # the ODE solver's tolerances for a picture of a 2-D density


@dataclass
class ODEConfig(DiffusionConfig):
    """The fields of a model with an ODE likelihood (``score-sde``, ``flow-matching``)."""

    divergence: Literal["auto", "exact", "hutchinson"] = opt(
        "auto",
        f"the ODE likelihood's divergence: exact (D backward passes) or Hutchinson's estimate "
        f"(1 probe a pass; --num-samples averages more); auto: exact up to {EXACT_MAX_DIM} "
        "dimensions",
    )
    solver: str = opt("dopri5", f"the adaptive ODE solver of likelihoods: {', '.join(ADAPTIVE)}")
    rtol: float = opt(1e-5, "the ODE solver's relative tolerance (likelihoods, ode samples)")
    atol: float = opt(1e-5, "the ODE solver's absolute tolerance (likelihoods, ode samples)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_tolerance("rtol", self.rtol)
        check_tolerance("atol", self.atol)
        if self.solver not in ADAPTIVE:
            raise ConfigError(
                f"unknown adaptive ODE solver {self.solver!r}; choose one of {', '.join(ADAPTIVE)}"
            )


class ODEModel(DiffusionModel):
    """A model whose density is that of an ODE's flow from a prior (the probability-flow ODE of
    a score SDE, flow matching's velocity field): ``log_prob`` is the ODE log-likelihood
    (:func:`~dgm.models.diffusion.ode.ode_log_prob`), exact up to the solver's tolerance with
    the exact divergence, an unbiased estimate with Hutchinson's; on discrete data the
    dequantisation bound (``DiffusionModel.dequantize``). Its K (``num_samples``) is the
    number of Hutchinson probes and dequantisation draws averaged per example.

    Subclasses give the field in model space (:meth:`velocity`), the prior at ``t_prior`` and
    the times; samples start from the prior and follow the ODE (``ode`` with the adaptive
    solver at the config's tolerances, ``euler``, ``midpoint`` or ``rk4`` in ``steps`` fixed
    steps) or a sampler of the subclass's own."""

    t_data: ClassVar[float] = 0.0
    t_prior: ClassVar[float] = 1.0
    # an ODE solve per validation batch would make each epoch minutes: the best epoch is picked
    # by the training objective on the validation data (``dgm eval`` gives the likelihood)
    monitor = "loss"

    def velocity(self, y: Tensor, t: Tensor) -> Tensor:
        """dy/dt ``[B, *shape]`` at ``y`` ``[B, *shape]`` and times ``t`` ``[B]``."""
        raise NotImplementedError

    def prior_log_prob(self, y: Tensor) -> Tensor:
        """log p_{t_prior}(y) ``[B]``: a standard normal unless a subclass says otherwise."""
        return -0.5 * (y * y).flatten(1).sum(1) - 0.5 * self.dim * math.log(2 * math.pi)

    def prior_sample(self, n: int, temperature: float) -> Tensor:
        return self.prior_noise(n, temperature)

    @property
    def exact_divergence(self) -> bool:
        d = self.config.divergence
        return d == "exact" or (d == "auto" and self.dim <= EXACT_MAX_DIM)

    @property
    def exact_likelihood(self) -> bool:  # type: ignore[override]
        return not self.discrete and self.exact_divergence

    def solve(self, steps: int | None = None, method: str | None = None) -> Solve:
        c = self.config
        return Solve(method=method or c.solver, rtol=c.rtol, atol=c.atol, steps=steps or c.steps)

    def likelihood_kind(self) -> LikelihoodKind:
        # dequantised: a bound; Hutchinson's trace: an unbiased estimate; else exact up to the
        # solver's tolerance
        if self.discrete:
            return "bound"
        return "exact" if self.exact_divergence else "estimate"

    def likelihood_note(self, num_samples: int = 1) -> str:
        c = self.config
        how = (
            f"the ODE log-likelihood ({c.solver}, rtol {c.rtol:g}, atol {c.atol:g}; "
            + ("exact divergence)" if self.exact_divergence else
               f"Hutchinson divergence, {num_samples} probe{'s' if num_samples > 1 else ''})")
        )  # fmt: skip
        if self.discrete:
            return (
                f"lower bound on the discrete log-likelihood: uniform dequantization "
                f"({num_samples} draw{'s' if num_samples > 1 else ''}) of {how}: the NLL is an "
                "upper bound"
            )
        if not self.exact_divergence:
            return f"unbiased estimate of {how}"
        return f"exact log-likelihood up to the solver's tolerance: {how}"

    def log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """log p(x) through the ODE; ``num_samples`` draws of the Hutchinson probes and of the
        dequantisation noise, averaged (deterministic data and divergence need none)."""
        return self._log_prob(x, num_samples, self.solve())

    def picture_log_prob(self, x: Tensor) -> Tensor:
        """``log_prob`` at tolerances no looser than ``PICTURE_TOLERANCE``: tens of thousands
        of grid points through the ODE at 1e-5 take many minutes, and a picture cannot show
        a difference of 1e-3 in log p (0.1% in p)."""
        c = self.config
        loose = max(c.rtol, PICTURE_TOLERANCE), max(c.atol, PICTURE_TOLERANCE)
        return self._log_prob(x, 1, Solve(method=c.solver, rtol=loose[0], atol=loose[1]))

    def _log_prob(self, x: Tensor, num_samples: int, solve: Solve) -> Tensor:
        self.check_input(x)
        check_num_samples(num_samples)
        b = x.shape[0]
        k = 1 if self.exact_likelihood else num_samples
        xr = x.repeat(k, *([1] * (x.dim() - 1)))  # [k B, *shape]: k independent estimates
        y, offset = self.dequantize(xr)
        lp = ode_log_prob(
            self.velocity, y, self.prior_log_prob, t0=self.t_data, t1=self.t_prior,
            solve=solve, probes=None if self.exact_divergence else 1,
        )  # fmt: skip
        return (lp + offset).view(k, b).mean(0)

    def ode_draw(self, n: int, temperature: float, steps: int, method: str) -> Tensor:
        """Prior draws carried to the data's time along the ODE, in model space."""
        solve = self.solve(steps, None if method == "ode" else method)
        y = self.prior_sample(n, temperature)
        return ode_sample(self.velocity, y, t0=self.t_prior, t1=self.t_data, solve=solve)


ODE_SAMPLERS = ("ode", *FIXED)
