"""PixelCNN and Gated PixelCNN: causality (and the blind spot), a normalised likelihood,
class conditioning, and the model contract."""

from __future__ import annotations

import itertools

import pytest
import torch

import dgm
import dgm.models.autoregressive.pixelcnn  # registers pixelcnn and gated-pixelcnn)
from dgm.data.base import DataSpec
from dgm.errors import ConfigError, DataError
from dgm.nn.pixelcnn import MaskedConv2d, channel_groups, square_masked_conv

TINY = {"hidden": 8, "head": 8, "layers": 2, "first_kernel": 3, "dropout": 0.0}


def dependence(model, shape, y=None):
    """``dep[c, i, j, c', i', j']``: does output colour c at (i, j) depend on input (c', i', j')?

    Works on the network's encoded input, so one-hot and scalar inputs are both covered.
    """
    model = model.double().eval()
    colours, h, w = shape
    c_in = model.net.layers[0].h_conv.in_channels if hasattr(model.net, "layers") else None
    c_in = c_in or model.net.first.in_channels
    inputs = torch.randn(1, c_in, h, w, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: model._net(t, y), inputs)
    jac = jac[0, :, :, :, 0].abs()  # [C*P, H, W, C_in, H, W]
    out_colour = channel_groups(jac.shape[0], colours)
    in_colour = channel_groups(c_in, colours)
    dep = torch.zeros(colours, h, w, colours, h, w, dtype=torch.float64)
    for c in range(colours):
        for c2 in range(colours):
            block = jac[out_colour == c][:, :, :, in_colour == c2]  # [., H, W, ., H, W]
            dep[c, :, :, c2] = block.sum(dim=(0, 3))
    return dep


def forbidden(shape):
    """``[C, H, W, C, H, W]`` True where input (c', i', j') is at or after output (c, i, j)."""
    colours, h, w = shape
    pos = torch.arange(h * w).view(h, w)  # raster index
    c = torch.arange(colours).view(-1, 1, 1, 1, 1, 1)
    c2 = torch.arange(colours).view(1, 1, 1, -1, 1, 1)
    p = pos.view(1, h, w, 1, 1, 1)
    p2 = pos.view(1, 1, 1, 1, h, w)
    return (p2 > p) | ((p2 == p) & (c2 >= c))


