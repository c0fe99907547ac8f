"""score-sde and flow-matching: the maths of their ODE likelihoods and samplers.

On Gaussian data N(m, s^2 I) every diffused marginal is Gaussian in closed form, so the true
noise prediction (VP, VE) and the true velocity (flow matching) are known; a module with the
network's signature returning them replaces ``model.net``, which tests the SDEs' coefficients,
the probability-flow drift, the ODE likelihood, the data's affine map and the samplers
independently of training. The formulas below are written from the papers, not read from the
models.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

import dgm
from dgm.errors import ConfigError
from dgm.models.diffusion import flow_matching, score_sde
from dgm.models.diffusion.flow_matching import ot_pairing

# continuous 2-D data in data space, and the model's affine map onto [-1, 1]: centre 1, half 4
LOW, HIGH = -3.0, 5.0
CENTRE, HALF = 1.0, 4.0
M_DATA = torch.tensor([2.0, -0.6], dtype=torch.float64)
S_DATA = 1.2
MU, SIG = (M_DATA - CENTRE) / HALF, S_DATA / HALF  # the data in model space
D = 2
BMIN, BMAX, SMIN_VE = 0.1, 20.0, 0.01
SMAX_VE = 2 * math.sqrt(D)  # the default: the largest distance between points of [-1, 1]^2
SIGMA_MIN_FM = 1e-4

CASES = {  # name: (model, its options)
    "vp": ("score-sde", {"sde": "vp"}),
    "ve": ("score-sde", {"sde": "ve"}),
    "fm-ot": ("flow-matching", {"path": "ot"}),
    "fm-rectified": ("flow-matching", {"path": "rectified"}),
}


def gaussian_log_prob(y: Tensor, mean: Tensor, var: float | Tensor) -> Tensor:
    var = torch.as_tensor(var, dtype=y.dtype)
    return (-0.5 * (y - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)


def vp_marginal(t: Tensor) -> tuple[Tensor, Tensor]:
    """alpha_t, std_t^2 of the VP SDE (Song et al. 2021, eq. 29-33)."""
    alpha = torch.exp(-0.25 * t**2 * (BMAX - BMIN) - 0.5 * t * BMIN)
    return alpha, 1 - alpha**2


def ve_sigma(t: Tensor) -> Tensor:
    return SMIN_VE * (SMAX_VE / SMIN_VE) ** t


def fm_path(case: str, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x_t = a x1 + b x0: (a, b, a', b') of the OT (Lipman) or rectified path."""
    smin = SIGMA_MIN_FM if case == "fm-ot" else 0.0
    return t, 1 - (1 - smin) * t, torch.ones_like(t), torch.full_like(t, -(1 - smin))


