"""DDPM (Ho, Jain & Abbeel 2020, "Denoising diffusion probabilistic models"), with the
improvements of Nichol & Dhariwal 2021 ("Improved denoising diffusion probabilistic models"):
the cosine schedule, learned reverse variances and respaced sampling; and DDIM sampling (Song,
Meng & Ermon 2021, "Denoising diffusion implicit models").

**The forward chain** in model space (``base``: levels -> cell centres of [-1, 1]), t = 1..T:
q(y_t | y_{t-1}) = N(sqrt(1 - beta_t) y_{t-1}, beta_t I), so q(y_t | y_0) = N(sqrt(ab_t) y_0,
(1 - ab_t) I) with ab_t = prod_{s<=t} (1 - beta_s). The posterior of one step back is
q(y_{t-1} | y_t, y_0) = N(c1_t y_0 + c2_t y_t, bt_t I) with c1_t = sqrt(ab_{t-1}) beta_t /
(1 - ab_t), c2_t = sqrt(1 - beta_t) (1 - ab_{t-1}) / (1 - ab_t) and bt_t = beta_t (1 - ab_{t-1})
/ (1 - ab_t) (Ho et al. eqs. 6-7).

**The reverse chain** p(y_{t-1} | y_t) = N(mu(y_t, t), sigma_t^2 I): the network predicts the
noise eps (Ho's choice), the clean example y_0, or v = sqrt(ab) eps - sqrt(1 - ab) y_0
(Salimans & Ho 2022); each is turned into a prediction of y_0 (clipped to [-1, 1] for discrete
data, whose cells fill [-1, 1]) and mu is the posterior mean at that y_0. sigma_t^2 is the
posterior variance bt_t (the tighter bound), or learned: the network's second output per
dimension, v in [0, 1] (a sigmoid), interpolates log sigma^2 = v log beta_t + (1 - v) log bt_t
(Nichol & Dhariwal eq. 15); bt_1 = 0, so t = 1 uses bt_2 in its place, as their code does.

**The bound** (Ho et al. eq. 5), in nats per example:

    -log p(x) <= L_T + sum_{t=2}^{T} L_{t-1} + L_0,
    L_T = KL(q(y_T | y_0) || N(0, I)),  L_{t-1} = E_q KL(q(y_{t-1} | y_t, y_0) || p(y_{t-1} | y_t)),
    L_0 = -E_q log p(x | y_1),

with the KLs between Gaussians in closed form (one draw of y_t each) and the decoder p(x | y_1)
the discretised Gaussian N(mu(y_1, 1), sigma_1^2) over the levels' cells (Ho et al. eq. 13) for
discrete data, a Gaussian density (in data units: - D log half) for continuous data. The sum
over t is estimated from K draws of t, systematic (one uniform offset, K evenly spaced points
over 2..T), so each t is drawn K / (T - 1) times in expectation and (T - 1) / K times the sum
of the drawn terms is unbiased; K = T - 1 gives every term exactly once.

**Training**: L_simple = the mean squared error of the prediction at a uniform t (Ho et al.
eq. 14, for any of the three targets); with learned variances the hybrid loss L_simple +
0.001 L_vlb (Nichol & Dhariwal sec. 3.1), L_vlb = T L_{t-1} at the same t in bits per
dimension, as their code, with the mean's gradient stopped, so the variance alone learns from
it.

**Sampling**: ancestral steps, or DDIM (Song et al. eq. 12) with ``eta`` (0: deterministic;
1: the ancestral sampler with the posterior variances); with ``steps`` < T both run on an
evenly spaced subsequence of the steps with the schedule respaced to it (Nichol & Dhariwal
sec. 4): ab is kept at the kept steps and the betas follow from it. The last step returns the
decoder's mean, without noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dgm.config import opt
from dgm.distributions.gaussian import discretized_gaussian_log_prob
from dgm.errors import ConfigError
from dgm.models.base import Batch, check_num_samples, unpack
from dgm.models.diffusion.base import DiffusionConfig, DiffusionModel
from dgm.registry import register

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v", "x0")
SAMPLERS = ("ancestral", "ddim")
MAX_BETA = 0.999  # Nichol & Dhariwal clip the cosine schedule's betas here (no singular end)
COSINE_OFFSET = 0.008  # their s: beta_1 not vanishingly small
VLB_WEIGHT = 1e-3  # lambda of the hybrid loss (Nichol & Dhariwal sec. 3.1)
METRIC_DRAWS = 8  # draws of t behind the validation NLL: cheap, unbiased, noisy
ROWS = 2048  # network rows per call when the bound's K draws are evaluated in chunks


def schedule(name: str, timesteps: int) -> Tensor:
    """The betas ``[T]`` (float64) of the named schedule: ``linear`` is Ho et al.'s 1e-4..0.02
    over 1000 steps, scaled by 1000 / T for other T (Nichol & Dhariwal's extension);
    ``cosine`` is ab(t) = cos^2((t / T + s) / (1 + s) pi / 2) (Nichol & Dhariwal eq. 17). Both
    are clipped at 0.999 (the linear one reaches it for T < 20)."""
    t = timesteps
    if name == "linear":
        scale = 1000.0 / t
        betas = torch.linspace(scale * 1e-4, scale * 0.02, t, dtype=torch.float64, device="cpu")
    elif name == "cosine":
        s = torch.arange(t + 1, dtype=torch.float64, device="cpu") / t
        f = torch.cos((s + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
        betas = 1 - f[1:] / f[:-1]
    else:
        raise ConfigError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return betas.clamp(max=MAX_BETA)


def respaced(timesteps: int, steps: int) -> Tensor:
    """``steps`` of 1..T, evenly spaced, both ends kept (one step: T alone), long ``[S]``: a
    host-side table, as the schedule, built on the CPU and moved with the chain."""
    if steps == 1:
        return torch.tensor([timesteps], device="cpu")
    points = torch.arange(steps, dtype=torch.float64, device="cpu") * (timesteps - 1) / (steps - 1)
    return torch.floor(points + 0.5).long() + 1


@dataclass
class Chain:
    """A reverse chain's tables, one entry per step (all ``[S]``): the steps ``t`` (1..T, for
    the network's time), ab at each step and the one before, the posterior's coefficients and
    variance, and the log-variances the reverse steps use. Computed in float64 and then cast,
    so that beta = 1 - ab / ab_prev keeps its digits."""

    t: Tensor
    ab: Tensor
    ab_prev: Tensor
    sqrt_ab: Tensor
    sqrt_1mab: Tensor
    coef1: Tensor
    coef2: Tensor
    post_var: Tensor
    log_post_var: Tensor  # log bt, with bt_2 standing in for bt_1 = 0 (the first step)
    log_beta: Tensor

    @classmethod
    def build(cls, betas: Tensor, steps: Tensor) -> Chain:
        """The chain over ``steps`` (1-based, increasing) of the schedule ``betas`` (float64)."""
        ab_all = torch.cumprod(1 - betas, 0)
        ab = ab_all[steps - 1]
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        beta = 1 - ab / ab_prev
        post_var = beta * (1 - ab_prev) / (1 - ab)
        clipped = post_var.clone()
        clipped[0] = post_var[1] if len(post_var) > 1 else beta[0]
        return cls(
            t=steps, ab=ab, ab_prev=ab_prev, sqrt_ab=ab.sqrt(), sqrt_1mab=(1 - ab).sqrt(),
            coef1=ab_prev.sqrt() * beta / (1 - ab),
            coef2=(1 - beta).sqrt() * (1 - ab_prev) / (1 - ab),
            post_var=post_var, log_post_var=clipped.log(), log_beta=beta.log(),
        )  # fmt: skip

    def to(self, device: torch.device, dtype: torch.dtype) -> Chain:
        return Chain(**{k: v.to(device) if k == "t" else v.to(device, dtype)
                        for k, v in vars(self).items()})  # fmt: skip

    def at(self, name: str, i: Tensor, like: Tensor) -> Tensor:
        """Table ``name`` at step indices ``i [N]``, shaped to broadcast against ``like``."""
        return getattr(self, name)[i].view(-1, *([1] * (like.dim() - 1)))


@dataclass
class DDPMConfig(DiffusionConfig):
    timesteps: int = opt(1000, "diffusion steps T")
    schedule: str = opt("linear", "noise schedule: linear (Ho et al.) | cosine (Nichol & Dhariwal)")
    prediction: str = opt("eps", "what the network predicts: eps (the noise) | v | x0")
    learned_variance: bool = opt(
        False, "learn the reverse variances between beta~ and beta (hybrid loss, Nichol & Dhariwal)"
    )
    eta: float = opt(0.0, "DDIM's eta: 0 deterministic, 1 the ancestral sampler's noise")
    steps: int | None = opt(None, "sampling steps, evenly spaced over the T (none: T)")  # type: ignore[assignment]
    sampler: str = opt("ancestral", "ancestral | ddim")

    def __post_init__(self) -> None:
        if isinstance(self.timesteps, bool) or not isinstance(self.timesteps, int):
            raise ConfigError(f"timesteps must be a whole number >= 2, got {self.timesteps!r}")
        if self.timesteps < 2:
            raise ConfigError(f"timesteps must be >= 2, got {self.timesteps}")
        if self.steps is None:
            self.steps = self.timesteps
        super().__post_init__()
        if self.steps > self.timesteps:
            raise ConfigError(f"steps must be <= timesteps ({self.timesteps}), got {self.steps}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if self.prediction not in PREDICTIONS:
            raise ConfigError(
                f"unknown prediction {self.prediction!r}; choose one of {', '.join(PREDICTIONS)}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"unknown sampler {self.sampler!r} for ddpm; choose one of {', '.join(SAMPLERS)}"
            )
        check_eta(self.eta)


def check_eta(eta: Any) -> None:
    """DDIM's eta: a number >= 0 (1 is the ancestral sampler's noise; more adds more)."""
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not 0 <= eta < math.inf:
        raise ConfigError(f"eta must be a number >= 0, got {eta!r}")


@register(
    "ddpm",
    "diffusion",
    "denoising diffusion (DDPM): variational bound, ancestral and DDIM sampling",
)
class DDPM(DiffusionModel):
    """Denoising diffusion probabilistic model; ``log_prob`` is the variational bound (an
    unbiased estimate of it from K draws of t), ``sample`` the ancestral or DDIM sampler."""

    Config = DDPMConfig
    config: DDPMConfig
    samplers = SAMPLERS
    sample_options = ("steps", "sampler", "eta")
    exact_likelihood = False
    min_eval_samples = 100  # the test NLL at the end of training: 100 of the T - 1 terms

    def __init__(self, config: DDPMConfig) -> None:
        super().__init__(config)
        self._betas = schedule(config.schedule, config.timesteps)  # float64, on the CPU
        self._chains: dict[tuple[int, str, torch.dtype], Chain] = {}

    def build_network(self, c: Any) -> torch.nn.Module:
        # a second value per dimension, the variance's interpolation, where it is learned
        self.outputs = 2 if c.learned_variance else 1  # type: ignore[misc]
        return super().build_network(c)

    @property
    def default_eval_samples(self) -> int:  # type: ignore[override]
        """The full sum: every one of the T - 1 terms once."""
        return self.config.timesteps - 1

    # -- the chain ------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self._half.dtype

    def chain(self, steps: int | None = None) -> Chain:
        """The reverse chain over ``steps`` evenly spaced steps (None: all T), on the model's
        device and in its dtype (cached)."""
        steps = self.config.timesteps if steps is None else steps
        device, dtype = self._half.device, self._half.dtype
        key = (steps, str(device), dtype)
        if key not in self._chains:
            full = Chain.build(self._betas, respaced(self.config.timesteps, steps))
            self._chains[key] = full.to(device, dtype)
        return self._chains[key]

    def predict(self, y: Tensor, ch: Chain, i: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The network at ``y`` and chain steps ``i`` ``[N]``: (y_0's prediction, eps's
        prediction, the reverse step's log-variance), each ``[N, *shape]``."""
        out = self.net(y, ch.t[i].to(y.dtype) / self.config.timesteps)
        pred = out[:, 0]
        x0, eps = self.x0_eps(pred, y, ch.at("sqrt_ab", i, y), ch.at("sqrt_1mab", i, y))
        if self.discrete:  # the cells fill [-1, 1]: a y_0 outside is no level's (Ho et al.)
            x0 = x0.clamp(-1, 1)
            eps = (y - ch.at("sqrt_ab", i, y) * x0) / ch.at("sqrt_1mab", i, y)
        log_post, log_beta = ch.at("log_post_var", i, y), ch.at("log_beta", i, y)
        if self.config.learned_variance:
            v = torch.sigmoid(out[:, 1])
            log_var = v * log_beta + (1 - v) * log_post
        else:
            log_var = log_post.expand_as(y)
        return x0, eps, log_var

    def x0_eps(
        self, pred: Tensor, y: Tensor, sqrt_ab: Tensor, sqrt_1mab: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The network's prediction as (y_0, eps), from y_t = sqrt(ab) y_0 + sqrt(1 - ab) eps
        and v = sqrt(ab) eps - sqrt(1 - ab) y_0."""
        p = self.config.prediction
        if p == "eps":
            return (y - sqrt_1mab * pred) / sqrt_ab, pred
        if p == "x0":
            return pred, (y - sqrt_ab * pred) / sqrt_1mab
        return sqrt_ab * y - sqrt_1mab * pred, sqrt_1mab * y + sqrt_ab * pred

    def target(self, y0: Tensor, eps: Tensor, sqrt_ab: Tensor, sqrt_1mab: Tensor) -> Tensor:
        """What the network should predict at y_t = sqrt(ab) y_0 + sqrt(1 - ab) eps."""
        p = self.config.prediction
        if p == "eps":
            return eps
        if p == "x0":
            return y0
        return sqrt_ab * eps - sqrt_1mab * y0

    def diffuse(self, y0: Tensor, ch: Chain, i: Tensor) -> tuple[Tensor, Tensor]:
        """A draw of y_t ~ q(y_t | y_0) at chain steps ``i``, and its noise."""
        eps = torch.randn_like(y0)
        return ch.at("sqrt_ab", i, y0) * y0 + ch.at("sqrt_1mab", i, y0) * eps, eps

    # -- the bound ------------------------------------------------------------------------
    def decoder_log_prob(self, x: Tensor, y0: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
        """log p(x | y_1) ``[N]``: the discretised Gaussian over the levels' cells, or the
        Gaussian density of y_0 in model space (continuous data: the caller adds - D log half)."""
        if self.discrete:
            lp = discretized_gaussian_log_prob(x, mean, 0.5 * log_var, self.config.levels)
        else:
            lp = -0.5 * ((y0 - mean) ** 2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi))
        return lp.flatten(1).sum(1)

    def kl_terms(
        self, y0: Tensor, y: Tensor, ch: Chain, i: Tensor, mean: Tensor, log_var: Tensor
    ) -> Tensor:
        """KL(q(y_{t-1} | y_t, y_0) || N(mean, exp(log_var))) ``[N]``, summed over dimensions
        (steps i >= 1 of the chain, where the posterior's variance is > 0)."""
        q_mean = ch.at("coef1", i, y0) * y0 + ch.at("coef2", i, y0) * y
        q_log_var = ch.at("log_post_var", i, y0)
        kl = 0.5 * (
            log_var - q_log_var + (q_log_var.exp() + (q_mean - mean) ** 2) * torch.exp(-log_var) - 1
        )
        return kl.flatten(1).sum(1)

    def reverse_mean(self, x0: Tensor, y: Tensor, ch: Chain, i: Tensor) -> Tensor:
        """mu(y_t, t): the posterior's mean at the predicted y_0."""
        return ch.at("coef1", i, y) * x0 + ch.at("coef2", i, y) * y

    def log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """The variational bound on log p(x), nats per example ``[B]``: - L_T - L_0 and the
        sum over t = 2..T estimated from ``num_samples`` systematic draws of t per example
        (one draw of y_t each), in chunks of at most ``ROWS`` network rows."""
        check_num_samples(num_samples)
        c = self.config
        big_t, b, k = c.timesteps, x.shape[0], num_samples
        ch = self.chain()
        y0 = self.to_model(x.to(self.dtype))
        last = ch.ab[-1]
        prior = 0.5 * (last * y0**2 + (1 - last) - 1 - torch.log1p(-last)).flatten(1).sum(1)
        first = torch.zeros(b, dtype=torch.long, device=y0.device)
        y1, _ = self.diffuse(y0, ch, first)
        x0, _, log_var = self.predict(y1, ch, first)
        decoder = self.decoder_log_prob(x, y0, self.reverse_mean(x0, y1, ch, first), log_var)
        # systematic draws of t in 2..T (chain indices 1..T-1): one offset per example, the
        # offsets themselves spread evenly over the batch from one uniform draw (VDM's
        # low-discrepancy times): each example's estimate stays unbiased, and a batch's mean
        # covers the terms evenly, so the validation bound that picks the epoch is less noisy
        u0 = torch.rand((), dtype=torch.float64, device=y0.device)
        u = ((torch.arange(b, dtype=torch.float64, device=y0.device) + u0) / b)[:, None]
        points = (torch.arange(k, dtype=torch.float64, device=y0.device) + u) * ((big_t - 1) / k)
        idx = 1 + points.floor().long().clamp(max=big_t - 2)  # [B, K]
        total = torch.zeros(b, dtype=y0.dtype, device=y0.device)
        per = max(1, ROWS // b)
        for j in range(0, k, per):
            ii = idx[:, j : j + per]
            kc = ii.shape[1]
            i = ii.reshape(-1)
            y0r = y0.repeat_interleave(kc, dim=0)  # example-major, as ``ii`` flattens
            y, _ = self.diffuse(y0r, ch, i)
            x0, _, log_var = self.predict(y, ch, i)
            kl = self.kl_terms(y0r, y, ch, i, self.reverse_mean(x0, y, ch, i), log_var)
            total = total + kl.view(b, kc).sum(1)
        terms = total * ((big_t - 1) / k)
        offset = 0.0 if self.discrete else -self.dim * math.log(float(self._half))
        return decoder - prior - terms + offset

    def likelihood_note(self, num_samples: int = 1) -> str:
        c = self.config
        k = num_samples
        variance = "learned variances" if c.learned_variance else "posterior variances beta~_t"
        decoder = (
            "a discretized Gaussian decoder over the levels" if self.discrete
            else "a Gaussian decoder (density in data units)"
        )  # fmt: skip
        return (
            f"variational bound (Ho et al. 2020; the NLL is an upper bound, log p a lower bound): "
            f"T = {c.timesteps} ({c.schedule} schedule), reverse steps with {variance}, "
            f"{decoder}; the sum over t = 2..T (T - 1 = {c.timesteps - 1} terms) an unbiased "
            f"estimate from K = {k} systematic draw{'s' if k > 1 else ''} of t, one draw of x_t "
            "each (K = T - 1 in one call: every term once)"
        )

    # -- training -------------------------------------------------------------------------
    def losses(self, x: Tensor) -> Tensor:
        """Per example ``[B]``: L_simple, the mean squared error of the prediction at a uniform
        t, plus 0.001 L_vlb (bits per dimension, the mean held fixed) with learned variances."""
        c = self.config
        ch = self.chain()
        y0 = self.to_model(x.to(self.dtype))
        i = torch.randint(0, c.timesteps, (x.shape[0],), device=y0.device)
        y, eps = self.diffuse(y0, ch, i)
        out = self.net(y, ch.t[i].to(y.dtype) / c.timesteps)
        sqrt_ab, sqrt_1mab = ch.at("sqrt_ab", i, y), ch.at("sqrt_1mab", i, y)
        target = self.target(y0, eps, sqrt_ab, sqrt_1mab)
        loss = ((out[:, 0] - target) ** 2).flatten(1).mean(1)
        if not c.learned_variance:
            return loss
        # L_vlb at the same t, its mean from the detached prediction: it trains the variance
        x0, _ = self.x0_eps(out[:, 0].detach(), y, sqrt_ab, sqrt_1mab)
        if self.discrete:
            x0 = x0.clamp(-1, 1)
        v = torch.sigmoid(out[:, 1])
        log_var = v * ch.at("log_beta", i, y) + (1 - v) * ch.at("log_post_var", i, y)
        mean = self.reverse_mean(x0, y, ch, i)
        at_first = i == 0
        later = ~at_first
        term = torch.zeros_like(loss)
        if later.any():
            j = i[later]
            kl = self.kl_terms(y0[later], y[later], ch, j, mean[later], log_var[later])
            term = term.masked_scatter(later, kl)
        if at_first.any():
            nll = -self.decoder_log_prob(
                x[at_first], y0[at_first], mean[at_first], log_var[at_first]
            )
            term = term.masked_scatter(at_first, nll)
        return loss + VLB_WEIGHT * c.timesteps * term / (self.dim * math.log(2))

    def loss(self, batch: Batch) -> Tensor:
        x, _ = unpack(batch)
        return self.losses(x).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        x, _ = unpack(batch)
        return {"nll": -self.log_prob(x, num_samples=METRIC_DRAWS), "loss": self.losses(x)}

    # -- sampling -------------------------------------------------------------------------
    def sampling(self, steps: int | None, sampler: str | None) -> tuple[int, str]:
        steps, sampler = super().sampling(steps, sampler)
        if steps > self.config.timesteps:
            raise ConfigError(
                f"ddpm: steps must be <= timesteps ({self.config.timesteps}), got {steps}"
            )
        return steps, sampler

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        steps: int | None = None,
        sampler: str | None = None,
        eta: float | None = None,
    ) -> Tensor:
        """``n`` draws in data space: ``steps`` ancestral or DDIM steps (config's defaults)
        from N(0, temperature^2 I), the noise of each step scaled by ``temperature`` too; the
        last step gives the decoder's mean."""
        steps, sampler = self.sampling(steps, sampler)
        eta = self.config.eta if eta is None else eta
        check_eta(eta)
        ch = self.chain(steps)
        y = self.prior_noise(n, temperature).to(self.dtype)
        for s in reversed(range(steps)):
            i = torch.full((n,), s, dtype=torch.long, device=y.device)
            x0, eps, log_var = self.predict(y, ch, i)
            if s == 0:  # ab_prev = 1: the posterior mean is the predicted y_0, no noise
                y = x0
                break
            noise = temperature * torch.randn_like(y)
            if sampler == "ancestral":
                y = self.reverse_mean(x0, y, ch, i) + torch.exp(0.5 * log_var) * noise
            else:  # DDIM (Song et al. eq. 12): sigma^2 = eta^2 bt (the respaced posterior's)
                var = eta**2 * ch.at("post_var", i, y)
                ab_prev = ch.at("ab_prev", i, y)
                y = ab_prev.sqrt() * x0 + (1 - ab_prev - var).clamp(min=0).sqrt() * eps
                y = y + var.sqrt() * noise
        return self.to_data(y)
