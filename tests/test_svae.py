"""The hyperspherical VAE: both posteriors honour the contract, codes lie on the sphere, the
loss and its gradients stay finite for concentrations from 1e-3 to 1e5, the closed-form KL and
the importance weights agree with each other (a decoder that ignores z makes log p(x) known),
IWAE bounds order as Burda et al. (2016) prove, chunked estimates do not depend on the
chunking, slerp walks the great circle, and a short training run works."""

from __future__ import annotations

import math

import pytest
import torch

import dgm
import dgm.models.latent.svae  # registers "svae"
from dgm import registry
from dgm.data.base import DataSpec
from dgm.distributions.gaussian import Gaussian
from dgm.distributions.spherical import PowerSpherical, VonMisesFisher, log_sphere_area
from dgm.errors import ConfigError
from dgm.models.latent.svae import SVAE, concentration, slerp
from dgm.pipeline import train
from tests.helpers import SPHERICAL, SVAE_TINY, digits_like

F64 = torch.float64
DISTS = SPHERICAL
TINY = SVAE_TINY


def make(**kw) -> SVAE:
    torch.manual_seed(0)
    return dgm.create("svae", **{**TINY, **kw})


def _sharpen(model: SVAE) -> None:
    """Concentrate the posteriors (kappa ~ 4) and make the decoder lean on z, so the gaps
    between the bounds are wide enough to see."""
    with torch.no_grad():
        model.kappa_head.bias.fill_(3.0)
        model.decoder.body[0].weight.mul_(5.0)


# -- codes on the sphere, for both posteriors and backbones ------------------------------------
CASES = [(d, b) for d in DISTS for b in ("mlp", "conv")]


@pytest.mark.parametrize(("dist", "backbone"), CASES, ids=[f"{d}-{b}" for d, b in CASES])
def test_posteriors_and_codes_live_on_the_sphere(dist, backbone):
    """The spherical parts (the contract suite checks the rest for these four variants)."""
    model = make(distribution=dist, backbone=backbone).eval()
    x = digits_like(5)
    q = model.posterior(x)
    assert isinstance(q, VonMisesFisher if dist == "vmf" else PowerSpherical)
    assert q.batch_shape == (5,) and q.event_shape == (4,) and (q.scale >= 1).all()
    z = model.encode(x)  # the mean direction: a unit vector
    assert z.shape == (5, 4) and torch.equal(z, q.loc)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5), rtol=0, atol=1e-6)
    z_draw = torch.cat([q.sample() for _ in range(20)])  # the draws lie on the sphere too
    torch.testing.assert_close(z_draw.norm(dim=-1), torch.ones(100), rtol=0, atol=1e-5)
    path = model.path(z[:2], z[2:4], 5)  # interpolation walks the sphere
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(5, 2), rtol=0, atol=1e-5)


def test_registered_in_the_latent_family():
    entry = registry.get("svae")
    assert entry.cls is SVAE and entry.family == "latent"
    assert SVAE.exact_likelihood is False and SVAE.default_eval_samples == 5000
    model = SVAE.for_data(DataSpec("toy", (2,), None), latent=3, hidden=8)
    assert model.config.levels is None and isinstance(model.likelihood, Gaussian)
    x = torch.randn(6, 2)
    assert torch.isfinite(model.loss(x)) and torch.isfinite(model.log_prob(x, 5)).all()
    note = model.likelihood_note(num_samples=100)
    assert "K=100" in note and "IWAE" in note and "lower bound" in note


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="latent"):
        dgm.create("svae", latent=1)
    with pytest.raises(ConfigError, match="continuous"):
        dgm.create("svae", shape=(2,), levels=None, likelihood="categorical")
    with pytest.raises(ConfigError, match="distribution"):
        dgm.create("svae", distribution="gaussian")
    with pytest.raises(ConfigError, match="backbone=conv"):
        dgm.create("svae", shape=(4,), levels=2, backbone="conv")


