"""Rational-quadratic splines (Durkan et al. 2019) and masked autoregressive transforms (MAF,
Papamakarios et al. 2017; IAF, Kingma et al. 2016): the shared transform checks, the spline's
shape (monotone, knots, tails, inverse), the autoregressive structure of the Jacobian in every
ordering, the cost of each direction, and gradients to every parameter."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from dgm.nn.made import MADENet, made_degrees
from dgm.transforms.autoregressive import (
    MaskedAutoregressive,
    MaskedAutoregressiveTransform,
    params_per_dim,
)
from dgm.transforms.base import Inverted
from dgm.transforms.splines import (
    ElementwiseSpline,
    SplineTransform,
    rational_quadratic_spline,
    spline_knots,
    spline_params,
    split_spline_params,
)
from tests.transform_checks import Case, check_case

B, D, K, C = 4, 5, 6, 3  # batch, dim, bins, context
BOUND = 2.0
F64 = torch.float64


def _x(*shape: int, scale: float = 1.5) -> Tensor:
    """A batch with some entries in the tails, beyond +-BOUND on both sides."""
    x = torch.randn(*shape, dtype=F64) * scale
    flat = x.view(-1)
    flat[0], flat[-1] = BOUND + 1.3, -BOUND - 0.7
    return x


def _perturb(layer: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    """Move every parameter away from the near-identity init, in float64."""
    layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * scale)
    return layer


def _spline_shared() -> tuple[SplineTransform, Tensor]:
    p = torch.randn(D, spline_params(K), dtype=F64) * 2
    return SplineTransform(p, K, BOUND), _x(B, D)


def _spline_per_example() -> tuple[SplineTransform, Tensor]:
    p = torch.randn(B, D, spline_params(K), dtype=F64) * 2
    return SplineTransform(p, K, BOUND), _x(B, D)


def _spline_image() -> tuple[SplineTransform, Tensor]:
    p = torch.randn(B, 2, 4, 4, spline_params(K), dtype=F64) * 2
    return SplineTransform(p, K, BOUND, event_dim=3), _x(B, 2, 4, 4)


def _elementwise(context_dim: int) -> tuple[SplineTransform, Tensor]:
    layer = _perturb(ElementwiseSpline(D, bins=K, bound=BOUND, context_dim=context_dim))
    ctx = torch.randn(B, context_dim, dtype=F64) if context_dim else None
    return layer(ctx), _x(B, D)


def _maf(kind: str, order: str, context_dim: int, inverted: bool = False):
    def make() -> tuple[MaskedAutoregressiveTransform, Tensor]:
        layer = MaskedAutoregressive(
            D,
            hidden=(24, 24),
            kind="spline" if kind == "spline" else "affine",
            gated=kind == "gated",
            bins=K,
            bound=BOUND,
            order=order,
            seed=3,
            context_dim=context_dim,
        )
        layer = _perturb(Inverted(layer) if inverted else layer)
        ctx = torch.randn(B, context_dim, dtype=F64) if context_dim else None
        return layer(ctx), _x(B, D)

    return make


KINDS = ["affine", "gated", "spline"]
ORDERS = ["natural", "reverse", "random"]

CASES: list[Case] = [
    Case("spline-shared", _spline_shared),
    Case("spline-per-example", _spline_per_example),
    Case("spline-image", _spline_image),
    Case("elementwise-spline", lambda: _elementwise(0)),
    Case("elementwise-spline-conditional", lambda: _elementwise(C)),
    *(
        Case(f"maf-{kind}-{order}-{'ctx' if c else 'plain'}", _maf(kind, order, c))
        for kind, order, c in itertools.product(KINDS, ORDERS, [0, C])
    ),
    *(
        Case(f"iaf-inverted-{kind}-{'ctx' if c else 'plain'}", _maf(kind, "random", c, True))
        for kind, c in itertools.product(KINDS, [0, C])
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_transform(case: Case) -> None:
    check_case(case)


# -- the spline ----------------------------------------------------------------------------------


def _random_spline(n: int, scale: float = 3.0) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` independent splines with strongly uneven bins and slopes."""
    p = torch.randn(n, spline_params(K), dtype=F64) * scale
    return split_spline_params(p, K)


