"""The VAE's maths: every prior x posterior pair honours the contract, IWAE bounds order as
Burda et al. (2016) prove, a linear-Gaussian VAE recovers its closed-form log p(x), the priors
are normalised, the VampPrior is the mixture it claims to be, and the training tricks (warm-up,
free bits, beta, IWAE objective) change the loss only, as documented."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import dgm
import dgm.models.latent.vae  # registers "vae"
from dgm import registry
from dgm.data.base import DataSpec
from dgm.distributions.gaussian import Gaussian
from dgm.errors import ConfigError
from dgm.models.latent.networks import halvings
from dgm.models.latent.posteriors import gaussian_kl, log_softplus
from dgm.models.latent.priors import PRIORS, mixture_log_prob
from dgm.models.latent.vae import VAE
from tests.helpers import HVAE_TINY, VAE_TINY, digits_like

F64 = torch.float64
TINY = VAE_TINY


def make(**kw) -> VAE:
    torch.manual_seed(0)
    return dgm.create("vae", **{**TINY, **kw})


def test_registered_in_the_latent_family():
    entry = registry.get("vae")
    assert entry.cls is VAE and entry.family == "latent"
    assert VAE.exact_likelihood is False
    spec = DataSpec("toy", (2,), None)
    model = VAE.for_data(spec, latent=2, hidden=8)
    assert model.config.levels is None and isinstance(model.likelihood, Gaussian)
    note = model.likelihood_note(num_samples=100)
    assert "K=100" in note and "IWAE" in note and "lower bound" in note


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="free_bits"):
        dgm.create("vae", prior="mog", free_bits=0.5)
    with pytest.raises(ConfigError, match="free_bits"):
        dgm.create("vae", objective="iwae", free_bits=0.5)
    with pytest.raises(ConfigError, match="continuous"):
        dgm.create("vae", shape=(2,), levels=None, likelihood="categorical")
    with pytest.raises(ConfigError, match="discrete"):
        dgm.create("vae", likelihood="gaussian")
    with pytest.raises(ConfigError, match="backbone=conv"):
        dgm.create("vae", shape=(4,), levels=2, backbone="conv")


@pytest.mark.parametrize("name", ["vae", "hvae"])
def test_vampprior_follows_a_deep_copy(name):
    """The trainer's weight averaging deep-copies the model: the copy's prior must read the
    copy's encoder, not the original's (the VampPrior of every model that has one)."""
    torch.manual_seed(0)
    model = dgm.create(name, **{**(TINY if name == "vae" else HVAE_TINY), "prior": "vampprior"})
    twin = copy.deepcopy(model)
    assert twin.prior.q0.__self__ is twin
    with torch.no_grad():
        z = torch.randn_like(model.prior.sample(4))  # the prior's own dimension
    before = model.prior.log_prob(z)
    with torch.no_grad():
        for p in twin.encoder.parameters():
            p.add_(0.5)
    assert torch.equal(model.prior.log_prob(z), before)
    assert not torch.allclose(twin.prior.log_prob(z), before)


# -- backbones and the Gaussian likelihood --------------------------------------------------
def test_conv_backbone_sizes_itself_from_the_shape():
    assert (halvings(8, 8), halvings(28, 28), halvings(32, 32), halvings(7, 7)) == (2, 2, 3, 0)
    for shape in [(1, 28, 28), (3, 8, 8), (1, 7, 7)]:
        model = make(shape=shape, levels=2, channels=2, hidden=8)
        x = torch.randint(0, 2, (2, *shape)).float()
        assert model.decoder(model.encode(x)).shape == (2, 1, *shape)  # Bernoulli: P = 1
        assert model.reconstruct(x).shape == (2, *shape)


def test_gaussian_likelihood():
    x, mean, log_scale = torch.randn(3, 4, 5, dtype=F64).unbind(0)
    x, mean, log_scale = x[:, None], mean[:, None], log_scale[:, None]  # event (1, 5)
    learned = Gaussian()
    params = torch.stack([mean, log_scale], 1)  # [4, 2, 1, 5]
    want = Normal(mean, log_scale.exp()).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(learned.log_prob(params, x), want)
    fixed = Gaussian(0.3)
    assert fixed.params_per_dim == 1
    want = Normal(mean, 0.3).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(fixed.log_prob(mean[:, None], x), want)
    assert torch.equal(learned.sample(params, temperature=0), mean)
    draws = fixed.sample(mean[:1, None].expand(20000, 1, 1, 5))
    assert (draws.std(0) - 0.3).abs().max() < 0.01


def test_continuous_data_vae():
    model = make(shape=(2,), levels=None, latent=2)
    x = torch.randn(6, 2)
    assert torch.isfinite(model.loss(x)) and model.log_prob(x, 5).shape == (6,)
    s = model.sample(4)
    assert s.shape == (4, 2) and not torch.equal(s, s.round())
    named = make(shape=(2,), levels=None, latent=2, likelihood="gaussian")
    assert isinstance(named.likelihood, Gaussian) and named.likelihood.params_per_dim == 2
    fixed = make(shape=(2,), levels=None, latent=2, gaussian_scale=0.1)
    assert fixed.likelihood.params_per_dim == 1 and torch.isfinite(fixed.log_prob(x)).all()


# -- importance weighting ---------------------------------------------------------------------
def test_iwae_tightens_with_k_and_bounds_the_elbo():
    """E[IWAE_K] is non-decreasing in K and IWAE_1 is the ELBO (Burda et al. 2016, thm 1); a
    random model's posterior is poor, so the gaps are wide and a batch average shows them."""
    model = make(prior="mog", posterior="planar", backbone="mlp").double().eval()
    x = digits_like(64, seed=3)
    torch.manual_seed(0)
    elbo = model.elbo(x, num_samples=200).mean()
    torch.manual_seed(0)
    k1, k10, k100 = (model.log_prob(x, num_samples=k).mean() for k in (1, 10, 100))
    assert (k1 - elbo).abs() < 0.5  # one-draw ELBO: unbiased, noisy
    assert elbo + 0.1 < k10 and k10 + 0.1 < k100
    # K = 1 is exactly the one-sample ELBO on the same draw (no analytic KL here)
    torch.manual_seed(5)
    a = model.log_prob(x, num_samples=1)
    torch.manual_seed(5)
    assert torch.allclose(a, model.elbo(x, num_samples=1))


