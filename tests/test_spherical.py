"""Hyperspherical distributions: Bessel functions against scipy/mpmath, normalisation, sampler
moments and law, closed-form entropy/KL against Monte Carlo, exact reparameterised gradients,
stability over kappa in [1e-3, 1e5] and m in [2, 100], shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from scipy import special
from torch.distributions import VonMises, kl_divergence

from dgm.distributions.spherical import (
    HypersphericalUniform,
    PowerSpherical,
    VonMisesFisher,
    bessel_ratio,
    log_bessel_iv,
    log_bessel_ive,
    log_sphere_area,
)

F64 = torch.float64
KAPPAS = (1e-3, 1e-1, 1.0, 10.0, 1e3, 1e5)
DISTS = {"vmf": VonMisesFisher, "ps": PowerSpherical}


def unit(m: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(m, generator=g, dtype=F64)
    return (v / v.norm()).to(dtype)


def mean_w(name: str, m: int, kappa: float) -> tuple[float, float]:
    """E[w] and E[w^2] of w = loc^T z, from scipy (independent of the code under test)."""
    if name == "vmf":
        a = special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa)
        return a, 1 - (m - 1) * a / kappa
    alpha, beta = (m - 1) / 2 + kappa, (m - 1) / 2
    et = alpha / (alpha + beta)
    et2 = alpha * (alpha + 1) / ((alpha + beta) * (alpha + beta + 1))
    return 2 * et - 1, 4 * et2 - 4 * et + 1


# --------------------------------------------------------------------------------------------
# Bessel functions


@pytest.mark.parametrize("v", [0, 0.5, 1, 1.5, 4, 24.5, 49, 49.5])
def test_bessel_matches_scipy(v: float) -> None:
    xs = np.logspace(-3, 5, 80)
    x = torch.tensor(xs, dtype=F64)
    ref_log = np.log(special.ive(v, xs))
    ref_ratio = special.ive(v + 1, xs) / special.ive(v, xs)
    got_log = log_bessel_ive(v, x).numpy()
    np.testing.assert_allclose(got_log, ref_log, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_bessel_iv(v, x).numpy(), ref_log + xs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bessel_ratio(v, x).numpy(), ref_ratio, rtol=1e-11)
    # float32 in, float32 out, computed in float64 inside
    r32 = bessel_ratio(v, x.float())
    assert r32.dtype == torch.float32
    np.testing.assert_allclose(r32.double().numpy(), ref_ratio, rtol=1e-6)


def test_bessel_gradients() -> None:
    x = torch.tensor([1e-2, 0.7, 3.0, 40.0, 2e3], dtype=F64, requires_grad=True)
    for v in (0, 0.5, 3, 12.5):
        for fn in (log_bessel_ive, bessel_ratio):
            assert torch.autograd.gradcheck(lambda t, fn=fn, v=v: fn(v, t), (x,))
            assert torch.autograd.gradgradcheck(lambda t, fn=fn, v=v: fn(v, t), (x,))


def test_bessel_rejects_bad_order() -> None:
    with pytest.raises(ValueError):
        bessel_ratio(0.3, torch.ones(2, dtype=F64))
    with pytest.raises(ValueError):
        log_bessel_ive(-1, torch.ones(2, dtype=F64))


# --------------------------------------------------------------------------------------------
# densities


@pytest.mark.parametrize("m", [3, 10, 50])
def test_vmf_log_prob_matches_scipy(m: int) -> None:
    loc = unit(m)
    pts = torch.stack(
        [loc, unit(m, 1), (loc + 1e-3 * unit(m, 2)) / (loc + 1e-3 * unit(m, 2)).norm()]
    )
    for kappa in (1e-3, 1.0, 10.0, 1e3, 1e5):
        d = VonMisesFisher(loc, torch.tensor(kappa, dtype=F64))
        ref_dist = scipy.stats.vonmises_fisher(loc.numpy(), kappa)
        ref = ref_dist.logpdf(pts.numpy())
        # scipy itself is good to ~5e-11 at small kappa (checked against mpmath)
        np.testing.assert_allclose(d.log_prob(pts).numpy(), ref, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(d.entropy().item(), ref_dist.entropy(), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("kappa", [1e-3, 0.5, 10.0, 300.0])
def test_vmf_in_2d_is_von_mises(kappa: float) -> None:
    mu = 0.7
    theta = torch.linspace(-math.pi, math.pi, 41, dtype=F64)
    z = torch.stack([theta.cos(), theta.sin()], -1)
    loc = torch.tensor([math.cos(mu), math.sin(mu)], dtype=F64)
    ours = VonMisesFisher(loc, kappa).log_prob(z)
    ref = VonMises(torch.tensor(mu, dtype=F64), torch.tensor(kappa, dtype=F64)).log_prob(theta)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize("kappa", [1e-3, 1.0, 10.0, 100.0])
def test_integrates_to_one_on_circle(name: str, kappa: float) -> None:
    theta = torch.arange(4096, dtype=F64) * (2 * math.pi / 4096)  # periodic: spectral accuracy
    z = torch.stack([theta.cos(), theta.sin()], -1)
    d = DISTS[name](unit(2), kappa)
    total = d.log_prob(z).exp().sum() * (2 * math.pi / 4096)
    # (1 + cos)^kappa has a cusp at the antipode for small kappa: the rule loses its accuracy
    assert abs(total.item() - 1) < (1e-10 if name == "vmf" else 1e-6)


@pytest.mark.parametrize("name", DISTS)
def test_integrates_to_one_on_sphere(name: str) -> None:
    # Gauss-Legendre in cos(theta) times the periodic rule in phi; loc off the grid's pole
    c, wc = np.polynomial.legendre.leggauss(300)
    phi = np.arange(300) * (2 * np.pi / 300)
    c, phi = np.meshgrid(c, phi, indexing="ij")
    s = np.sqrt(1 - c**2)
    z = torch.tensor(np.stack([s * np.cos(phi), s * np.sin(phi), c], -1).reshape(-1, 3))
    weight = torch.tensor((wc[:, None] * np.full(300, 2 * np.pi / 300)).reshape(-1))
    loc = unit(3, 5)
    for kappa in (1e-3, 1.0, 10.0, 40.0):
        d = DISTS[name](loc, kappa)
        total = (d.log_prob(z).exp() * weight).sum()
        assert abs(total.item() - 1) < (1e-9 if name == "vmf" else 1e-7), (kappa, total.item())


def test_uniform() -> None:
    for m in (2, 3, 7):
        q = HypersphericalUniform(m, dtype=F64)
        z = q.rsample((5000,))
        assert z.shape == (5000, m) and z.dtype == F64
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(5000, dtype=F64))
        assert z.mean(0).norm() < 5 * math.sqrt(1 / 5000)
        lp = q.log_prob(z)
        torch.testing.assert_close(lp, torch.full_like(lp, -log_sphere_area(m)))
        torch.testing.assert_close(q.entropy(), torch.tensor(log_sphere_area(m), dtype=F64))
    assert math.isclose(log_sphere_area(2), math.log(2 * math.pi))
    assert math.isclose(log_sphere_area(3), math.log(4 * math.pi))
    q = HypersphericalUniform(4, batch_shape=(2,), dtype=F64)
    assert kl_divergence(q, q).shape == (2,) and q.mean.shape == (2, 4)
    assert q.rsample((3,)).shape == (3, 2, 4)


# --------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize(
    ("m", "kappa", "pole"),
    [(2, 0.5, 0), (3, 5.0, 1), (5, 1.0, 0), (5, 30.0, -1), (10, 1e-3, 0), (20, 100.0, 0)],
)
def test_sample_moments(name: str, m: int, kappa: float, pole: int) -> None:
    """The mean resultant length (and E[w^2]) of samples; loc also exactly at +-e1."""
    torch.manual_seed(0)
    loc = unit(m) if pole == 0 else pole * torch.eye(m, dtype=F64)[0]
    d = DISTS[name](loc, kappa)
    n = 20000
    z = d.rsample((n,))
    assert z.shape == (n, m)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(n, dtype=F64), rtol=0, atol=1e-12)
    ew, ew2 = mean_w(name, m, kappa)
    w = z @ loc
    assert abs(w.mean().item() - ew) < 5 * math.sqrt(max(ew2 - ew**2, 0) / n) + 1e-12
    assert abs((w * w).mean().item() - ew2) < 5 * (w * w).std().item() / math.sqrt(n) + 1e-12
    # the mean is A loc: the orthogonal part of the sample mean is noise only
    assert (z.mean(0) - ew * loc).norm() < 5 * math.sqrt((1 - ew**2) / n)
    torch.testing.assert_close(d.mean, ew * loc, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize(("m", "kappa"), [(2, 2.0), (4, 0.3), (7, 15.0), (40, 60.0)])
def test_radial_law(name: str, m: int, kappa: float) -> None:
    """Kolmogorov-Smirnov of w = loc^T z against its exact CDF (quadrature in the angle)."""
    torch.manual_seed(1)
    loc = unit(m, 3)
    w = (DISTS[name](loc, kappa).sample((4000,)) @ loc).numpy()
    phi = np.linspace(0, np.pi, 20001)  # density of phi = arccos(w) is smooth for every m
    if name == "vmf":
        dens = np.exp(kappa * (np.cos(phi) - 1)) * np.sin(phi) ** (m - 2)
    else:
        dens = (1 + np.cos(phi)) ** kappa * np.sin(phi) ** (m - 2)
    cdf_phi = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(phi))])
    cdf_phi /= cdf_phi[-1]
    # P(W <= w) = P(phi >= arccos w)
    cdf = lambda x: 1 - np.interp(np.arccos(np.clip(x, -1, 1)), phi, cdf_phi)  # noqa: E731
    assert scipy.stats.kstest(w, cdf).pvalue > 1e-3


# --------------------------------------------------------------------------------------------
# entropy and KL against Monte Carlo


@pytest.mark.parametrize("name", DISTS)
@pytest.mark.parametrize(("m", "kappa"), [(2, 3.0), (3, 0.2), (6, 20.0), (30, 5.0), (50, 1e3)])
def test_kl_and_entropy_match_monte_carlo(name: str, m: int, kappa: float) -> None:
    torch.manual_seed(2)
    d = DISTS[name](unit(m), kappa)
    q = HypersphericalUniform(m, dtype=F64)
    n = 20000
    log_p = d.log_prob(d.sample((n,)))
    se = log_p.std().item() / math.sqrt(n)
    kl = kl_divergence(d, q)
    assert kl.item() >= 0
    assert abs(kl.item() - (log_p.mean().item() + log_sphere_area(m))) < 5 * se + 1e-9
    assert abs(d.entropy().item() + log_p.mean().item()) < 5 * se + 1e-9
    torch.testing.assert_close(kl, log_sphere_area(m) - d.entropy())


# --------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize(
    ("name", "m", "kappa"),
    [
        ("vmf", 2, 1.0),
        ("vmf", 3, 4.0),
        ("vmf", 5, 10.0),
        ("vmf", 20, 2.0),
        ("vmf", 20, 80.0),
        ("ps", 3, 4.0),
        ("ps", 20, 30.0),
    ],
)
def test_reparameterised_gradient_matches_finite_difference(name: str, m: int, kappa: float):
    """Per-sample gradients of f(z) = c^T z + (c^T z)^2 w.r.t. kappa and the unnormalised loc
    average to the finite difference of E[f], whose closed form uses E[w], E[w^2] (scipy).

    For the vMF this is what the implicit radial gradient buys: differentiating through Wood's
    accepted proposal without the correction term is off by ~10% at m=5, kappa=10."""
    torch.manual_seed(3)
    p0, c = unit(m, 4) * 1.3, unit(m, 5) * 0.8

    def expected_f(kappa: float, p: np.ndarray) -> float:
        mu = p / np.linalg.norm(p)
        ew, ew2 = mean_w(name, m, kappa)
        mc, cc = mu @ c.numpy(), c.numpy() @ c.numpy()
        return ew * mc + ew2 * mc**2 + (1 - ew2) / (m - 1) * (cc - mc**2)

    n = 20000
    kap = torch.full((n,), kappa, dtype=F64, requires_grad=True)
    p = p0.expand(n, m).clone().requires_grad_(True)
    z = DISTS[name](p / p.norm(dim=-1, keepdim=True), kap).rsample()
    cz = z @ c
    (cz + cz**2).sum().backward()
    h = 1e-6 * max(kappa, 1)
    fd_k = (expected_f(kappa + h, p0.numpy()) - expected_f(kappa - h, p0.numpy())) / (2 * h)
    mc_k, se_k = kap.grad.mean().item(), kap.grad.std().item() / math.sqrt(n)
    assert abs(mc_k - fd_k) < 5 * se_k + 1e-7, (mc_k, fd_k, se_k)
    for i in range(min(m, 3)):
        e = np.eye(m)[i] * 1e-6
        fd = (expected_f(kappa, p0.numpy() + e) - expected_f(kappa, p0.numpy() - e)) / 2e-6
        g = p.grad[:, i]
        assert abs(g.mean().item() - fd) < 5 * g.std().item() / math.sqrt(n) + 1e-7


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("name", DISTS)
def test_finite_everywhere(name: str, dtype: torch.dtype) -> None:
    """No NaN/inf in samples, log_prob, entropy, KL, mean and all their gradients, for kappa in
    [1e-3, 1e5] and m in [2, 100]."""
    torch.manual_seed(4)
    for m in (2, 3, 4, 11, 50, 100):
        raw_loc = torch.randn(len(KAPPAS), m, dtype=dtype, requires_grad=True)
        log_kappa = torch.tensor(KAPPAS, dtype=dtype).log().requires_grad_(True)
        d = DISTS[name](raw_loc / raw_loc.norm(dim=-1, keepdim=True), log_kappa.exp()[:, None])
        z = d.rsample((8,))
        assert z.dtype == dtype and z.shape == (8, len(KAPPAS), m)
        assert (z.norm(dim=-1) - 1).abs().max() < (1e-5 if dtype == torch.float32 else 1e-12)
        q = HypersphericalUniform(m, device=z.device, dtype=dtype)
        terms = [
            d.log_prob(z),
            d.log_prob(z.detach()),
            d.entropy(),
            kl_divergence(d, q),
            d.mean,
            z @ torch.arange(m, dtype=dtype),
        ]
        for t in terms:
            assert t.dtype == dtype and torch.isfinite(t).all(), (m, t)
        for t in terms:
            grads = torch.autograd.grad(
                t.sum(), (raw_loc, log_kappa), retain_graph=True, allow_unused=True
            )
            assert all(g is None or torch.isfinite(g).all() for g in grads), (m, t)
            assert grads[1] is not None  # everything depends on kappa
        # the KL is non-negative and grows with kappa
        kl = terms[3].detach().double()
        assert (kl >= -1e-4).all() and (kl.diff() > 0).all()


def test_float32_agrees_with_float64() -> None:
    loc, kappa = unit(7), torch.tensor([0.01, 2.0, 50.0, 1e4], dtype=F64)
    for cls in DISTS.values():
        d64 = cls(loc, kappa)
        d32 = cls(loc.float(), kappa.float())
        z = d64.sample((5,))
        torch.testing.assert_close(
            d32.log_prob(z.float()).double(), d64.log_prob(z), rtol=1e-4, atol=1e-3
        )
        torch.testing.assert_close(d32.entropy().double(), d64.entropy(), rtol=1e-5, atol=1e-4)
        q64, q32 = HypersphericalUniform(7, dtype=F64), HypersphericalUniform(7)
        torch.testing.assert_close(
            kl_divergence(d32, q32).double(), kl_divergence(d64, q64), rtol=1e-5, atol=1e-4
        )


# --------------------------------------------------------------------------------------------
# shapes and arguments


@pytest.mark.parametrize("name", DISTS)
def test_shapes(name: str) -> None:
    cls, m = DISTS[name], 4
    loc = torch.nn.functional.normalize(torch.randn(2, 3, m, dtype=F64), dim=-1)
    for scale in (torch.rand(2, 3, dtype=F64) + 0.5, torch.rand(2, 3, 1, dtype=F64) + 0.5, 2.0):
        d = cls(loc, scale)
        assert d.batch_shape == (2, 3) and d.event_shape == (m,)
        z = d.rsample((5,))
        assert z.shape == (5, 2, 3, m)
        assert d.log_prob(z).shape == (5, 2, 3)
        assert d.entropy().shape == (2, 3) and d.mean.shape == (2, 3, m)
        assert kl_divergence(d, HypersphericalUniform(m, dtype=F64)).shape == (2, 3)
        assert d.sample().shape == (2, 3, m)
    d = cls(unit(m), torch.tensor([1.0, 2.0, 3.0], dtype=F64))  # loc broadcast over scale
    assert d.batch_shape == (3,) and d.rsample((2,)).shape == (2, 3, m)
    e = d.expand((4, 3))
    assert e.batch_shape == (4, 3) and e.rsample().shape == (4, 3, m)
    assert e.log_prob(e.sample()).shape == (4, 3)


@pytest.mark.parametrize("name", DISTS)
def test_argument_checks(name: str) -> None:
    cls = DISTS[name]
    with pytest.raises(ValueError):
        cls(torch.tensor([1.0, 1.0], dtype=F64), 1.0, validate_args=True)  # not unit
    with pytest.raises(ValueError):
        cls(unit(3), -1.0, validate_args=True)
    with pytest.raises(ValueError):
        cls(torch.ones(1, dtype=F64), 1.0)  # S^0
    with pytest.raises(ValueError):
        kl_divergence(cls(unit(3), 1.0), HypersphericalUniform(4, dtype=F64))


def test_device_clean_on_meta() -> None:
    """Everything that has no data-dependent control flow runs on the meta device: an op mixing
    in a tensor made on the CPU would fail (the Wood loop and torch's Beta sampler cannot run
    there)."""
    from dgm.distributions.spherical import _ImplicitRadial

    dev = torch.device("meta")
    q = HypersphericalUniform(5, device=dev, validate_args=False)
    assert q.rsample((3,)).device == dev and q.entropy().device == dev
    for cls in DISTS.values():
        kappa = torch.rand(4, device=dev, requires_grad=True)
        d = cls(torch.randn(4, 5, device=dev), kappa, validate_args=False)
        outs = [d.log_prob(torch.randn(3, 4, 5, device=dev)), d.entropy(), kl_divergence(d, q)]
        outs.append(d.mean)
        assert all(o.device == dev for o in outs)
        sum(o.sum() for o in outs).backward()
        assert kappa.grad.device == dev
    kappa = torch.rand(4, device=dev, requires_grad=True)
    z = VonMisesFisher(torch.randn(4, 3, device=dev), kappa, validate_args=False).rsample((2,))
    z.sum().backward()  # m = 3: closed-form radial sampler
    assert z.device == dev and kappa.grad.device == dev
    kappa = torch.rand(6, device=dev, dtype=F64, requires_grad=True)
    u = _ImplicitRadial.apply(kappa, torch.rand(6, device=dev, dtype=F64), kappa.detach(), 7)
    u.sum().backward()  # the quadrature of the implicit gradient
    assert kappa.grad.device == dev
