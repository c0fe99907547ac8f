"""AIS for decoder-based models (Wu et al. 2017) against a linear-Gaussian model, where
p(x) = N(b, W W^T + sigma^2 I) is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from dgm.errors import ConfigError, DataError
from dgm.evaluation.ais import (
    ais,
    ais_log_prob,
    beta_schedule,
    pick_sigma,
    reverse_ais,
    sigma_scores,
)
from dgm.models.capabilities import ImplicitGenerator
from tests.device_guard import DeviceGuard

F64 = torch.float64
K, D = 2, 5


class Linear:
    """g(z) = W z + b with its exact marginal and posterior."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(D, K, generator=g, dtype=F64)  # [D, K]
        self.b = torch.randn(D, generator=g, dtype=F64)  # [D]
        self.calls: list[int] = []

    def __call__(self, z: Tensor) -> Tensor:
        self.calls.append(z.shape[0])
        return z @ self.W.T + self.b

    def log_prob(self, x: Tensor, sigma: float) -> Tensor:
        cov = self.W @ self.W.T + sigma**2 * torch.eye(D, dtype=F64)
        return MultivariateNormal(self.b, cov).log_prob(x)

    def data(self, z: Tensor, sigma: float, seed: int = 1) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return z @ self.W.T + self.b + sigma * torch.randn(z.shape[0], D, generator=g, dtype=F64)


def circle(radius: float, n: int, phase: float = 0.3) -> Tensor:
    t = phase + 2 * math.pi * torch.arange(n, dtype=F64) / n
    return radius * torch.stack([t.cos(), t.sin()], -1)  # [n, 2]


def test_schedules_run_from_exactly_zero_to_exactly_one() -> None:
    for kind in ("sigmoid", "linear"):
        for steps in (1, 2, 7, 1000):
            b = beta_schedule(steps, kind)
            assert b.shape == (steps + 1,) and b.dtype == F64
            assert b[0].item() == 0.0 and b[-1].item() == 1.0
            assert (b.diff() > 0).all()
    sig, lin = beta_schedule(100, "sigmoid"), beta_schedule(100, "linear")
    assert torch.allclose(lin.diff(), torch.full((100,), 0.01, dtype=F64))
    # sigmoid: small steps at both ends, the largest in the middle, symmetric about 1/2
    d = sig.diff()
    assert d[0] < 0.1 * d[50] and d[-1] < 0.1 * d[50]
    assert torch.allclose(sig + sig.flip(0), torch.ones(101, dtype=F64))
    with pytest.raises(ConfigError, match="schedule"):
        beta_schedule(10, "cosine")
    with pytest.raises(ConfigError, match="steps"):
        beta_schedule(0)


def test_ais_matches_the_closed_form_likelihood() -> None:
    g, sigma = Linear(0), 0.5
    x = g.data(circle(1.0, 6), sigma)  # [6, 5]
    true = g.log_prob(x, sigma)
    res = ais(g, x, K, sigma, steps=500, chains=128, seed=0)
    err = res.log_prob - true
    assert err.abs().max() < 0.1 and err.abs().mean() < 0.05, err
    assert res.log_prob.shape == (6,) and res.log_weights.shape == (128, 6)
    assert 0.5 < res.acceptance < 0.95  # adapted towards 0.65
    assert ((res.ess >= 1) & (res.ess <= 128)).all() and res.ess.min() > 32
    # without annealing (steps=1: importance sampling from the prior) the same chains do worse
    plain = ais(g, x, K, sigma, steps=1, chains=128, seed=0)
    assert (plain.log_prob - true).abs().mean() > 3 * err.abs().mean()
    assert plain.ess.mean() < res.ess.mean()


def test_ais_beats_prior_importance_sampling_with_the_same_budget() -> None:
    # x from the prior's tail (|z| = 5): prior samples almost never explain it, annealing moves
    # the chains there; IS gets as many generator calls as AIS (chains x steps x leapfrog)
    g, sigma = Linear(0), 0.3
    x = g.data(circle(5.0, 4), sigma)
    true = g.log_prob(x, sigma)
    chains, steps, leapfrog = 32, 500, 10
    a = ais_log_prob(g, x, K, sigma, steps=steps, chains=chains, leapfrog=leapfrog, seed=0)
    i = ais_log_prob(g, x, K, sigma, steps=1, chains=chains * steps * leapfrog, seed=0)
    assert (a - true).abs().mean() < 0.5
    assert (i - true).mean() < -3.0  # IS falls far below