def test_chunking_gives_the_same_numbers(monkeypatch):
    model = make(prior="vampprior", posterior="iaf", backbone="mlp").double().eval()
    x = digits_like(5)
    torch.manual_seed(0)
    whole = model.log_prob(x, num_samples=300, chunk=1 << 20)
    for chunk in (17, 2, 500):  # 3 samples per pass, 1 per pass (chunk < B), 100 per pass
        torch.manual_seed(0)
        torch.testing.assert_close(model.log_prob(x, 300, chunk=chunk), whole, rtol=0, atol=1e-10)
        # a likelihood with many parameters per row caps the rows per pass: still the same numbers
        # 7 rows: 1 sample per pass
        monkeypatch.setattr("dgm.models.latent.base.PARAMS_PER_PASS", 17 * 64 * 7)
    assert model.samples_per_pass(5) == 1  # the cap bites
    torch.manual_seed(0)
    torch.testing.assert_close(model.log_prob(x, 300), whole, rtol=0, atol=1e-10)
    assert model.draws(x, 30).recon.shape == (30, 5)


# -- a linear-Gaussian VAE, whose log p(x) is known ---------------------------------------------
def _linear_gaussian(w, b, sigma, fixed_scale: bool) -> VAE:
    """x = W z + b + sigma eps, z ~ N(0, I): linear encoder (``layers=0``) and decoder."""
    d, k = w.shape
    model = dgm.create(
        "vae",
        shape=(d,),
        levels=None,
        latent=k,
        layers=0,
        backbone="mlp",
        gaussian_scale=sigma if fixed_scale else 0.0,
    ).double()
    last = model.decoder.last  # output unit p * D + d: p = 0 the means, p = 1 the log-scales
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.weight[:d] = w
        last.bias[:d] = b
        if not fixed_scale:
            last.bias[d:] = math.log(sigma)
    return model


def _set_posterior(model: VAE, a, a0, std) -> None:
    """q(z|x) = N(A x + a0, diag std^2): a linear mean, a constant scale."""
    k = std.shape[0]
    net = model.posterior.net
    with torch.no_grad():
        net.weight.zero_()
        net.weight[:k] = a
        net.bias[:k] = a0
        net.bias[k:] = std + torch.log(-torch.expm1(-std))  # softplus^-1(std)


