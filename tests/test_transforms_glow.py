"""Glow's blocks (actnorm, invertible 1x1 convolution, squeeze, channel slicing) and the
elementwise / permutation transforms: the shared bijection checks, then the specifics
(data-dependent init, LU at init, squeeze order and errors, gradients)."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import load, save
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dgm.transforms.base import Bijection, FlowLayer, FlowSequence
from dgm.transforms.elementwise import (
    AffineTransform,
    ElementwiseAffine,
    LogitTransform,
    Permutation,
    PermutationTransform,
    SigmoidTransform,
    random_permutation,
    reverse_permutation,
)
from dgm.transforms.glow import (
    ActNorm,
    ActNormTransform,
    ChannelSlice,
    ChannelSliceLayer,
    Conv1x1Transform,
    InvertibleConv1x1,
    SqueezeTransform,
)
from tests.transform_checks import Case, check_case

B, D = 4, 5
IMG = (2, 4, 4)
f64 = torch.float64


def _vec(d: int = D) -> torch.Tensor:
    return torch.randn(B, d, dtype=f64)


def _img(shape: tuple[int, ...] = IMG) -> torch.Tensor:
    return torch.randn(B, *shape, dtype=f64)


def _perturb(layer: FlowLayer) -> FlowLayer:
    """float64, and every parameter moved away from its (often identity) initialisation."""
    layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


def _actnorm(c: int, event_dim: int) -> ActNorm:
    layer = _perturb(ActNorm(c, event_dim))
    layer.initialized.fill_(1.0)  # random parameters, no data-dependent init
    return layer


def _unit(*shape: int) -> torch.Tensor:
    """Inputs in (0, 1), away from the ends."""
    return 0.05 + 0.9 * torch.rand(*shape, dtype=f64)


CASES: list[Case] = [
    # actnorm
    Case("actnorm_vectors", lambda: (_actnorm(D, 1)(), _vec())),
    Case("actnorm_images", lambda: (_actnorm(2, 3)(), _img())),
    # an uninitialised layer in training mode: the first call initialises, later calls agree
    Case("actnorm_datainit_images", lambda: (ActNorm(2, 3).double().train()(), 3 + 2 * _img())),
    Case(
        "actnorm_transform_direct",
        lambda: (
            ActNormTransform(torch.randn(3, dtype=f64), torch.randn(3, dtype=f64), 3),
            _img((3, 2, 2)),
        ),
    ),
    # invertible 1x1 convolution, both forms, images and vectors
    Case("conv1x1_lu_images", lambda: (_perturb(InvertibleConv1x1(2))(), _img())),
    Case("conv1x1_plain_images", lambda: (_perturb(InvertibleConv1x1(2, lu=False))(), _img())),
    Case("conv1x1_lu_vectors", lambda: (_perturb(InvertibleConv1x1(D, event_dim=1))(), _vec())),
    Case(
        "conv1x1_plain_vectors",
        lambda: (_perturb(InvertibleConv1x1(D, lu=False, event_dim=1))(), _vec()),
    ),
    Case(
        "conv1x1_transform_direct",
        lambda: (Conv1x1Transform(torch.randn(3, 3, dtype=f64), event_dim=3), _img((3, 2, 2))),
    ),
    # squeeze and channel slicing
    Case("squeeze", lambda: (SqueezeTransform(), _img())),
    Case(
        "channel_slice_images",
        lambda: (ChannelSlice(_perturb(InvertibleConv1x1(2))(), 1), _img((3, 4, 4))),
    ),
    Case(
        "channel_slice_vectors_conditional",
        lambda: (
            ChannelSlice(
                AffineTransform(torch.randn(B, 3, dtype=f64), torch.randn(B, 3, dtype=f64)), 2
            ),
            _vec(),
        ),
    ),
    Case(
        "channel_slice_layer",
        lambda: (ChannelSliceLayer(_actnorm(1, 3), 1)(), _img()),
    ),
    # permutations
    Case("permutation_vectors", lambda: (PermutationTransform(random_permutation(D, 3)), _vec())),
    Case(
        "permutation_image_channels",
        lambda: (PermutationTransform(torch.tensor([2, 0, 1]), event_dim=3), _img((3, 2, 2))),
    ),
    Case(
        "permutation_image_width",
        lambda: (PermutationTransform(torch.tensor([1, 3, 0, 2]), dim=3, event_dim=3), _img()),
    ),
    Case("permutation_layer_reverse", lambda: (Permutation(reverse_permutation(D))(), _vec())),
    # logit / sigmoid
    Case("logit_alpha0", lambda: (LogitTransform(), _unit(B, D))),
    Case("logit_alpha005", lambda: (LogitTransform(0.05), _unit(B, D))),
    Case("logit_images", lambda: (LogitTransform(1e-6, event_dim=3), _unit(B, *IMG))),
    Case("sigmoid", lambda: (SigmoidTransform(), 3 * _vec())),
    # elementwise affine: shared, per example, and the layers
    Case(
        "affine_shared",
        lambda: (AffineTransform(torch.randn(D, dtype=f64), torch.randn(D, dtype=f64)), _vec()),
    ),
    Case(
        "affine_per_example_images",
        lambda: (
            AffineTransform(torch.randn(B, *IMG, dtype=f64), torch.randn(B, *IMG, dtype=f64), 3),
            _img(),
        ),
    ),
    Case("elementwise_affine_layer", lambda: (_perturb(ElementwiseAffine(D))(), _vec())),
    Case(
        "elementwise_affine_conditional",
        lambda: (
            _perturb(ElementwiseAffine(D, context_dim=3))(torch.randn(B, 3, dtype=f64)),
            _vec(),
        ),
    ),
    Case(
        "elementwise_affine_conditional_images",
        lambda: (
            _perturb(ElementwiseAffine(IMG, context_dim=3))(torch.randn(B, 3, dtype=f64)),
            _img(),
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_transform(case: Case) -> None:
    check_case(case)


# -- actnorm --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(D,), IMG], ids=["vectors", "images"])
def test_actnorm_data_dependent_init(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    c, event_dim = shape[0], len(shape)
    layer = ActNorm(c, event_dim).double()
    x = 2.0 + 3.0 * torch.randn(64, *shape, dtype=f64)
    x = x * torch.arange(1, c + 1, dtype=f64).view(-1, *([1] * (event_dim - 1)))  # per channel
    assert layer.initialized.item() == 0.0

    layer.eval()  # eval mode never initialises
    layer()(x)
    assert layer.initialized.item() == 0.0 and torch.all(layer.log_scale == 0)

    layer.train()
    y = layer()(x)
    assert layer.initialized.item() == 1.0
    yc = y.transpose(0, 1).reshape(c, -1)  # [C, B*H*W]
    torch.testing.assert_close(yc.mean(1), torch.zeros(c, dtype=f64), atol=1e-6, rtol=0)
    torch.testing.assert_close(yc.std(1, correction=0), torch.ones(c, dtype=f64), atol=1e-5, rtol=0)

    # the second batch trains the parameters, it does not initialise them again
    before = [p.detach().clone() for p in (layer.loc, layer.log_scale)]
    layer()(5 * torch.randn(64, *shape, dtype=f64) - 1)
    assert all(torch.equal(a, p) for a, p in zip(before, (layer.loc, layer.log_scale)))


def test_actnorm_initialized_survives_state_dict_and_safetensors() -> None:
    torch.manual_seed(0)
    layer = ActNorm(2, 3).double().train()
    layer()(4 + torch.randn(8, *IMG, dtype=f64))
    state = layer.state_dict()
    assert set(state) == {"loc", "log_scale", "initialized"}

    restored = load(save({k: v.contiguous() for k, v in state.items()}))  # safetensors bytes
    fresh = ActNorm(2, 3).double().train()
    fresh.load_state_dict(restored)
    assert fresh.initialized.item() == 1.0
    fresh()(-7 + 0.1 * torch.randn(8, *IMG, dtype=f64))  # a very different batch
    torch.testing.assert_close(fresh.loc, layer.loc, rtol=0, atol=0)
    torch.testing.assert_close(fresh.log_scale, layer.log_scale, rtol=0, atol=0)

    # loading an uninitialised state into an initialised layer: the buffer decides again
    blank = ActNorm(2, 3).double()
    layer.load_state_dict(blank.state_dict())
    layer()(4 + torch.randn(8, *IMG, dtype=f64))
    assert layer.initialized.item() == 1.0 and not torch.all(layer.loc == 0)

    # torch.save round trip (the checkpoint path) as well
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    again = ActNorm(2, 3).double().train()
    again.load_state_dict(torch.load(buf, weights_only=True))
    again()(torch.randn(8, *IMG, dtype=f64))
    torch.testing.assert_close(again.loc, layer.loc, rtol=0, atol=0)


def test_actnorm_rejects_a_batch_of_the_wrong_rank() -> None:
    layer = ActNorm(4, 3)  # an image layer given vectors: an error, not a silent broadcast
    with pytest.raises(ValueError, match="event dim"):
        layer()(torch.randn(2, 4))


# -- invertible 1x1 convolution -------------------------------------------------------------


@pytest.mark.parametrize("lu", [True, False])
def test_conv1x1_starts_orthogonal(lu: bool) -> None:
    torch.manual_seed(0)
    layer = InvertibleConv1x1(6, lu=lu).double()
    w = layer.weight_matrix()
    torch.testing.assert_close(w @ w.T, torch.eye(6, dtype=f64), atol=1e-6, rtol=0)
    assert abs(torch.linalg.det(w).item() - 1.0) < 1e-6  # a rotation
    t = layer()
    assert abs(t.log_det.item()) < 1e-6
    if lu:
        p = layer.perm
        torch.testing.assert_close(p @ p.T, torch.eye(6, dtype=f64), atol=0, rtol=0)


def test_conv1x1_lu_and_plain_give_the_same_map() -> None:
    torch.manual_seed(1)
    lu_layer = _perturb(InvertibleConv1x1(3))
    plain = InvertibleConv1x1(3, lu=False).double()
    with torch.no_grad():
        plain.weight.copy_(lu_layer.weight_matrix())
    x = _img((3, 4, 4))
    y1, l1 = lu_layer().call_and_ladj(x)
    y2, l2 = plain().call_and_ladj(x)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(l1, l2)
    torch.testing.assert_close(lu_layer._inverse_matrix(), torch.linalg.inv(plain.weight))
    # the LU log-det is sum(log|s|), the plain one slogdet: the same number
    torch.testing.assert_close(lu_layer.log_s.sum(), torch.linalg.slogdet(plain.weight)[1])


def test_conv1x1_is_a_1x1_convolution() -> None:
    torch.manual_seed(2)
    layer = _perturb(InvertibleConv1x1(3))
    x = _img((3, 2, 2))
    w = layer.weight_matrix()
    expected = torch.einsum("ij,bjhw->bihw", w, x)
    torch.testing.assert_close(layer()(x), expected)


# -- squeeze and channel slicing ------------------------------------------------------------


def test_squeeze_channel_order_and_shapes() -> None:
    x = _img((2, 4, 6))
    t = SqueezeTransform()
    y = t(x)
    assert y.shape == (B, 8, 2, 3)
    assert tuple(t.forward_shape((B, 2, 4, 6))) == (B, 8, 2, 3)
    assert tuple(t.inverse_shape((B, 8, 2, 3))) == (B, 2, 4, 6)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                torch.testing.assert_close(y[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2])


@pytest.mark.parametrize("shape", [(2, 5, 4), (2, 4, 3)])
def test_squeeze_odd_size_raises(shape: tuple[int, ...]) -> None:
    t = SqueezeTransform()
    with pytest.raises(ValueError, match="divisible by 2"):
        t(torch.randn(2, *shape))
    with pytest.raises(ValueError, match="divisible by 2"):
        t.forward_shape((2, *shape))
    with pytest.raises(ValueError, match="C divisible by 4"):
        t.inv(torch.randn(2, 3, 2, 2))


def test_channel_slice_leaves_the_first_channels_alone() -> None:
    torch.manual_seed(3)
    inner = _perturb(InvertibleConv1x1(2))()
    t = ChannelSlice(inner, 1)
    x = _img((3, 4, 4))
    y, ladj = t.call_and_ladj(x)
    assert torch.equal(y[:, :1], x[:, :1])
    y2, ladj2 = inner.call_and_ladj(x[:, 1:])
    torch.testing.assert_close(y[:, 1:], y2)
    torch.testing.assert_close(ladj, ladj2)
    assert tuple(ChannelSlice(SqueezeTransform(), 0).forward_shape((B, 2, 4, 4))) == (B, 8, 2, 2)
    with pytest.raises(ValueError, match="channels"):
        t(torch.randn(2, 1, 4, 4))


# -- permutations, logit / sigmoid ----------------------------------------------------------


def test_permutation_helpers() -> None:
    assert reverse_permutation(4).tolist() == [3, 2, 1, 0]
    p = random_permutation(10, seed=7)
    assert p.dtype == torch.long and sorted(p.tolist()) == list(range(10))
    assert torch.equal(p, random_permutation(10, seed=7))
    assert not torch.equal(p, random_permutation(10, seed=8))
    x = _vec(4)
    torch.testing.assert_close(PermutationTransform(reverse_permutation(4))(x), x.flip(1))
    with pytest.raises(ValueError, match="not a permutation"):
        Permutation(torch.tensor([0, 0, 1]))


def test_permutation_layer_buffer_is_saved_and_exact_in_half_precision() -> None:
    layer = Permutation(random_permutation(300, seed=0))
    assert "perm" in layer.state_dict()
    perm = layer().perm.clone()
    layer.bfloat16()  # bfloat16 rounds whole numbers above 256; the buffer must not follow
    assert torch.equal(layer().perm, perm)
    layer.double()
    assert torch.equal(layer().perm, perm)


def test_logit_is_the_inverse_of_sigmoid() -> None:
    x = _vec()
    y, ladj = SigmoidTransform().call_and_ladj(x)
    x2, ladj2 = LogitTransform().call_and_ladj(y)
    torch.testing.assert_close(x2, x)
    torch.testing.assert_close(ladj2, -ladj)
    # alpha rescales the input before the logit
    u = _unit(B, D)
    torch.testing.assert_close(LogitTransform(0.05)(u), torch.logit(0.05 + 0.9 * u))


def test_sigmoid_log_det_is_finite_far_out() -> None:
    x = torch.tensor([[-100.0, 100.0, 0.0]])  # float32: sigmoid saturates to 0 and 1
    _, ladj = SigmoidTransform().call_and_ladj(x)
    assert torch.isfinite(ladj).all()
    torch.testing.assert_close(ladj, torch.tensor([-200.0 - 2 * 0.6931471805599453]))
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(0.5)


def test_conditional_affine_needs_context() -> None:
    with pytest.raises(ValueError, match="context"):
        ElementwiseAffine(D, context_dim=3)()


# -- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: (ActNorm(2, 3), _img(), None),
        lambda: (ActNorm(D, 1), _vec(), None),
        lambda: (InvertibleConv1x1(2), _img(), None),
        lambda: (InvertibleConv1x1(2, lu=False), _img(), None),
        lambda: (InvertibleConv1x1(D, event_dim=1), _vec(), None),
        lambda: (ElementwiseAffine(D), _vec(), None),
        lambda: (ElementwiseAffine(D, context_dim=3), _vec(), torch.randn(B, 3, dtype=f64)),
        lambda: (ChannelSliceLayer(InvertibleConv1x1(2), 1), _img((3, 4, 4)), None),
    ],
    ids=[
        "actnorm_images",
        "actnorm_vectors",
        "conv1x1_lu",
        "conv1x1_plain",
        "conv1x1_lu_vectors",
        "affine",
        "affine_conditional",
        "channel_slice_layer",
    ],
)
def test_gradients_reach_every_parameter(make) -> None:
    torch.manual_seed(4)
    layer, x, context = make()
    layer.double().train()
    t: Bijection = layer(context)
    y, ladj = t.call_and_ladj(x)  # from the initialisation, as in the first training step
    loss = 0.5 * (y**2).sum() - ladj.sum()
    # and through the inverse, the sampling direction (of fresh noise: at the data-dependent
    # init the likelihood's gradient for actnorm's loc is exactly zero)
    x2, _ = t.inverse_and_ladj(torch.randn_like(y))
    (loss + (x2 * torch.randn_like(x2)).sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_buffers_stay_exact_under_the_trainers_weight_averaging() -> None:
    """The trainer averages buffers too (use_buffers=True); integer buffers would be truncated."""
    torch.manual_seed(5)
    n = 256  # enough indices for a truncated average to show
    flow = FlowSequence(
        [ActNorm(n, 1), InvertibleConv1x1(n, event_dim=1), Permutation(random_permutation(n, 1))]
    ).double()
    ema = AveragedModel(flow, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    opt = torch.optim.SGD(flow.parameters(), lr=0.01)
    for _ in range(4):
        opt.zero_grad()
        y, ladj = flow().call_and_ladj(torch.randn(8, n, dtype=f64))
        (0.5 * (y**2).sum() - ladj.sum()).backward()
        opt.step()
        ema.update_parameters(flow)
    averaged = dict(ema.module.named_buffers())
    for name, buf in flow.named_buffers():
        assert torch.equal(buf, averaged[name]), name
    assert averaged["layers.0.initialized"].item() == 1.0
