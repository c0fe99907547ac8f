"""The transformer ARM: causality, a normalised likelihood, the KV cache, and the contract."""

from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch

import dgm
import dgm.models.autoregressive.transformer_arm  # registers "transformer-arm"
from dgm.errors import ConfigError
from dgm.models.base import GenerativeModel
from dgm.nn.transformer import CausalTransformer

TINY = {"dim": 16, "layers": 2, "heads": 2, "mlp_ratio": 2.0, "dropout": 0.1}
TINY_TRAIN = [
    arg
    for kv in [*(f"{k}={v}" for k, v in TINY.items()), "sample_every=1", "num_samples=4"]
    for arg in ("--set", kv)
]
LIKELIHOODS = ["categorical", "bernoulli"] + (
    ["logistic-mixture"] if importlib.util.find_spec("dgm.distributions.logistic") else []
)


def tiny(shape: tuple[int, ...] = (1, 4, 4), levels: int = 5, **cfg) -> GenerativeModel:
    torch.manual_seed(0)
    return dgm.create("transformer-arm", shape=shape, levels=levels, **{**TINY, **cfg})


@pytest.mark.parametrize("train_mode", [False, True])
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_output_d_depends_only_on_inputs_before_d(likelihood, train_mode):
    """Jacobian w.r.t. the token embeddings of x: d params_d / d e_j == 0 for every j >= d.

    Tokens are discrete, so the check differentiates through ``logits_from_embeddings``,
    which does the shift, the positions and the causal transformer. In train mode the
    dropout masks (attention included) are drawn once and must not open a path either.
    """
    levels = 2 if likelihood == "bernoulli" else 5
    model = tiny(levels=levels, likelihood=likelihood).double().train(train_mode)
    D = 16
    e = model.embed(torch.randint(0, levels, (1, D))).detach()  # [1, D, C]
    torch.manual_seed(1)
    jac = torch.autograd.functional.jacobian(model.logits_from_embeddings, e)  # [1,P,D,1,D,C]
    dep = jac[0].abs().sum(dim=(0, 2, 4))  # [D_out, D_in]
    future = torch.triu(torch.ones(D, D, dtype=torch.bool))  # j >= d
    assert dep[future].max() == 0
    if not train_mode:  # (dropout may cut single paths)
        # attention mixes every earlier position into every later output
        assert (dep[~future] > 0).all()
    # the first conditional sees nothing, so its params are constant in x
    assert dep[0].sum() == 0


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_likelihood_sums_to_one_over_support(likelihood):
    """Enumerate every x in {0..K-1}^4: sum p(x) == 1."""
    levels = 2 if likelihood == "bernoulli" else 3
    model = tiny(shape=(4,), levels=levels, likelihood=likelihood).double().eval()
    xs = torch.tensor(list(itertools.product(range(levels), repeat=4)), dtype=torch.float64)
    total = model.log_prob(xs).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


def test_kv_cache_in_pieces_equals_one_full_pass():
    """Feeding a sequence in chunks (one token, several, one) through the cache changes
    nothing: the chunk path uses an offset causal mask, the one-token path none."""
    torch.manual_seed(0)
    body = CausalTransformer(dim=16, layers=3, heads=4, mlp_ratio=2.0).double().eval()
    h = torch.randn(2, 12, 16, dtype=torch.float64)
    full = body(h)
    kv = body.new_cache(12)
    parts, start = [], 0
    for size in (1, 4, 1, 1, 5):
        parts.append(body(h[:, start : start + size], kv))
        start += size
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-12)
    with pytest.raises(ValueError, match="cache holds"):
        body(h[:, :1], kv)  # full


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cached_and_uncached_sampling_agree(dtype):
    """Same seed -> identical samples; the per-step params agree to rounding."""
    model = tiny(shape=(1, 4, 5), levels=6).to(dtype).eval()
    for temperature in (1.0, 0.7):
        torch.manual_seed(3)
        fast = model.sample(9, temperature=temperature)
        torch.manual_seed(3)
        slow = model.sample(9, temperature=temperature, cache=False)
        assert fast.shape == (9, 1, 4, 5)
        assert torch.equal(fast, slow)
    # the params each cached step produced equal those of one full pass
    x = fast.reshape(9, -1)
    kv = model.body.new_cache(20)
    with torch.no_grad():
        steps = torch.cat([model.step(x, d, kv) for d in range(20)], dim=-1)  # [9, P, D]
        full = model.logits(x)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(steps, full, atol=tol)


def test_cached_sampling_bernoulli_and_temperature_zero():
    model = tiny(shape=(10,), levels=2).eval()
    torch.manual_seed(0)
    a = model.sample(6)
    torch.manual_seed(0)
    assert torch.equal(a, model.sample(6, cache=False))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(model.sample(3, temperature=0), model.sample(3, temperature=0, cache=False))


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="multiple of heads"):
        dgm.create("transformer-arm", dim=10, heads=4)
    with pytest.raises(ConfigError, match="dropout"):
        dgm.create("transformer-arm", dropout=1.0)


def test_cached_sampling_under_autocast():
    """The cache takes its dtype from the keys, so bf16 autocast (mixed precision) works."""
    model = tiny(shape=(6,), levels=4).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = model.sample(3)
    assert s.shape == (3, 6) and s.min() >= 0 and s.max() <= 3
