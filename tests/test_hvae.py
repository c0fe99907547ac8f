"""The two-layer hierarchical VAE: every prior on z2 honours the contract, IWAE bounds order as
Burda et al. (2016) prove, a linear-Gaussian HVAE with its exact posterior gives log p(x) at
every draw, the VampPrior mixes the top layer's posteriors, the chunked estimates do not depend
on the chunking, the training tricks change the loss only, and a short training run works."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import dgm
import dgm.models.latent.hvae  # registers "hvae"
from dgm import registry
from dgm.data.base import DataSpec
from dgm.distributions.gaussian import Gaussian
from dgm.errors import ConfigError
from dgm.models.latent.hvae import HVAE, gaussian_kl_between
from dgm.models.latent.posteriors import gaussian_kl
from dgm.pipeline import train
from tests.helpers import HVAE_TINY, digits_like

F64 = torch.float64
TINY = HVAE_TINY


def make(**kw) -> HVAE:
    torch.manual_seed(0)
    return dgm.create("hvae", **{**TINY, **kw})


def test_registered_in_the_latent_family():
    entry = registry.get("hvae")
    assert entry.cls is HVAE and entry.family == "latent"
    assert HVAE.exact_likelihood is False and HVAE.default_eval_samples == 5000
    spec = DataSpec("toy", (2,), None)
    model = HVAE.for_data(spec, latent=2, latent2=2, hidden=8)
    assert model.config.levels is None and isinstance(model.likelihood, Gaussian)
    note = model.likelihood_note(num_samples=100)
    assert "K=100" in note and "IWAE" in note and "lower bound" in note
    assert "ELBO" in model.likelihood_note()


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="latent2"):
        dgm.create("hvae", latent2=0)
    with pytest.raises(ConfigError, match="continuous"):
        dgm.create("hvae", shape=(2,), levels=None, likelihood="categorical")
    with pytest.raises(ConfigError, match="discrete"):
        dgm.create("hvae", likelihood="gaussian")
    with pytest.raises(ConfigError, match="backbone=conv"):
        dgm.create("hvae", shape=(4,), levels=2, backbone="conv")
    with pytest.raises(ConfigError, match="vampprior"):
        make().init_pseudo_inputs(digits_like(4))
    with pytest.raises(ConfigError, match="num_samples"):
        make().log_prob(digits_like(2), num_samples=0)


def test_continuous_data():
    model = make(shape=(2,), levels=None)
    x = torch.randn(6, 2)
    assert torch.isfinite(model.loss(x)) and model.log_prob(x, 5).shape == (6,)
    s = model.sample(4)
    assert s.shape == (4, 2) and not torch.equal(s, s.round())
    fixed = make(shape=(2,), levels=None, gaussian_scale=0.1)
    assert fixed.likelihood.params_per_dim == 1 and torch.isfinite(fixed.log_prob(x)).all()


def test_encode_is_the_posterior_means_z1_first():
    model = make(backbone="mlp").double()
    x = digits_like(4)
    h = model.encoder(model._prep(x))
    mu2 = model.q2.mean(h)
    mu1 = model.q1.mean(model.q1_net(torch.cat([h, mu2], -1)))
    torch.testing.assert_close(model.encode(x), torch.cat([mu1, mu2], -1))


# -- importance weighting ---------------------------------------------------------------------
def test_iwae_tightens_with_k_and_bounds_the_elbo():
    """E[IWAE_K] is non-decreasing in K and IWAE_1 is an unbiased one-draw ELBO (Burda et al.
    2016, thm 1); a random model's posterior is poor, so the gaps are wide enough to see."""
    model = make(prior="mog", backbone="mlp").double().eval()
    x = digits_like(64, seed=3)
    torch.manual_seed(0)
    elbo = model.elbo(x, num_samples=200).mean()
    torch.manual_seed(0)
    k1, k10, k100 = (model.log_prob(x, num_samples=k).mean() for k in (1, 10, 100))
    assert (k1 - elbo).abs() < 0.5  # one joint draw: unbiased, noisy
    assert elbo + 0.1 < k10 and k10 + 0.1 < k100
    # per example too, at K = 100 the bound is above the ELBO (the gap dwarfs the noise)
    torch.manual_seed(1)
    assert (model.log_prob(x, 100) > model.elbo(x, 100)).float().mean() > 0.9


