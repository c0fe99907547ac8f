"""MADE's maths: masks that respect every ordering, normalised likelihoods (one mask and the
ensemble), mask cycling in training, and the model contract."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import dgm
import dgm.models.autoregressive.made  # registers "made"
from dgm.data.base import DataSpec
from dgm.errors import ConfigError, DataError
from dgm.nn.made import MADENet, made_degrees

TINY = {"hidden": 24, "layers": 2}


def _dependence(net: MADENet, mask: int) -> torch.Tensor:
    """``[D_out, D_in]``: is output dimension d a function of input dimension i under ``mask``?"""
    D, C = net.dim, net.in_per_dim
    h = torch.randn(1, D * C, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: net(v, mask), h)  # [1, P*D, 1, D*C]
    jac = jac[0, :, 0].reshape(net.out_per_dim, D, D, C)  # [P, D_out, D_in, C]
    return jac.abs().sum(dim=(0, 3))


@pytest.mark.parametrize("order", ["natural", "random"])
@pytest.mark.parametrize(
    "cfg",
    [
        {},  # scalar input, two hidden layers
        {"input": "onehot", "layers": 3, "direct": True},
        {"input": "onehot", "layers": 1, "mask_bias": True, "activation": "tanh"},
    ],
)
def test_output_d_depends_only_on_inputs_before_d_in_every_mask(order, cfg):
    """Jacobian check, for each of several masks: d out_d / d x_i == 0 unless i is before d."""
    torch.manual_seed(0)
    # hidden >> D so that (with the paper's uniform degrees) every degree 1..D-1 is present
    model = dgm.create(
        "made", shape=(2, 3), levels=3, order=order, num_masks=4, **{**TINY, "hidden": 48, **cfg}
    )
    net = model.net.double().eval()
    for m in range(4):
        rank = net.orders[m]  # [D]: the place (1..D) of every dimension in this ordering
        dep = _dependence(net, m)
        before = rank[None, :] < rank[:, None]  # [d, i]: i comes strictly before d
        assert dep[~before].max() == 0, f"mask {m} leaks a later or the same input"
        for d in range(6):
            if rank[d] > 1:  # and the conditional does use the past
                assert dep[d][before[d]].sum() > 0, (m, d)
            else:  # the first dimension of the order has a constant conditional
                assert dep[d].sum() == 0
    orders = net.orders.long()
    if order == "natural":
        assert (orders == torch.arange(1, 7)).all()
    else:  # every mask has its own permutation of 1..D
        assert all(sorted(o.tolist()) == list(range(1, 7)) for o in orders)
        assert len({tuple(o.tolist()) for o in orders}) > 1


def test_degrees_follow_the_paper():
    """Hidden degrees lie in [min degree below, D - 1], and the same seed gives the same masks."""
    orders, hidden = made_degrees(5, [7, 9], num_masks=3, order="random", seed=3)
    assert orders.shape == (3, 5) and [h.shape for h in hidden] == [(3, 7), (3, 9)]
    for m in range(3):
        assert hidden[0][m].min() >= 1 and hidden[0][m].max() <= 4
        assert hidden[1][m].min() >= hidden[0][m].min() and hidden[1][m].max() <= 4
    again = made_degrees(5, [7, 9], num_masks=3, order="random", seed=3)
    assert torch.equal(orders, again[0]) and all(map(torch.equal, hidden, again[1]))
    other = made_degrees(5, [7, 9], num_masks=3, order="random", seed=4)
    assert not torch.equal(orders, other[0])
    # a single dimension: hidden units of degree 1 feed no output, which is then constant
    one, deg = made_degrees(1, [3], num_masks=1, order="natural", seed=0)
    assert one.tolist() == [[1]] and deg[0].tolist() == [[1, 1, 1]]


SUPPORT = torch.tensor(list(itertools.product(range(3), repeat=4)), dtype=torch.float64)


@pytest.mark.parametrize(
    "cfg",
    [
        {},  # one fixed natural mask
        {"order": "random", "input": "onehot", "direct": True},
        {"order": "random", "num_masks": 3, "ensemble": 3, "mask_bias": True},  # the ensemble
        {"num_masks": 2, "ensemble": 2, "likelihood": "logistic-mixture", "mixtures": 2},
    ],
)
def test_likelihood_sums_to_one_over_support(cfg):
    """Enumerate every x in {0,1,2}^4: sum p(x) == 1, for each mask and for the mixture."""
    torch.manual_seed(0)
    model = dgm.create("made", shape=(4,), levels=3, **{**TINY, **cfg}).double().eval()
    total = model.log_prob(SUPPORT).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)
    for m in range(model.config.num_masks):
        assert model.log_prob_mask(SUPPORT, m).exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_binary_data_gets_a_normalised_bernoulli_model():
    model = dgm.create("made", shape=(5,), levels=2, **TINY).double().eval()
    xs = torch.tensor(list(itertools.product(range(2), repeat=5)), dtype=torch.float64)
    assert model.likelihood.params_per_dim == 1
    assert model.log_prob(xs).exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_ensemble_is_the_mean_probability_of_its_masks():
    torch.manual_seed(0)
    model = dgm.create("made", shape=(4,), levels=3, order="random", num_masks=4, ensemble=3)
    model.double().eval()
    per_mask = torch.stack([model.log_prob_mask(SUPPORT, m) for m in range(3)])  # [3, B]
    expected = per_mask.exp().mean(0).log()
    assert torch.allclose(model.log_prob(SUPPORT), expected, atol=1e-12)


def test_training_steps_cycle_the_masks_and_eval_uses_the_first():
    torch.manual_seed(0)
    model = dgm.create("made", shape=(4,), levels=3, order="random", num_masks=3, **TINY)
    x = SUPPORT[:8].float()
    model.train()
    seen = []
    for step in range(4):
        model.set_step(step)  # the trainer's step picks the mask
        model.loss((x, None))
        seen.append(model.mask_index)
        # in training mode log_prob (and so the loss) uses the current mask only
        assert torch.equal(model.log_prob(x), model.log_prob_mask(x, model.mask_index))
    assert seen == [0, 1, 2, 0]
    # the masks really differ from one step to the next
    for a, b in [(0, 1), (1, 2)]:
        (ha, oa, _), (hb, ob, _) = model.net.masks(a), model.net.masks(b)
        assert not torch.equal(oa, ob) or any(not torch.equal(p, q) for p, q in zip(ha, hb))
    model.set_step(7)  # a resumed run continues the cycle where it was
    assert model.mask_index == 1
    model.eval()  # eval scores the ensemble's first mask, whatever the step
    assert torch.equal(model.log_prob(x), model.log_prob_mask(x, 0))
    single = dgm.create("made", shape=(4,), levels=3, **TINY).train()
    for step in range(3):
        single.set_step(step)
        assert single.mask_index == 0


def test_float64_and_temperature_zero():
    model = dgm.create("made", shape=(6,), levels=4, **TINY).double().eval()
    x = torch.randint(0, 4, (3, 6)).double()
    assert model.log_prob(x).dtype == torch.float64
    s = model.sample(4, temperature=0)
    assert torch.equal(s, s[:1].expand(4, -1))  # the mode is the same for every sample


@pytest.mark.parametrize("mask", [0, 1, 2])
def test_sampling_is_seeded_and_follows_the_masks_order(mask, monkeypatch):
    torch.manual_seed(0)
    model = dgm.create("made", shape=(8,), levels=5, order="random", num_masks=3, **TINY).eval()
    torch.manual_seed(1)
    a = model.sample_mask(6, mask)
    torch.manual_seed(1)
    assert torch.equal(a, model.sample_mask(6, mask))
    # at temperature 0 every x_d is the mode of p(x_d | the x before d in the order)
    greedy = model.sample_mask(2, mask, temperature=0)  # [2, D]
    with torch.no_grad():
        assert torch.equal(model.params(greedy, mask).argmax(1).float(), greedy)
    # the dimensions are filled one at a time, in exactly the mask's order
    filled: list[int] = []
    params = model.params

    def spy(x: torch.Tensor, m: int = 0) -> torch.Tensor:
        done = set((x[0] != 0).nonzero()[:, 0].tolist())
        assert done == set(filled)  # only what was drawn before is visible
        return params(x, m)

    def draw(p: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        filled.append(int(order[len(filled)]))
        return torch.full(p.shape[:1] + p.shape[2:], 4.0)  # a non-zero level marks the draw

    order = model.net.order(mask)
    monkeypatch.setattr(model, "params", spy)
    monkeypatch.setattr(model.likelihood, "sample", draw)
    out = model.sample_mask(3, mask)
    assert len(filled) == 8 and (out == 4).all()
    assert sorted(order.tolist()) == list(range(8))
    assert torch.equal(order, torch.argsort(model.net.orders[mask]))


def test_ensemble_sampling_draws_from_every_mask_and_is_seeded():
    torch.manual_seed(0)
    model = dgm.create(
        "made", shape=(6,), levels=3, order="random", num_masks=3, ensemble=3, **TINY
    ).eval()
    torch.manual_seed(5)
    a = model.sample(12)
    torch.manual_seed(5)
    assert torch.equal(a, model.sample(12))
    assert a.shape == (12, 6) and a.min() >= 0 and a.max() <= 2


def test_save_load_gives_identical_masks_and_log_prob(tmp_path, digits):
    torch.manual_seed(0)
    model = dgm.create(
        "made",
        shape=(1, 8, 8),
        levels=17,
        order="random",
        num_masks=4,
        ensemble=4,
        mask_seed=7,
        **TINY,
    ).eval()
    model.save(tmp_path / "m")
    loaded = dgm.load(tmp_path / "m")
    assert loaded.config == model.config
    for name, buf in model.named_buffers():
        assert torch.equal(buf, dict(loaded.named_buffers())[name]), name
    x = digits.test.x[:16]
    assert torch.equal(model.log_prob(x), loaded.log_prob(x))
    for m in range(4):
        assert torch.equal(model.log_prob_mask(x, m), loaded.log_prob_mask(x, m))
    # the masks are a function of the stored seed
    other = dgm.create("made", shape=(1, 8, 8), levels=17, order="random", num_masks=4, **TINY)
    assert not torch.equal(other.net.orders, model.net.orders)


def test_weight_averaging_keeps_the_masks_exact():
    """The trainer averages buffers too (EMA with use_buffers): the degrees must survive it."""
    torch.manual_seed(0)
    model = dgm.create("made", shape=(6,), levels=3, order="random", num_masks=3, **TINY)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.98), use_buffers=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randint(0, 3, (8, 6)).float()
    for _ in range(4):
        model.train()
        opt.zero_grad()
        model.loss((x, None)).backward()
        opt.step()
        ema.update_parameters(model)
    for name, buf in model.named_buffers():
        assert torch.equal(buf, dict(ema.module.named_buffers())[name]), name


def test_half_precision_keeps_the_degrees_exact():
    """bfloat16 rounds whole numbers above 256; the degrees must not follow the weights there."""
    model = dgm.create("made", shape=(300,), levels=2, hidden=8, order="random")
    orders = model.net.orders.clone()
    model.bfloat16()
    assert model.net.last.weight.dtype == torch.bfloat16
    assert model.net.orders.dtype == torch.float32 and torch.equal(model.net.orders, orders)
    x = torch.randint(0, 2, (2, 300)).float()
    assert torch.isfinite(model.eval().log_prob(x)).all()


def test_config_checks():
    with pytest.raises(ConfigError, match="num_masks"):
        dgm.create("made", shape=(4,), levels=3, num_masks=2, ensemble=3)
    with pytest.raises(ConfigError):
        dgm.create("made", shape=(4,), levels=3, layers=0)
    spec = DataSpec("c", (4,), None)
    with pytest.raises(DataError, match="discrete"):
        dgm.registry.get("made").cls.check_spec(spec)