def test_param_helpers() -> None:
    assert spline_params(8) == 23 and spline_params(1) == 2
    p = torch.randn(2, 3, spline_params(4))
    w, h, d = split_spline_params(p, 4)
    assert w.shape == h.shape == (2, 3, 4) and d.shape == (2, 3, 3)
    assert torch.equal(torch.cat([w, h, d], -1), p)
    with pytest.raises(ValueError, match="11 params"):
        split_spline_params(torch.randn(3, 10), 4)
    assert params_per_dim("affine") == params_per_dim("gated") == 2
    assert params_per_dim("spline", 5) == 14


def test_spline_is_monotone_maps_the_interval_onto_itself_and_hits_its_knots() -> None:
    torch.manual_seed(0)
    n = 64
    w, h, d = _random_spline(n)
    grid = torch.linspace(-BOUND - 1, BOUND + 1, 2001, dtype=F64).expand(n, -1)  # [n, G]
    y, ladj = rational_quadratic_spline(grid, w[:, None], h[:, None], d[:, None], BOUND)
    assert (y.diff(dim=1) > 0).all(), "strictly increasing"
    assert torch.isfinite(ladj).all()
    tail = grid.abs() > BOUND
    assert torch.equal(y[tail], grid[tail]) and (ladj[tail] == 0).all(), "identity tails"

    xk, yk, dk = spline_knots(w, h, d, BOUND)  # [n, K + 1]
    assert (xk[:, 0] == -BOUND).all() and (xk[:, -1] == BOUND).all()
    assert (yk[:, 0] == -BOUND).all() and (yk[:, -1] == BOUND).all()
    assert (xk.diff(dim=1) > 0).all() and (yk.diff(dim=1) > 0).all() and (dk > 0).all()
    assert (dk[:, 0] == 1).all() and (dk[:, -1] == 1).all(), "slope 1 where the tails join"
    yy, ll = rational_quadratic_spline(xk, w[:, None], h[:, None], d[:, None], BOUND)
    torch.testing.assert_close(yy, yk, atol=1e-12, rtol=0)
    torch.testing.assert_close(ll.exp(), dk, atol=1e-10, rtol=1e-10)
    # and back: the inverse lands on the knots too
    xx, _ = rational_quadratic_spline(yk, w[:, None], h[:, None], d[:, None], BOUND, inverse=True)
    torch.testing.assert_close(xx, xk, atol=1e-12, rtol=0)


def test_spline_with_zero_params_is_the_identity() -> None:
    x = torch.linspace(-5, 5, 101, dtype=F64)
    zeros = torch.zeros(101, K, dtype=F64)
    y, ladj = rational_quadratic_spline(x, zeros, zeros, zeros[:, 1:], BOUND)
    torch.testing.assert_close(y, x, atol=1e-14, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-14, rtol=0)


def _hard_points(n: int, w: Tensor, h: Tensor, d: Tensor) -> Tensor:
    """``n`` inputs per spline row: uniform over the interval and tails, the knots themselves,
    points within 1e-9 of them, and the interval's ends."""
    xk, _, _ = spline_knots(w, h, d, BOUND)  # [n, K + 1]
    pick = torch.randint(0, K + 1, (n,))
    at_knot = xk[torch.arange(n), pick]
    u = (torch.rand(n, dtype=w.dtype) * 2 - 1) * (BOUND + 2)
    near = at_knot + torch.randn(n, dtype=w.dtype) * 1e-9
    ends = torch.tensor([-BOUND, BOUND], dtype=w.dtype)[torch.randint(0, 2, (n,))]
    which = torch.randint(0, 4, (n,))
    return torch.stack([u, at_knot, near, ends])[which, torch.arange(n)]


