"""vdm (Kingma et al. 2021): the learned schedule is monotone with its endpoints, the discrete
decoder sums to 1, the continuous-time bound with the true noise predictor on Gaussian data is
below the true log-density (and its estimator unbiased, whatever the schedule's shape), the
schedule's interior descends the estimator's variance, the ancestral sampler draws the data's
distribution, bad settings are refused, and the model runs on digits and on 2-D data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from dgm.errors import ConfigError
from dgm.models.diffusion.vdm import VDM, VDMConfig

D64 = torch.float64
TINY = {"hidden": 8, "blocks": 1, "schedule_hidden": 16, "steps": 5, "dropout": 0.0}


def make(**values) -> VDM:
    return VDM(VDMConfig(**{**TINY, **values}))


def grid_gamma(model: VDM, n: int = 2001) -> tuple[Tensor, Tensor, Tensor]:
    t = torch.linspace(0, 1, n, dtype=D64)
    with torch.no_grad():
        gamma, dgamma = model.gamma(t)
    return t, gamma, dgamma


# -- the schedule ----------------------------------------------------------------------------
def test_learned_schedule_is_monotone_from_gamma_min_to_gamma_max_and_stays_so():
    torch.manual_seed(0)
    model = make(shape=(2,), levels=None, low=-1.0, high=1.0, schedule_hidden=64).double()
    _, gamma, dgamma = grid_gamma(model)
    # (float32 parameters at init: -13.3 to within float32's rounding)
    assert float(gamma[0]) == pytest.approx(-13.3, abs=1e-6)
    assert float(gamma[-1]) == pytest.approx(5.0, abs=1e-6)
    assert (gamma.diff() > 0).all() and (dgamma > 0).all()
    # gamma' is the derivative of gamma (the analytic one the diffusion loss weighs by)
    tt = torch.rand(50, dtype=D64, requires_grad=True)
    g, dg = model.gamma(tt)
    (auto,) = torch.autograd.grad(g.sum(), tt)
    torch.testing.assert_close(dg, auto)

    # random weights, then optimiser steps on a random objective: still increasing, still
    # from gamma(0) = gamma_0 to gamma(1) = gamma_1
    sched = model.schedule
    with torch.no_grad():
        for p in sched.parameters():
            p.add_(3 * torch.randn_like(p))
    opt = torch.optim.Adam(sched.parameters(), lr=0.3)
    c = torch.randn(64, dtype=D64)
    for _ in range(25):
        g, dg = model.gamma(torch.rand(64, dtype=D64))
        opt.zero_grad()
        (c * g + c.roll(1) * dg).sum().backward()
        opt.step()
    _t, gamma, dgamma = grid_gamma(model)
    g0, g1 = sched.endpoints()
    assert (gamma.diff() > 0).all() and (dgamma > 0).all()
    g0, g1 = float(g0.detach()), float(g1.detach())
    assert float(gamma[0]) == pytest.approx(g0, abs=1e-9)
    assert float(gamma[-1]) == pytest.approx(g1, abs=1e-9)
    assert g1 > g0


def test_linear_schedule_is_fixed():
    model = make(schedule="linear", gamma_min=-7.0, gamma_max=3.0).double()
    t, gamma, dgamma = grid_gamma(model, 11)
    torch.testing.assert_close(gamma, -7.0 + 10.0 * t)
    torch.testing.assert_close(dgamma, torch.full_like(t, 10.0))
    assert model.schedule is None
    # the network reads the normalised gamma, which is t itself on the linear schedule
    torch.testing.assert_close(model.net_time(gamma), t)


def test_gamma_min_is_sized_by_the_levels_and_fourier_features_resolve_them():
    from dgm.data.base import DataSpec
    from dgm.models.diffusion.vdm import FourierInput, fourier_exponents

    def spec(levels):
        return DataSpec(name="x", shape=(1, 8, 8), levels=levels, low=0.0, high=1.0)

    # the paper's -13.3 at 256 levels; coarser levels, a coarser start; the user's value wins
    assert VDM.sized_defaults(spec(256))["gamma_min"] == pytest.approx(-13.3)
    assert VDM.sized_defaults(spec(17))["gamma_min"] == pytest.approx(-7.88)
    assert "gamma_min" not in VDM.sized_defaults(spec(None))
    assert VDM.for_data(spec(17), gamma_min=-5.0).config.gamma_min == -5.0
    # Fourier features at the paper's 2^6 and 2^7 for 256 levels, periods of 2 and 4 cells
    assert fourier_exponents(256) == (6, 7) and fourier_exponents(17) == (2, 3)
    model = make()
    assert isinstance(model.net, FourierInput) and model.net.inner.stem.in_channels == 5
    assert not isinstance(make(fourier=False).net, FourierInput)
    assert not isinstance(make(shape=(2,), levels=None).net, FourierInput)  # continuous data


# -- the decoder -----------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [2, 17, 256])
def test_discrete_decoder_sums_to_one_over_the_levels(levels):
    torch.manual_seed(0)
    model = make(shape=(1,), levels=levels).double()
    u = torch.tensor([0.01, 0.3, -0.999, 0.999, 4.0, -4.0, 0.05], dtype=D64)  # z_0 / alpha_0
    for gamma_0 in (-13.3, -4.0, 1.0):
        g0 = torch.tensor(gamma_0, dtype=D64)
        lp = torch.stack(
            [
                model.decoder_log_prob(
                    torch.full((u.numel(), 1), float(k), dtype=D64), u[:, None], g0
                )
                for k in range(levels)
            ]
        )  # [L, B]
        assert torch.isfinite(lp).all()
        torch.testing.assert_close(lp.exp().sum(0), torch.ones(u.numel(), dtype=D64))
        # its most likely level is the one whose cell holds u (what sample() returns)
        torch.testing.assert_close(lp.argmax(0).double(), model.to_data(u))


# -- the bound on Gaussian data, with the true noise predictor ---------------------------------
LOW, HIGH = -2.0, 4.0  # continuous data mapped to [-1, 1]: centre 1, half 3
M_X, S_X = torch.tensor([0.4, 2.2], dtype=D64), torch.tensor([0.9, 0.5], dtype=D64)
HALF = (HIGH - LOW) / 2
M, S = (M_X - (LOW + HIGH) / 2) / HALF, S_X / HALF  # the data in model space


class TrueEps(nn.Module):
    """E[eps | z_t] for data N(M, S^2 I) in model space: the network's signature, reading the
    normalised gamma as the model's network does."""

    def __init__(self, gamma_min: float, gamma_max: float) -> None:
        super().__init__()
        self.gamma_min, self.gamma_max = gamma_min, gamma_max

    def forward(self, z: Tensor, tau: Tensor) -> Tensor:
        g = (self.gamma_min + tau * (self.gamma_max - self.gamma_min))[:, None]
        a2, s2 = torch.sigmoid(-g), torch.sigmoid(g)
        v = a2 * S**2 + s2  # the marginal variance of z_t
        return (s2.sqrt() * (z - a2.sqrt() * M) / v)[:, None]


