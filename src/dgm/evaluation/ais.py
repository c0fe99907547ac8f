"""Annealed importance sampling (AIS) estimates of log p(x) for decoder-based models.

Wu, Burda, Salakhutdinov & Grosse (2017), "On the quantitative analysis of decoder-based
generative models", with AIS from Neal (2001), "Annealed importance sampling".

A GAN generator or a VAE decoder ``g`` defines, with an observation noise ``sigma``,

    z ~ N(0, I_K),   x | z ~ N(g(z), sigma^2 I_D).

AIS moves chains from the prior ``p_0(z) = p(z)`` to the posterior ``p_T(z) ∝ p(z) p(x|z)``
through ``p_t(z) ∝ p(z) p(x|z)^beta_t`` (``beta`` from 0 to 1, a sigmoid or linear schedule),
one Hamiltonian Monte Carlo transition per intermediate distribution, and accumulates the
log-weight ``sum_t (beta_t - beta_{t-1}) log p(x | z_{t-1})``. Each chain's weight is an
unbiased estimate of p(x), so ``log mean_chains w`` is a stochastic *lower* bound on log p(x)
in expectation (Jensen's inequality). The bidirectional Monte Carlo (BDMC) of the paper
sandwiches it: :func:`reverse_ais` runs the chains backwards from exact posterior samples
(available for data simulated from the model itself) and gives a stochastic *upper* bound.

What the number means:

- ``log p(x | z)`` includes the full normalising constant ``-D/2 log(2 pi sigma^2)``: the
  estimate is of a proper continuous *density* over x in the data's units. For discrete data
  (pixel levels) it is the density of the Gaussian observation model at x, not a probability
  of the discrete levels; it is not comparable with discrete NLLs or bits/dim of other models.
- ``sigma`` is part of the model: Wu et al. choose it on validation data; :func:`pick_sigma`
  does that over a small grid.
- ``steps=1`` is plain importance sampling from the prior (one weight per chain, no HMC).

HMC follows Wu et al.'s code: ``leapfrog`` steps per transition, the gradient from autograd
(enabled even under a caller's ``torch.no_grad``), and step sizes (here one per chain)
multiplied by 1.02 or 0.98 after every transition to steer a running acceptance rate towards
0.65, within [1e-4, 0.5]. One addition: each move draws its step size uniformly within
``±jitter`` (default 50%) of the adapted one (Neal 2011, "MCMC using Hamiltonian dynamics"),
which keeps fixed-length trajectories from resonating with the posterior; ``jitter=0`` is their
scheme exactly. On a 2-D linear-Gaussian test it cut the error 2-4x at no cost.

Every generator call receives whole chains: ``z`` of shape ``[c * B, K]``, chain-major (row
``i * B + b`` belongs to example ``b``), so a conditional generator can tile its labels with
``y.repeat(c)``. ``max_rows`` bounds ``c * B`` (at least one chain, ``B`` rows, per call: split
x into smaller batches to go lower). The generator must be deterministic (eval mode: no dropout,
no batch statistics) and accept x's dtype and device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dgm import progress
from dgm.errors import ConfigError, DataError
from dgm.models.capabilities import ImplicitGenerator, LabelConditional

Generator = Callable[[Tensor], Tensor]

# HMC step-size adaptation: the defaults of Wu et al.'s released code
TARGET_ACCEPTANCE = 0.65
ACCEPTANCE_SLOWNESS = 0.9  # running average: avg <- 0.9 avg + 0.1 accepted
STEP_INC, STEP_DEC = 1.02, 0.98
STEP_MIN, STEP_MAX = 1e-4, 0.5
SIGMOID_RADIUS = 4.0
SCHEDULES = ("sigmoid", "linear")
# pick_sigma's default grid, as fractions of the data's range (max - min)
RELATIVE_SIGMAS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class Annealing:
    """How an AIS run anneals (the options of :func:`ais` and :func:`reverse_ais`, with Wu et
    al.'s defaults): ``steps`` intermediate distributions along a ``schedule`` (sigmoid or
    linear), each HMC transition ``leapfrog`` leapfrog steps of ``step_size`` (adapted towards
    0.65 acceptance when ``adapt``, jittered by ``jitter``), at most ``max_rows`` generator rows
    per call (None: no limit), randomness from ``seed`` (a fresh generator) or ``rng`` (else
    torch's global one). Progress shows where the command line turns it on
    (:mod:`dgm.progress`)."""

    steps: int = 1000
    leapfrog: int = 10
    step_size: float = 0.05
    adapt: bool = True
    jitter: float = 0.5
    schedule: str = "sigmoid"
    max_rows: int | None = 8192
    seed: int | None = None
    rng: torch.Generator | None = None

    @classmethod
    def of(cls, options: dict[str, Any]) -> Annealing:
        try:
            return cls(**options)
        except TypeError:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(
                f"unknown AIS option among {sorted(options)}; known: {known}"
            ) from None


@dataclass
class AISResult:
    """An AIS run: the estimate and what tells whether to trust it."""

    log_prob: Tensor  # [B] log p(x) estimate in nats
    log_weights: Tensor  # [chains, B] each chain's log-weight
    acceptance: float  # mean HMC acceptance over all transitions and chains (nan: none ran)
    ess: Tensor  # [B] effective sample size of the chains' weights, in 1..chains
    step_size: Tensor  # [chains, B] each chain's final HMC step size
    sigma: float
    steps: int
    reverse: bool = False  # True: a reverse (BDMC) run, log_prob is an upper bound


# -- the schedule ---------------------------------------------------------------------------
def _betas(steps: int, kind: str) -> list[float]:
    """``steps + 1`` inverse temperatures from exactly 0 to exactly 1."""
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown AIS schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if steps < 1:
        raise ConfigError(f"AIS needs steps >= 1, got {steps}")
    if kind == "linear" or steps == 1:
        return [i / steps for i in range(steps + 1)]
    # Wu et al.'s sigmoid schedule: sigmoid of evenly spaced points in [-4, 4], rescaled to
    # [0, 1]. Its small steps near beta = 0 matter most: there log p(x|z) varies wildly across
    # the (prior-like) chains, so each weight increment (dbeta * log p(x|z)) has high variance
    r = SIGMOID_RADIUS
    s = [1.0 / (1.0 + math.exp(r - 2 * r * i / steps)) for i in range(steps + 1)]
    lo, hi = s[0], s[-1]
    return [(v - lo) / (hi - lo) for v in s]  # the ends are exactly 0 and 1


def beta_schedule(
    steps: int, kind: str = "sigmoid", *, device: torch.device | str | None = None
) -> Tensor:
    """The annealing schedule ``[steps + 1]`` (float64), from exactly 0 to exactly 1."""
    return torch.tensor(_betas(steps, kind), dtype=torch.float64, device=device)


# -- log p(x | z) and its gradient ----------------------------------------------------------
class _Likelihood:
    """``log N(x; g(z), sigma^2 I)`` for chain-major rows of z, in calls of whole chains."""

    def __init__(self, generator: Generator, x: Tensor, sigma: float, max_rows: int | None):
        self.generator = generator
        self.shape = tuple(x.shape[1:])
        self.batch = x.shape[0]
        self.x = x.reshape(1, self.batch, -1)  # [1, B, D]
        dim = self.x.shape[-1]
        self.inv_var = 1.0 / sigma**2
        self.const = -0.5 * dim * math.log(2 * math.pi * sigma**2)
        chains_per_call = 1 if max_rows is None else max(1, max_rows // self.batch)
        self.rows = None if max_rows is None else chains_per_call * self.batch

    def _log_lik(self, z: Tensor) -> Tensor:
        """``[c * B, K] -> [c * B]``."""
        mean = self.generator(z)
        if not isinstance(mean, Tensor) or tuple(mean.shape) != (z.shape[0], *self.shape):
            got = tuple(mean.shape) if isinstance(mean, Tensor) else type(mean).__name__
            raise DataError(
                f"the generator maps z [{z.shape[0]}, {z.shape[1]}] to {got}, but x needs "
                f"[{z.shape[0]}, {', '.join(map(str, self.shape))}]; pass x of the generator's "
                "output shape"
            )
        resid = self.x - mean.reshape(-1, self.batch, self.x.shape[-1])  # [c, B, D]
        return (self.const - 0.5 * self.inv_var * resid.pow(2).sum(-1)).reshape(-1)

    def __call__(self, z: Tensor, grad: bool = True) -> tuple[Tensor, Tensor | None]:
        """``log p(x|z)`` ``[N]`` and, if ``grad``, its gradient in z ``[N, K]``."""
        rows = self.rows or z.shape[0]
        lls, grads = [], []
        for start in range(0, z.shape[0], rows):
            zc = z[start : start + rows].detach()
            if not grad:
                with torch.no_grad():
                    lls.append(self._log_lik(zc))
                continue
            # autograd on z only: the generator's parameters take no gradient
            with torch.enable_grad():
                zc.requires_grad_(True)
                ll = self._log_lik(zc)
                if not ll.requires_grad:
                    raise DataError(
                        "the generator's output does not depend differentiably on z; HMC needs "
                        "its gradient (do not detach z or run the generator in inference mode)"
                    )
                (g,) = torch.autograd.grad(ll.sum(), zc)
            lls.append(ll.detach())
            grads.append(g)
        return torch.cat(lls), (torch.cat(grads) if grad else None)


# -- one HMC transition, all chains at once -------------------------------------------------
def _hmc(
    lik: _Likelihood,
    z: Tensor,
    ll: Tensor,
    g: Tensor,
    beta: float,
    eps: Tensor,
    leapfrog: int,
    jitter: float,
    rng: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """An HMC move that leaves ``p(z) p(x|z)^beta`` invariant; returns (z, ll, grad, accepted).

    ``z`` ``[N, K]``, ``ll`` ``[N]``, ``g`` ``[N, K]`` (gradient of ll), ``eps`` ``[N, 1]``, the
    step sizes, each used uniformly jittered in ``[(1 - jitter) eps, (1 + jitter) eps]``.
    Potential ``U(z) = |z|^2 / 2 - beta log p(x|z)``, unit mass matrix.
    """
    p0 = torch.randn(z.shape, generator=rng, device=z.device, dtype=z.dtype)  # [N, K]
    if jitter:
        # a step size drawn afresh per move (Neal 2011, "MCMC using Hamiltonian dynamics",
        # 5.4.2.2): a fixed trajectory length can resonate with the posterior's width and
        # return near its start; the draw ignores z, so the move stays reversible
        u = torch.rand(eps.shape, generator=rng, device=z.device, dtype=z.dtype)  # [N, 1]
        eps = eps * (1 + jitter * (2 * u - 1))
    p = p0 - 0.5 * eps * (z - beta * g)
    zn, lln, gn = z, ll, g
    for i in range(leapfrog):
        zn = zn + eps * p
        lln, gn = lik(zn)
        if i < leapfrog - 1:
            p = p - eps * (zn - beta * gn)
    p = p - 0.5 * eps * (zn - beta * gn)
    h0 = 0.5 * z.pow(2).sum(-1) - beta * ll + 0.5 * p0.pow(2).sum(-1)  # [N]
    h1 = 0.5 * zn.pow(2).sum(-1) - beta * lln + 0.5 * p.pow(2).sum(-1)
    log_u = torch.rand(ll.shape, generator=rng, device=z.device, dtype=z.dtype).log()
    accept = log_u < h0 - h1  # a NaN energy (diverged trajectory) compares False: rejected
    a = accept.unsqueeze(-1)
    return torch.where(a, zn, z), torch.where(accept, lln, ll), torch.where(a, gn, g), accept


def _anneal(
    lik: _Likelihood,
    z: Tensor,
    betas: list[float],
    run: Annealing,
    rng: torch.Generator | None,
    desc: str,
) -> tuple[Tensor, Tensor, float]:
    """Run chains from ``z`` ``[N, K]`` (exact samples of ``p_{betas[0]}``) along ``betas``;
    return the log-weights ``[N]``, final step sizes ``[N, 1]`` and mean acceptance."""
    leapfrog, step_size, adapt, jitter = run.leapfrog, run.step_size, run.adapt, run.jitter
    n = z.shape[0]
    steps = len(betas) - 1
    ll, g = lik(z, grad=steps > 1)
    log_w = torch.zeros(n, device=z.device, dtype=z.dtype)
    eps = torch.full((n, 1), step_size, device=z.device, dtype=z.dtype)
    avg_acc = torch.full((n, 1), TARGET_ACCEPTANCE, device=z.device, dtype=z.dtype)
    accepted = torch.zeros((), device=z.device, dtype=z.dtype)
    for t in progress.track(range(1, steps + 1), desc, unit="steps"):
        # the weight uses the state before the transition at beta_t (Neal 2001)
        log_w = log_w + (betas[t] - betas[t - 1]) * ll
        if t == steps:  # a transition at the last distribution would not change the weights
            continue  # (the last step: continue, not break, so its progress counts it done)
        z, ll, g, acc = _hmc(lik, z, ll, g, betas[t], eps, leapfrog, jitter, rng)  # type: ignore
        acc = acc.to(z.dtype).unsqueeze(-1)  # [N, 1]
        accepted = accepted + acc.sum()
        if adapt:
            avg_acc = ACCEPTANCE_SLOWNESS * avg_acc + (1 - ACCEPTANCE_SLOWNESS) * acc
            eps = torch.where(avg_acc > TARGET_ACCEPTANCE, eps * STEP_INC, eps * STEP_DEC)
            eps = eps.clamp(STEP_MIN, STEP_MAX)
    moves = (steps - 1) * n
    acceptance = float(accepted) / moves if moves else math.nan
    return log_w, eps, acceptance


# -- checks and plumbing --------------------------------------------------------------------
def _check(x: Tensor, sigma: float, chains: int, run: Annealing) -> None:
    if x.dim() < 2 or x.shape[0] < 1:
        raise DataError(
            f"AIS expects a batch x of shape [B, *shape] with B >= 1, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise DataError(f"AIS expects floating-point x, got {x.dtype}; convert with x.float()")
    if not torch.isfinite(x).all():
        raise DataError("x holds NaN or infinite values; AIS needs finite data")
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma must be a finite number > 0, got {sigma!r}")
    for name, value in (("steps", run.steps), ("chains", chains), ("leapfrog", run.leapfrog)):
        if value < 1:
            raise ConfigError(f"AIS needs {name} >= 1, got {value}")
    if not run.step_size > 0:
        raise ConfigError(f"step_size must be > 0, got {run.step_size}")
    if not 0 <= run.jitter < 1:
        raise ConfigError(f"jitter must be in [0, 1), got {run.jitter}")
    if run.max_rows is not None and run.max_rows < 1:
        raise ConfigError(f"max_rows must be >= 1 (or None for no limit), got {run.max_rows}")


def _rng(x: Tensor, run: Annealing) -> torch.Generator | None:
    if run.seed is not None and run.rng is not None:
        raise ConfigError("pass either seed or rng to AIS, not both")
    if run.seed is not None:
        return torch.Generator(device=x.device).manual_seed(run.seed)
    return run.rng


def _result(
    log_w: Tensor,
    eps: Tensor,
    acceptance: float,
    chains: int,
    sigma: float,
    steps: int,
    reverse: bool,
) -> AISResult:
    log_w = log_w.reshape(chains, -1)  # [chains, B]
    log_mean = torch.logsumexp(log_w, 0) - math.log(chains)  # [B]
    # effective sample size (sum w)^2 / sum w^2, in log space
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    return AISResult(
        log_prob=-log_mean if reverse else log_mean,
        log_weights=log_w,
        acceptance=acceptance,
        ess=ess,
        step_size=eps.reshape(chains, -1),
        sigma=float(sigma),
        steps=steps,
        reverse=reverse,
    )


# -- the estimators -------------------------------------------------------------------------
def ais(
    generator: Generator,
    x: Tensor,
    latent_dim: int,
    sigma: float,
    *,
    chains: int = 16,
    **options: Any,
) -> AISResult:
    """Forward AIS (Wu et al. 2017) for ``x`` ``[B, *shape]`` under ``x = g(z) + sigma eps``.

    ``chains`` chains per example, all ``chains * B`` at once; ``options`` as
    :class:`Annealing` (``steps`` intermediate distributions, ``steps - 1`` HMC transitions of
    ``leapfrog`` leapfrog steps each, ``seed``...). The result does not depend on
    ``max_rows`` beyond rounding.
    """
    run = Annealing.of(options)
    _check(x, sigma, chains, run)
    if latent_dim < 1:
        raise ConfigError(f"latent_dim must be >= 1, got {latent_dim}")
    gen = _rng(x, run)
    lik = _Likelihood(generator, x, sigma, run.max_rows)
    n = chains * x.shape[0]
    z = torch.randn(n, latent_dim, generator=gen, device=x.device, dtype=x.dtype)  # [N, K]
    log_w, eps, acc = _anneal(lik, z, _betas(run.steps, run.schedule), run, gen, "AIS")
    return _result(log_w, eps, acc, chains, sigma, run.steps, reverse=False)


def ais_log_prob(
    generator: Generator, x: Tensor, latent_dim: int, sigma: float, **kwargs: Any
) -> Tensor:
    """The AIS estimate of log p(x) ``[B]`` in nats (see :func:`ais` for the options)."""
    return ais(generator, x, latent_dim, sigma, **kwargs).log_prob


def model_ais(
    model: ImplicitGenerator, x: Tensor, sigma: float, *, labels: Any = None, **kwargs: Any
) -> AISResult:
    """AIS for x ``[B, *shape]`` under x = g(z) + sigma eps in the data's units, g a model's
    generator (:class:`~dgm.models.capabilities.ImplicitGenerator`, e.g. a GAN), with the
    diagnostics (acceptance, effective sample size); options as :func:`ais`. A class-conditional
    model needs ``labels`` here (see :func:`model_ais_log_prob` for the mixture over classes)."""
    model.check_input(x)  # type: ignore[attr-defined]
    x = x.to(next(model.parameters()).dtype)  # type: ignore[attr-defined]
    conditional = isinstance(model, LabelConditional) and model.conditional
    if conditional and labels is None:
        raise ConfigError(
            "a class-conditional model's ais needs labels; model_ais_log_prob mixes classes"
        )
    y = model.labels_for(x.shape[0], labels) if isinstance(model, LabelConditional) else None
    was_training = model.training  # type: ignore[attr-defined]
    model.eval()  # type: ignore[attr-defined]  # a deterministic g: batch norm's running stats
    try:
        return ais(
            lambda z: model.generator_mean(z, _tile(y, z)), x, model.latent_dim, sigma, **kwargs
        )
    finally:
        model.train(was_training)  # type: ignore[attr-defined]


def model_ais_log_prob(
    model: ImplicitGenerator, x: Tensor, sigma: float, *, labels: Any = None, **kwargs: Any
) -> Tensor:
    """The AIS estimate of log p(x) ``[B]`` in nats under x = g(z) + sigma eps, eps ~ N(0, I)
    in the data's units (Wu et al. 2017): a continuous density, not a probability of discrete
    levels, and a stochastic lower bound in expectation. A class-conditional model is scored
    under the mixture over its classes (uniform p(y)) unless ``labels`` are given. Options
    (``steps``, ``chains``, ``seed``...) as :func:`ais`."""
    if not (isinstance(model, LabelConditional) and model.conditional) or labels is not None:
        return model_ais(model, x, sigma, labels=labels, **kwargs).log_prob
    k = model.num_classes
    per_class = [model_ais(model, x, sigma, labels=c, **kwargs).log_prob for c in range(k)]
    return torch.logsumexp(torch.stack(per_class), 0) - math.log(k)


def _tile(y: Tensor | None, z: Tensor) -> Tensor | None:
    """Labels ``[B]`` for a batch of ``z`` whose rows are chains x examples (chain-major)."""
    if y is None:
        return None
    return y.repeat(z.shape[0] // y.shape[0])


def reverse_ais(
    generator: Generator,
    x: Tensor,
    z: Tensor,
    sigma: float,
    *,
    chains: int | None = None,
    **options: Any,
) -> AISResult:
    """Reverse AIS (the upper half of BDMC, Wu et al. 2017): a stochastic upper bound.

    ``z`` must be *exact* posterior samples p(z | x): ``[B, K]`` (one per example, shared by
    ``chains`` chains, default 1) or ``[chains, B, K]``. Exact samples exist for data simulated
    from the model, ``z ~ p(z)``, ``x = g(z) + sigma eps``. The chains anneal from the posterior
    to the prior along the reversed schedule; each weight estimates 1 / p(x), so ``log_prob``
    ``= -log mean w`` is >= log p(x) in expectation.
    """
    if z.dim() == 2:
        z = z.unsqueeze(0).expand(chains or 1, -1, -1)
    elif z.dim() != 3 or (chains is not None and z.shape[0] != chains):
        raise DataError(
            f"reverse AIS expects z of shape [B, K] or [chains, B, K], got {tuple(z.shape)}"
        )
    chains = z.shape[0]
    run = Annealing.of(options)
    _check(x, sigma, chains, run)
    if z.shape[1] != x.shape[0]:
        raise DataError(f"z holds {z.shape[1]} examples but x holds {x.shape[0]}; pair them")
    gen = _rng(x, run)
    lik = _Likelihood(generator, x, sigma, run.max_rows)
    z0 = z.to(device=x.device, dtype=x.dtype).reshape(-1, z.shape[-1])  # [N, K] chain-major
    betas = _betas(run.steps, run.schedule)[::-1]
    log_w, eps, acc = _anneal(lik, z0, betas, run, gen, "reverse AIS")
    return _result(log_w, eps, acc, chains, sigma, run.steps, reverse=True)


# -- choosing sigma -------------------------------------------------------------------------
def sigma_scores(
    source: Any,
    x: Tensor,
    sigmas: Sequence[float] | None = None,
    *,
    latent_dim: int | None = None,
    method: str = "ais",
    steps: int = 100,
    chains: int = 4,
    num_samples: int = 1000,
    seed: int = 0,
    **kwargs: Any,
) -> dict[float, float]:
    """Mean estimated log p(x) of the batch ``x`` for each sigma (the same seed for each).

    ``source`` is a model with a generator (an
    :class:`~dgm.models.capabilities.ImplicitGenerator`, e.g. a GAN) or a generator callable
    (then ``latent_dim`` is needed). ``method="ais"`` runs AIS with ``steps``
    and ``chains``; ``"is"`` is importance sampling from the prior with ``num_samples``. Both
    are lower bounds that fall further below log p(x) the smaller sigma (a narrower posterior),
    so short runs lean towards larger sigma. The default grid is :data:`RELATIVE_SIGMAS` times
    the range of x (max - min), which suits data in any units.
    """
    if method not in ("ais", "is"):
        raise ConfigError(f"unknown sigma-selection method {method!r}; choose ais or is")
    if sigmas is None:
        span = float(x.max() - x.min()) if x.numel() else 0.0
        sigmas = [r * (span if span > 0 else 1.0) for r in RELATIVE_SIGMAS]
    if len(sigmas) == 0:
        raise ConfigError("sigma selection needs at least one candidate sigma")
    run = (
        {"steps": steps, "chains": chains}
        if method == "ais"
        else {"steps": 1, "chains": num_samples}
    )
    run.update(kwargs)
    is_model = isinstance(source, ImplicitGenerator)
    if not is_model and not callable(source):
        raise ConfigError("sigma selection needs a generator callable or a model with a generator")
    if not is_model and latent_dim is None:
        raise ConfigError("sigma selection with a generator callable needs latent_dim")

    def score(sigma: float) -> Tensor:
        if is_model:
            return model_ais_log_prob(source, x, sigma, seed=seed, **run)
        return ais_log_prob(source, x, latent_dim, sigma, seed=seed, **run)  # type: ignore

    return {float(s): float(score(float(s)).double().mean()) for s in sigmas}


def pick_sigma(
    source: Any, x: Tensor, sigmas: Sequence[float] | None = None, **kwargs: Any
) -> float:
    """The sigma of the grid with the highest mean estimated log p(x) on validation batch ``x``
    (Wu et al. 2017 choose sigma on validation data); options as :func:`sigma_scores`."""
    scores = sigma_scores(source, x, sigmas, **kwargs)
    finite = {s: v for s, v in scores.items() if math.isfinite(v)}
    if not finite:
        raise DataError("every candidate sigma gave a non-finite log p(x); check the generator")
    return max(finite, key=finite.__getitem__)


__all__ = [
    "AISResult",
    "Annealing",
    "ais",
    "ais_log_prob",
    "beta_schedule",
    "model_ais",
    "model_ais_log_prob",
    "pick_sigma",
    "reverse_ais",
    "sigma_scores",
]
