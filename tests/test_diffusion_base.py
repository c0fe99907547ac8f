"""The diffusion family's shared parts: the discretised Gaussian decoder, the networks, the ODE
likelihood against closed forms, and how evaluation joins averaged estimates."""

from __future__ import annotations

import math

import pytest
import torch

from dgm.distributions import discretized_gaussian_log_prob
from dgm.distributions.gaussian import log_difference_of_cdfs
from dgm.errors import ConfigError
from dgm.evaluation.likelihood import join_estimates
from dgm.models.diffusion.networks import UNet, network, resolutions
from dgm.models.diffusion.ode import (
    Solve,
    divergence_exact,
    divergence_hutchinson,
    ode_log_prob,
    ode_sample,
)

D64 = torch.float64


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_discretized_gaussian_sums_to_one_over_the_levels(levels):
    torch.manual_seed(0)
    x = torch.arange(levels, dtype=D64)[:, None].expand(levels, 6)
    # ordinary, far outside [-1, 1] on both sides, and very narrow scales at the edges
    mean = torch.tensor([0.1, 7.0, -7.0, 0.999, -0.999, 0.3], dtype=D64)
    log_scale = torch.tensor([-1.0, 0.0, 0.0, -12.0, -12.0, -12.0], dtype=D64)
    lp = discretized_gaussian_log_prob(x, mean.expand_as(x), log_scale.expand_as(x), levels)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp.exp().sum(0), torch.ones(6, dtype=D64), atol=1e-9, rtol=0)


def test_discretized_gaussian_is_the_mass_of_its_cell():
    from scipy.stats import norm

    levels, mean, scale = 5, 0.13, 0.4
    x = torch.tensor([[2.0]], dtype=D64)
    lp = discretized_gaussian_log_prob(
        x, torch.full_like(x, mean), torch.full_like(x, math.log(scale)), levels
    )
    centre = (2 * 2 + 1) / levels - 1
    want = norm.cdf((centre + 1 / levels - mean) / scale) - norm.cdf(
        (centre - 1 / levels - mean) / scale
    )
    assert float(lp.exp()) == pytest.approx(want, rel=1e-10)


def test_log_difference_of_cdfs_is_accurate_in_both_tails():
    from scipy.special import log_ndtr

    lo = torch.tensor([-40.0, -3.0, 0.5, 8.0, 30.0], dtype=D64)
    hi = lo + torch.tensor([0.01, 0.5, 0.2, 0.1, 0.01], dtype=D64)
    got = log_difference_of_cdfs(lo, hi)
    for a, b, g in zip(lo.tolist(), hi.tolist(), got.tolist()):
        # mirror image: Phi(b) - Phi(a) = Phi(-a) - Phi(-b), the smaller pair in float64
        la, lb = (log_ndtr(-b), log_ndtr(-a)) if a > 0 else (log_ndtr(a), log_ndtr(b))
        want = lb + math.log(-math.expm1(la - lb))
        assert g == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(
    ("shape", "k"), [((1, 8, 8), 1), ((1, 28, 28), 2), ((3, 6, 6), 1), ((2,), 2), ((5,), 1)]
)
def test_networks_map_examples_and_times_to_k_values_per_dimension(shape, k):
    torch.manual_seed(0)
    net = network(shape, k, hidden=8, blocks=1, attention=True, dropout=0.0)
    y, t = torch.randn(3, *shape), torch.rand(3)
    out = net(y, t)
    assert out.shape == (3, k, *shape)
    # the time matters: the same y at other times gives other values
    assert not torch.allclose(out, net(y, 1 - t))
    out.square().sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_unet_depth_follows_the_image_size():
    assert [resolutions(s) for s in (8, 28, 32, 7, 6)] == [2, 3, 4, 1, 1]
    assert UNet((1, 28, 28), hidden=8, blocks=1).levels == 3


def test_exact_divergence_is_the_jacobian_trace():
    torch.manual_seed(0)
    net = network((1, 4, 4), 1, hidden=8, blocks=1, attention=True, dropout=0.0).double()
    t = torch.rand(3, dtype=D64)
    y = torch.randn(3, 1, 4, 4, dtype=D64, requires_grad=True)
    got = divergence_exact(net(y, t)[:, 0], y)
    for b in range(3):
        tb = t[b : b + 1]
        jac = torch.autograd.functional.jacobian(lambda z, tb=tb: net(z, tb)[0, 0], y[b : b + 1])
        assert float(got[b]) == pytest.approx(float(jac.reshape(16, 16).trace()), abs=1e-10)


