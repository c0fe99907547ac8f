"""The likelihoods' maths: normalised, consistent, sampled correctly, stable at the extremes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import dgm
from dgm.distributions import Bernoulli, Categorical, make_likelihood
from dgm.distributions.logistic import DiscretizedLogisticMixture
from dgm.errors import ConfigError

# (name, levels, mixtures): every likelihood and the level counts that stress it
CASES = [
    ("bernoulli", 2, 1),
    ("categorical", 2, 1),
    ("categorical", 17, 1),
    ("categorical", 256, 1),
    ("logistic-mixture", 2, 1),
    ("logistic-mixture", 2, 5),
    ("logistic-mixture", 17, 1),
    ("logistic-mixture", 17, 5),
    ("logistic-mixture", 256, 1),
    ("logistic-mixture", 256, 5),
]
IDS = [f"{n}-K{k}-M{m}" for n, k, m in CASES]


def random_params(lik, batch: int, event: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Float64 params ``[B, P, *event]`` that put mass on many levels, not just one."""
    p = torch.randn(batch, lik.params_per_dim, *event, generator=gen, dtype=torch.float64)
    if isinstance(lik, DiscretizedLogisticMixture):
        m = lik.mixtures
        p[:, :m] *= 2.0  # mixture logits: some components dominate, some do not
        p[:, m : 2 * m] = 1.2 * torch.rand(batch, m, *event, generator=gen) * 2 - 1.2  # means
        p[:, 2 * m :] = p[:, 2 * m :] - 2.0  # log-scales around e^-2, some under the -7 clamp
    else:
        p *= 2.0
    return p


def per_level_probs(lik, params: torch.Tensor) -> torch.Tensor:
    """``[K, B, *event]``: p(x_d = k) for every level k, from ``log_prob_per_dim``."""
    shape = (params.shape[0], *params.shape[2:])
    levels = [torch.full(shape, float(k), dtype=params.dtype) for k in range(lik.levels)]
    return torch.stack([lik.log_prob_per_dim(params, x) for x in levels]).exp()


@pytest.mark.parametrize(("name", "levels", "mixtures"), CASES, ids=IDS)
def test_probabilities_over_all_levels_sum_to_one(name, levels, mixtures):
    gen = torch.Generator().manual_seed(levels + mixtures)
    lik = make_likelihood(name, levels, mixtures)
    params = random_params(lik, 3, (2, 4), gen)
    total = per_level_probs(lik, params).sum(0)
    assert total.dtype == torch.float64 and total.shape == (3, 2, 4)
    assert torch.allclose(total, torch.ones_like(total), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("name", "levels", "mixtures"), CASES, ids=IDS)
def test_log_prob_is_the_sum_of_the_per_dimension_terms(name, levels, mixtures):
    gen = torch.Generator().manual_seed(1)
    lik = make_likelihood(name, levels, mixtures)
    params = random_params(lik, 5, (3, 2), gen)
    x = torch.randint(0, levels, (5, 3, 2), generator=gen).double()
    per_dim = lik.log_prob_per_dim(params, x)
    assert per_dim.shape == (5, 3, 2) and (per_dim <= 0).all()
    lp = lik.log_prob(params, x)
    assert lp.shape == (5,)
    assert torch.allclose(lp, per_dim.flatten(1).sum(1), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("name", "levels", "mixtures"), CASES, ids=IDS)
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.0])
def test_samples_are_levels_with_the_right_shape(name, levels, mixtures, temperature):
    gen = torch.Generator().manual_seed(2)
    lik = make_likelihood(name, levels, mixtures)
    params = random_params(lik, 4, (1, 3, 5), gen)
    for p in (params, params.float()):
        s = lik.sample(p, temperature=temperature)
        assert s.shape == (4, 1, 3, 5) and s.is_floating_point()
        assert s.min() >= 0 and s.max() <= levels - 1 and torch.equal(s, s.round())


@pytest.mark.parametrize(("name", "levels", "mixtures"), CASES, ids=IDS)
def test_sample_histogram_matches_the_probabilities(name, levels, mixtures):
    """20k draws of one dimension: every level's frequency within 5 standard errors."""
    n = 20_000
    gen = torch.Generator().manual_seed(3)
    lik = make_likelihood(name, levels, mixtures)
    one = random_params(lik, 1, (1,), gen)  # [1, P, 1]
    probs = per_level_probs(lik, one)[:, 0, 0]  # [K]
    torch.manual_seed(4)
    s = lik.sample(one.expand(n, -1, -1))  # [n, 1]
    freq = torch.bincount(s[:, 0].long(), minlength=levels).double() / n
    # binomial standard error, plus a few counts of slack for levels of tiny probability
    tol = 5 * (probs * (1 - probs) / n).sqrt() + 3 / n
    assert ((freq - probs).abs() <= tol).all(), (freq - probs).abs().max()
    # and a chi-square over the levels expected at least 5 times (df = bins - 1)
    keep = probs * n >= 5
    chi2 = ((freq[keep] - probs[keep]) ** 2 / probs[keep]).sum() * n
    df = int(keep.sum()) - 1
    assert chi2 < df + 5 * math.sqrt(2 * max(df, 1)), (chi2, df)