def gaussian_model(schedule: str) -> VDM:
    model = make(shape=(2,), levels=None, low=LOW, high=HIGH, schedule=schedule).double()
    model.net = TrueEps(model.config.gamma_min, model.config.gamma_max)
    return model


def true_nll(x: Tensor) -> Tensor:
    z = (x - M_X) / S_X
    return (0.5 * z.square() + torch.log(S_X) + 0.5 * math.log(2 * math.pi)).sum(1)


def expected_bound(x: Tensor | None = None, g0: float = -13.3, g1: float = 5.0) -> Tensor:
    """The bound's expectation over its draws (per example of ``x``; over the data when
    ``x`` is None) in closed form, the diffusion loss by quadrature: E ||eps - eps_hat||^2 at
    noise level gamma is D (1 - s2/v)^2 + s2 a2 ||y - M||^2 / v^2, and int gamma'(t)
    f(gamma(t)) dt = int_{g0}^{g1} f(gamma) dgamma for every schedule."""
    if x is None:  # y ~ N(M, S^2): E (y - M)^2 = S^2, E y^2 = M^2 + S^2
        dev2, y2 = (S**2)[None], (M**2 + S**2)[None]
    else:
        y = (x - (LOW + HIGH) / 2) / HALF
        dev2, y2 = (y - M).square(), y.square()
    d = M.numel()
    gam = torch.linspace(g0, g1, 20_001, dtype=D64)[:, None, None]
    a2, s2 = torch.sigmoid(-gam), torch.sigmoid(gam)
    v = a2 * S**2 + s2
    f = 0.5 * ((1 - s2 / v).square() + s2 * a2 * dev2 / v.square()).sum(-1)
    diffusion = torch.trapezoid(f, gam[:, 0, 0], dim=0)
    a2_1, s2_1 = (
        torch.sigmoid(torch.tensor(-g1, dtype=D64)),
        torch.sigmoid(torch.tensor(g1, dtype=D64)),
    )
    prior = 0.5 * (a2_1 * y2 + s2_1 - torch.log(s2_1) - 1).sum(1)
    recon = 0.5 * d * (1 + g0 + math.log(2 * math.pi)) + d * math.log(HALF)
    return prior + recon + diffusion