def test_chunking_gives_the_same_numbers(monkeypatch):
    model = make(prior="vampprior", backbone="mlp").double().eval()
    x = digits_like(5)
    torch.manual_seed(0)
    whole = model.log_prob(x, num_samples=300, chunk=1 << 20)
    torch.manual_seed(0)
    whole_elbo = model.elbo(x, num_samples=300, chunk=1 << 20)
    for chunk in (17, 2, 500):  # 3 samples per pass, 1 per pass (chunk < B), 100 per pass
        torch.manual_seed(0)
        torch.testing.assert_close(model.log_prob(x, 300, chunk=chunk), whole, rtol=0, atol=1e-10)
        torch.manual_seed(0)
        torch.testing.assert_close(model.elbo(x, 300, chunk=chunk), whole_elbo, rtol=0, atol=1e-10)
        # a likelihood with many parameters per row caps the rows per pass: still the same numbers
        # 7 rows: 1 sample per pass
        monkeypatch.setattr("dgm.models.latent.base.PARAMS_PER_PASS", 17 * 64 * 7)
    assert model.samples_per_pass(5) == 1  # the cap bites
    torch.manual_seed(0)
    torch.testing.assert_close(model.log_prob(x, 300), whole, rtol=0, atol=1e-10)
    d = model.draws(x, 30)
    assert all(t.shape == (30, 5) for t in (d.recon, d.log_p2, d.log_q1, d.kl1))


