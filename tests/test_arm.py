"""The ARM's maths: causality, a normalised likelihood, and the model contract."""

from __future__ import annotations

import itertools

import pytest
import torch

import dgm
from dgm.distributions import Categorical
from dgm.nn import CausalConv1d
from tests.helpers import TINY_ARM


@pytest.mark.parametrize("exclusive", [True, False])
@pytest.mark.parametrize("dilation", [1, 3])
def test_causal_conv_sees_only_the_past(exclusive, dilation):
    torch.manual_seed(0)
    conv = CausalConv1d(2, 3, kernel_size=3, dilation=dilation, exclusive=exclusive).double()
    L = 12
    jac = torch.autograd.functional.jacobian(conv, torch.randn(1, 2, L, dtype=torch.float64))
    dep = jac[0].abs().sum(dim=(0, 2, 3))  # [L_out, L_in]: does output t depend on input s?
    for t in range(L):
        for s in range(L):
            allowed = s < t if exclusive else s <= t
            reach = (3 - 1) * dilation + int(exclusive)
            if not allowed:
                assert dep[t, s] == 0, (t, s)
            elif t - s <= reach and (t - s - int(exclusive)) % dilation == 0:
                assert dep[t, s] > 0, (t, s)  # the window really is used


@pytest.mark.parametrize(
    "cfg",
    [
        {},  # the default: one-hot input, dilations, residual blocks
        {"input": "scalar", "dilation_growth": 1, "residual": False, "layers": 4},
        {"layers": 2, "kernel_size": 5},
    ],
)
def test_arm_output_d_depends_only_on_inputs_before_d(cfg):
    """Jacobian check: d logits_d / d input_j == 0 for every j >= d (raster order)."""
    torch.manual_seed(0)
    model = dgm.create("arm", shape=(1, 4, 4), levels=5, **{**TINY_ARM, **cfg}).double().eval()
    c_in = model.net.first.in_channels
    D = 16
    h = torch.randn(1, c_in, D, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(model.net, h)  # [1, K, D, 1, C, D]
    dep = jac[0].abs().sum(dim=(0, 2, 3))  # [D_out, D_in]
    future = torch.triu(torch.ones(D, D, dtype=torch.bool))  # j >= d
    assert dep[future].max() == 0
    # and it does use the past: every output after the first sees its predecessor
    assert all(dep[d, d - 1] > 0 for d in range(1, D))
    # the first conditional sees nothing, so its logits are constant in x
    assert dep[0].sum() == 0


def test_arm_likelihood_sums_to_one_over_support():
    """Enumerate every x in {0,1,2}^4: sum p(x) == 1."""
    torch.manual_seed(0)
    model = dgm.create("arm", shape=(4,), levels=3, **TINY_ARM).double().eval()
    xs = torch.tensor(list(itertools.product(range(3), repeat=4)), dtype=torch.float64)
    total = model.log_prob(xs).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


def test_categorical_sums_to_one_and_samples_in_support():
    lik = Categorical(levels=6)
    logits = torch.randn(2, 6, 3, dtype=torch.float64)
    per_level = torch.stack(
        [lik.log_prob_per_dim(logits, torch.full((2, 3), k)) for k in range(6)]
    ).exp()
    assert torch.allclose(per_level.sum(0), torch.ones(2, 3, dtype=torch.float64))
    s = lik.sample(logits.float())
    assert s.shape == (2, 3) and s.min() >= 0 and s.max() <= 5
    assert torch.equal(lik.sample(logits, temperature=0), logits.argmax(1).float())


def test_arm_sampling_is_seeded_and_matches_full_recomputation():
    """The prefix trick in sample() must give the same draws as recomputing everything."""
    model = dgm.create("arm", shape=(6,), levels=4, **TINY_ARM).eval()
    torch.manual_seed(1)
    fast = model.sample(7)
    torch.manual_seed(1)
    x = torch.zeros(7, 6)
    with torch.no_grad():
        for d in range(6):
            x[:, d] = model.likelihood.sample(model.logits(x)[..., d : d + 1])[:, 0]
    assert torch.equal(fast, x)


def test_receptive_field_is_reported():
    model = dgm.create("arm", shape=(64,), levels=3, layers=4, kernel_size=3, dilation_growth=2)
    # first layer reaches 3 back (exclusive), blocks with dilation 1, 2 reach 2 and 4, last 2
    assert model.receptive_field == 3 + 2 + 4 + 2