def gaussian_data(n: int) -> Tensor:
    torch.manual_seed(1)
    return M_X + S_X * torch.randn(n, 2, dtype=D64)


def test_expected_bound_is_above_the_datas_entropy_and_close_to_it():
    # E_x[bound(x)] >= E_x[-log p_data(x)]: the bound is on the model's log p(x), whose mean
    # over the data is at most the data's own (Gibbs); per example it may cross by ~1e-4
    entropy = float((0.5 + torch.log(S_X) + 0.5 * math.log(2 * math.pi)).sum())
    gap = float(expected_bound()) - entropy
    assert 0 <= gap < 5e-3  # gamma from -13.3 to 5: nearly tight
    # looser endpoints, a looser bound, still above
    assert float(expected_bound(None, -4.0, 2.0)) - entropy > gap + 1e-2
    # the closed form per example averages to the one over the data
    x = gaussian_data(20000)
    est = expected_bound(x[:400])
    assert abs(float(est.mean()) - float(expected_bound())) < 4 * float(est.std()) / math.sqrt(400)
    assert abs(float((true_nll(x)).mean()) - entropy) < 0.03


@pytest.mark.parametrize("schedule", ["linear", "learned"])
def test_bound_with_many_draws_matches_its_expectation_and_the_log_density(schedule):
    torch.manual_seed(0)
    model = gaussian_model(schedule)
    if schedule == "learned":  # a strongly curved shape: the bound's expectation does not move
        with torch.no_grad():
            model.schedule.w2.mul_(8)
            model.schedule.b2.normal_(0, 4)
            model.schedule.w3.mul_(2000)
        _, gamma, _ = grid_gamma(model)
        linear = -13.3 + 18.3 * torch.linspace(0, 1, gamma.numel(), dtype=D64)
        assert float((gamma - linear).abs().max()) > 1.0  # really not the linear one
    x = gaussian_data(8)
    reps = 4000  # each example 4000 times in one batch, K = 50 draws each: 200000 draws
    with torch.no_grad():
        est = -model.log_prob(x.repeat(reps, 1), num_samples=50).view(reps, -1)
    mean, se = est.mean(0), est.std(0) / math.sqrt(reps)  # se ~ 0.03 nats
    ref = expected_bound(x)
    assert float(((mean - ref) / se).abs().max()) < 4.5
    assert float((mean - ref).abs().max()) < 0.15
    # and so close to the true log-density (the bound is within ~1e-3 of it)
    assert float((mean - true_nll(x)).abs().max()) < 0.15


@pytest.mark.parametrize("k", [1, 3])
def test_estimator_with_few_draws_is_unbiased(k):
    torch.manual_seed(0)
    model = gaussian_model("learned")
    x = gaussian_data(6)
    with torch.no_grad():
        est = -model.log_prob(x.repeat(3000, 1), num_samples=k).view(3000, -1)
    reps = 3000  # independent estimates with K draws each, as one batch
    mean, se = est.mean(0), est.std(0) / math.sqrt(reps)
    z = (mean - expected_bound(x)) / se
    assert float(z.abs().max()) < 4.5, z
    # more draws: less spread around the same mean
    with torch.no_grad():
        more = -model.log_prob(x.repeat(300, 1), num_samples=10 * k).view(300, -1)
    assert float(more.std(0).mean()) < float(est.std(0).mean()) / 2


def test_ancestral_sampler_with_the_true_predictor_draws_the_data():
    torch.manual_seed(0)
    model = gaussian_model("linear")
    x = model.sample(4000, steps=200).double()
    assert x.shape == (4000, 2)
    se = S_X / math.sqrt(4000)
    assert ((x.mean(0) - M_X).abs() < 4 * se).all(), x.mean(0)
    assert ((x.std(0) / S_X - 1).abs() < 0.06).all(), x.std(0)
    # fewer steps, less spread (the posterior's variance leaves out the spread of x_hat)
    assert (model.sample(4000, steps=20).double().std(0) < 0.9 * x.std(0)).all()
    # one step: z_1 says almost nothing of x, so p(z_0|z_1) sits at x_hat ~ the mean, with
    # the posterior's noise sigma_0^2 (1 - SNR(1)/SNR(0)), which is tiny
    one = model.sample(4000, steps=1).double()
    assert ((one.mean(0) - M_X).abs() < 0.02).all() and (one.std(0) < 0.05 * S_X).all()


