"""Score SDEs (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, "Score-based generative
modeling through stochastic differential equations").

Data y(0) are diffused by an SDE dy = f(y, t) dt + g(t) dw on t in [0, 1], whose transition
kernel is Gaussian, y(t) | y(0) ~ N(alpha_t y(0), std_t^2 I):

- **VP** (variance preserving, the continuous DDPM): beta(t) = beta_min + t (beta_max - beta_min),
  f = -beta(t) y / 2, g^2 = beta(t); log alpha_t = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2,
  std_t^2 = 1 - alpha_t^2; prior N(0, I). beta_min 0.1, beta_max 20 as the paper.
- **VE** (variance exploding, NCSN's): sigma(t) = sigma_min (sigma_max / sigma_min)^t, f = 0,
  g^2 = d sigma^2 / dt = 2 sigma(t)^2 log(sigma_max / sigma_min); alpha_t = 1, std_t = sigma(t)
  (the official code's kernel: the data carry sigma_min's noise at t = 0); prior
  N(0, sigma_max^2 I). sigma_max defaults to 2 sqrt(D), the largest distance between two
  points of [-1, 1]^D, where model-space data live (Song & Ermon 2020, technique 1: sigma_max
  about the largest distance between training points).

**Training**: denoising score matching with lambda(t) = std_t^2, t ~ U(t_min, 1): the network
predicts the noise, eps_hat(y_t, t), the score is -eps_hat / std_t, and the loss is
||eps_hat - eps||^2 averaged over dimensions (eq. 7; ``reduce_mean`` of the official code).

**Likelihood**: the probability-flow ODE dy/dt = f(y, t) - g(t)^2 score(y, t) / 2 (eq. 13)
carries the data at t_min to the prior at 1 (:class:`~dgm.models.diffusion.base.ODEModel`).

**Sampling** from the prior at t = 1 down to t = 1e-3 (the paper's sampling eps) on a uniform
grid of ``steps`` steps, the last step without noise (the paper's denoising): ``euler-maruyama``
on the reverse SDE dy = [f - g^2 score] dt + g dw-bar, or ``pc``: a reverse-diffusion
predictor and one Langevin corrector step at signal-to-noise ratio ``snr`` (Algorithms 2, 3
and 5); or the probability-flow ODE to t_min (``ode``: adaptive, at the config's tolerances;
``euler``, ``midpoint``, ``rk4`` in ``steps`` steps), the inverse of the likelihood's map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.base import Batch, unpack
from dgm.models.diffusion.base import ODE_SAMPLERS, ODEConfig, ODEModel
from dgm.registry import register

SDES = ("vp", "ve")
SDE_SAMPLERS = ("euler-maruyama", "pc")
SAMPLERS = (*SDE_SAMPLERS, *ODE_SAMPLERS)
SAMPLE_EPS = 1e-3  # the reverse SDE stops here (the paper's sampling eps)


@dataclass
class ScoreSDEConfig(ODEConfig):
    sde: Literal["vp", "ve"] = opt("vp", "the SDE: vp (variance preserving) or ve (exploding)")
    beta_min: float = opt(0.1, "vp: beta(0), the noise rate at t = 0")
    beta_max: float = opt(20.0, "vp: beta(1), the noise rate at t = 1")
    sigma_min: float = opt(0.01, "ve: sigma(0), the smallest noise scale")
    sigma_max: float | None = opt(
        None,
        "ve: sigma(1), the largest noise scale; none: 2 sqrt(D), the largest distance between "
        "two points of the data's [-1, 1]^D",
    )
    t_min: float = opt(1e-5, "the smallest time trained on, where the ODE likelihood starts")
    snr: float = opt(0.16, "pc: the Langevin corrector's signal-to-noise ratio")
    steps: int = opt(1000, "sampling steps (reverse SDE, fixed-step ODE solvers)")
    sampler: str = opt(
        "euler-maruyama",
        "euler-maruyama | pc (reverse SDE) | ode (adaptive) | euler | midpoint | rk4",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sde not in SDES:
            raise ConfigError(f"unknown sde {self.sde!r}; choose one of {', '.join(SDES)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"unknown sampler {self.sampler!r} for score-sde; choose one of "
                f"{', '.join(SAMPLERS)}"
            )
        if not 0 < self.beta_min < self.beta_max:
            raise ConfigError(
                f"need 0 < beta_min < beta_max, got {self.beta_min} and {self.beta_max}"
            )
        if not self.sigma_min > 0 or (
            self.sigma_max is not None and not self.sigma_max > self.sigma_min
        ):
            raise ConfigError(
                f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}"
            )
        if not 0 < self.t_min < SAMPLE_EPS:
            raise ConfigError(f"t_min must be in (0, {SAMPLE_EPS:g}), got {self.t_min}")
        if not self.snr > 0:
            raise ConfigError(f"snr must be > 0, got {self.snr}")


def _per_example(v: Tensor, y: Tensor) -> Tensor:
    """``[B]`` -> ``[B, 1, ...]``, to broadcast against ``y`` ``[B, *shape]``."""
    return v.reshape(-1, *([1] * (y.dim() - 1)))


@register("score-sde", "diffusion", "score SDE (VP or VE), probability-flow ODE likelihood")
class ScoreSDE(ODEModel):
    """A score SDE: a noise-predicting network trained by denoising score matching; the
    exact likelihood of its probability-flow ODE; samples by the reverse SDE or the ODE."""

    Config = ScoreSDEConfig
    config: ScoreSDEConfig
    samplers = SAMPLERS
    outputs = 1
    sample_options = ("steps", "sampler", "snr")

    def __init__(self, config: ScoreSDEConfig) -> None:
        super().__init__(config)
        # the likelihood starts where training stopped (an instance value: it is the config's)
        self.t_data = config.t_min
        self.sigma_max = (
            2 * math.sqrt(self.dim) if config.sigma_max is None else float(config.sigma_max)
        )

    # -- the SDE -------------------------------------------------------------------------
    def log_alpha(self, t: Tensor) -> Tensor:
        """log of the kernel's mean coefficient alpha_t ``[B]`` (0 for VE)."""
        c = self.config
        if c.sde == "ve":
            return torch.zeros_like(t)
        return -0.25 * t**2 * (c.beta_max - c.beta_min) - 0.5 * t * c.beta_min

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha_t, std_t) ``[B]`` each: y(t) | y(0) ~ N(alpha_t y(0), std_t^2 I)."""
        c = self.config
        if c.sde == "ve":
            return torch.ones_like(t), c.sigma_min * (self.sigma_max / c.sigma_min) ** t
        la = self.log_alpha(t)
        return la.exp(), torch.sqrt(-torch.expm1(2 * la))  # expm1: std_t ~ 1e-3 at t = 1e-5

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(k(t), g(t)^2) ``[B]``: the drift is f(y, t) = k(t) y."""
        c = self.config
        if c.sde == "ve":
            sigma = c.sigma_min * (self.sigma_max / c.sigma_min) ** t
            return torch.zeros_like(t), 2 * sigma**2 * math.log(self.sigma_max / c.sigma_min)
        beta = c.beta_min + t * (c.beta_max - c.beta_min)
        return -0.5 * beta, beta

    def score(self, y: Tensor, t: Tensor) -> Tensor:
        """grad_y log p_t(y) ``[B, *shape]`` = -eps_hat(y, t) / std_t."""
        _, std = self.marginal(t)
        return -self.net(y, t)[:, 0] / _per_example(std, y)

    def velocity(self, y: Tensor, t: Tensor) -> Tensor:
        """The probability-flow ODE's drift f(y, t) - g(t)^2 score(y, t) / 2."""
        k, g2 = self.coefficients(t)
        return _per_example(k, y) * y - 0.5 * _per_example(g2, y) * self.score(y, t)

    # -- the prior -----------------------------------------------------------------------
    def prior_log_prob(self, y: Tensor) -> Tensor:
        if self.config.sde == "vp":
            return super().prior_log_prob(y)
        s2 = self.sigma_max**2
        return -0.5 * (y * y).flatten(1).sum(1) / s2 - 0.5 * self.dim * math.log(2 * math.pi * s2)

    def prior_sample(self, n: int, temperature: float) -> Tensor:
        scale = 1.0 if self.config.sde == "vp" else self.sigma_max
        return scale * self.prior_noise(n, temperature)

    # -- training ------------------------------------------------------------------------
    def per_example_loss(self, x: Tensor) -> Tensor:
        """Denoising score matching with lambda(t) = std_t^2: ||eps_hat - eps||^2 averaged
        over dimensions ``[B]``, at t ~ U(t_min, 1), on dequantised data (discrete levels)."""
        y, _ = self.dequantize(x)
        t_min = self.config.t_min
        t = t_min + (1 - t_min) * torch.rand(y.shape[0], device=y.device, dtype=y.dtype)
        alpha, std = self.marginal(t)
        eps = torch.randn_like(y)
        yt = _per_example(alpha, y) * y + _per_example(std, y) * eps
        return (self.net(yt, t)[:, 0] - eps).pow(2).flatten(1).mean(1)

    def loss(self, batch: Batch) -> Tensor:
        x, _ = unpack(batch)
        return self.per_example_loss(x).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        x, _ = unpack(batch)
        return {"loss": self.per_example_loss(x)}

    # -- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        steps: int | None = None,
        sampler: str | None = None,
        snr: float | None = None,
    ) -> Tensor:
        """``n`` draws in data space; ``temperature`` scales the prior's draw (the reverse
        SDE's own noise is the model's); ``snr`` the pc corrector's (the config's if None)."""
        steps, sampler = self.sampling(steps, sampler)
        snr = self.config.snr if snr is None else snr
        if not snr > 0:
            raise ConfigError(f"snr must be > 0, got {snr}")
        if sampler in ODE_SAMPLERS:
            return self.to_data(self.ode_draw(n, temperature, steps, sampler))
        return self.to_data(self.sde_draw(n, temperature, steps, sampler == "pc", snr))

    def sde_draw(self, n: int, temperature: float, steps: int, pc: bool, snr: float) -> Tensor:
        """The reverse SDE from the prior at t = 1 to ``SAMPLE_EPS`` in model space:
        Euler-Maruyama, or (``pc``) Langevin corrector then reverse-diffusion predictor at each
        step; the last step adds no noise (its mean is returned)."""
        y = self.prior_sample(n, temperature)
        end = max(SAMPLE_EPS, self.config.t_min)
        times = torch.linspace(1.0, end, steps + 1, device=y.device, dtype=y.dtype)
        ones = torch.ones(n, device=y.device, dtype=y.dtype)
        mean = y
        for i in range(steps):
            t, s = times[i] * ones, times[i + 1] * ones
            last = i == steps - 1
            if pc:
                # the forward step s -> t of the discretised SDE: y_t = r y_s + sqrt(b) z
                if self.config.sde == "vp":
                    d = self.log_alpha(t) - self.log_alpha(s)
                    r, b = d.exp(), -torch.expm1(2 * d)
                else:
                    r, b = ones, self.marginal(t)[1] ** 2 - self.marginal(s)[1] ** 2
                y = self._langevin(y, t, snr, r**2)
                mean = (2 - _per_example(r, y)) * y + _per_example(b, y) * self.score(y, t)
                noise = _per_example(b.sqrt(), y)
            else:
                k, g2 = self.coefficients(t)
                dt = _per_example(t - s, y)
                drift = _per_example(k, y) * y - _per_example(g2, y) * self.score(y, t)
                mean = y - drift * dt
                noise = (_per_example(g2, y) * dt).sqrt()
            y = mean if last else mean + noise * torch.randn_like(y)
        return mean

    def _langevin(self, y: Tensor, t: Tensor, snr: float, alpha: Tensor) -> Tensor:
        """One Langevin step at time ``t`` whose size sets the signal-to-noise ratio
        ||step * score|| / ||noise|| to ``snr`` (Algorithm 5; ``alpha`` 1 - beta_i for VP, 1
        for VE). The norms are the batch's means, as the official code: one example's score
        norm can be near 0 (near a mode, in few dimensions), and its own ratio would throw it
        far."""
        score = self.score(y, t)
        z = torch.randn_like(y)
        ratio = z.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean().clamp_min(
            1e-12
        )
        step = _per_example(2 * alpha * (snr * ratio) ** 2, y)
        return y + step * score + (2 * step).sqrt() * z


__all__ = ["SAMPLERS", "SDES", "ScoreSDE", "ScoreSDEConfig"]