# -- numerical robustness -------------------------------------------------------------------
@pytest.mark.parametrize("dist", DISTS)
def test_extreme_concentrations_stay_finite(dist, monkeypatch):
    """kappa from 1e-3 (near uniform) to 1e5 (a point), in float32 as in training: the loss,
    the bounds and every gradient stay finite."""
    model = make(distribution=dist, backbone="mlp", latent=10)
    x = digits_like(9)
    kappas = torch.logspace(-3, 5, 9)

    def spread(raw):  # kappa = kappas exactly, d kappa / d raw = kappa: gradients flow
        return kappas[:, None] * torch.exp(raw - raw.detach())

    monkeypatch.setattr("dgm.models.latent.svae.concentration", spread)
    torch.testing.assert_close(model.posterior(x).scale, kappas)
    model.train()
    loss = model.loss(x)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.kappa_head.weight.grad.abs().sum() > 0
    model.eval()
    assert torch.isfinite(model.log_prob(x, 7)).all() and torch.isfinite(model.elbo(x)).all()
    monkeypatch.undo()

    # the model's own map, driven by a huge kappa head: kappa from 1 to far past 1e5
    model.zero_grad()
    with torch.no_grad():
        # raw outputs centred on 0 and spread to +-1e6: some examples sit at kappa ~ 1, some
        # far past 1e5
        head = model.kappa_head
        head.weight.normal_(0.0, 1.0)
        raw = head(model.encoder(model._prep(x)))  # [B, 1]
        head.bias.sub_(raw.median())
        scale = 1e6 / (raw - raw.median()).abs().max()
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    kappa = model.posterior(x).scale
    assert kappa.min() < 1.01 and kappa.max() > 1e5
    model.train()
    loss = model.loss(x)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_concentration_is_the_papers_map():
    raw = torch.tensor([-50.0, 0.0, 50.0], dtype=F64)
    torch.testing.assert_close(concentration(raw), torch.nn.functional.softplus(raw) + 1)
    assert concentration(raw).min() >= 1


# -- the bounds --------------------------------------------------------------------------------
@pytest.mark.parametrize("dist", DISTS)
def test_known_log_p_when_the_decoder_ignores_z(dist):
    """With p(x|z) = p(x) the ELBO is log p(x) - KL exactly and the IWAE estimate converges to
    log p(x): this ties the closed-form KL, log q and log p(z) = -log area together. (The
    Power Spherical vanishes at -loc, so p(z)/q(z|x) has finite variance only for kappa <
    (m - 1) / 2: m = 8 keeps the random encoder's kappa ~ 1.7 well inside.)"""
    model = make(distribution=dist, backbone="mlp", latent=8).double().eval()
    with torch.no_grad():
        model.decoder.body[0].weight.zero_()  # the decoder's output no longer depends on z
    x = digits_like(6)
    with torch.no_grad():
        q = model.posterior(x)
        log_px = model.likelihood.log_prob(model.decoder(q.loc), x)  # [B]
        torch.manual_seed(0)
        torch.testing.assert_close(model.elbo(x, num_samples=3), log_px - model.kl(q))
        assert (model.kl(q) > 0).all()
        torch.manual_seed(0)
        iwae = model.log_prob(x, num_samples=2000)
        torch.manual_seed(0)
        ratio = torch.exp(model.log_prior - model.draws(x, 2000).log_q)  # p(z)/q(z|x), [K, B]
    # the standard error of log mean(ratio), by the delta method
    se = ratio.std(0) / (ratio.mean(0) * math.sqrt(ratio.shape[0]))
    assert se.max() < 0.05 and ((iwae - log_px).abs() < 4 * se).all()
    assert model.log_prior == -log_sphere_area(8)


@pytest.mark.parametrize("dist", DISTS)
def test_closed_form_kl_equals_monte_carlo(dist):
    model = make(distribution=dist, backbone="mlp").double().eval()
    _sharpen(model)
    x = digits_like(4)
    with torch.no_grad():
        q = model.posterior(x)
        mc = q.log_prob(q.sample((20000,))) - model.log_prior  # [S, B]
    se = mc.std(0) / math.sqrt(mc.shape[0])
    assert ((mc.mean(0) - model.kl(q)).abs() < 4 * se).all()


@pytest.mark.parametrize("dist", DISTS)
def test_iwae_tightens_with_k_and_bounds_the_elbo(dist):
    """E[IWAE_K] is non-decreasing in K and IWAE_1 is an unbiased one-draw ELBO."""
    model = make(distribution=dist, backbone="mlp", latent=3).double().eval()
    _sharpen(model)
    x = digits_like(64, seed=3)
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = model.elbo(x, num_samples=200).mean()
        torch.manual_seed(0)
        k1, k10, k100 = (model.log_prob(x, num_samples=k).mean() for k in (1, 10, 100))
        assert (k1 - elbo).abs() < 1.0  # one draw: unbiased, noisy
        assert elbo + 1 < k10 and k10 + 1 < k100
        torch.manual_seed(1)
        assert (model.log_prob(x, 100) > model.elbo(x, 100)).float().mean() > 0.9