def _exact(w, b, sigma):
    """log p(x) and the exact posterior N(A (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I."""
    d, k = w.shape
    marginal = MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(d, dtype=F64))
    m = w.T @ w + sigma**2 * torch.eye(k, dtype=F64)
    a = torch.linalg.solve(m, w.T)  # [K, D]
    return marginal, a, sigma**2 * torch.linalg.inv(m)


@pytest.mark.parametrize("fixed_scale", [False, True])
def test_linear_gaussian_exact_posterior_gives_log_p_exactly(fixed_scale):
    """With orthogonal columns of W the true posterior is diagonal: q = p(z|x) makes every
    importance weight equal p(x), so even K = 1 is exact."""
    torch.manual_seed(0)
    d, k, sigma = 5, 2, 0.6
    q, _ = torch.linalg.qr(torch.randn(d, k, dtype=F64))
    w = q * torch.tensor([1.5, 0.7], dtype=F64)
    b = torch.randn(d, dtype=F64)
    model = _linear_gaussian(w, b, sigma, fixed_scale)
    marginal, a, cov = _exact(w, b, sigma)
    _set_posterior(model, a, -a @ b, cov.diagonal().sqrt())
    x = marginal.sample((16,))
    torch.testing.assert_close(model.log_prob(x), marginal.log_prob(x), rtol=0, atol=1e-10)
    torch.testing.assert_close(model.log_prob(x, 7), marginal.log_prob(x), rtol=0, atol=1e-10)


def test_linear_gaussian_iwae_converges_and_elbo_stays_below():
    torch.manual_seed(1)
    d, k, sigma = 5, 2, 0.5
    w, b = torch.randn(d, k, dtype=F64), torch.randn(d, dtype=F64)
    model = _linear_gaussian(w, b, sigma, fixed_scale=False).eval()
    marginal, a, cov = _exact(w, b, sigma)
    std = 1.6 * cov.diagonal().sqrt()  # right mean; too wide and blind to the correlation
    _set_posterior(model, a, -a @ b, std)
    x = marginal.sample((20,))
    log_p = marginal.log_prob(x)
    torch.manual_seed(2)
    iwae = model.log_prob(x, num_samples=5000)
    assert (iwae - log_p).abs().max() < 0.05
    # the ELBO in closed form: E_q log p(x|z) - KL(q || N(0, I))
    mu = (x - b) @ a.T  # [B, K]
    resid = x - mu @ w.T - b
    recon = -(resid.pow(2).sum(1) + (w.pow(2) * std.pow(2)).sum()) / (2 * sigma**2)
    recon = recon - d * math.log(sigma) - 0.5 * d * math.log(2 * math.pi)
    exact_elbo = recon - gaussian_kl(mu, std.log().expand_as(mu)).sum(1)
    assert (log_p - exact_elbo).min() > 0.3  # a real gap, well above the Monte Carlo noise
    torch.manual_seed(3)
    draws = model.draws(x, 4000)
    se = draws.recon.std(0) / math.sqrt(4000)  # the analytic KL adds no noise
    torch.manual_seed(3)
    elbo = model.elbo(x, num_samples=4000)
    assert ((elbo - exact_elbo).abs() < 4 * se).all()
    assert (elbo < log_p).all() and (iwae > elbo).all()


# -- KL and priors ----------------------------------------------------------------------------
def test_analytic_kl_equals_monte_carlo():
    torch.manual_seed(0)
    mu, log_std = torch.randn(2, 3, 4, dtype=F64).unbind(0)
    log_std = 0.5 * log_std
    exact = kl_divergence(Normal(mu, log_std.exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, log_std), exact)
    z = mu + log_std.exp() * torch.randn(200_000, 3, 4, dtype=F64)
    mc = Normal(mu, log_std.exp()).log_prob(z) - Normal(0.0, 1.0).log_prob(z)  # [N, 3, 4]
    se = mc.sum(-1).std(0) / math.sqrt(mc.shape[0])
    assert ((mc.sum(-1).mean(0) - exact.sum(-1)).abs() < 4 * se + 1e-3).all()
    # and through the model: the analytic ELBO agrees with the Monte Carlo one
    model = make(backbone="mlp").double()
    assert model.analytic_kl
    x = digits_like(4)
    d = model.draws(x, 4000)
    analytic = gaussian_kl(d.mu, d.log_std).sum(-1)
    mc_kl = d.log_q - d.log_p  # [S, B]
    assert ((mc_kl.mean(0) - analytic).abs() < 4 * mc_kl.std(0) / math.sqrt(4000)).all()