def test_steps_one_is_importance_sampling_from_the_prior() -> None:
    # checks the normalising constant, the chain-major layout and the seeding by hand
    g, sigma, chains = Linear(0), 0.7, 50
    x = g.data(circle(1.0, 3), sigma)  # [3, 5]
    z = torch.randn(chains * 3, K, generator=torch.Generator().manual_seed(5), dtype=F64)
    mean = g(z).reshape(chains, 3, D)
    ll = torch.distributions.Normal(mean, sigma).log_prob(x).sum(-1)  # [chains, 3]
    expected = torch.logsumexp(ll, 0) - math.log(chains)
    res = ais(g, x, K, sigma, steps=1, chains=chains, seed=5)
    assert torch.allclose(res.log_weights, ll) and torch.allclose(res.log_prob, expected)
    assert math.isnan(res.acceptance)  # no HMC move ran


def test_a_lower_bound_in_expectation_that_rises_with_steps() -> None:
    g, sigma = Linear(1), 0.2
    x = g.data(torch.randn(12, K, generator=torch.Generator().manual_seed(2), dtype=F64), sigma)
    true = g.log_prob(x, sigma)
    gaps = [
        float((ais_log_prob(g, x, K, sigma, steps=s, chains=4, seed=s) - true).mean())
        for s in (10, 100, 500)
    ]
    assert all(gap < 0.05 for gap in gaps), gaps  # below log p(x) up to Monte Carlo error
    assert gaps[0] < gaps[1] - 0.5 and gaps[1] < gaps[2], gaps
    assert gaps[2] > -0.4, gaps


def test_reverse_ais_sandwiches_log_p_on_simulated_data() -> None:
    # BDMC: data simulated from the model come with exact posterior samples (their z)
    g, sigma = Linear(2), 0.2
    z = torch.randn(8, K, generator=torch.Generator().manual_seed(3), dtype=F64)
    x = g.data(z, sigma)
    true = g.log_prob(x, sigma).mean()
    kw = {"steps": 30, "leapfrog": 5, "seed": 0}
    lower = ais_log_prob(g, x, K, sigma, chains=4, **kw).mean()
    up = reverse_ais(g, x, z, sigma, chains=4, **kw)
    assert up.reverse and up.log_weights.shape == (4, 8)
    assert lower < true - 0.2 and up.log_prob.mean() > true + 0.2  # a clear gap at 30 steps
    longer = reverse_ais(g, x, z.expand(4, -1, -1), sigma, steps=500, seed=0)
    # the upper bound tightens to log p(x) (up to Monte Carlo error) with more steps
    assert abs(longer.log_prob.mean() - true) < 0.3 and longer.log_prob.mean() < up.log_prob.mean()
    with pytest.raises(DataError, match="pair"):
        reverse_ais(g, x, z[:5], sigma, steps=3)


def test_no_grad_at_the_call_site_and_chunking_give_the_same_result() -> None:
    g, sigma = Linear(0), 0.3
    x = g.data(circle(1.5, 3), sigma)  # [3, 5]
    kw = {"steps": 40, "chains": 5, "leapfrog": 3, "seed": 7}
    whole = ais(g, x, K, sigma, max_rows=None, **kw)
    assert g.calls and set(g.calls) == {15}
    g.calls.clear()
    with torch.no_grad():
        chunked = ais(g, x, K, sigma, max_rows=7, **kw)  # 2 whole chains (6 rows) per call
    assert set(g.calls) == {6, 3}
    assert torch.allclose(chunked.log_weights, whole.log_weights, rtol=0, atol=1e-10)
    assert torch.allclose(chunked.step_size, whole.step_size)
    # max_rows below one chain still calls the generator with whole chains
    g.calls.clear()
    ais(g, x, K, sigma, max_rows=2, **kw)
    assert set(g.calls) == {3}
    # a fresh seed changes the estimate, the same seed repeats it
    again = ais(g, x, K, sigma, max_rows=None, **kw)
    other = ais(g, x, K, sigma, max_rows=None, **{**kw, "seed": 8})
    assert torch.equal(again.log_weights, whole.log_weights)
    assert not torch.equal(other.log_weights, whole.log_weights)