def test_hutchinson_divergence_is_unbiased():
    torch.manual_seed(0)
    net = network((6,), 1, hidden=16, blocks=1, attention=False, dropout=0.0).double()
    t = torch.rand(2, dtype=D64)
    y = torch.randn(2, 6, dtype=D64, requires_grad=True)
    f = net(y, t)[:, 0]
    exact = divergence_exact(f, y)
    k = 4000
    probes = torch.randint(0, 2, (k, 2, 6)).to(D64) * 2 - 1
    (g,) = torch.autograd.grad(f, y, probes, retain_graph=True, is_grads_batched=True)
    each = (g * probes).sum(-1)  # [K, B]: one estimate per probe
    est = divergence_hutchinson(f, y, probes)
    torch.testing.assert_close(est, each.mean(0))
    sem = each.std(0) / math.sqrt(k)
    assert ((est - exact).abs() < 4 * sem + 1e-12).all()


def _linear_field(a: torch.Tensor):
    return lambda y, t: y @ a.T


def _std_normal(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


@pytest.mark.parametrize("backwards", [False, True])
def test_ode_log_prob_of_a_linear_flow_is_the_closed_form(backwards):
    """dy/dt = A y carries y to exp(A (t1 - t0)) y with log-det tr(A) (t1 - t0)."""
    torch.manual_seed(0)
    a = torch.tensor([[-0.3, 0.2], [0.1, -0.5]], dtype=D64)
    y = torch.randn(5, 2, dtype=D64)
    t0, t1 = (1.0, 0.0) if backwards else (0.0, 1.0)
    solve = Solve(rtol=1e-9, atol=1e-9)
    lp = ode_log_prob(_linear_field(a), y, _std_normal, t0=t0, t1=t1, solve=solve)
    m = torch.linalg.matrix_exp(a * (t1 - t0))
    want = _std_normal(y @ m.T) + torch.trace(a) * (t1 - t0)
    torch.testing.assert_close(lp, want, atol=1e-7, rtol=0)
    # the same path in samples, with a fixed-step solver and with the adaptive one
    for s in (Solve(method="rk4", steps=50), solve):
        torch.testing.assert_close(
            ode_sample(_linear_field(a), y, t0=t0, t1=t1, solve=s), y @ m.T, atol=1e-7, rtol=0
        )


def test_ode_log_prob_with_probes_is_unbiased():
    torch.manual_seed(0)
    a = torch.tensor([[-0.3, 0.8, 0.0], [0.1, -0.5, 0.4], [0.2, 0.0, 0.3]], dtype=D64)
    y = torch.randn(1, 3, dtype=D64).expand(2000, 3)  # one point, many independent probes
    solve = Solve(rtol=1e-7, atol=1e-7)
    exact = ode_log_prob(_linear_field(a), y[:1], _std_normal, t0=0.0, t1=1.0, solve=solve)
    est = ode_log_prob(_linear_field(a), y, _std_normal, t0=0.0, t1=1.0, solve=solve, probes=1)
    assert float(est.std()) > 0  # each probe its own estimate
    assert abs(float(est.mean() - exact)) < 4 * float(est.std()) / math.sqrt(len(est))


def test_solver_settings_are_checked():
    with pytest.raises(ConfigError, match="unknown ODE solver 'rk45'"):
        Solve(method="rk45")
    with pytest.raises(ConfigError, match="rtol must be > 0"):
        Solve(rtol=0.0)
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        Solve(steps=0)
    with pytest.raises(ConfigError, match="probes"):
        ode_log_prob(
            _linear_field(torch.eye(2)), torch.zeros(1, 2), _std_normal, t0=0, t1=1,
            solve=Solve(), probes=0,
        )  # fmt: skip


def test_averaged_estimates_join_by_their_mean():
    parts = [torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -18.0])]
    joined = join_estimates(parts, sizes=[1, 3], averaged=True)
    torch.testing.assert_close(joined, torch.tensor([-11.5, -18.5], dtype=D64))
    # importance-weighted parts join by log-mean-exp: above the mean (Jensen)
    iw = join_estimates(parts, sizes=[1, 3])
    assert (iw > joined).all()