def test_log_softplus_is_finite_far_out():
    raw = torch.tensor([-1000.0, -30.0, 0.0, 30.0], dtype=F64, requires_grad=True)
    out = log_softplus(raw)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(raw.grad).all()
    torch.testing.assert_close(out[1:], torch.log(F.softplus(raw[1:])))


def _perturb(model: VAE) -> None:
    """Move the prior away from its initialisation, so the check is not of N(0, I)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.prior.named_parameters():
            # the flow's MADE weights compound through its steps: 0.1 already moves the
            # density far from N(0, I) (log-densities differ by > 1 nat inside |z| < 2)
            scale = {"pseudo": 1.0}.get(name, 0.1 if name.startswith("flow") else 0.3)
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("prior", PRIORS)
def test_prior_density_integrates_to_one(prior):
    model = make(prior=prior, latent=2, backbone="mlp").double()
    _perturb(model)
    step = 0.04
    axis = torch.arange(-12, 12, step, dtype=F64) + step / 2
    grid = torch.cartesian_prod(axis, axis)  # [N, 2]
    with torch.no_grad():
        log_p = model.prior.log_prob(grid)
    mass = log_p.exp().sum() * step**2
    assert abs(float(mass) - 1) < 2e-3, mass
    if prior != "standard":  # the perturbed prior is not the standard normal
        far = (log_p - Normal(0.0, 1.0).log_prob(grid).sum(-1)).abs()
        assert far[grid.norm(dim=1) < 2].max() > 0.1
    # samples follow the density: their mean matches the grid's mean
    torch.manual_seed(0)
    s = model.prior.sample(20000).double()
    mean = (log_p.exp()[:, None] * grid).sum(0) * step**2
    assert (s.mean(0) - mean).abs().max() < 0.06


def test_vampprior_is_the_mean_of_the_posteriors_at_the_pseudo_inputs():
    model = make(prior="vampprior", posterior="planar", components=4, backbone="mlp").double()
    with torch.no_grad():
        model.prior.pseudo[0] = 5.0  # outside the data range: hardtanh clamps it to 1
    u = model.prior.pseudo_inputs()
    assert u.max() == 1 and u.min() >= -1
    z = torch.randn(6, 3, dtype=F64)
    per_component = []
    for c in range(4):
        h = model.encoder(u[c : c + 1])  # [1, H]
        mu, raw = model.posterior.base.net(h).chunk(2, dim=-1)
        q0 = Normal(mu, F.softplus(raw))  # the Gaussian part of the planar posterior
        per_component.append(q0.log_prob(z).sum(-1))
    by_hand = torch.stack(per_component).exp().mean(0).log()
    torch.testing.assert_close(model.prior.log_prob(z), by_hand)


def test_vampprior_pseudo_inputs_start_from_data():
    model = make(prior="vampprior", components=4)
    x = digits_like(6)
    model.init_pseudo_inputs(x)
    scaled = x[:4] * (2 / 16) - 1  # the encoder's [-1, 1] scale
    assert (model.prior.pseudo_inputs() - scaled).abs().max() < 0.1
    with pytest.raises(ConfigError, match="vampprior"):
        make().init_pseudo_inputs(x)


def test_mixture_log_prob_matches_the_componentwise_sum():
    """The matmul expansion equals the direct sum over components: exactly in float64, and in
    float32 to a few 1e-3 nats at VampPrior-like scales (sigma ~ 0.05-1, |z| up to 4)."""
    torch.manual_seed(0)
    z, mu, ls = torch.randn(50, 3, dtype=F64), torch.randn(7, 3, dtype=F64), torch.randn(7, 3)
    log_w = torch.log_softmax(torch.randn(7, dtype=F64), 0)
    whole = mixture_log_prob(z, log_w, mu, ls.double())
    dens = torch.stack(
        [Normal(mu[c], ls[c].double().exp()).log_prob(z).sum(-1) + log_w[c] for c in range(7)]
    )
    torch.testing.assert_close(whole, torch.logsumexp(dens, 0))
    z = 4 * torch.rand(200, 40, dtype=F64) - 2  # a 40-d code, 500 components
    mu = z[:100].repeat(5, 1) + 0.1 * torch.randn(500, 40, dtype=F64)
    ls = torch.empty(500, 40, dtype=F64).uniform_(math.log(0.05), 0.0)
    log_w = torch.full((500,), -math.log(500), dtype=F64)
    exact = mixture_log_prob(z, log_w, mu, ls)
    f32 = mixture_log_prob(z.float(), log_w.float(), mu.float(), ls.float())
    assert (f32.double() - exact).abs().max() < 5e-3


# -- training tricks: in the loss only ------------------------------------------------------
def _terms(model: VAE, x, seed):
    torch.manual_seed(seed)
    d = model.draws(x, 1)
    return d.recon[0], gaussian_kl(d.mu, d.log_std)  # [B], [B, K]


def test_warmup_ramps_the_kl_weight_linearly():
    model = make(backbone="mlp", warmup_steps=4, beta=2.0).double().train()
    x = digits_like(8)
    for step in range(7):
        recon, kl = _terms(model, x, step)
        torch.manual_seed(step)
        model.set_step(step)  # what the trainer does before each step
        loss = model.loss(x)
        weight = 2.0 * min(1.0, step / 4)
        torch.testing.assert_close(loss, -recon.mean() + weight * kl.sum(-1).mean())


def test_free_bits_floor_each_dimensions_batch_mean_kl():
    model = make(backbone="mlp", latent=4).double().train()
    x = digits_like(8)
    recon, kl = _terms(model, x, 0)
    per_dim = kl.mean(0)  # [K]
    floor = float(per_dim.detach().median())  # some dimensions above it, some below
    assert (per_dim < floor).any() and (per_dim > floor).any()
    model.config.free_bits = floor
    torch.manual_seed(0)
    loss = model.loss(x)
    torch.testing.assert_close(loss, -recon.mean() + per_dim.clamp_min(floor).sum())
    # the dimensions under the floor get no gradient from the KL term
    d = model.draws(x, 1)
    kl_only = gaussian_kl(d.mu, d.log_std).mean(0).clamp_min(floor).sum()
    grad = torch.autograd.grad(kl_only, d.mu)[0]
    assert (grad[:, per_dim < floor] == 0).all() and (grad[:, per_dim > floor] != 0).any()


def test_beta_weights_the_loss_only():
    one = make(backbone="mlp", prior="mog", kl_samples=1).double().eval()
    four = make(backbone="mlp", prior="mog", beta=4.0, kl_samples=1).double().eval()
    four.load_state_dict(one.state_dict())
    x = digits_like(6)
    for fn in (
        lambda m: m.elbo(x),
        lambda m: m.log_prob(x, 5),
        lambda m: m.metrics(x)["nll"],
        lambda m: m.metrics(x)["elbo"],
    ):
        torch.manual_seed(0)
        a = fn(one)
        torch.manual_seed(0)
        assert torch.equal(a, fn(four))
    torch.manual_seed(0)
    d = one.draws(x, 1)
    kl = (d.log_q - d.log_p).mean()
    torch.manual_seed(0)
    l1 = one.loss(x)
    torch.manual_seed(0)
    torch.testing.assert_close(four.loss(x) - l1, 3 * kl)


@pytest.mark.parametrize("prior", ["mog", "vampprior", "flow"])
def test_kl_samples_cut_the_kl_gradient_noise_not_its_mean(prior):
    """The loss with many KL draws estimates the same -ELBO as with one (no bias), while the
    gradient reaching the prior varies several times less from call to call."""
    one = make(backbone="mlp", prior=prior, kl_samples=1).double().eval()
    many = make(backbone="mlp", prior=prior, kl_samples=16).double().eval()
    many.load_state_dict(one.state_dict())
    x = digits_like(4)
    torch.manual_seed(0)
    with torch.no_grad():
        a = torch.stack([one.loss(x) for _ in range(300)])
        b = torch.stack([many.loss(x) for _ in range(300)])
    assert abs(a.mean() - b.mean()) < 4 * math.sqrt(a.var() / 300 + b.var() / 300)

    def grads(m):
        p = next(m.prior.parameters())
        out = []
        for _ in range(40):
            m.zero_grad()
            m.loss(x).backward()
            out.append(p.grad.flatten().clone())
        return torch.stack(out)  # [40, P]

    assert grads(many).var(0).sum() < grads(one).var(0).sum() / 3


def test_iwae_objective_is_the_negative_iwae_bound():
    model = make(backbone="mlp", objective="iwae", iwae_samples=6).double().train()
    x = digits_like(5)
    torch.manual_seed(0)
    loss = model.loss(x)
    torch.manual_seed(0)
    torch.testing.assert_close(loss, -model.log_prob(x, num_samples=6).mean())