def test_follows_the_dtype_and_keeps_the_event_shape() -> None:
    lin = torch.nn.Linear(K, 6)
    x = torch.rand(4, 1, 2, 3)  # float32 images
    res = ais(lambda z: lin(z).reshape(-1, 1, 2, 3), x, K, 0.5, steps=5, chains=2, seed=0)
    assert res.log_prob.dtype == torch.float32 and res.log_prob.shape == (4,)
    assert torch.isfinite(res.log_prob).all()
    with pytest.raises(DataError, match="generator maps"):
        ais(lambda z: lin(z), x, K, 0.5, steps=2, chains=2)


def test_no_tensor_is_made_off_the_input_device() -> None:
    g, sigma = Linear(0), 0.5
    x = g.data(circle(1.0, 2), sigma)
    z = torch.zeros(2, K, dtype=F64)
    guard = DeviceGuard()
    with guard:
        ais(g, x, K, sigma, steps=4, chains=3, leapfrog=2, seed=0)
        reverse_ais(g, x, z, sigma, steps=4, chains=2, leapfrog=2, seed=0)
    assert guard.offenders == []


def test_sigma_picker_finds_the_noise_that_made_the_data() -> None:
    g, sigma = Linear(3), 0.1
    x = g.data(torch.randn(100, K, generator=torch.Generator().manual_seed(4), dtype=F64), sigma)
    grid = (0.03, 0.1, 0.3, 1.0)
    exact = {s: float(g.log_prob(x, s).mean()) for s in grid}
    assert max(exact, key=exact.__getitem__) == sigma
    assert pick_sigma(g, x, grid, latent_dim=K, steps=50, chains=2) == sigma
    scores = sigma_scores(g, x, grid, latent_dim=K, method="is", num_samples=500)
    assert max(scores, key=scores.__getitem__) == sigma
    assert all(scores[s] <= exact[s] + 0.05 for s in grid)

    class Model(torch.nn.Module, ImplicitGenerator):  # what the CLI passes: a model with G
        latent_dim = K

        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros((), dtype=F64))  # its dtype

        def generator_mean(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
            return g(z)

        def check_input(self, x: Tensor) -> None:
            pass

    assert pick_sigma(Model(), x, grid, steps=50, chains=2) == sigma
    # the default grid scales with the data's range
    default = sigma_scores(Model(), x, method="is", num_samples=50)
    span = float(x.max() - x.min())
    assert min(default) == pytest.approx(0.005 * span) and max(default) == pytest.approx(0.5 * span)


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"sigma": 0.0}, ConfigError, "sigma"),
        ({"sigma": float("nan")}, ConfigError, "sigma"),
        ({"steps": 0}, ConfigError, "steps"),
        ({"chains": 0}, ConfigError, "chains"),
        ({"leapfrog": 0}, ConfigError, "leapfrog"),
        ({"step_size": -1.0}, ConfigError, "step_size"),
        ({"jitter": 1.0}, ConfigError, "jitter"),
        ({"max_rows": 0}, ConfigError, "max_rows"),
        ({"schedule": "cosine"}, ConfigError, "schedule"),
        ({"seed": 0, "rng": torch.Generator()}, ConfigError, "seed or rng"),
        ({"x": torch.full((2, D), float("nan"), dtype=F64)}, DataError, "NaN"),
        ({"x": torch.zeros(D, dtype=F64)}, DataError, "shape"),
        ({"x": torch.zeros(2, D, dtype=torch.long)}, DataError, "floating"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs: dict, error: type, needle: str) -> None:
    g = Linear(0)
    args = {"x": torch.zeros(2, D, dtype=F64), "sigma": 0.5, "steps": 2, "chains": 2, **kwargs}
    x, sigma = args.pop("x"), args.pop("sigma")
    with pytest.raises(error, match=needle):
        ais(g, x, K, sigma, **args)
