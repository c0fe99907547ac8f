"""DDPM's maths against closed forms: the schedules, the variational bound with the true
denoiser of Gaussian data (whose diffused marginals are Gaussian), the stratified estimator of
the sum over t, the three parameterisations, DDIM against ancestral sampling, learned
variances, the bad input, and the model on digits and 2-D data."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import Tensor, nn

import dgm
from dgm.distributions import discretized_gaussian_log_prob
from dgm.errors import ConfigError
from dgm.models.diffusion import ddpm
from dgm.models.diffusion.ddpm import DDPM, respaced, schedule

M, S, HALF = torch.tensor([1.0, -0.5]), torch.tensor([0.7, 1.5]), 4.0  # data N(M, S^2), [-4, 4]


class TrueDenoiser(nn.Module):
    """The network's signature ``(y, t) -> [B, 1, D]`` with the exact prediction (eps, x0 or v)
    for data N(mu0, sd0^2) in model space: y_t ~ N(sqrt(ab) mu0, ab sd0^2 + 1 - ab), so
    E[y_0 | y_t] = mu0 + sqrt(ab) sd0^2 / (ab sd0^2 + 1 - ab) (y_t - sqrt(ab) mu0)."""

    def __init__(self, betas: Tensor, mu0: Tensor, sd0: Tensor, prediction: str) -> None:
        super().__init__()
        self.ab = torch.cumprod(1 - betas, 0)
        self.mu0, self.sd0, self.prediction = mu0, sd0, prediction
        self.steps: list[Tensor] = []  # the steps asked for, to check the draws of t

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        step = torch.round(t * len(self.ab)).long()
        self.steps.append(step)
        ab = self.ab[step - 1].to(y.dtype)[:, None]
        x0 = self.mu0 + ab.sqrt() * self.sd0**2 / (ab * self.sd0**2 + 1 - ab) * (
            y - ab.sqrt() * self.mu0
        )
        eps = (y - ab.sqrt() * x0) / (1 - ab).sqrt()
        v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
        return {"eps": eps, "x0": x0, "v": v}[self.prediction][:, None]


class Fixed(nn.Module):
    """Returns a given output ``[B, 2, *shape]``, whatever the input."""

    def __init__(self, out: Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        return self.out.to(y.dtype).expand(y.shape[0], *self.out.shape[1:])


def toy_model(dim: int = 2, prediction: str = "eps", **config) -> DDPM:
    """A float64 DDPM on data N(M, S^2) (continuous, range [-4, 4]) with the true denoiser."""
    config = {"timesteps": 1000, **config}
    model = dgm.create(
        "ddpm", shape=(dim,), levels=None, low=-HALF, high=HALF, hidden=8, blocks=1,
        prediction=prediction, **config,
    ).double()  # fmt: skip
    betas = schedule(model.config.schedule, model.config.timesteps)
    model.net = TrueDenoiser(
        betas, (M[:dim] / HALF).double(), (S[:dim] / HALF).double(), prediction
    )
    return model


def toy_data(n: int, dim: int = 2, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (M[:dim] + S[:dim] * torch.randn(n, dim, generator=g)).double()


def expected_bound(x: Tensor, betas: Tensor) -> Tensor:
    """E_q of DDPM's bound (posterior variances, the true denoiser) per example, in closed form,
    from the betas alone: with g = sqrt(ab) sd0^2 / (ab sd0^2 + 1 - ab) the error of the true
    y_0 prediction at y_t = sqrt(ab) y_0 + sqrt(1 - ab) e is (1 - g sqrt(ab)) (y_0 - mu0) -
    g sqrt(1 - ab) e, of mean square r_t; the mean of step t is off by c1_t times it, so
    L_{t-1} = c1_t^2 r_t / (2 bt_t) per dimension; L_0 is the Gaussian decoder's -E log N(y_0;
    E[y_0 | y_1], bt_2) and L_T the KL of N(sqrt(ab_T) y_0, 1 - ab_T) from N(0, 1)."""
    d = x.shape[1]
    mu0, sd0, y0 = M[:d].double() / HALF, S[:d].double() / HALF, x / HALF
    ab = torch.cumprod(1 - betas, 0)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    post = betas * (1 - ab_prev) / (1 - ab)
    c1 = ab_prev.sqrt() * betas / (1 - ab)
    a = ab[:, None, None]
    g = a.sqrt() * sd0**2 / (a * sd0**2 + 1 - a)
    r = (1 - g * a.sqrt()) ** 2 * (y0 - mu0) ** 2 + g**2 * (1 - a)  # [T, B, D]
    kls = (0.5 * (c1**2 / post.clamp(min=1e-300))[:, None, None] * r)[1:].sum((0, 2))
    decoder = (-0.5 * (r[0] / post[1] + post[1].log() + math.log(2 * math.pi))).sum(1)
    prior = 0.5 * (ab[-1] * y0**2 + (1 - ab[-1]) - 1 - torch.log1p(-ab[-1])).sum(1)
    return decoder - prior - kls - d * math.log(HALF)


def true_log_prob(x: Tensor) -> Tensor:
    d = x.shape[1]
    return torch.distributions.Normal(M[:d].double(), S[:d].double()).log_prob(x).sum(1)


# -- schedules -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("timesteps", [2, 5, 10, 50, 1000, 4000])
def test_schedules_are_monotone_in_the_unit_interval(name, timesteps):
    betas = schedule(name, timesteps)
    ab = torch.cumprod(1 - betas, 0)
    assert betas.shape == (timesteps,)
    assert bool(((betas > 0) & (betas < 1)).all())
    assert bool(((ab > 0) & (ab < 1)).all())
    assert bool((ab[1:] < ab[:-1]).all())


def test_schedules_match_the_papers():
    # Ho et al.: 1e-4 .. 0.02 over 1000 steps; other T scale by 1000 / T (Nichol & Dhariwal)
    torch.testing.assert_close(
        schedule("linear", 1000), torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    )
    torch.testing.assert_close(
        schedule("linear", 4000)[[0, -1]], torch.tensor([2.5e-5, 0.005], dtype=torch.float64)
    )
    # cosine: ab_t = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) pi / 2), up to the clip
    for timesteps in (50, 1000):
        betas = schedule("cosine", timesteps)
        t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        unclipped = int((betas < 0.999).sum())
        assert unclipped >= timesteps - 1 and betas.max() <= 0.999
        ab = torch.cumprod(1 - betas, 0)
        torch.testing.assert_close(ab[:unclipped], (f[1:] / f[0])[:unclipped])


def test_respacing_keeps_the_ends_and_alpha_bar():
    assert respaced(1000, 1000).tolist() == list(range(1, 1001))
    steps = respaced(1000, 50)
    assert steps[0] == 1 and steps[-1] == 1000 and bool((steps[1:] > steps[:-1]).all())
    assert respaced(1000, 1).tolist() == [1000]
    model = toy_model()
    full, short = model.chain(), model.chain(50)
    torch.testing.assert_close(short.ab, full.ab[steps - 1])
    # the respaced betas follow from ab: 1 - ab_i / ab_{i-1}, and the posterior's variance
    beta = 1 - short.ab / short.ab_prev
    torch.testing.assert_close(short.post_var, beta * (1 - short.ab_prev) / (1 - short.ab))


# -- the bound ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_bound_with_the_true_denoiser_is_below_the_true_log_density(name):
    """The closed-form expectation of the bound is <= log N(x; M, S^2) for every example and
    within a few nats of it; the model's full sum (K = T - 1) estimates it without bias."""
    torch.manual_seed(0)
    model, x = toy_model(schedule=name), toy_data(200)
    expected = expected_bound(x, schedule(name, 1000))
    gap = true_log_prob(x) - expected
    assert bool((gap > 0).all()) and float(gap.max()) < 3.0
    est = torch.stack([model.log_prob(x, num_samples=999) for _ in range(5)])  # [5, B]
    err = (est - expected).flatten()
    assert abs(float(err.mean())) < 4 * float(err.std()) / math.sqrt(err.numel())
    assert float(est.mean()) < float(true_log_prob(x).mean())


