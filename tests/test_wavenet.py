"""WaveNet's maths: causality, receptive field, a normalised likelihood, cached sampling."""

from __future__ import annotations

import itertools

import pytest
import torch

import dgm
import dgm.models.autoregressive.wavenet  # registers "wavenet"
from dgm.nn.wavenet import WaveNet, dilations

# small enough for the whole file to run in a few seconds on one core
TINY = {"hidden": 8, "skip_channels": 8, "head_channels": 8, "max_dilation": 4, "stacks": 1}


def _dependence(net: WaveNet, c_in: int, length: int) -> torch.Tensor:
    """``dep[t, s] > 0`` iff output ``t`` depends on input ``s`` (float64 Jacobian)."""
    torch.manual_seed(0)
    x = torch.randn(1, c_in, length, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(net, x)  # [1, P, L, 1, C, L]
    return jac[0].abs().sum(dim=(0, 2, 3))  # [L_out, L_in]


@pytest.mark.parametrize(
    "cfg",
    [
        {},  # kernel 2, dilations 1 2 4
        {"kernel_size": 2, "max_dilation": 8, "stacks": 2},
        {"kernel_size": 3, "max_dilation": 2, "stacks": 2},
        {"kernel_size": 2, "max_dilation": 1, "stacks": 3, "input": "scalar"},
        {"kernel_size": 1, "max_dilation": 4, "stacks": 1},  # only the input layer looks back
    ],
)
def test_output_t_depends_only_on_inputs_before_t(cfg):
    """Jacobian check, and the reported receptive field is the measured one."""
    torch.manual_seed(0)
    model = dgm.create("wavenet", shape=(48,), levels=3, **{**TINY, **cfg}).double().eval()
    rf = model.receptive_field
    length = rf + 8  # long enough that the receptive field, not the sequence, is the limit
    dep = _dependence(model.net, model.in_channels, length)
    future = torch.triu(torch.ones(length, length, dtype=torch.bool))  # s >= t
    assert dep[future].max() == 0
    assert dep[0].sum() == 0  # the first conditional sees nothing
    assert all(dep[t, t - 1] > 0 for t in range(1, length))  # and each one sees its predecessor
    # the furthest past input with any influence is exactly rf steps back
    furthest = max(t - int(dep[t].nonzero().min()) for t in range(1, length))
    assert furthest == rf
    assert all(dep[t, t - rf] > 0 for t in range(rf, length))


def test_receptive_field_formula():
    assert dilations(8, 2) == [1, 2, 4, 8, 1, 2, 4, 8] and dilations(6, 1) == [1, 2, 4]
    model = dgm.create("wavenet", shape=(784,), levels=2, kernel_size=2, max_dilation=8, stacks=2)
    # the exclusive input layer reaches 2 back, each block (k - 1) * d more
    assert model.receptive_field == 2 + 2 * (1 + 2 + 4 + 8)
    assert "receptive_field=32" in repr(model)


@pytest.mark.parametrize("levels", [2, 3])
def test_likelihood_sums_to_one_over_support(levels):
    """Enumerate every x in {0..K-1}^4: sum p(x) == 1 (bernoulli for K=2, else categorical)."""
    torch.manual_seed(0)
    model = dgm.create("wavenet", shape=(4,), levels=levels, **TINY).double().eval()
    xs = torch.tensor(list(itertools.product(range(levels), repeat=4)), dtype=torch.float64)
    assert model.log_prob(xs).exp().sum().item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cfg", [{}, {"kernel_size": 3, "stacks": 2, "input": "scalar"}])
def test_cached_steps_give_the_full_network_logits(dtype, cfg):
    """Teacher-forced through the queues, every step's output equals the full pass's."""
    torch.manual_seed(0)
    model = dgm.create("wavenet", shape=(40,), levels=5, **{**TINY, **cfg}).to(dtype).eval()
    x = torch.randint(0, 5, (3, 40)).float()
    with torch.no_grad():
        full = model.logits(x)  # [3, P, 40]
        queues = model.net.start(3, dtype, torch.device("cpu"))
        enc = model.encode_sequence(x)  # [3, C, 40]
        prev = torch.zeros_like(enc[..., 0])
        steps = []
        for t in range(40):
            steps.append(model.net.step(prev, queues))
            prev = enc[..., t]
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(torch.stack(steps, -1), full, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "levels, cfg, temperature",
    [(17, {}, 1.0), (17, {"input": "scalar", "kernel_size": 3}, 0.7), (2, {}, 1.3)],
)
def test_cached_and_uncached_samples_are_identical(dtype, levels, cfg, temperature):
    torch.manual_seed(0)
    model = dgm.create("wavenet", shape=(1, 8, 8), levels=levels, **{**TINY, **cfg})
    model = model.to(dtype).eval()
    torch.manual_seed(7)
    fast = model.sample(6, temperature=temperature, cache=True)
    torch.manual_seed(7)
    slow = model.sample(6, temperature=temperature, cache=False)
    assert fast.shape == (6, 1, 8, 8)
    assert torch.equal(fast, slow)
    assert fast.min() >= 0 and fast.max() <= levels - 1
    assert len(fast.unique()) > 1  # a real draw, not a constant


def test_rejects_continuous_data_and_bad_config():
    from dgm.data import DataSpec
    from dgm.errors import ConfigError, DataError

    with pytest.raises(DataError, match="continuous"):
        dgm.models.autoregressive.wavenet.WaveNet.check_spec(
            DataSpec(name="toy", shape=(2,), levels=None)
        )
    with pytest.raises(ConfigError, match="max_dilation"):
        dgm.create("wavenet", shape=(4,), levels=3, max_dilation=0)


def test_logistic_mixture_likelihood_normalised_and_cached_sampling():
    """PixelCNN++'s likelihood plugs in too: sums to 1, and cached == uncached samples."""
    pytest.importorskip("dgm.distributions.logistic")
    torch.manual_seed(0)
    cfg = {**TINY, "likelihood": "logistic-mixture", "mixtures": 2}
    model = dgm.create("wavenet", shape=(3,), levels=4, **cfg).double().eval()
    xs = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64)
    assert model.log_prob(xs).exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    model = dgm.create("wavenet", shape=(1, 8, 8), levels=17, **cfg).eval()
    torch.manual_seed(3)
    fast = model.sample(4, cache=True)
    torch.manual_seed(3)
    assert torch.equal(fast, model.sample(4, cache=False))