# -- variance-minimising schedule training -----------------------------------------------------
def test_schedule_interior_gets_the_squared_diffusion_loss_gradient_endpoints_the_bounds():
    torch.manual_seed(0)
    model = make().double().train()  # digits-shaped, 17 levels, learned schedule, no dropout
    x = torch.randint(0, 17, (12, 1, 8, 8)).double()
    sched = model.schedule
    interior = sched.interior()
    rest = [p for p in model.parameters() if all(p is not q for q in interior)]
    assert any(p is sched.gamma_0 for p in rest) and any(p is sched.gap for p in rest)

    torch.manual_seed(5)
    loss = model.loss(x)
    got_interior = torch.autograd.grad(loss, interior, retain_graph=True)
    got_rest = torch.autograd.grad(loss, rest)

    # by hand, the same draws: the bound per dimension for everything, and for the interior
    # the mean of the squared per-dimension diffusion loss
    torch.manual_seed(5)
    t = model.times(x.shape[0], torch.empty((), dtype=D64))
    prior, recon, diff = model.terms(x, t)
    d = model.dim
    bound = (prior + recon + diff).mean() / d
    torch.testing.assert_close(bound, loss)
    want_interior = torch.autograd.grad((diff / d).square().mean(), interior, retain_graph=True)
    bound_interior = torch.autograd.grad(bound, interior, retain_graph=True)
    want_rest = torch.autograd.grad(bound, rest)
    for g, w, b in zip(got_interior, want_interior, bound_interior):
        torch.testing.assert_close(g, w)
        assert not torch.allclose(g, b)  # it is not the bound's own gradient
    for g, w in zip(got_rest, want_rest):
        torch.testing.assert_close(g, w)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"schedule": "cosine"}, "unknown schedule 'cosine'"),
        ({"sampler": "ddim"}, "unknown sampler 'ddim'"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"gamma_min": 5.0, "gamma_max": 5.0}, "gamma_min must be < gamma_max"),
        ({"gamma_min": 6.0, "gamma_max": -1.0}, "gamma_min must be < gamma_max"),
        ({"schedule_hidden": 0}, "schedule_hidden must be >= 1"),
    ],
)
def test_bad_settings_are_one_line_config_errors(values, words):
    with pytest.raises(ConfigError, match=words) as info:
        make(**values)
    assert "\n" not in str(info.value)


def test_bad_sampling_calls_are_config_errors():
    model = make()
    with pytest.raises(ConfigError, match="steps must be a whole number >= 1"):
        model.sample(2, steps=0)
    with pytest.raises(ConfigError, match="unknown sampler 'ode'"):
        model.sample(2, sampler="ode")
    with pytest.raises(ConfigError, match="num_samples must be >= 1"):
        model.log_prob(torch.zeros(2, 1, 8, 8), num_samples=0)


# -- digits and 2-D data -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "shape"),
    [
        ({"shape": (1, 8, 8), "levels": 17}, (1, 8, 8)),
        ({"shape": (2,), "levels": None, "low": -3.0, "high": 3.0, "schedule": "linear"}, (2,)),
        ({"shape": (2,), "levels": None, "low": -3.0, "high": 3.0}, (2,)),
    ],
)
def test_runs_on_digits_and_2d_data(values, shape):
    torch.manual_seed(0)
    model = make(**values).train()
    x = torch.randint(0, 17, (6, *shape)).float() if model.discrete else torch.randn(6, *shape)
    loss = model.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if p.numel() > 1 or "schedule" in name:
            assert p.grad.abs().sum() > 0, name
    model.eval()
    lp = model.log_prob(x, num_samples=3)
    assert lp.shape == (6,) and torch.isfinite(lp).all()
    metrics = model.metrics(x)
    assert set(metrics) >= {"nll", "loss"}
    assert all(v.shape == (6,) and torch.isfinite(v).all() for v in metrics.values())
    torch.testing.assert_close(metrics["loss"], metrics["nll"] / model.dim)
    assert model.exact_likelihood is False and model.averaged_samples is True
    note = model.likelihood_note(10)
    assert "VDM" in note and "10 low-discrepancy draws of t" in note and "upper bound" in note
    s = model.sample(4, steps=3)
    assert s.shape == (4, *shape) and torch.isfinite(s).all()
    if model.discrete:
        assert (s == s.round()).all() and s.min() >= 0 and s.max() <= 16
        assert "discrete decoder over 17 levels" in note
    # temperature 0: z_1 = 0, the rest of the chain still draws
    assert model.sample(2, temperature=0.0, steps=2).shape == (2, *shape)
