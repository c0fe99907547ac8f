"""Variational diffusion models (Kingma, Salimans, Poole & Ho 2021, "Variational diffusion
models"), in continuous time.

**The process.** ``z_t = alpha_t y + sigma_t eps`` with ``alpha_t^2 = sigmoid(-gamma(t))``,
``sigma_t^2 = sigmoid(gamma(t))`` (variance preserving), ``gamma`` the negative log
signal-to-noise ratio, increasing in ``t`` in [0, 1]; ``y`` is the example in model space
(``DiffusionModel.to_model``). The network predicts ``eps`` from ``z_t`` and the noise level:
it is called as ``self.net(z_t, tau)`` with ``tau = (gamma(t) - gamma_min) / (gamma_max -
gamma_min)``, the normalised gamma, as the paper's score network is (so a learned schedule
moves the times, not what the network reads); on the linear schedule ``tau = t``.

**The bound** (paper eqs. 11-17), in nats per example, in the data's space:

    -log p(x) <= KL(q(z_1|x) || N(0, I))                         prior loss
               + E_{q(z_0|x)} [-log p(x|z_0)]                     reconstruction
               + 0.5 E_{t~U(0,1), eps} [gamma'(t) ||eps - eps_hat(z_t; t)||^2]   diffusion

The decoder is the paper's: discrete data ``p(x_i = k|z_0)`` is the softmax over the L levels
of ``-(z_0/alpha_0 - y_k)^2 / (2 sigma_0^2/alpha_0^2)`` with ``y_k`` the cells' centres of
``to_model`` (it sums to 1 over the levels); continuous data ``N(y; z_0/alpha_0,
sigma_0^2/alpha_0^2)`` in model space and ``D log half`` for the data's units. The
continuous-time diffusion loss depends on the schedule only through its endpoints
``gamma(0)``, ``gamma(1)`` (sec. 5.1): the shape between them changes only its variance.

**The schedule.** ``linear``: ``gamma_min + (gamma_max - gamma_min) t``, fixed. ``learned``:
the paper's monotone network (appendix H; its official ``NoiseSchedule_NNet``)
``g(t) = l1(t) + l3(phi(l2(t))) / n`` with non-negative weights (``|w|``), ``phi(h) =
2 sigmoid(h) - 1`` and ``l2`` reading ``2t - 1``, rescaled to run exactly from ``gamma_0`` to
``gamma_1``: ``gamma(t) = gamma_0 + (gamma_1 - gamma_0) (g(t) - g(0)) / (g(1) - g(0))``, both
endpoints learned (``gamma_1 = gamma_0 + softplus(.)``, so it stays increasing).

**Training** (sec. 5.2): the loss is the bound; the endpoints and the network descend it, and
the schedule's interior parameters (the shape between the endpoints, which cannot change the
bound's expectation) descend the variance of its estimate, E[L_diff^2], through a custom
gradient (:class:`_SquaredLossGradient`): the gradient reaching the shape is multiplied by
``2 L_diff``, per example, which turns d L/d eta into d L^2/d eta. Times are low-discrepancy
(the paper's antithetic sampling): ``t_i = mod(u_0 + i/B, 1)`` over a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.errors import ConfigError
from dgm.models.base import Batch, check_num_samples, unpack
from dgm.models.diffusion.base import DiffusionConfig, DiffusionModel
from dgm.models.diffusion.networks import network
from dgm.registry import register

SCHEDULES = ("learned", "linear")
GAMMA_MIN_256 = -13.3  # the paper's gamma(0), for 256 levels


@dataclass
class VDMConfig(DiffusionConfig):
    schedule: str = opt(
        "learned",
        "noise schedule: learned (the paper's monotone network, endpoints learned) | linear "
        "(fixed, gamma_min to gamma_max)",
    )
    gamma_min: float = opt(
        GAMMA_MIN_256, "gamma(0) = -log SNR at t = 0 (learned: its start); sized by the levels"
    )
    gamma_max: float = opt(5.0, "gamma(1) = -log SNR at t = 1 (learned: its start)")
    schedule_hidden: int = opt(1024, "the learned schedule's hidden features")
    fourier: bool = opt(
        True,
        "discrete data: the network also reads sin and cos of 2^n pi z_t at the two "
        "frequencies that resolve the levels (the paper's Fourier features)",
    )
    steps: int = opt(1000, "ancestral sampling steps (the discretised reverse process)")
    sampler: str = opt("ancestral", "how samples are drawn: ancestral p(z_s|z_t)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r} for vdm; choose one of {', '.join(SCHEDULES)}"
            )
        if not self.gamma_min < self.gamma_max:
            raise ConfigError(
                f"gamma_min must be < gamma_max, got {self.gamma_min} and {self.gamma_max}"
            )
        if self.schedule_hidden < 1:
            raise ConfigError(f"schedule_hidden must be >= 1, got {self.schedule_hidden}")


class _SquaredLossGradient(torch.autograd.Function):
    """Identity on the schedule's normalised shape ``(s(t), s'(t))``; its backward multiplies
    the incoming gradient by per-example weights ``2 L_b`` (VDM sec. 5.2: d L^2 = 2 L dL).

    The weights are the diffusion losses, known only after the network's pass, which needs
    ``s`` first: the caller hands an empty ``[B]`` tensor and fills it (in place, before
    ``backward``). It is kept on ``ctx`` rather than saved for backward because it is written
    after the forward pass by design."""

    @staticmethod
    def forward(ctx: Any, s: Tensor, ds: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        ctx.weights = weights
        return s.clone(), ds.clone()

    @staticmethod
    def backward(ctx: Any, gs: Tensor, gds: Tensor) -> tuple[Tensor, Tensor, None]:
        w = ctx.weights
        return gs * w, gds * w, None


class MonotoneSchedule(nn.Module):
    """The learned ``gamma(t)``: VDM's monotone network, normalised to run from ``gamma_0`` to
    ``gamma_1`` (both parameters); ``shape(t)`` gives the normalised part and its derivative."""

    def __init__(self, gamma_min: float, gamma_max: float, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        # the endpoints: gamma_1 = gamma_0 + softplus(gap) > gamma_0
        self.gamma_0 = nn.Parameter(torch.tensor(float(gamma_min)))
        span = float(gamma_max - gamma_min)
        self.gap = nn.Parameter(torch.tensor(span + math.log(-math.expm1(-span))))
        # the shape (the official initialisation: l1 = the linear schedule's slope, l2 and l3
        # standard normal weights, l2's bias 0); l1's bias cancels in the normalisation
        self.w1 = nn.Parameter(torch.tensor(span))
        self.w2 = nn.Parameter(torch.randn(hidden))
        self.b2 = nn.Parameter(torch.zeros(hidden))
        self.w3 = nn.Parameter(torch.randn(hidden))

    def endpoints(self) -> tuple[Tensor, Tensor]:
        return self.gamma_0, self.gamma_0 + F.softplus(self.gap)

    def interior(self) -> list[nn.Parameter]:
        """The parameters of the shape between the endpoints (trained on the variance)."""
        return [self.w1, self.w2, self.b2, self.w3]

    def raw(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """The unnormalised network ``g(t)`` and ``g'(t)`` (analytic), ``[B]`` each."""
        w1, w2, w3 = self.w1.abs(), self.w2.abs(), self.w3.abs()
        h = (2 * t - 1)[:, None] * w2 + self.b2  # [B, n]
        sig = torch.sigmoid(h)
        g = w1 * t + ((2 * sig - 1) @ w3) / self.hidden
        # d/dt phi(h) = 2 sig (1 - sig) * 2 w2
        dg = w1 + ((4 * sig * (1 - sig) * w2) @ w3) / self.hidden
        return g, dg

    def shape(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``s(t) = (g(t) - g(0)) / (g(1) - g(0))`` in [0, 1] and ``s'(t)``."""
        ends, _ = self.raw(torch.tensor([0.0, 1.0], dtype=t.dtype, device=t.device))
        g, dg = self.raw(t)
        span = ends[1] - ends[0]
        return (g - ends[0]) / span, dg / span


def fourier_exponents(levels: int) -> tuple[int, ...]:
    """The exponents n of the Fourier features 2^n pi y for ``levels`` cells of [-1, 1]: the
    two whose periods are about 2 and 4 cells (the paper's 6 and 7 for 256 levels)."""
    top = max(1, int(math.log2(levels)) - 1)
    return (max(0, top - 1), top)


class FourierInput(nn.Module):
    """A network that also reads ``sin(2^n pi z)``, ``cos(2^n pi z)`` of its input (VDM sec.
    3.4, appendix C): near t = 0 the noise is far smaller than a level's cell, and these make
    the position of z within its cell, which the eps prediction needs there, easy to read.

    The inner network is built for the wider input; its output keeps the first ``channels``
    of each value (the input's own)."""

    def __init__(self, inner: nn.Module, channels: int, exponents: tuple[int, ...]) -> None:
        super().__init__()
        self.inner, self.channels = inner, channels
        self.register_buffer(
            "freqs", torch.tensor([math.pi * 2.0**n for n in exponents]), persistent=False
        )

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        parts = [z]
        for f in self.freqs.to(z.dtype):
            parts += [torch.sin(f * z), torch.cos(f * z)]
        return self.inner(torch.cat(parts, dim=1), t)[:, :, : self.channels]


@register(
    "vdm", "diffusion", "variational diffusion model: continuous-time bound, learned schedule"
)
class VDM(DiffusionModel):
    """Variational diffusion model (Kingma et al. 2021): ``log_prob`` is minus the continuous-
    time variational bound, estimated with ``num_samples`` low-discrepancy draws of ``t`` (and
    of the noise) per example, averaged: an unbiased estimate of the bound."""

    Config = VDMConfig
    config: VDMConfig
    samplers: ClassVar[tuple[str, ...]] = ("ancestral",)
    outputs: ClassVar[int] = 1
    exact_likelihood = False
    # draws of t per example for `dgm eval` and where a command asks for few (the end of
    # training); measured on digits: the per-example spread of the estimate falls from ~30
    # nats (K = 1) to ~10 (K = 10) to ~3 (K = 100)
    default_eval_samples = 100
    min_eval_samples = 10

    sizing_note = (
        DiffusionModel.sizing_note
        + "; discrete data of L levels: gamma_min = -13.3 + 2 ln(256 / L) "
        "(the paper's -13.3 at 256 levels, -7.88 at 17: the decoder's noise scales with a level's "
        "cell)"
    )

    @classmethod
    def sized_defaults(cls, spec: DataSpec) -> dict[str, Any]:
        """Also gamma(0) by the levels: sigma_0 / alpha_0 = exp(gamma_0 / 2) a fixed fraction of
        a level's cell, as the paper's -13.3 is of 256 levels' (coarser levels need far less
        resolution, and the diffusion loss below it is paid for nothing)."""
        values = super().sized_defaults(spec)
        if spec.levels is not None:
            values["gamma_min"] = round(GAMMA_MIN_256 + 2 * math.log(256 / spec.levels), 2)
        return values

    def build_network(self, c: Any) -> nn.Module:
        if not (c.fourier and c.levels is not None):
            return super().build_network(c)
        exponents = fourier_exponents(c.levels)
        wide = (c.shape[0] * (1 + 2 * len(exponents)), *c.shape[1:])
        inner = network(
            wide, self.outputs, hidden=c.hidden, blocks=c.blocks, attention=c.attention,
            dropout=c.dropout,
        )  # fmt: skip
        return FourierInput(inner, c.shape[0], exponents)

    def __init__(self, config: VDMConfig) -> None:
        super().__init__(config)
        c = config
        self.schedule = (
            MonotoneSchedule(c.gamma_min, c.gamma_max, c.schedule_hidden)
            if c.schedule == "learned"
            else None
        )

    # -- the schedule --------------------------------------------------------------------
    def endpoints(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """``gamma(0)``, ``gamma(1)`` (scalars, the dtype and device of ``like``)."""
        if self.schedule is None:
            c = self.config
            return like.new_tensor(c.gamma_min), like.new_tensor(c.gamma_max)
        g0, g1 = self.schedule.endpoints()
        return g0.to(like.dtype), g1.to(like.dtype)

    def gamma(self, t: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``gamma(t)`` and ``gamma'(t)``, ``[B]`` each. With ``weights`` (training), the
        gradient reaching the learned shape is scaled by them (:class:`_SquaredLossGradient`)."""
        g0, g1 = self.endpoints(t)
        if self.schedule is None:
            return g0 + (g1 - g0) * t, (g1 - g0).expand_as(t)
        s, ds = self.schedule.shape(t)
        if weights is not None:
            s, ds = _SquaredLossGradient.apply(s, ds, weights)
        return g0 + (g1 - g0) * s, (g1 - g0) * ds

    def net_time(self, gamma: Tensor) -> Tensor:
        """What the network reads for noise level ``gamma``: gamma normalised by the config's
        range (the paper's score network; ``t`` itself on the linear schedule)."""
        c = self.config
        return (gamma - c.gamma_min) / (c.gamma_max - c.gamma_min)

    def eps_hat(self, z: Tensor, gamma: Tensor) -> Tensor:
        return self.net(z, self.net_time(gamma))[:, 0]

    # -- the bound -----------------------------------------------------------------------
    def decoder_log_prob(self, x: Tensor, u: Tensor, gamma_0: Tensor) -> Tensor:
        """log p(x|z_0) per example ``[B]``, in the data's space, with ``u = z_0 / alpha_0``
        and ``exp(gamma_0) = sigma_0^2 / alpha_0^2``."""
        if self.discrete:
            levels = self.config.levels
            centres = (2 * torch.arange(levels, dtype=u.dtype, device=u.device) + 1) / levels - 1
            logits = -0.5 * (u[..., None] - centres).square() * torch.exp(-gamma_0)
            lp = logits.log_softmax(-1).gather(-1, x.long()[..., None])[..., 0]
            return lp.flatten(1).sum(1)
        y = self.to_model(x)
        lp = -0.5 * ((y - u).square() * torch.exp(-gamma_0) + gamma_0 + math.log(2 * math.pi))
        return lp.flatten(1).sum(1) - self.dim * torch.log(self._half.to(u.dtype))

    def prior_loss(self, y: Tensor, gamma_1: Tensor) -> Tensor:
        """KL(q(z_1|x) || N(0, I)) per example ``[B]``."""
        var_1 = torch.sigmoid(gamma_1)
        log_var_1 = -F.softplus(-gamma_1)  # log sigmoid, stable
        kl = 0.5 * (torch.sigmoid(-gamma_1) * y.square() + var_1 - log_var_1 - 1)
        return kl.flatten(1).sum(1)

    def terms(
        self, x: Tensor, t: Tensor, weights: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One draw of the bound's three terms per example (``[B]`` each, nats): the prior
        loss, the reconstruction (one draw of z_0) and the diffusion loss at times ``t``."""
        y = self.to_model(x).to(t.dtype)
        g0, g1 = self.endpoints(t)
        prior = self.prior_loss(y, g1)
        u = y + torch.exp(0.5 * g0) * torch.randn_like(y)  # z_0 / alpha_0
        recon = -self.decoder_log_prob(x, u, g0)
        gamma, dgamma = self.gamma(t, weights)
        view = (-1,) + (1,) * (y.dim() - 1)
        g = gamma.view(view)
        eps = torch.randn_like(y)
        z = torch.sqrt(torch.sigmoid(-g)) * y + torch.sqrt(torch.sigmoid(g)) * eps
        mse = (eps - self.eps_hat(z, gamma)).square().flatten(1).sum(1)
        return prior, recon, 0.5 * dgamma * mse

    def times(self, b: int, like: Tensor) -> Tensor:
        """``b`` low-discrepancy times ``mod(u_0 + i/b, 1)``: each uniform, together even."""
        u0 = torch.rand((), dtype=like.dtype, device=like.device)
        return torch.remainder(u0 + torch.arange(b, dtype=like.dtype, device=like.device) / b, 1)

    def bound(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """The bound's estimate in nats per example ``[B]``: for each example ``num_samples``
        low-discrepancy times ``mod(u_b + k/K, 1)`` (and noise draws), averaged."""
        b, k = x.shape[0], num_samples
        dtype = self.net_dtype()
        u = torch.rand(b, dtype=dtype, device=x.device)
        total = torch.zeros(b, dtype=torch.float64, device=x.device)
        for j in range(k):  # one batch of B a draw: K = 100 on a batch of 500 fits in memory
            t = torch.remainder(u + j / k, 1)
            prior, recon, diff = self.terms(x, t)
            total += (prior + recon + diff).double()
        return total / k

    def net_dtype(self) -> torch.dtype:
        """The model's float type (a buffer's: ``self.net`` may be any module, even one
        without parameters)."""
        return self._half.dtype

    def log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """Minus the VDM bound (a lower bound on log p(x)), estimated with ``num_samples``
        draws of t per example, averaged (unbiased)."""
        self.check_input(x)
        check_num_samples(num_samples)
        return -self.bound(x, num_samples)

    def likelihood_note(self, num_samples: int = 1) -> str:
        decoder = (
            f"VDM's discrete decoder over {self.config.levels} levels"
            if self.discrete
            else "a Gaussian decoder"
        )
        draws = f"{num_samples} low-discrepancy draw{'s' if num_samples > 1 else ''} of t"
        return (
            f"lower bound on the log-likelihood: the VDM continuous-time variational bound "
            f"({self.config.schedule} schedule; prior KL + {decoder} + diffusion loss), an "
            f"unbiased estimate from {draws} per example, averaged: the NLL is an upper bound"
        )

    # -- training ------------------------------------------------------------------------
    def training_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(per-example bound in nats [B], loss)``: the loss is the batch mean of the bound
        per dimension, whose gradient the endpoints and the network get; the learned shape
        gets the gradient of the mean squared diffusion loss (per dimension), through the
        weights ``2 L_diff / D`` filled in after the network's pass."""
        dtype = self.net_dtype()
        t = self.times(x.shape[0], torch.empty((), dtype=dtype, device=x.device))
        weights = torch.empty(x.shape[0], dtype=dtype, device=x.device)
        prior, recon, diff = self.terms(x, t, weights if self.schedule is not None else None)
        with torch.no_grad():
            weights.copy_(2 * diff / self.dim)
        bound = prior + recon + diff
        return bound, bound.mean() / self.dim

    def loss(self, batch: Batch) -> Tensor:
        """The VDM bound, mean nats per dimension (the paper trains on bits per dimension):
        the variance-minimising gradient 2 L dL of the schedule then stays of the order of the
        other gradients, and one learning rate suits 8x8 and 28x28 images."""
        x, _ = unpack(batch)
        return self.training_terms(x)[1]

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll``: the bound with one low-discrepancy draw of t per example (unbiased, cheap);
        ``loss``: the same per dimension (the training objective's terms)."""
        x, _ = unpack(batch)
        t = self.times(x.shape[0], torch.empty((), dtype=self.net_dtype(), device=x.device))
        prior, recon, diff = self.terms(x, t)
        nll = prior + recon + diff
        return {"nll": nll, "loss": nll / self.dim}

    # -- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        steps: int | None = None,
        sampler: str | None = None,
    ) -> Tensor:
        """``n`` draws: z_1 ~ N(0, temperature^2 I), then ``steps`` ancestral steps of
        p(z_s|z_t) = q(z_s|z_t, x = x_hat(z_t)) at equal times, then the decoder's most likely
        value (the nearest level, or the mean, of z_0 / alpha_0) in the data's space."""
        steps, sampler = self.sampling(steps, sampler)
        dtype = self.net_dtype()
        grid = torch.linspace(0, 1, steps + 1, dtype=dtype, device=self.device)
        gammas, _ = self.gamma(grid)
        z = self.prior_noise(n, temperature).to(dtype)
        for i in range(steps, 0, -1):
            g_t, g_s = gammas[i], gammas[i - 1]
            eps_hat = self.eps_hat(z, g_t.expand(n))
            c = -torch.expm1(g_s - g_t)  # 1 - SNR(t) / SNR(s)
            scale = torch.sqrt(torch.sigmoid(-g_s) / torch.sigmoid(-g_t))
            mean = scale * (z - torch.sqrt(torch.sigmoid(g_t)) * c * eps_hat)
            z = mean + torch.sqrt(torch.sigmoid(g_s) * c) * torch.randn_like(z)
        u = z / torch.sqrt(torch.sigmoid(-gammas[0]))  # z_0 / alpha_0
        # discrete: the argmax of the decoder's logits -(u - y_k)^2 is the level whose cell
        # holds u (equal cells around the centres y_k), which is to_data(u)
        return self.to_data(u).float()


__all__ = ["VDM", "MonotoneSchedule", "VDMConfig"]