# -- a linear-Gaussian HVAE, whose log p(x) and posterior are known ----------------------------
def _softplus_inv(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def test_linear_gaussian_exact_posterior_gives_log_p_at_every_draw():
    """z2 ~ N(0, 1), z1 | z2 ~ N(a z2 + c, s^2), x | z ~ N(w z1 + v z2 + b, sigma^2 I): with
    one-dimensional codes the exact posteriors p(z2|x) and p(z1|x,z2) are diagonal Gaussians
    with means linear in (x, z2), which linear nets (layers=0) represent. Then every importance
    weight equals p(x), so even K = 1 is exact, and the ELBO's expectation is log p(x)."""
    torch.manual_seed(0)
    d, sigma = 4, 0.5
    a, c, s = 1.3, -0.4, 0.7
    w, v, b = torch.randn(3, d, dtype=F64).unbind(0)
    model = dgm.create(
        "hvae", shape=(d,), levels=None, latent=1, latent2=1, layers=0, backbone="mlp"
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.p1.net.weight[0, 0] = a  # p(z1 | z2): [mu, raw] = Linear(z2)
        model.p1.net.bias[0] = c
        model.p1.net.bias[1] = _softplus_inv(torch.tensor(s, dtype=F64))
        last = model.decoder.last  # output unit p * D + d reads [z1, z2]
        last.weight[:d, 0], last.weight[:d, 1], last.bias[:d] = w, v, b
        last.bias[d:] = math.log(sigma)
    # y = (z2, z1, x) = M e + m with e ~ N(0, I_{2 + d})
    m_mat = torch.zeros(2 + d, 2 + d, dtype=F64)
    m_mat[0, 0] = 1
    m_mat[1, 0], m_mat[1, 1] = a, s
    m_mat[2:, 0], m_mat[2:, 1] = w * a + v, w * s
    m_mat[2:, 2:] = sigma * torch.eye(d, dtype=F64)
    mean = torch.cat([torch.tensor([0.0, c], dtype=F64), w * c + b])
    cov = m_mat @ m_mat.T
    xs = slice(2, 2 + d)
    # p(z2 | x): coefficients A2 on x
    a2 = torch.linalg.solve(cov[xs, xs], cov[xs, 0])  # [d]
    var2 = cov[0, 0] - cov[0, xs] @ a2
    # p(z1 | z2, x): coefficients B on (z2, x)
    cond = [0, *range(2, 2 + d)]
    b1 = torch.linalg.solve(cov[cond][:, cond], cov[cond, 1])  # [1 + d]
    var1 = cov[1, 1] - cov[1, cond] @ b1
    with torch.no_grad():
        model.q2.net.weight[0] = a2  # q(z2 | x): the encoder is the identity (layers=0)
        model.q2.net.bias[0] = -a2 @ mean[xs]
        model.q2.net.bias[1] = _softplus_inv(var2.sqrt())
        q1 = model.q1.net  # q(z1 | x, z2) reads [x, z2]
        q1.weight[0, :d], q1.weight[0, d] = b1[1:], b1[0]
        q1.bias[0] = mean[1] - b1 @ mean[cond]
        q1.bias[1] = _softplus_inv(var1.sqrt())
    marginal = torch.distributions.MultivariateNormal(mean[xs], cov[xs, xs])
    x = marginal.sample((16,))
    log_p = marginal.log_prob(x)
    for k in (1, 7):
        torch.testing.assert_close(model.log_prob(x, k), log_p, rtol=0, atol=1e-10)
    torch.manual_seed(1)
    draws = model.draws(x, 4000)
    per_draw = draws.recon - draws.kl1 - gaussian_kl(draws.mu2, draws.log_std2).sum(-1)
    se = per_draw.std(0) / math.sqrt(4000)
    torch.manual_seed(1)
    assert ((model.elbo(x, 4000) - log_p).abs() < 4 * se + 1e-9).all()
    # a worse q(z2|x) (too wide) leaves a gap that IWAE closes
    with torch.no_grad():
        model.q2.net.bias[1] = _softplus_inv(1.5 * var2.sqrt())
    torch.manual_seed(2)
    gap = log_p - model.elbo(x, 2000)
    torch.manual_seed(3)
    err = (model.log_prob(x, 5000) - log_p).abs()  # sd ~ 0.006 here
    assert gap.min() > 0.1 and err.max() < 0.03


# -- the KL terms, the VampPrior on the top layer ------------------------------------------------
def test_kl_between_gaussians():
    torch.manual_seed(0)
    mu, ls, mp, lp = torch.randn(4, 3, 5, dtype=F64).unbind(0)
    want = kl_divergence(Normal(mu, ls.exp()), Normal(mp, lp.exp()))
    torch.testing.assert_close(gaussian_kl_between(mu, ls, mp, lp), want)
    zero = torch.zeros_like(mu)
    torch.testing.assert_close(gaussian_kl_between(mu, ls, zero, zero), gaussian_kl(mu, ls))


def test_analytic_kl_terms_equal_their_monte_carlo_estimates():
    model = make(backbone="mlp").double()
    x = digits_like(4)
    n = 4000  # 4 standard errors: the tolerance shrinks with n, so any n tests the same thing
    d = model.draws(x, n)
    # inner KL, at each draw of z2: log q1 - log p1 has mean kl1
    diff = (d.log_q1 - d.log_p1) - d.kl1  # [S, B]
    assert (diff.mean(0).abs() < 4 * diff.std(0) / math.sqrt(n)).all()
    # outer KL (standard prior): analytic vs log q2 - log p2
    mc = d.log_q2 - d.log_p2
    analytic = gaussian_kl(d.mu2, d.log_std2).sum(-1)
    assert ((mc.mean(0) - analytic).abs() < 4 * mc.std(0) / math.sqrt(n)).all()


def test_vampprior_mixes_the_top_layer_posteriors():
    model = make(prior="vampprior", components=4, backbone="mlp").double()
    with torch.no_grad():
        model.prior.pseudo[0] = 5.0  # outside the data range: hardtanh clamps it to 1
    u = model.prior.pseudo_inputs()
    assert u.max() == 1 and u.min() >= -1
    z2 = torch.randn(6, 2, dtype=F64)
    per_component = []
    for c in range(4):
        mu, raw = model.q2.net(model.encoder(u[c : c + 1])).chunk(2, dim=-1)  # q(z2 | u_c)
        per_component.append(Normal(mu, F.softplus(raw)).log_prob(z2).sum(-1))
    by_hand = torch.stack(per_component).exp().mean(0).log()
    torch.testing.assert_close(model.prior.log_prob(z2), by_hand)
    # the pseudo-inputs start from data on request, and learn from the loss
    model.init_pseudo_inputs(digits_like(6))
    model.loss(digits_like(5)).backward()
    assert model.prior.pseudo.grad.abs().sum() > 0


# -- training tricks: in the loss only ------------------------------------------------------
def _terms(model: HVAE, x, seed):
    torch.manual_seed(seed)
    d = model.draws(x, 1)
    return d.recon[0], d.kl1[0] + gaussian_kl(d.mu2, d.log_std2).sum(-1)  # [B], [B]


def test_warmup_ramps_the_kl_weight_linearly():
    model = make(backbone="mlp", warmup_steps=4, beta=2.0).double().train()
    x = digits_like(8)
    for step in range(7):
        recon, kl = _terms(model, x, step)
        torch.manual_seed(step)
        model.set_step(step)  # what the trainer does before each step
        loss = model.loss(x)
        weight = 2.0 * min(1.0, step / 4)
        torch.testing.assert_close(loss, -recon.mean() + weight * kl.mean())


def test_beta_weights_the_loss_only():
    one = make(backbone="mlp", prior="flow").double().eval()
    four = make(backbone="mlp", prior="flow", beta=4.0).double().eval()
    four.load_state_dict(one.state_dict())
    x = digits_like(6)
    for fn in (lambda m: m.elbo(x), lambda m: m.log_prob(x, 5), lambda m: m.metrics(x)["nll"]):
        torch.manual_seed(0)
        a = fn(one)
        torch.manual_seed(0)
        assert torch.equal(a, fn(four))
    torch.manual_seed(0)
    d = one.draws(x, 1)
    kl = (d.kl1 + d.log_q2 - d.log_p2).mean()
    torch.manual_seed(0)
    l1 = one.loss(x)
    torch.manual_seed(0)
    torch.testing.assert_close(four.loss(x) - l1, 3 * kl)


# -- training -------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_epochs_on_digits(tmp_path, digits):
    run = tmp_path / "r"
    res = train(
        "hvae",
        digits,
        run,
        {**TINY, "prior": "vampprior"},
        {"epochs": 2, "sample_every": 0, "num_samples": 4},
        show=lambda s: None,
    )
    assert res["model"] == "hvae" and res["epochs"] == 2
    assert math.isfinite(res["val_nll_nats"]) and res["val_nll_nats"] > 0
    assert math.isfinite(res["test_nll_nats"]) and math.isfinite(res["test_elbo_nats"])
    model = dgm.load(run)
    assert isinstance(model, HVAE) and model.config.latent2 == 2