# -- the layers ---------------------------------------------------------------------------


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("colours", [1, 3])
def test_masked_conv_sees_only_earlier_pixels_and_colours(mask_type, colours):
    torch.manual_seed(0)
    conv = square_masked_conv(3 * colours, 2 * colours, 5, mask_type, colours).double()
    shape = (colours, 5, 5)
    x = torch.randn(1, 3 * colours, 5, 5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(conv, x)[0, :, :, :, 0].abs()  # [out,H,W,in,H,W]
    g_out, g_in = channel_groups(2 * colours, colours), channel_groups(3 * colours, colours)
    for c, c2 in itertools.product(range(colours), repeat=2):
        dep = jac[g_out == c][:, :, :, g_in == c2].sum(dim=(0, 3))  # [H, W, H, W]
        bad = forbidden(shape)[c, :, :, c2]
        if mask_type == "B":  # the centre with its own colour is allowed
            bad = bad & ~torch.eye(25, dtype=torch.bool).view(5, 5, 5, 5)
        assert dep[bad].max() == 0
        # the whole half-window before the centre is used
        assert dep[2, 2, 0, 0] > 0 and dep[2, 2, 2, 1] > 0 and dep[2, 2, 0, 4] > 0
        centre = dep[2, 2, 2, 2]
        assert (centre > 0) == (c2 < c or (mask_type == "B" and c2 == c))


def test_masked_conv_mask_is_not_saved_and_zeroes_gradients():
    conv = MaskedConv2d(2, 4, (2, 3), (1, 1), "A")
    assert "mask" not in conv.state_dict()
    conv(torch.randn(1, 2, 4, 4)).sum().backward()
    assert (conv.weight.grad[conv.mask == 0] == 0).all()


# -- causality of the models ------------------------------------------------------------------


CAUSAL_CASES = [
    ("pixelcnn", (1, 5, 5), {}),
    ("pixelcnn", (1, 5, 5), {"input": "onehot", "first_kernel": 7, "kernel_size": 5}),
    ("pixelcnn", (3, 4, 4), {"input": "onehot"}),
    ("pixelcnn", (2, 4, 4), {"layers": 0}),
    ("gated-pixelcnn", (1, 5, 5), {}),
    ("gated-pixelcnn", (1, 5, 5), {"input": "onehot", "skip": False, "first_kernel": 7}),
    ("gated-pixelcnn", (3, 4, 4), {"input": "onehot", "kernel_size": 5}),
    ("gated-pixelcnn", (2, 4, 4), {"skip": False, "layers": 0}),
]


@pytest.mark.parametrize(("name", "shape", "cfg"), CAUSAL_CASES)
def test_output_depends_only_on_earlier_pixels(name, shape, cfg):
    """Jacobian check: d params(c, i, j) / d input(c', i', j') == 0 at or after (c, i, j)."""
    torch.manual_seed(0)
    model = dgm.create(name, shape=shape, levels=4, **{**TINY, "hidden": 24, "head": 24, **cfg})
    dep = dependence(model, shape)
    assert dep[forbidden(shape)].max() == 0
    # and the past is used: each pixel's first colour sees its left neighbour
    assert all(dep[0, i, j, 0, i, j - 1] > 0 for i in range(shape[1]) for j in range(1, shape[2]))
    if shape[0] > 1:  # later colours see the earlier ones at the same pixel
        assert dep[1, 2, 2, 0, 2, 2] > 0


def test_conditional_gated_model_is_causal():
    torch.manual_seed(0)
    shape = (1, 5, 5)
    model = dgm.create(
        "gated-pixelcnn", shape=shape, levels=3, conditional=True, num_classes=4, **TINY
    )
    dep = dependence(model, shape, y=torch.tensor([2]))
    assert dep[forbidden(shape)].max() == 0


def earlier_pixels_seen(name, **cfg):
    """For each output pixel of a 6x6 image: the earlier pixels it does not depend on."""
    torch.manual_seed(0)
    shape = (1, 6, 6)
    model = dgm.create(name, shape=shape, levels=3, **{**TINY, **cfg})
    dep = dependence(model, shape)[0, :, :, 0]  # [H, W, H, W]
    past = ~forbidden(shape)[0, :, :, 0]
    return dep, past


def test_gated_pixelcnn_has_no_blind_spot():
    """Every earlier pixel of a 6x6 image influences every output (receptive field >= image)."""
    dep, past = earlier_pixels_seen("gated-pixelcnn", layers=4)
    assert (dep[past] > 0).all()


def test_pixelcnn_has_the_blind_spot():
    """Stacked masked convolutions never reach up-and-right beyond one column per row: output
    (5, 0) does not see (4, 2), however deep the network; the gated model does (above)."""
    dep, past = earlier_pixels_seen("pixelcnn", layers=4)
    assert dep[past].min() == 0
    assert past[5, 0, 4, 2] and dep[5, 0, 4, 2] == 0
    assert dep[5, 0, 4, 1] > 0  # the visible neighbour, for contrast


# -- a normalised likelihood ------------------------------------------------------------------


def all_images(shape, levels):
    n = torch.tensor(shape).prod().item()
    grid = list(itertools.product(range(levels), repeat=n))
    return torch.tensor(grid, dtype=torch.float64).view(-1, *shape)


@pytest.mark.parametrize("name", ["pixelcnn", "gated-pixelcnn"])
@pytest.mark.parametrize("encoding", ["scalar", "onehot"])
@pytest.mark.parametrize(("shape", "levels"), [((1, 2, 2), 3), ((2, 1, 2), 3), ((1, 2, 3), 2)])
def test_likelihood_sums_to_one_over_support(name, encoding, shape, levels):
    """Enumerate every image: sum_x p(x) == 1 (categorical, and Bernoulli for 2 levels)."""
    torch.manual_seed(0)
    model = dgm.create(name, shape=shape, levels=levels, input=encoding, **TINY)
    model = model.double().eval()
    with torch.no_grad():
        total = model.log_prob(all_images(shape, levels)).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


def test_conditional_likelihood_sums_to_one_given_each_class_and_marginally():
    torch.manual_seed(0)
    model = dgm.create(
        "gated-pixelcnn", shape=(1, 2, 2), levels=3, conditional=True, num_classes=3, **TINY
    )
    model = model.double().eval()
    xs = all_images((1, 2, 2), 3)
    with torch.no_grad():
        for k in range(3):
            y = torch.full((xs.shape[0],), k)
            assert model.log_prob(xs, y).exp().sum().item() == pytest.approx(1.0, abs=1e-9)
        assert model.log_prob(xs).exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_float32_and_float64_agree(digits):
    torch.manual_seed(0)
    model = dgm.create("gated-pixelcnn", shape=(1, 8, 8), levels=17, **TINY).eval()
    x = digits.test.x[:4]
    lp32 = model.log_prob(x)
    lp64 = model.double().log_prob(x.double())
    assert lp64.dtype == torch.float64 and torch.allclose(lp32.double(), lp64, atol=1e-3)


def test_conditional_needs_labels_to_train_and_labelled_data(digits):
    model = dgm.create("gated-pixelcnn", conditional=True, num_classes=10, **TINY)
    x = digits.train.x[:4]
    with pytest.raises(DataError, match="no labels"):
        model.loss((x, None))
    with pytest.raises(DataError, match=r"0\.\.9"):
        model.loss((x, torch.tensor([0, 1, 2, 10])))
    unlabelled = DataSpec("blobs", (1, 8, 8), levels=17)
    cls = dgm.registry.get("gated-pixelcnn").cls
    for flag in (True, "true"):
        with pytest.raises(DataError, match="labelled data"):
            cls.for_data(unlabelled, conditional=flag)
    assert cls.for_data(unlabelled).config.num_classes is None
    labelled = cls.for_data(digits.spec, conditional="true", **TINY)
    assert labelled.config.num_classes == 10 and labelled.config.conditional
    with pytest.raises(ConfigError, match="num_classes"):
        dgm.create("gated-pixelcnn", conditional=True)
    with pytest.raises(ConfigError, match="comes from the data"):
        cls.for_data(digits.spec, conditional=True, num_classes=3)


def test_refuses_continuous_and_non_image_data():
    cls = dgm.registry.get("pixelcnn").cls
    with pytest.raises(DataError, match="continuous"):
        cls.for_data(DataSpec("faces", (1, 8, 8), levels=None))
    with pytest.raises(DataError, match="images"):
        cls.for_data(DataSpec("table", (16,), levels=4))


@pytest.mark.parametrize(
    ("name", "shape"), [("pixelcnn", (1, 8, 8)), ("gated-pixelcnn", (2, 3, 4))]
)
def test_sampling_is_seeded_in_range_and_matches_full_recomputation(name, shape):
    """Cropping to the rows drawn so far must give the same draws as the whole image."""
    model = dgm.create(name, shape=shape, levels=5, **TINY).eval()
    torch.manual_seed(1)
    fast = model.sample(6, temperature=0.8)
    torch.manual_seed(1)
    again = model.sample(6, temperature=0.8)
    assert fast.shape == (6, *shape) and torch.equal(fast, again)
    assert fast.min() >= 0 and fast.max() <= 4 and torch.equal(fast, fast.round())
    torch.manual_seed(1)
    x = torch.zeros(6, *shape)
    with torch.no_grad():
        for i, j, c in itertools.product(range(shape[1]), range(shape[2]), range(shape[0])):
            params = model.params(x)[:, :, c : c + 1, i, j]
            x[:, c, i, j] = model.likelihood.sample(params, 0.8)[:, 0]
    assert torch.equal(fast, x)
    assert torch.equal(model.sample(2, temperature=0), model.sample(2, temperature=0))


def test_conditional_sampling_with_given_and_drawn_labels():
    torch.manual_seed(0)
    model = dgm.create(
        "gated-pixelcnn", shape=(1, 4, 4), levels=3, conditional=True, num_classes=3, **TINY
    ).eval()
    s = model.sample(3, labels=torch.tensor([0, 1, 2]))
    assert s.shape == (3, 1, 4, 4) and s.min() >= 0 and s.max() <= 2
    # the mode given each label follows the label
    modes = {k: model.sample(1, temperature=0, labels=[k]) for k in range(3)}
    assert torch.equal(model.sample(3, temperature=0, labels=2), modes[2].expand(3, 1, 4, 4))
    assert model.sample(5).shape == (5, 1, 4, 4)  # labels drawn uniformly
    with pytest.raises(DataError):
        model.sample(2, labels=[0, 3])
    with pytest.raises(DataError):
        model.sample(2, labels=[0, 1, 2])
    plain = dgm.create("gated-pixelcnn", shape=(1, 4, 4), levels=3, **TINY)
    with pytest.raises(ConfigError, match="not class-conditional"):
        plain.sample(2, labels=[0, 1])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra"), [("gated-pixelcnn", ["--set", "conditional=true"])])
def test_two_epoch_cli_run_class_conditional(name, extra, run_cli, tmp_path):
    """The contract suite runs every model; this, the class-conditional path (labels through
    the trainer, the marginal NLL at evaluation)."""
    tiny = ["--set", "hidden=8", "--set", "head=8", "--set", "layers=1", "--set", "first_kernel=3"]
    out = tmp_path / name
    code, stdout, err = run_cli(
        "train", name, "--epochs", "2", "--out", out, *tiny, *extra,
        "--set", "sample_every=1", "--set", "num_samples=4",
    )  # fmt: skip
    assert code == 0, err
    assert "test nll" in stdout
    assert (out / "model.safetensors").is_file() and (out / "samples.png").is_file()
    code, stdout, err = run_cli("eval", out, "--json")
    assert code == 0, err