def test_stratified_draws_estimate_the_sum_without_bias():
    """Means of K = 8 systematic draws of t agree with the closed-form expectation of the full
    sum (within 4 standard errors of the mean), and so with the full sum's estimates."""
    torch.manual_seed(1)
    model, x = toy_model(), toy_data(100)
    expected = expected_bound(x, schedule("linear", 1000))
    est = torch.stack([model.log_prob(x, num_samples=8) for _ in range(100)])  # [100, B]
    err = (est - expected).flatten()
    sem = float(err.std()) / math.sqrt(err.numel())
    assert abs(float(err.mean())) < 4 * sem
    # the K = 8 estimates are noisier than the full sum's, and the full sum is their mean
    full = torch.stack([model.log_prob(x, num_samples=999) for _ in range(4)])
    assert float((full - expected).std()) < float(err.std())


def test_draws_of_t_are_systematic_and_k_equal_t_minus_one_takes_every_term_once():
    model, x = toy_model(timesteps=50), toy_data(3)
    net = model.net
    for k, want in ((49, None), (7, 7), (98, None)):
        net.steps.clear()
        model.log_prob(x, num_samples=k)
        # the first call is the decoder's (t = 1 for each example), then the sum's chunks
        assert net.steps[0].tolist() == [1, 1, 1]
        drawn = torch.cat(net.steps[1:]).view(3, k)  # example-major rows
        for row in drawn:
            counts = torch.bincount(row, minlength=51)[2:]
            assert int(row.min()) >= 2 and int(row.max()) <= 50
            if want is None:  # K a multiple of T - 1: each t exactly K / (T - 1) times
                assert bool((counts == k // 49).all())
            else:  # one draw in each of K equal strata of 2..T
                strata = ((row - 2).double() * k / 49).floor().long()
                assert sorted(strata.tolist()) == list(range(k))


def test_the_three_predictions_give_the_same_bound():
    x = toy_data(16)
    bounds = []
    for prediction in ("eps", "x0", "v"):
        model = toy_model(prediction=prediction, timesteps=200)
        torch.manual_seed(3)
        bounds.append(model.log_prob(x, num_samples=50))
    torch.testing.assert_close(bounds[1], bounds[0], rtol=1e-9, atol=1e-8)
    torch.testing.assert_close(bounds[2], bounds[0], rtol=1e-9, atol=1e-8)


def test_predictions_convert_to_x0_and_eps_and_back():
    model = toy_model(timesteps=50)
    y0, eps = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    ab = model.chain().ab[torch.tensor([0, 5, 10, 20, 40, 49])][:, None]
    y = ab.sqrt() * y0 + (1 - ab).sqrt() * eps
    for prediction in ("eps", "x0", "v"):
        model.config.prediction = prediction
        target = model.target(y0, eps, ab.sqrt(), (1 - ab).sqrt())
        x0_hat, eps_hat = model.x0_eps(target, y, ab.sqrt(), (1 - ab).sqrt())
        torch.testing.assert_close(x0_hat, y0)
        torch.testing.assert_close(eps_hat, eps)


def test_the_sum_over_t_is_scaled_by_t_minus_one_over_k(monkeypatch):
    """With each term replaced by its step t, K = T - 1 gives exactly sum_{t=2}^T t, and a
    constant term c gives (T - 1) c for every K (systematic draws: one per stratum)."""
    model, x, big_t = toy_model(timesteps=50), toy_data(4), 50

    def steps_as_terms(self, y0, y, ch, i, mean, log_var):
        return ch.t[i].to(y0.dtype)

    monkeypatch.setattr(DDPM, "kl_terms", steps_as_terms)
    torch.manual_seed(0)
    full = model.log_prob(x, num_samples=big_t - 1)
    monkeypatch.setattr(DDPM, "kl_terms", lambda self, y0, *args: torch.full_like(y0[:, 0], 2.0))
    for k in (1, 7, 49, 60):
        torch.manual_seed(0)
        const = model.log_prob(x, num_samples=k)
        torch.testing.assert_close(
            full - const, torch.full_like(full, -(big_t * (big_t + 1) / 2 - 1) + 2 * (big_t - 1))
        )
    # with no decoder and no sum, what is left is L_T = KL(N(sqrt(ab_T) y_0, 1 - ab_T) || N(0, 1))
    monkeypatch.setattr(DDPM, "kl_terms", lambda self, y0, *args: torch.zeros_like(y0[:, 0]))
    monkeypatch.setattr(DDPM, "decoder_log_prob", lambda self, x, *args: torch.zeros_like(x[:, 0]))
    ab_t, y0 = torch.cumprod(1 - schedule("linear", big_t), 0)[-1], x / HALF
    kl = 0.5 * (ab_t * y0**2 + (1 - ab_t) - 1 - torch.log(1 - ab_t)).sum(1)
    torch.testing.assert_close(model.log_prob(x), -kl - 2 * math.log(HALF), rtol=0, atol=1e-12)


# -- sampling ----------------------------------------------------------------------------------
def test_ddim_with_eta_one_is_the_ancestral_sampler():
    """Same noise, same draws (eq. 12 with sigma^2 = bt is the posterior's mean and variance),
    with all steps and respaced; with other noise the two agree in distribution (KS)."""
    model = toy_model(dim=1)
    for steps in (1000, 40):
        torch.manual_seed(0)
        a = model.sample(500, steps=steps)
        torch.manual_seed(0)
        b = model.sample(500, steps=steps, sampler="ddim", eta=1.0)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    torch.manual_seed(1)
    b = model.sample(2000, sampler="ddim", eta=1.0)
    torch.manual_seed(2)
    a = model.sample(2000)
    assert stats.ks_2samp(a[:, 0].numpy(), b[:, 0].numpy()).pvalue > 0.01


@pytest.mark.parametrize("sampler,eta", [("ancestral", 0.0), ("ddim", 1.0), ("ddim", 0.0)])
def test_samplers_with_the_true_denoiser_draw_the_data_distribution(sampler, eta):
    model, n = toy_model(dim=1), 2000
    torch.manual_seed(4)
    z = model.sample(n, sampler=sampler, eta=eta)[:, 0]
    m, s = float(M[0]), float(S[0])
    assert abs(float(z.mean()) - m) < 4 * s / math.sqrt(n)
    assert abs(float(z.std()) / s - 1) < 0.05
    assert stats.kstest(z.numpy(), stats.norm(m, s).cdf).pvalue > 0.01


def test_ddim_step_is_song_et_al_eq_12():
    """Two respaced steps (t = T, then t = 1) with a network that always predicts the same
    eps, against eq. 12 by hand: y_1 = sqrt(ab_1) x0 + sqrt(1 - ab_1 - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - ab_1) / (1 - ab_T)) sqrt(1 - ab_T / ab_1); then the decoder's mean."""
    model = toy_model(dim=2, timesteps=100)
    e = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    model.net = Fixed(e[:, None])
    ab = torch.cumprod(1 - schedule("linear", 100), 0)
    for eta, temperature in ((0.5, 1.0), (0.0, 1.0), (2.0, 0.7), (1.0, 0.5)):
        torch.manual_seed(0)
        got = model.sample(3, temperature=temperature, steps=2, sampler="ddim", eta=eta)
        torch.manual_seed(0)
        y = temperature * torch.randn(3, 2).double()
        z = temperature * torch.randn(3, 2).double()
        a_t, a_s = ab[-1], ab[0]
        x0 = (y - (1 - a_t).sqrt() * e) / a_t.sqrt()
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()
        y = a_s.sqrt() * x0 + (1 - a_s - sigma**2).clamp(min=0).sqrt() * e + sigma * z
        want = (y - (1 - a_s).sqrt() * e) / a_s.sqrt() * HALF  # the last step: x0, to data
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)  # prior noise: float32


def test_temperature_zero_is_deterministic_and_the_last_step_is_noise_free():
    model = toy_model(dim=1, timesteps=100)
    torch.manual_seed(0)
    a = model.sample(3, temperature=0.0)
    torch.manual_seed(1)
    b = model.sample(3, temperature=0.0)
    torch.testing.assert_close(a, b)
    # from y_T = 0 the true means lead to the data's mean (Gaussian data: the chain is linear)
    assert float((a - M[0]).abs().max()) < 0.05


def test_discrete_data_decoder_and_clipping_by_hand(monkeypatch):
    """On levels the y_0 prediction is clipped to [-1, 1] and eps recomputed from it (DDIM), and
    L_0 is the discretised Gaussian at the decoder's mean with variance bt_2 (bt_1 = 0)."""
    levels, big_t = 5, 10
    model = dgm.create("ddpm", shape=(1, 2, 2), levels=levels, timesteps=big_t, hidden=8).double()
    e = torch.tensor([2.0, -0.5, 0.1, -3.0], dtype=torch.float64).view(1, 1, 1, 2, 2)
    model.net = Fixed(e)
    ab = torch.cumprod(1 - schedule("linear", big_t), 0)
    post2 = (1 - ab[1] / ab[0]) * (1 - ab[0]) / (1 - ab[1])
    x = torch.tensor([[[[0.0, 4.0], [2.0, 1.0]]], [[[4.0, 4.0], [0.0, 3.0]]]], dtype=torch.float64)
    monkeypatch.setattr(DDPM, "kl_terms", lambda self, y0, *args: torch.zeros_like(y0[:, 0, 0, 0]))
    torch.manual_seed(0)
    got = model.log_prob(x)
    torch.manual_seed(0)
    y0 = (2 * x + 1) / levels - 1
    y1 = ab[0].sqrt() * y0 + (1 - ab[0]).sqrt() * torch.randn_like(y0)
    mean = ((y1 - (1 - ab[0]).sqrt() * e[:, 0]) / ab[0].sqrt()).clamp(-1, 1)
    decoder = discretized_gaussian_log_prob(x, mean, 0.5 * post2.log(), levels).sum((1, 2, 3))
    prior = 0.5 * (ab[-1] * y0**2 + (1 - ab[-1]) - 1 - torch.log1p(-ab[-1])).sum((1, 2, 3))
    torch.testing.assert_close(got, decoder - prior)
    # DDIM, eta 0, two steps: x0 clipped, eps = (y - sqrt(ab) x0) / sqrt(1 - ab)
    torch.manual_seed(0)
    got = model.sample(3, steps=2, sampler="ddim")
    torch.manual_seed(0)
    y = torch.randn(3, 1, 2, 2).double()
    x0 = ((y - (1 - ab[-1]).sqrt() * e[:, 0]) / ab[-1].sqrt()).clamp(-1, 1)
    eps = (y - ab[-1].sqrt() * x0) / (1 - ab[-1]).sqrt()
    y = ab[0].sqrt() * x0 + (1 - ab[0]).sqrt() * eps
    x0 = ((y - (1 - ab[0]).sqrt() * e[:, 0]) / ab[0].sqrt()).clamp(-1, 1)
    torch.testing.assert_close(got, torch.floor((x0 + 1) * levels / 2).clamp(0, levels - 1))
    # the step's predictions themselves: y_0 clipped, eps consistent with it
    i = torch.full((3,), big_t - 1)
    x0, eps, _ = model.predict(y, model.chain(), i)
    assert float(x0.abs().max()) == 1.0
    torch.testing.assert_close(eps, (y - ab[-1].sqrt() * x0) / (1 - ab[-1]).sqrt())


# -- learned variances -------------------------------------------------------------------------
def test_learned_variance_interpolates_between_posterior_variance_and_beta():
    model = dgm.create(
        "ddpm", shape=(3,), levels=None, learned_variance=True, timesteps=100, hidden=8
    ).double()
    assert model.net(
        torch.zeros(4, 3, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    ).shape == (4, 2, 3)
    ch, y = model.chain(), torch.randn(5, 3, dtype=torch.float64)
    i = torch.tensor([0, 1, 10, 50, 99])
    raw = torch.tensor([[-1e3, 0.0, 1e3]], dtype=torch.float64)  # v = 0, 1/2, 1
    model.net = Fixed(torch.stack([torch.zeros_like(raw), raw], 1))
    _, _, log_var = model.predict(y, ch, i)
    lo, hi = ch.log_post_var[i], ch.log_beta[i]
    assert bool((lo < hi).all())
    torch.testing.assert_close(log_var[:, 0], lo)
    torch.testing.assert_close(log_var[:, 1], (lo + hi) / 2)
    torch.testing.assert_close(log_var[:, 2], hi)
    model.net = Fixed(torch.stack([torch.zeros(1, 3), 10 * torch.randn(1, 3)], 1))
    _, _, log_var = model.predict(y, ch, i)
    assert bool(((log_var >= lo[:, None]) & (log_var <= hi[:, None])).all())


@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 17), ((2,), None)])
def test_hybrid_loss_trains_every_parameter_and_stops_the_means_gradient(
    shape, levels, monkeypatch
):
    model = dgm.create(
        "ddpm", shape=shape, levels=levels, learned_variance=True, timesteps=20, hidden=8,
        dropout=0.0,
    ).train()  # fmt: skip
    x = torch.randint(0, 17, (32, *shape)).float() if levels else torch.randn(32, *shape) * 4

    def grads(weight: float) -> dict[str, Tensor]:
        monkeypatch.setattr(ddpm, "VLB_WEIGHT", weight)
        model.zero_grad()
        torch.manual_seed(5)
        loss = model.loss(x)
        assert torch.isfinite(loss)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    hybrid, simple = grads(1e-3), grads(0.0)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(hybrid) == sorted(names)
    assert all(torch.isfinite(g).all() for g in hybrid.values())
    # the head's rows: the prediction's first, then the variance's (outputs 2 per dimension)
    head = [n for n in names if n.startswith("net.head")][-2]  # the last layer's weight
    rows = hybrid[head].shape[0] // 2
    torch.testing.assert_close(hybrid[head][:rows], simple[head][:rows])  # L_vlb: no mean grad
    assert float(simple[head][rows:].abs().max()) == 0.0  # L_simple: no variance grad
    assert float(hybrid[head][rows:].abs().max()) > 0.0


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config,words",
    [
        ({"schedule": "quadratic"}, "unknown schedule 'quadratic'"),
        ({"prediction": "score"}, "unknown prediction 'score'"),
        ({"sampler": "euler"}, "unknown sampler 'euler'"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"steps": 30, "timesteps": 20}, "steps must be <= timesteps (20)"),
        ({"timesteps": 1}, "timesteps must be >= 2"),
        ({"eta": -0.5}, "eta must be a number >= 0"),
    ],
)
def test_bad_config_is_one_line(config, words):
    with pytest.raises(ConfigError) as e:
        dgm.create("ddpm", **config)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"sampler": "euler"}, "unknown sampler 'euler'"),
        ({"steps": 0}, "steps must be a whole number >= 1"),
        ({"steps": 21}, "steps must be <= timesteps (20)"),
        ({"eta": -1.0}, "eta must be a number >= 0"),
    ],
)
def test_bad_sampling_options_are_one_line(kwargs, words):
    model = dgm.create("ddpm", hidden=8, timesteps=20)
    with pytest.raises(ConfigError) as e:
        model.sample(2, **kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert model.sample_settings({"steps": "5", "eta": "0.5"}) == {"steps": 5, "eta": 0.5}
    with pytest.raises(ConfigError, match="eta must be"):
        model.sample_settings({"eta": "-1"})


# -- the model on data -----------------------------------------------------------------------
def test_digits_shapes_loss_bound_and_whole_level_samples(digits):
    torch.manual_seed(0)
    model = DDPM.for_data(digits.spec, hidden=8, timesteps=20)
    x = digits.train.x[:16]
    assert model.default_eval_samples == 19 and not model.exact_likelihood
    note = model.likelihood_note(19)
    assert "upper bound" in note and "discretized Gaussian" in note and "K = 19 " in note
    lp = model.log_prob(x, num_samples=19)
    assert lp.shape == (16,) and bool(torch.isfinite(lp).all()) and bool((lp < 0).all())
    model.train()
    assert torch.isfinite(model.loss((x, None)))
    m = model.metrics((x, None))
    assert set(m) >= {"nll", "loss"} and m["nll"].shape == (16,) and m["loss"].shape == (16,)
    for sampler in ("ancestral", "ddim"):
        s = model.sample(6, steps=5, sampler=sampler)
        assert s.shape == (6, 1, 8, 8) and bool((s == s.round()).all())
        assert float(s.min()) >= 0 and float(s.max()) <= 16


def test_two_moons_shapes_and_finite_bound():
    from dgm.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("two-moons")
    model = DDPM.for_data(data.spec, hidden=16, blocks=1, timesteps=20, learned_variance=True)
    x = data.train.x[:32]
    lp = model.log_prob(x, num_samples=5)
    assert lp.shape == (32,) and bool(torch.isfinite(lp).all())
    assert "Gaussian decoder" in model.likelihood_note(5)
    model.train()
    assert torch.isfinite(model.loss(x))
    s = model.sample(8, steps=10, sampler="ddim")
    assert s.shape == (8, 2) and bool(torch.isfinite(s).all())