def test_spline_inverse_round_trips_on_many_points() -> None:
    torch.manual_seed(1)
    n = 10_000
    w, h, d = _random_spline(n)
    x = _hard_points(n, w, h, d)
    y, ladj = rational_quadratic_spline(x, w, h, d, BOUND)
    x2, ladj_inv = rational_quadratic_spline(y, w, h, d, BOUND, inverse=True)
    torch.testing.assert_close(x2, x, atol=1e-6, rtol=0)
    assert (x2 - x).abs().max() < 1e-10  # in fact to near machine precision
    # a log-derivative is only as good as its conditioning: 1e-9 from a knot where the slope
    # falls from ~400 to ~0.003 within the bin, an x exact to 1e-16 moves it by ~1e-6
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-6, rtol=1e-5)
    # the other way round, from outputs spread over the interval and tails
    y = _hard_points(n, h, w, d)  # knots of the inverse map: heights play the widths' part
    x, ladj_inv = rational_quadratic_spline(y, w, h, d, BOUND, inverse=True)
    y2, ladj = rational_quadratic_spline(x, w, h, d, BOUND)
    torch.testing.assert_close(y2, y, atol=1e-6, rtol=0)
    torch.testing.assert_close(ladj, -ladj_inv, atol=1e-6, rtol=1e-5)
    # float32: errors at the level the conditioning allows, eps * |x| * f'(x) on the y side
    # and eps * |y| / f'(x) on the x side (slopes of 1e-3 and 1e3 amplify float32's
    # rounding a thousandfold); a cancelling root would be off by far more near steep ends
    eps = 8 * torch.finfo(torch.float32).eps
    w32, h32, d32 = w.float(), h.float(), d.float()
    x32 = _hard_points(n, w32, h32, d32)
    y32, ladj = rational_quadratic_spline(x32, w32, h32, d32, BOUND)
    slope = ladj.double().exp()
    back, _ = rational_quadratic_spline(y32, w32, h32, d32, BOUND, inverse=True)
    assert back.dtype == torch.float32
    assert ((back - x32).abs() <= 1e-5 + eps * y32.abs().clamp_min(1) / slope).all()
    y32 = _hard_points(n, h32, w32, d32)
    x32, _ = rational_quadratic_spline(y32, w32, h32, d32, BOUND, inverse=True)
    back, ladj = rational_quadratic_spline(x32, w32, h32, d32, BOUND)
    slope = ladj.double().exp()
    assert ((back - y32).abs() <= 1e-5 + eps * x32.abs().clamp_min(1) * slope).all()


def test_spline_log_derivative_matches_autograd_everywhere() -> None:
    torch.manual_seed(2)
    n = 10_000
    w, h, d = _random_spline(n)
    x = _hard_points(n, w, h, d).requires_grad_()
    y, ladj = rational_quadratic_spline(x, w, h, d, BOUND)
    (dydx,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(dydx.log(), ladj, atol=1e-9, rtol=1e-9)


def test_spline_rejects_bad_shapes_and_minimums() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="K - 1"):
        rational_quadratic_spline(x, torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="too large"):
        rational_quadratic_spline(
            x, torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 3), min_bin_width=0.3
        )


# -- the autoregressive structure -----------------------------------------------------------------


def _layer(kind: str, order: str, context_dim: int = 0, seed: int = 3) -> MaskedAutoregressive:
    return MaskedAutoregressive(
        D,
        hidden=(24, 24),
        kind="spline" if kind == "spline" else "affine",
        gated=kind == "gated",
        bins=K,
        bound=BOUND,
        order=order,
        seed=seed,
        context_dim=context_dim,
    )


@pytest.mark.parametrize("context_dim", [0, C])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", ORDERS)
def test_jacobian_is_triangular_in_the_order(order: str, kind: str, context_dim: int) -> None:
    torch.manual_seed(0)
    layer = _perturb(_layer(kind, order, context_dim))
    perm = layer.net.order(0)  # the dimensions in generation order
    if order == "natural":
        assert perm.tolist() == list(range(D))
    elif order == "reverse":
        assert perm.tolist() == list(range(D - 1, -1, -1))
    else:
        assert sorted(perm.tolist()) == list(range(D)) and perm.tolist() != list(range(D))
    ctx = torch.randn(1, context_dim, dtype=F64) if context_dim else None
    t = layer(ctx)
    x = torch.randn(1, D, dtype=F64) * 0.5  # inside the spline's interval
    for f, at in [(t, x), (t.inv, t(x))]:  # the inverse's Jacobian too
        jac = torch.autograd.functional.jacobian(lambda v, f=f: f(v[None])[0], at[0])  # [D, D]
        jp = jac[perm][:, perm]  # rows and columns in generation order
        assert jp.triu(1).abs().max() == 0, "an output depends on a later or its own input"
        assert (jp.diagonal().abs() > 0).all()
        for i in range(1, D):  # and every conditional does use the past
            assert jp[i, :i].abs().sum() > 0, (order, i)


def test_first_dimension_depends_on_the_context() -> None:
    """The context reaches every conditional, even the first of the order, which sees no x."""
    torch.manual_seed(0)
    layer = _perturb(_layer("affine", "random", C))
    first = int(layer.net.order(0)[0])
    ctx = torch.randn(2, C, dtype=F64, requires_grad=True)
    z = layer(ctx)(torch.randn(2, D, dtype=F64))
    (g,) = torch.autograd.grad(z[:, first].sum(), ctx)
    assert (g.abs().sum(1) > 0).all()