def test_temperature_zero_takes_the_most_likely_level():
    gen = torch.Generator().manual_seed(5)
    cat = Categorical(7)
    logits = torch.randn(6, 7, 4, generator=gen, dtype=torch.float64)
    assert torch.equal(cat.sample(logits, temperature=0), logits.argmax(1).float())
    probs = per_level_probs(cat, logits)  # [K, B, D]
    assert torch.equal(cat.sample(logits, temperature=0), probs.argmax(0).float())

    bern = Bernoulli()
    logits = torch.randn(6, 1, 4, generator=gen, dtype=torch.float64)
    probs = per_level_probs(bern, logits)
    assert torch.equal(bern.sample(logits, temperature=0), probs.argmax(0).to(logits.dtype))


def test_logistic_temperature_zero_takes_the_mode_of_the_strongest_component():
    lik = DiscretizedLogisticMixture(levels=17, mixtures=3)
    # component 1 dominates with its mean at level 12 (+ a bit, to check the rounding)
    logits = torch.tensor([0.0, 5.0, 1.0])
    means = torch.tensor([-0.9, 12 / 8 - 1 + 0.04, 0.9])
    params = torch.cat([logits, means, torch.full((3,), -3.0)]).view(1, 9, 1).double()
    assert lik.sample(params, temperature=0).item() == 12.0
    # a mean outside [-1, 1] is the edge level
    params[0, 4] = 3.0
    assert lik.sample(params, temperature=0).item() == 16.0
    # a very low temperature concentrates the draws at the same place
    params[0, 4] = 12 / 8 - 1 + 0.04
    s = lik.sample(params.expand(200, -1, -1), temperature=1e-3)
    assert (s == 12.0).all()


def test_logistic_mixture_matches_the_direct_formula():
    """An independent evaluation: mixture of sigmoid differences, tails at the edges."""
    levels, m = 9, 2
    lik = DiscretizedLogisticMixture(levels, m)
    params = torch.tensor([0.3, -0.4, -0.2, 0.5, -1.5, -2.5], dtype=torch.float64).view(1, 6, 1)
    pi = torch.softmax(params[0, :2, 0], 0)
    mu, s = params[0, 2:4, 0], params[0, 4:, 0].exp()
    for k in range(levels):
        c, h = 2 * k / (levels - 1) - 1, 1 / (levels - 1)
        upper = torch.sigmoid((c + h - mu) / s) if k < levels - 1 else torch.ones(2)
        lower = torch.sigmoid((c - h - mu) / s) if k > 0 else torch.zeros(2)
        expected = (pi * (upper - lower)).sum()
        got = lik.log_prob_per_dim(params, torch.full((1, 1), float(k))).exp()
        assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_make_likelihood_picks_and_refuses():
    assert isinstance(make_likelihood("auto", 2), Bernoulli)
    assert isinstance(make_likelihood("auto", 17), Categorical)
    assert make_likelihood("categorical", 2).params_per_dim == 2
    lik = make_likelihood("logistic-mixture", 256, mixtures=4)
    assert isinstance(lik, DiscretizedLogisticMixture)
    assert lik.levels == 256 and lik.params_per_dim == 12
    with pytest.raises(ConfigError, match="unknown likelihood"):
        make_likelihood("gaussian", 17)
    with pytest.raises(ConfigError, match="binary"):
        make_likelihood("bernoulli", 17)
    with pytest.raises(ConfigError):
        make_likelihood("logistic-mixture", 17, mixtures=0)
    with pytest.raises(ConfigError):
        make_likelihood("logistic-mixture", 1)


def extreme_logistic_params(mixtures: int, dtype: torch.dtype) -> torch.Tensor:
    """Huge and tiny means, scales far below the clamp and far above 1, huge logits."""
    m = mixtures
    rows = [
        # logits           means                  log-scales
        [[0.0] * m, [1e6] * m, [-50.0] * m],
        [[0.0] * m, [-1e6] * m, [-50.0] * m],
        [[80.0] + [-80.0] * (m - 1), [0.3] * m, [-50.0] * m],
        [[0.0] * m, [0.0] * m, [60.0] * m],  # scale e^60: everything in the tails
        [[0.0] * m, [0.5] * m, [1e3] * m],  # 1 / scale underflows to 0, in float64 too
        [[1e4] * m, [2.0] * m, [-7.0] * m],
    ]
    return torch.tensor([[v for part in r for v in part] for r in rows], dtype=dtype).unsqueeze(
        -1
    )  # [6, 3M, 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("levels", "mixtures"), [(2, 1), (17, 5), (256, 5)])
