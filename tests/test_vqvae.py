"""VQ-VAE (van den Oord et al. 2017): the quantiser picks nearest codes with a straight-through
gradient, the EMA codebook follows the paper's update exactly and gets no gradient, dead codes
restart in training mode only, the code prior is causal and normalised, and log_prob is the
lower bound it claims to be (one term of the exact sum over code maps)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import dgm
import dgm.models.latent.vqvae  # registers "vqvae"
from dgm.data.base import DataSpec
from dgm.errors import ConfigError, DataError
from dgm.models.latent.vq import VectorQuantizer, auto_downsample
from dgm.models.latent.vqvae import NOTE, VQVAE
from tests.helpers import TINY as HELPER_TINY

F64 = torch.float64
TINY = HELPER_TINY["vqvae"]


def make(**kw) -> VQVAE:
    torch.manual_seed(0)
    return dgm.create("vqvae", **{**TINY, **kw}).double()


def digits_like(n: int, seed: int = 0, levels: int = 17, side: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n, 1, side, side), generator=g).to(F64)


# -- shapes and the contract ----------------------------------------------------------------
def test_shapes_of_everything():
    model = make()
    x = digits_like(5)
    assert model.code_shape == (4, 4)
    model.train()
    loss = model.loss((x, None))
    assert loss.ndim == 0 and torch.isfinite(loss)
    model.eval()
    z_e = model.pre_quantize(x)
    codes = model.encode(x)
    assert z_e.shape == (5, 4, 4, 4) and codes.shape == (5, 4, 4) and codes.dtype == torch.long
    assert model.decode(codes).shape == model.reconstruct(x).shape == (5, 1, 8, 8)
    assert model.interpolate(x[0], x[1], 3).shape == (3, 1, 8, 8)
    assert model.interpolate(x[:2], x[2:4], 4).shape == (4, 2, 1, 8, 8)
    lp = model.log_prob(x)
    assert lp.shape == (5,)
    m = model.metrics((x, None))
    assert set(m) == {"nll", "recon", "prior_nll", "perplexity"}
    assert all(v.shape == (5,) for v in m.values())
    assert torch.allclose(m["nll"], -lp) and torch.allclose(m["nll"], m["recon"] + m["prior_nll"])
    assert 1 <= m["perplexity"][0] <= 8 and (m["perplexity"] == m["perplexity"][0]).all()
    for temperature in (1.0, 0.5, 0.0):
        s = model.sample(3, temperature=temperature)
        assert s.shape == (3, 1, 8, 8) and torch.equal(s, s.round())
        assert s.min() >= 0 and s.max() <= 16
    assert torch.equal(model.sample(2, temperature=0), model.sample(2, temperature=0))
    assert model.sample_codes(4).shape == (4, 4, 4)
    assert not model.exact_likelihood and model.likelihood_note(5) == NOTE
    assert torch.equal(model.log_prob(x, num_samples=7), lp)  # deterministic


def test_sizes_from_the_image_and_binary_data():
    assert [auto_downsample(s, s) for s in (4, 7, 8, 16, 28, 32)] == [0, 0, 1, 2, 2, 2]
    torch.manual_seed(0)
    model = dgm.create("vqvae", shape=(1, 28, 28), levels=2, **TINY)
    assert model.code_shape == (7, 7)
    assert type(model.likelihood).__name__ == "Bernoulli"
    x = digits_like(2, levels=2, side=28).float()
    assert model.encode(x).shape == (2, 7, 7) and model.log_prob(x).shape == (2,)
    assert dgm.create("vqvae", downsample=2, **TINY).code_shape == (2, 2)
    assert dgm.create("vqvae", downsample=0, **TINY).code_shape == (8, 8)


def test_config_and_data_errors():
    with pytest.raises(ConfigError, match="divisible"):
        dgm.create("vqvae", shape=(1, 6, 6), downsample=2)
    with pytest.raises(ConfigError, match="images"):
        dgm.create("vqvae", shape=(64,))
    with pytest.raises(ConfigError, match="prior_kernel"):
        dgm.create("vqvae", prior_kernel=4)
    with pytest.raises(DataError, match="continuous"):
        VQVAE.check_spec(DataSpec("c", (1, 8, 8), None))
    with pytest.raises(DataError, match="images"):
        VQVAE.check_spec(DataSpec("v", (5,), 3))


# -- the quantiser ----------------------------------------------------------------------------
def quantiser(**kw) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(**{"num_codes": 5, "dim": 3, "dead_threshold": 0.0, **kw}).double()


def test_nearest_code_and_straight_through_gradient():
    vq = quantiser(ema=False).eval()
    with torch.no_grad():
        vq.embed.copy_(torch.randn(5, 3, dtype=F64))
    z_e = torch.randn(2, 3, 4, 3, dtype=F64, requires_grad=True)  # [B, D, h, w]
    q = vq(z_e)
    flat = z_e.detach().movedim(1, -1).reshape(-1, 3)
    nearest = torch.cdist(flat, vq.embed.detach()).argmin(1)
    assert torch.equal(q.codes.reshape(-1), nearest)
    assert torch.allclose(q.z_q, vq.embed.detach()[q.codes].movedim(-1, 1))  # values are codes
    w = torch.randn_like(q.z_q)
    (q.z_q * w).sum().backward()
    assert torch.equal(z_e.grad, w)  # the decoder's gradient passes straight through
    assert vq.embed.grad is None or not vq.embed.grad.any()  # z_q gives the codebook none


def test_losses_and_their_gradients_without_ema():
    vq = quantiser(ema=False, commitment=0.3).eval()
    z_e = torch.randn(2, 3, 2, 2, dtype=F64, requires_grad=True)
    q = vq(z_e)
    e = vq.embed.detach()[q.codes].movedim(-1, 1)  # [B, D, h, w]
    sq = (z_e.detach() - e).pow(2).flatten(1).sum(1)  # [B]
    assert torch.allclose(q.loss, 1.3 * sq)
    q.loss.sum().backward()
    assert torch.allclose(z_e.grad, 0.6 * (z_e.detach() - e))  # commitment only
    flat, codes = z_e.detach().movedim(1, -1).reshape(-1, 3), q.codes.reshape(-1)
    expect = torch.zeros(5, 3, dtype=F64).index_add_(
        0, codes, 2 * (vq.embed.detach()[codes] - flat)
    )
    assert torch.allclose(vq.embed.grad, expect)  # codebook loss moves codes to the outputs


def test_ema_codebook_follows_the_paper_and_gets_no_gradient():
    vq = quantiser(num_codes=3, dim=2, decay=0.5)
    with torch.no_grad():
        vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-50.0, 50.0]]))
    assert "embed" not in dict(vq.named_parameters()) and not vq.embed.requires_grad
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0], [2.0, 0.0]], dtype=F64)
    z2 = torch.tensor([[0.5, 0.5], [11.0, 11.0], [12.0, 10.0], [1.0, 1.0]], dtype=F64)

    def step(z):  # four vectors as a [1, D, 1, 4] map
        z = z.T.reshape(1, 2, 1, 4).clone().requires_grad_(True)
        q = vq(z)
        (q.z_q.sum() + q.loss.sum()).backward()
        assert z.grad is not None and vq.embed.grad is None
        return q.codes.reshape(-1)

    # step 1 from N = m = 0: N = 0.5 n, m = 0.5 s, so e_k = mean of its vectors; code 2 unused
    assert step(z1).tolist() == [0, 0, 1, 0]
    assert torch.allclose(vq.cluster_size, torch.tensor([1.5, 0.5, 0.0], dtype=F64))
    e0, e1 = z1[[0, 1, 3]].mean(0), z1[2]
    assert torch.allclose(vq.embed, torch.stack([e0, e1, torch.tensor([-50.0, 50.0], dtype=F64)]))
    # step 2: N = 0.5 N + 0.5 n, m = 0.5 m + 0.5 s, e = m / N
    assert step(z2).tolist() == [0, 1, 1, 0]
    n = torch.tensor([0.5 * 1.5 + 0.5 * 2, 0.5 * 0.5 + 0.5 * 2], dtype=F64)
    m0 = 0.5 * (0.5 * z1[[0, 1, 3]].sum(0)) + 0.5 * (z2[0] + z2[3])
    m1 = 0.5 * (0.5 * z1[2]) + 0.5 * (z2[1] + z2[2])
    assert torch.allclose(vq.cluster_size[:2], n)
    assert torch.allclose(vq.embed[0], m0 / n[0]) and torch.allclose(vq.embed[1], m1 / n[1])
    assert torch.equal(vq.embed[2], torch.tensor([-50.0, 50.0], dtype=F64))  # never used: kept
    # in eval mode nothing moves
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(z1.T.reshape(1, 2, 1, 4))
    assert all(torch.equal(v, vq.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("ema", [False, True])
def test_dead_codes_restart_in_training_mode_only(ema):
    vq = quantiser(num_codes=4, dim=3, ema=ema, dead_threshold=1.0, decay=0.9)
    with torch.no_grad():
        vq.cluster_size.copy_(torch.tensor([5.0, 0.2, 5.0, 0.1]))
        if ema:
            vq.embed_sum.copy_(vq.embed * vq.cluster_size[:, None])
    z = torch.randn(2, 3, 3, 3, dtype=F64) + 7.0  # far from every code
    flat = z.movedim(1, -1).reshape(-1, 3)
    before = vq.embed.detach().clone()
    vq.eval()
    vq(z)
    assert torch.equal(vq.embed, before)
    vq.train()
    torch.manual_seed(1)
    q = vq(z)
    assert set(q.codes.unique().tolist()) <= {1, 3}  # the outputs now go to the restarted codes
    if not ema:  # restarted codes sit exactly on encoder outputs; live codes untouched
        for k in (1, 3):
            assert (vq.embed[k] == flat).all(1).any()
        assert torch.equal(vq.embed[[0, 2]], before[[0, 2]])
    else:  # EMA: e = m / N for every code, restarted statistics included
        assert torch.allclose(vq.embed, vq.embed_sum / vq.cluster_size[:, None])
        assert not torch.allclose(vq.embed[[1, 3]], before[[1, 3]])
    counts = torch.bincount(q.codes.reshape(-1), minlength=4).to(F64)
    expect = 0.9 * torch.tensor([5.0, 1.0, 5.0, 1.0], dtype=F64) + 0.1 * counts
    assert torch.allclose(vq.cluster_size, expect)


def test_perplexity_counts_effective_codes():
    vq = quantiser(num_codes=4)
    assert math.isclose(vq.perplexity(torch.tensor([0, 1, 2, 3])).item(), 4.0)
    assert math.isclose(vq.perplexity(torch.tensor([2, 2, 2])).item(), 1.0)
    assert math.isclose(vq.perplexity(torch.tensor([0, 0, 1, 1])).item(), 2.0)


# -- the prior and the likelihood ---------------------------------------------------------------
def test_prior_is_causal_over_the_code_grid():
    model = make(prior_layers=2, downsample=0, shape=(1, 4, 4)).eval()  # a 4x4 code grid
    k = model.config.num_codes
    u = torch.rand(1, k, 4, 4, dtype=F64, requires_grad=True)  # relaxed one-hot input
    logits = model.prior(u)  # [1, K, 4, 4]
    for i, j in itertools.product(range(4), range(4)):
        (g,) = torch.autograd.grad(logits[0, :, i, j].sum(), u, retain_graph=True)
        seen = g.abs().sum(1)[0] > 0  # [4, 4]
        order = torch.arange(16).view(4, 4)
        assert not seen[order >= 4 * i + j].any(), (i, j)  # nothing at or after (i, j)
        if j > 0:
            assert seen[i, j - 1]
        if i > 0:
            assert seen[i - 1, j]


def all_maps(k: int, h: int, w: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(k), repeat=h * w))).view(-1, h, w)


def test_prior_sums_to_one_and_log_prob_is_one_term_of_the_sum():
    model = make(num_codes=3, shape=(1, 4, 4), downsample=1)  # a 2x2 grid of 3 codes: 81 maps
    model.train()
    x = digits_like(4, side=4)
    model.loss((x, None)).backward()  # one step of codebook restarts, so codes are distinct
    model.eval()
    codes = all_maps(3, 2, 2)
    log_p = model.log_prior(codes)
    assert torch.allclose(log_p.logsumexp(0), torch.zeros((), dtype=F64), atol=1e-12)
    # exact log p(x) = log sum_c p(c) p(x | c) >= the reported term at c = codes(x)
    recon = torch.stack([model._recon(codes, xi.expand(81, 1, 4, 4)) for xi in x])  # [4, 81]
    exact = (log_p + recon).logsumexp(1)
    lp = model.log_prob(x)
    assert (lp <= exact + 1e-9).all() and (lp < exact).any()
    enc = model.encode(x).view(4, -1)
    index = (enc * torch.tensor([27, 9, 3, 1])).sum(1)  # row of each map in all_maps
    assert torch.allclose(lp, (log_p + recon)[torch.arange(4), index])


def test_log_prob_on_digits(digits):
    model = make()
    x = digits.train.x[:16].to(F64)
    model.train()
    model.loss((x, None))
    model.eval()
    lp = model.log_prob(x)
    assert torch.isfinite(lp).all() and (lp <= 0).all()


def test_loss_is_nll_plus_commitment():
    model = make(commitment=0.7).eval()  # eval: no restarts or updates inside the loss
    x = digits_like(6)
    z_e = model.pre_quantize(x)
    e = model.quantizer.lookup(model.encode(x))
    commit = 0.7 * (z_e - e).pow(2).flatten(1).sum(1)
    expect = (-model.log_prob(x) + commit).mean()
    assert torch.allclose(model.loss((x, None)), expect)


def test_prior_gives_the_encoder_no_gradient():
    model = make()
    model.train()
    q = model.quantizer(model.pre_quantize(digits_like(4)))
    model.log_prior(q.codes).sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.prior.parameters())


@pytest.mark.slow
def test_two_epoch_training_on_digits(digits, tmp_path):
    from dgm.pipeline import train

    res = train(
        "vqvae",
        digits,
        tmp_path / "run",
        model_config=TINY,
        train_config={"epochs": 2, "sample_every": 0, "num_samples": 4, "ema": 0.9},
        show=lambda _: None,
    )
    assert res["epochs"] == 2 and math.isfinite(res["test_nll_nats"]) and res["test_nll_nats"] > 0
    assert res["test_estimate"] == NOTE
    model = dgm.load(tmp_path / "run")
    assert model.quantizer.cluster_size.sum() > 0  # the codebook statistics were kept