class _Counting:
    """Wraps a conditioner and counts its calls."""

    def __init__(self, f) -> None:
        self.f, self.calls = f, 0

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.f(x)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_is_one_pass_and_inverse_is_d_passes(kind: str) -> None:
    layer = _perturb(_layer(kind, "random"))
    t = layer()
    counter = _Counting(t.conditioner)
    t.conditioner = counter
    x = torch.randn(B, D, dtype=F64)
    z, _ = t.call_and_ladj(x)
    assert counter.calls == 1
    counter.calls = 0
    x2, _ = t.inverse_and_ladj(z)
    assert counter.calls == D
    torch.testing.assert_close(x2, x)
    # IAF as a density flow: sampling (the inverse of the normalising direction) is one pass
    iaf = t.inv
    counter.calls = 0
    iaf.inverse_and_ladj(x)
    assert counter.calls == 1


def test_affine_and_gated_maps_follow_their_formulas() -> None:
    torch.manual_seed(0)
    x = torch.randn(B, D, dtype=F64)
    p = torch.randn(B, D, 2, dtype=F64) * 4  # large raw scales: the soft clamp matters

    def cond(v: Tensor) -> Tensor:
        return p

    z, ladj = MaskedAutoregressiveTransform(cond, "affine").call_and_ladj(x)
    alpha = 3 * torch.tanh(p[..., 1] / 3)
    torch.testing.assert_close(z, (x - p[..., 0]) * torch.exp(-alpha))
    torch.testing.assert_close(ladj, -alpha.sum(1))
    assert (alpha.abs() < 3).all()
    # IAF's update: z = sigma x + (1 - sigma) m, log-det = sum log sigma
    z, ladj = MaskedAutoregressiveTransform(cond, "gated").call_and_ladj(x)
    sigma = torch.sigmoid(p[..., 1])
    torch.testing.assert_close(z, sigma * x + (1 - sigma) * p[..., 0])
    torch.testing.assert_close(ladj, sigma.log().sum(1))
    # ... which is the affine form with alpha = -log sigma and mu = -m e^-s
    mu, a = -p[..., 0] * torch.exp(-p[..., 1]), -sigma.log()
    torch.testing.assert_close(z, (x - mu) * torch.exp(-a))
    # a saturated gate stays finite
    p[..., 1] = torch.tensor([-60.0, 60.0], dtype=F64).repeat(B * D // 2 + 1)[: B * D].view(B, D)
    z, ladj = MaskedAutoregressiveTransform(cond, "gated").call_and_ladj(x)
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()


@pytest.mark.parametrize("kind", KINDS)
def test_starts_near_the_identity(kind: str) -> None:
    torch.manual_seed(0)
    layer = _layer(kind, "natural").double()
    x = torch.randn(64, D, dtype=F64)
    z = layer()(x)
    if kind == "gated":  # the paper's init: sigma = sigmoid(2), a small step towards m ~ 0
        x = x * torch.sigmoid(torch.tensor(2.0, dtype=F64))
    assert (z - x).abs().max() < 0.1
    z, ladj = layer().call_and_ladj(x)
    ref = D * math.log(torch.sigmoid(torch.tensor(2.0)).item()) if kind == "gated" else 0.0
    assert (ladj - ref).abs().max() < 0.1


@pytest.mark.parametrize("context_dim", [0, C])
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter_from_the_init(kind: str, context_dim: int) -> None:
    torch.manual_seed(0)
    layers = [_layer(kind, "random", context_dim).double()]
    if kind == "spline":
        layers.append(ElementwiseSpline(D, bins=K, bound=BOUND, context_dim=context_dim).double())
    for layer in layers:
        ctx = torch.randn(B, context_dim, dtype=F64, requires_grad=True) if context_dim else None
        z, ladj = layer(ctx).call_and_ladj(torch.randn(B, D, dtype=F64) * 1.5)
        loss = (0.5 * z.pow(2).sum(1) - ladj).mean()  # a Gaussian flow's NLL
        loss.backward()
        for name, p in layer.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
        if ctx is not None:
            assert ctx.grad is not None and ctx.grad.abs().sum() > 0
            names = [n for n, _ in layer.named_parameters()]
            assert any("context" in n for n in names) or isinstance(layer, ElementwiseSpline)


def test_layer_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="gated"):
        MaskedAutoregressive(D, kind="spline", gated=True)
    with pytest.raises(ValueError, match="kind"):
        MaskedAutoregressive(D, kind="quadratic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="context"):
        MaskedAutoregressive(D, context_dim=2)()
    with pytest.raises(ValueError, match="context"):
        ElementwiseSpline(D, context_dim=2)()
    # an unconditional layer ignores a context (a conditional sequence passes it to all)
    layer = MaskedAutoregressive(D, hidden=(8,))
    x = torch.randn(2, D)
    torch.testing.assert_close(layer(torch.randn(2, 4))(x), layer()(x))


# -- MADENet with and without a context ---------------------------------------------------------


def _old_made_degrees(dim, hidden_sizes, num_masks, order, seed):
    """The degrees as MADENet drew them before contexts existed (a verbatim copy)."""
    gen = torch.Generator().manual_seed(seed)
    orders, hidden = [], [[] for _ in hidden_sizes]
    top = max(dim - 1, 1)
    for _ in range(num_masks):
        if order == "natural":
            orders.append(torch.arange(1, dim + 1))
        else:
            orders.append(torch.randperm(dim, generator=gen) + 1)
        low = 1
        for layer, size in enumerate(hidden_sizes):
            deg = torch.randint(min(low, top), top + 1, (size,), generator=gen)
            hidden[layer].append(deg)
            low = int(deg.min())
    return torch.stack(orders), [torch.stack(h) for h in hidden]


@pytest.mark.parametrize("order", ["natural", "random"])
@pytest.mark.parametrize("dim", [1, 2, 7])
def test_made_without_context_is_unchanged(order: str, dim: int) -> None:
    new = made_degrees(dim, [5, 9, 3], 3, order, seed=11)
    old = _old_made_degrees(dim, [5, 9, 3], 3, order, seed=11)
    assert torch.equal(new[0], old[0]) and all(map(torch.equal, new[1], old[1]))
    net = MADENet(dim, 2, 3, [5, 9], num_masks=2, order=order, seed=11)
    assert not any("context" in k for k in net.state_dict())
    assert net.context is None
    torch.manual_seed(0)
    ref = MADENet(dim, 2, 3, [5, 9], num_masks=2, order=order, seed=11)
    torch.manual_seed(0)
    again = MADENet(dim, 2, 3, [5, 9], num_masks=2, order=order, seed=11, context_dim=0)
    x = torch.randn(4, dim * 2)
    assert torch.equal(ref(x, 1), again(x, 1))
    with pytest.raises(ValueError, match="no context"):
        net(x, 0, torch.randn(4, 2))


def test_made_with_context_keeps_the_masks_and_sees_the_context() -> None:
    torch.manual_seed(0)
    dim = 6
    net = MADENet(dim, 1, 2, [32, 32], order="random", seed=1, context_dim=C).double()
    for layer in range(2):
        deg = getattr(net, f"degrees{layer}")
        assert deg.min() == 0 and deg[0, 0] == 0 and deg.max() <= dim - 1
    rank = net.orders[0]
    x = torch.randn(dim, dtype=F64)
    ctx = torch.randn(C, dtype=F64)
    jx, jc = torch.autograd.functional.jacobian(
        lambda v, c: net(v[None], 0, c[None])[0], (x, ctx)
    )  # [2 * D, D], [2 * D, C]
    dep = jx.view(2, dim, dim).abs().sum(0)  # [D_out, D_in]
    before = rank[None, :] < rank[:, None]
    assert dep[~before].max() == 0
    assert (jc.view(2, dim, C).abs().sum((0, 2)) > 0).all(), "every output sees the context"
    with pytest.raises(ValueError, match="pass a context"):
        net(x[None])
    # reverse order is D..1
    rev = MADENet(dim, 1, 1, [8], order="reverse")
    assert rev.order(0).tolist() == list(range(dim - 1, -1, -1))


@pytest.mark.parametrize("kind", KINDS)
def test_no_tensor_is_made_on_the_cpu_in_a_call(kind: str) -> None:
    """On the meta device any CPU tensor mixed in would raise: both directions, conditional."""
    layer = _layer(kind, "random", C).to("meta")
    ctx, x = torch.randn(B, C, device="meta"), torch.randn(B, D, device="meta")
    t = layer(ctx)
    z, ladj = t.call_and_ladj(x)
    x2, _ = t.inverse_and_ladj(z)
    assert z.device.type == x2.device.type == ladj.device.type == "meta"
    spline = ElementwiseSpline(D, bins=K, context_dim=C).to("meta")
    assert spline(ctx).inv.call_and_ladj(x)[1].device.type == "meta"