def test_logistic_gradients_are_finite_at_extreme_params(dtype, levels, mixtures):
    lik = DiscretizedLogisticMixture(levels, mixtures)
    params = extreme_logistic_params(mixtures, dtype).requires_grad_()
    for k in {0, 1, levels // 2, levels - 2, levels - 1}:
        x = torch.full((params.shape[0], 1), float(k), dtype=dtype)
        lp = lik.log_prob(params, x)
        assert not torch.isnan(lp).any() and (lp <= 0).all()
        (grad,) = torch.autograd.grad(lp.sum(), params)
        assert torch.isfinite(grad).all(), (k, grad)
    # probabilities still sum to one there (in float64)
    if dtype == torch.float64:
        total = per_level_probs(lik, params.detach()).sum(0)
        assert torch.allclose(total, torch.ones_like(total), rtol=0, atol=1e-9)


def test_logistic_tails_stay_accurate_where_the_cdf_difference_cancels():
    """A bin many scales away from the mean: log p ~ -|x - mu| / s, not -inf or log(0)."""
    lik = DiscretizedLogisticMixture(levels=256, mixtures=1)
    params = torch.tensor([0.0, -0.5, -6.0], dtype=torch.float32).view(1, 3, 1)
    lp = lik.log_prob_per_dim(params, torch.full((1, 1), 250.0))  # interior bin, c ~ 0.96
    c, h, s = 2 * 250 / 255 - 1, 1 / 255, math.exp(-6.0)
    # sigma(b) - sigma(a) ~ e^-a - e^-b when a, b >> 0
    a, b = (c - h + 0.5) / s, (c + h + 0.5) / s
    expected = -a + math.log1p(-math.exp(a - b))
    assert math.isfinite(lp.item()) and lp.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("name", "levels"), [("bernoulli", 2), ("categorical", 17)])
def test_other_likelihoods_have_finite_gradients_at_extreme_params(name, levels):
    lik = make_likelihood(name, levels)
    params = torch.full((2, lik.params_per_dim, 3), 1e4, dtype=torch.float32)
    params[1] = -1e4
    params[:, 0] = -1e4 if name == "categorical" else 1e4
    params.requires_grad_()
    x = torch.zeros(2, 3)
    lp = lik.log_prob(params, x)
    (grad,) = torch.autograd.grad(lp.sum(), params)
    assert not torch.isnan(lp).any() and torch.isfinite(grad).all()


@pytest.mark.parametrize(
    ("name", "levels"),
    [("bernoulli", 2), ("categorical", 17)] + [("logistic-mixture", k) for k in (2, 17, 256)],
)
def test_bfloat16_autocast_params_give_finite_log_prob(name, levels):
    torch.manual_seed(6)
    lik = make_likelihood(name, levels, 5)
    head = torch.nn.Conv1d(4, lik.params_per_dim, 1)  # a float32 network's output layer
    h = 3 * torch.randn(8, 4, 10)
    x = torch.randint(0, levels, (8, 10)).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        params = head(h)
        assert params.dtype == torch.bfloat16
        lp = lik.log_prob(params, x)
        s = lik.sample(params)
    assert lp.dtype == torch.float32 and torch.isfinite(lp).all()
    lp.sum().backward()
    assert torch.isfinite(head.weight.grad).all()
    assert s.shape == (8, 10) and s.min() >= 0 and s.max() <= levels - 1


def test_arm_with_logistic_mixture_sums_to_one_over_its_support():
    """Enumerate every x in {0..3}^3 under an ARM whose conditionals are logistic mixtures."""
    torch.manual_seed(0)
    model = dgm.create(
        "arm",
        shape=(3,),
        levels=4,
        hidden=8,
        layers=3,
        kernel_size=3,
        likelihood="logistic-mixture",
        mixtures=3,
    )
    model = model.double().eval()
    assert isinstance(model.likelihood, DiscretizedLogisticMixture)
    xs = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64)
    total = model.log_prob(xs).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)
    # and the model trains and samples with it
    model = model.float().train()
    loss = model.loss((xs.float(), None))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    s = model.eval().sample(5)
    assert s.shape == (5, 3) and s.min() >= 0 and s.max() <= 3 and torch.equal(s, s.round())