@pytest.mark.parametrize("dist", DISTS)
def test_chunking_gives_the_same_numbers(dist, monkeypatch):
    """Each sample is its own sampler call, so the vMF's rejection rounds cannot shift the
    random stream between chunkings: identical numbers, not only statistically close ones."""
    model = make(distribution=dist, backbone="mlp", latent=5).double().eval()
    x = digits_like(5)
    with torch.no_grad():
        torch.manual_seed(0)
        whole = model.log_prob(x, num_samples=120, chunk=1 << 20)
        for chunk in (17, 2, 250):  # 3 samples per pass, 1 per pass (chunk < B), 50 per pass
            torch.manual_seed(0)
            again = model.log_prob(x, 120, chunk=chunk)
            torch.testing.assert_close(again, whole, rtol=0, atol=1e-10)
        # a likelihood with many parameters per row caps the rows per pass: still the same
        # 7 rows: 1 sample per pass
        monkeypatch.setattr("dgm.models.latent.base.PARAMS_PER_PASS", 17 * 64 * 7)
        assert model.samples_per_pass(5) == 1  # the cap bites
        torch.manual_seed(0)
        torch.testing.assert_close(model.log_prob(x, 120), whole, rtol=0, atol=1e-10)
        torch.manual_seed(0)
        one = model.elbo(x, 40, chunk=1 << 20)
        torch.manual_seed(0)
        torch.testing.assert_close(model.elbo(x, 40, chunk=3), one, rtol=0, atol=1e-10)


def test_warmup_and_beta_weight_the_loss_only():
    model = make(backbone="mlp", warmup_steps=4, beta=2.0).double().train()
    plain = make(backbone="mlp").double().eval()
    x = digits_like(8)
    for step in range(6):
        torch.manual_seed(step)
        d = model.draws(x, 1)
        recon, kl = d.recon[0], model.kl(d.q)
        torch.manual_seed(step)
        model.set_step(step)  # what the trainer does before each step
        loss = model.loss(x)
        torch.testing.assert_close(loss, -recon.mean() + 2.0 * min(1.0, step / 4) * kl.mean())
    model.eval()
    for fn in (lambda m: m.elbo(x), lambda m: m.log_prob(x, 3), lambda m: m.metrics(x)["nll"]):
        torch.manual_seed(0)
        a = fn(model)
        torch.manual_seed(0)
        assert torch.equal(a, fn(plain))


# -- slerp -------------------------------------------------------------------------------------
def test_slerp_walks_the_great_circle():
    torch.manual_seed(0)
    z1 = torch.nn.functional.normalize(torch.randn(5, 6, dtype=F64), dim=-1)
    z2 = torch.nn.functional.normalize(torch.randn(5, 6, dtype=F64), dim=-1)
    z2[3] = z1[3]  # equal codes: stays put
    z2[4] = -z1[4]  # opposite codes: some half great circle
    path = slerp(z1, z2, 7)  # [7, 5, 6]
    assert path.shape == (7, 5, 6)
    torch.testing.assert_close(path[0], z1, rtol=0, atol=1e-12)
    torch.testing.assert_close(path[-1], z2, rtol=0, atol=1e-12)
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(7, 5, dtype=F64))
    # constant speed: equal angles between consecutive points, summing to the total angle
    steps = torch.arccos((path[1:] * path[:-1]).sum(-1).clamp(-1, 1))  # [6, 5]
    total = torch.arccos((z1 * z2).sum(-1).clamp(-1, 1))
    torch.testing.assert_close(steps, (total / 6).expand(6, 5), rtol=0, atol=1e-6)
    # on one great circle: the generic paths stay in the plane of their endpoints
    basis = torch.linalg.qr(torch.stack([z1[:3], z2[:3]], -1))[0]  # [3, 6, 2]
    off_plane = path[:, :3] - torch.einsum("bij,bkj,sbk->sbi", basis, basis, path[:, :3])
    assert off_plane.abs().max() < 1e-12
    torch.testing.assert_close(path[:, 3], z1[3].expand(7, 6), rtol=0, atol=1e-12)
    # the opposite pair goes through a point orthogonal to both ends, halfway
    assert (path[3, 4] @ z1[4]).abs() < 1e-12


def test_interpolate_decodes_the_slerp_path():
    model = make(backbone="mlp").double()
    x = digits_like(4)
    out = model.interpolate(x[:2], x[2:], steps=5)  # [5, 2, 1, 8, 8]
    z = slerp(model.encode(x[:2]), model.encode(x[2:]), 5)
    assert torch.equal(out, model.decode(z.flatten(0, 1)).view(5, 2, 1, 8, 8))
    assert torch.equal(out[0], model.reconstruct(x[:2]))


# -- training -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("dist", DISTS)
def test_two_epochs_on_digits(dist, tmp_path, digits):
    res = train(
        "svae",
        digits,
        tmp_path / "r",
        {**TINY, "hidden": 16, "distribution": dist},
        {"epochs": 2, "sample_every": 0, "num_samples": 4},
        show=lambda s: None,
    )
    assert res["model"] == "svae" and res["epochs"] == 2
    assert math.isfinite(res["val_nll_nats"]) and res["val_nll_nats"] > 0
    assert math.isfinite(res["test_nll_nats"]) and math.isfinite(res["test_elbo_nats"])
    model = dgm.load(tmp_path / "r")
    assert isinstance(model, SVAE) and model.config.distribution == dist