def marginal(case: str, t: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[B, D]`` and variance ``[B, 1]`` of the true p_t in model space."""
    t = t[:, None]
    if case == "vp":
        alpha, std2 = vp_marginal(t)
        return alpha * MU, alpha**2 * SIG**2 + std2
    if case == "ve":
        return MU.expand(t.shape[0], D), SIG**2 + ve_sigma(t) ** 2
    a, b, _, _ = fm_path(case, t)
    return a * MU, a**2 * SIG**2 + b**2


class TrueField(nn.Module):
    """The network's signature ``(y, t) -> [B, 1, D]``: the true E[eps | y_t] (VP, VE) or the
    true marginal velocity E[x1' - ... | x_t] (flow matching) of Gaussian data."""

    def __init__(self, case: str) -> None:
        super().__init__()
        self.case = case

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        mean, var = marginal(self.case, t)
        tt = t[:, None]
        if self.case == "vp":
            out = vp_marginal(tt)[1].sqrt() * (y - mean) / var
        elif self.case == "ve":
            out = ve_sigma(tt) * (y - mean) / var
        else:  # u = a' mu + (a a' s^2 + b b') (y - a mu) / v
            a, b, da, db = fm_path(self.case, tt)
            out = da * MU + (a * da * SIG**2 + b * db) * (y - mean) / var
        return out[:, None]


def true_model(case: str, **options) -> dgm.models.base.GenerativeModel:
    name, extra = CASES[case]
    model = dgm.create(
        name, shape=(D,), levels=None, low=LOW, high=HIGH, hidden=8, blocks=1, **extra, **options
    ).double()
    model.net = TrueField(case)
    return model


def true_prior(model, case: str) -> None:
    """Give a score SDE the true p_1 as its prior (the SDE's own prior is only close to it:
    within 0.02 nats for VP, not for VE with sigma_max 2 sqrt(D)), so the ODE's density is
    the data's exactly and the samplers start from the right distribution."""
    one = torch.ones(1, dtype=torch.float64)
    mean, var = marginal(case, one)
    model.prior_log_prob = lambda y: gaussian_log_prob(y, mean, var[0, 0])
    model.prior_sample = lambda n, temperature: (
        mean + var.sqrt() * torch.randn(n, D, dtype=torch.float64)
    )


@pytest.mark.parametrize("case", list(CASES))
def test_ode_log_prob_of_the_true_field_is_the_true_density(case):
    torch.manual_seed(0)
    model = true_model(case, rtol=1e-9, atol=1e-9)
    x = M_DATA + S_DATA * torch.randn(16, D, dtype=torch.float64) * 1.5
    if case in ("vp", "ve"):
        true_prior(model, case)
    t_data = torch.full((1,), float(model.t_data), dtype=torch.float64)
    assert model.t_data == (1e-5 if case in ("vp", "ve") else 1.0)
    mean, var = marginal(case, t_data)
    # the density of p_{t_data} in data space: model space's, with the affine map's -D log half
    expected = gaussian_log_prob((x - CENTRE) / HALF, mean, var[0, 0]) - D * math.log(HALF)
    got = model.log_prob(x)
    assert model.exact_likelihood
    assert torch.allclose(got, expected, atol=1e-6, rtol=0), (got - expected).abs().max()
    if case == "fm-rectified":  # p_1 is the data itself: the data's own density in data space
        assert torch.allclose(got, gaussian_log_prob(x, M_DATA, S_DATA**2), atol=1e-6, rtol=0)


def test_vp_prior_is_close_to_the_diffused_data():
    """Without the true p_1, VP's N(0, I) prior moves the ODE density by under 0.02 nats (p_1's
    mean is alpha_1 mu, alpha_1 = 0.0066; its variance 1 - 4e-5)."""
    torch.manual_seed(0)
    model = true_model("vp", rtol=1e-8, atol=1e-8)
    x = M_DATA + S_DATA * torch.randn(8, D, dtype=torch.float64)
    exact = true_model("vp", rtol=1e-8, atol=1e-8)
    true_prior(exact, "vp")
    gap = (model.log_prob(x) - exact.log_prob(x)).abs().max()
    assert 0 < gap < 0.02


def test_t_min_sets_where_the_likelihood_starts():
    model = dgm.create("score-sde", shape=(D,), levels=None, low=LOW, high=HIGH, t_min=1e-4)
    assert model.t_data == 1e-4 and score_sde.ScoreSDE.t_data == 0.0


@pytest.mark.parametrize("name", ["score-sde", "flow-matching"])
def test_hutchinson_agrees_with_the_exact_divergence_in_expectation(name):
    torch.manual_seed(1)
    opts = dict(shape=(3,), levels=None, low=-1, high=1, hidden=16, blocks=1, rtol=1e-5, atol=1e-5)
    hutch = dgm.create(name, divergence="hutchinson", **opts).double()
    exact = dgm.create(name, divergence="exact", **opts).double()
    exact.load_state_dict(hutch.state_dict())
    x = 0.5 * torch.randn(2, 3, dtype=torch.float64)
    n = 400
    # one Rademacher probe per row: n independent estimates of each example's log p
    est = hutch.log_prob(x.repeat_interleave(n, 0)).view(2, n)
    truth = exact.log_prob(x)
    se = est.std(1) / math.sqrt(n)
    assert (est.std(1) > 1e-3).all()  # the probes do vary the estimate
    assert ((est.mean(1) - truth).abs() < 4 * se).all(), (est.mean(1), truth, se)
    assert not hutch.exact_likelihood and "unbiased estimate" in hutch.likelihood_note(5)
    assert "Hutchinson divergence, 5 probes" in hutch.likelihood_note(5)


def two_blobs(n: int, generator: torch.Generator) -> Tensor:
    centres = torch.tensor([[-1.5, -1.0], [1.5, 1.0]])
    pick = torch.randint(0, 2, (n,), generator=generator)
    return centres[pick] + 0.4 * torch.randn(n, 2, generator=generator)


@pytest.mark.slow
def test_trained_ode_density_integrates_to_one_on_a_grid():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = dgm.create(
        "flow-matching", shape=(2,), levels=None, low=-3, high=3, hidden=64, blocks=2,
        dropout=0.0, rtol=1e-4, atol=1e-4,
    )  # fmt: skip
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = model.loss(two_blobs(256, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < 0.8 * losses[0]  # it learnt something: the density is not the prior's
    # a grid in data space over [-6, 6]^2 (twice the data's range); cells of 0.2
    side = torch.linspace(-6, 6, 61)
    h = float(side[1] - side[0])
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        density = model.log_prob(grid).exp()
    mass = float(density.sum()) * h * h
    assert abs(mass - 1) < 0.02, mass
    # most of the mass sits on the blobs, not spread like the prior's
    near = torch.cdist(grid, torch.tensor([[-1.5, -1.0], [1.5, 1.0]])).min(1).values < 1.2
    assert float(density[near].sum()) * h * h > 0.8


SAMPLER_CASES = [
    ("vp", "euler-maruyama"),
    ("vp", "pc"),
    ("vp", "ode"),
    ("vp", "euler"),
    ("ve", "euler-maruyama"),
    ("ve", "pc"),
    ("fm-ot", "ode"),
    ("fm-ot", "euler"),
    ("fm-rectified", "midpoint"),
    ("fm-rectified", "rk4"),
]


@pytest.mark.parametrize(("case", "sampler"), SAMPLER_CASES)
def test_samplers_of_the_true_field_draw_the_data(case, sampler):
    torch.manual_seed(2)
    model = true_model(case)
    if case == "ve":
        true_prior(model, case)
    n = 4000
    steps = 500 if case in ("vp", "ve") else 100
    x = model.sample(n, steps=steps, sampler=sampler)
    assert x.shape == (n, D)
    # 5 standard errors, plus 1% of s for the discretisation and the sampling stop at 1e-3
    se_mean, se_std = S_DATA / math.sqrt(n), S_DATA / math.sqrt(2 * n)
    err_mean = (x.mean(0) - M_DATA).abs().max()
    err_std = (x.std(0) - S_DATA).abs().max()
    assert err_mean < 5 * se_mean + 0.01 * S_DATA, err_mean
    assert err_std < 5 * se_std + 0.01 * S_DATA, err_std


def test_sampling_steps_matter_for_the_reverse_sde():
    """Few steps of Euler-Maruyama miss the data's spread: the samplers do integrate."""
    torch.manual_seed(3)
    model = true_model("vp")
    x = model.sample(2000, steps=3, sampler="euler-maruyama")
    assert (x.std(0) - S_DATA).abs().max() > 0.1


def test_minibatch_ot_coupling_is_an_optimal_permutation():
    torch.manual_seed(4)
    x0, x1 = torch.randn(64, 3), torch.randn(64, 3) + 1
    perm = ot_pairing(x0, x1)
    assert torch.equal(perm.sort().values, torch.arange(64))  # each noise point used once

    def cost(a: Tensor, b: Tensor) -> float:
        return float((a - b).pow(2).sum())

    assert cost(x0[perm], x1) < 0.9 * cost(x0, x1)
    # optimal: no permutation of a small batch pairs them more cheaply
    a, b = torch.randn(6, 2), torch.randn(6, 2)
    best = min(cost(a[list(p)], b) for p in itertools.permutations(range(6)))
    assert cost(a[ot_pairing(a, b)], b) == pytest.approx(best, rel=1e-6)


def test_ot_coupling_trains():
    torch.manual_seed(5)
    model = dgm.create(
        "flow-matching", shape=(2,), levels=None, low=-3, high=3, hidden=16, coupling="ot"
    )
    model.train()
    loss = model.loss(two_blobs(32, torch.Generator().manual_seed(0)))
    loss.backward()
    assert torch.isfinite(loss) and model.net.head[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["score-sde", "flow-matching"])
def test_discrete_data_get_the_dequantised_bound_and_whole_levels(name):
    torch.manual_seed(6)
    model = dgm.create(
        name, hidden=8, attention=False, dropout=0.0, divergence="hutchinson", rtol=1e-3,
        atol=1e-3,
    )  # fmt: skip
    x = torch.randint(0, 17, (3, 1, 8, 8)).float()
    lp = model.log_prob(x, num_samples=2)
    assert lp.shape == (3,) and torch.isfinite(lp).all()
    note = model.likelihood_note(2)
    assert "lower bound on the discrete log-likelihood" in note and "dequantization" in note
    assert not model.exact_likelihood
    samplers = ("euler-maruyama", "euler") if name == "score-sde" else ("euler", "midpoint")
    for sampler in samplers:
        s = model.sample(4, steps=3, sampler=sampler)
        assert s.shape == (4, 1, 8, 8)
        assert torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16
    model.train()
    loss = model.loss(x)
    loss.backward()
    assert torch.isfinite(loss) and model.metrics(x)["loss"].shape == (3,)


def test_continuous_samples_and_loss_on_two_d_data():
    torch.manual_seed(7)
    for name, opts in CASES.values():
        model = dgm.create(name, shape=(2,), levels=None, low=LOW, high=HIGH, hidden=8, **opts)
        assert model.sample(5, steps=2).shape == (5, 2)
        assert model.metrics(torch.randn(6, 2))["loss"].shape == (6,)


BAD = [
    ("score-sde", {"sde": "sub-vp"}, "sde"),
    ("score-sde", {"sampler": "ddim"}, "sampler"),
    ("score-sde", {"steps": 0}, "steps"),
    ("score-sde", {"rtol": 0}, "rtol"),
    ("score-sde", {"atol": -1e-5}, "atol"),
    ("score-sde", {"snr": 0}, "snr"),
    ("score-sde", {"sigma_max": 0.001}, "sigma"),
    ("score-sde", {"beta_min": 30}, "beta"),
    ("score-sde", {"t_min": 0}, "t_min"),
    ("score-sde", {"divergence": "skilling"}, "divergence"),
    ("flow-matching", {"path": "vp"}, "path"),
    ("flow-matching", {"coupling": "sinkhorn"}, "coupling"),
    ("flow-matching", {"sampler": "pc"}, "sampler"),
    ("flow-matching", {"steps": 0}, "steps"),
    ("flow-matching", {"rtol": -1}, "rtol"),
    ("flow-matching", {"atol": 0}, "atol"),
    ("flow-matching", {"sigma_min": 1.0}, "sigma_min"),
    ("flow-matching", {"solver": "lsoda"}, "solver"),
]


@pytest.mark.parametrize(("name", "options", "word"), BAD)
def test_bad_options_are_one_line_config_errors(name, options, word):
    with pytest.raises(ConfigError) as err:
        dgm.create(name, **options)
    assert "\n" not in str(err.value) and word in str(err.value)


@pytest.mark.parametrize("name", ["score-sde", "flow-matching"])
def test_bad_sampling_calls_are_one_line_config_errors(name):
    model = dgm.create(name, shape=(2,), levels=None, low=LOW, high=HIGH, hidden=8)
    calls = [
        lambda: model.sample(2, sampler="ancestral"),
        lambda: model.sample(2, steps=0),
        lambda: model.log_prob(torch.zeros(2, 2), num_samples=0),
        lambda: model.sample_settings({"sampler": "nope"}),
        lambda: model.sample_settings({"steps": "0"}),
    ]
    if name == "score-sde":
        calls.append(lambda: model.sample(2, snr=0.0))
    hutch = dgm.create(name, shape=(2,), levels=None, hidden=8, divergence="hutchinson")
    calls.append(lambda: hutch.log_prob(torch.zeros(2, 2), num_samples=0))
    for call in calls:
        with pytest.raises(ConfigError) as err:
            call()
        assert "\n" not in str(err.value)


def test_modules_register_both_models():
    assert dgm.registry.get("score-sde").cls is score_sde.ScoreSDE
    assert dgm.registry.get("flow-matching").cls is flow_matching.FlowMatching
