"""Planar, radial, Householder and Sylvester transforms (the VAE-posterior flows)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from dgm.transforms.base import FlowLayer, FlowSequence
from dgm.transforms.householder import Householder, HouseholderTransform, householder_matrix
from dgm.transforms.planar import (
    Planar,
    PlanarTransform,
    Radial,
    RadialTransform,
    solve_increasing,
)
from dgm.transforms.sylvester import (
    SylvesterHouseholder,
    SylvesterOrthogonal,
    SylvesterTransform,
    SylvesterTriangular,
    orthogonalize,
)
from tests.transform_checks import Case, check_case

B, D, M, C = 4, 5, 3, 3
F64 = torch.float64


def randn(*shape: int, scale: float = 1.0) -> Tensor:
    return scale * torch.randn(*shape, dtype=F64)


def _bijection_case(name: str, build: Callable[[], object], invertible: bool = True) -> Case:
    def make():
        return build(), randn(B, D)

    return Case(name, make, invertible=invertible)


def _layer_case(
    name: str, build: Callable[[], FlowLayer], conditional: bool, invertible: bool = True
) -> Case:
    """A layer moved away from its init (its parameters perturbed), on a random context."""

    def make():
        layer = build().double()
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.5 * torch.randn_like(p))
        context = randn(B, C) if conditional else None
        return layer(context), randn(B, D)

    return Case(name, make, invertible=invertible)


def _planar_beyond_constraint() -> PlanarTransform:
    # raw wᵀu = -3 < -1: without û this map would fold space over
    w = randn(D)
    return PlanarTransform(-3 * w / (w * w).sum(), w, randn(()))


def _sylvester(batch: tuple[int, ...]) -> SylvesterTransform:
    q = orthogonalize(randn(*batch, D, M))
    return SylvesterTransform(q, randn(*batch, M, M), randn(*batch, M, M), randn(*batch, M))


CASES: list[Case] = [
    # planar
    _bijection_case("planar-shared", lambda: PlanarTransform(randn(D), randn(D), randn(()))),
    _bijection_case(
        "planar-per-example", lambda: PlanarTransform(randn(B, D), randn(B, D), randn(B))
    ),
    _bijection_case("planar-raw-wu-below-minus-one", _planar_beyond_constraint),
    _layer_case("planar-layer", lambda: Planar(D), conditional=False),
    _layer_case("planar-layer-conditional", lambda: Planar(D, context_dim=C), conditional=True),
    # radial
    _bijection_case("radial-shared", lambda: RadialTransform(randn(D), randn(()), randn(()))),
    _bijection_case("radial-per-example", lambda: RadialTransform(randn(B, D), randn(B), randn(B))),
    _bijection_case(
        "radial-contracting",
        lambda: RadialTransform(randn(D), randn(1), torch.full((1,), -4.0, dtype=F64)),
    ),
    _layer_case("radial-layer", lambda: Radial(D), conditional=False),
    _layer_case("radial-layer-conditional", lambda: Radial(D, context_dim=C), conditional=True),
    # Householder
    _bijection_case("householder-one", lambda: HouseholderTransform(randn(D))),
    _bijection_case("householder-shared-3", lambda: HouseholderTransform(randn(3, D))),
    _bijection_case("householder-per-example-3", lambda: HouseholderTransform(randn(B, 3, D))),
    _layer_case("householder-layer-1", lambda: Householder(D), conditional=False),
    _layer_case("householder-layer-3", lambda: Householder(D, reflections=3), conditional=False),
    _layer_case(
        "householder-layer-3-conditional",
        lambda: Householder(D, reflections=3, context_dim=C),
        conditional=True,
    ),
    # Sylvester (forward only)
    _bijection_case("sylvester-shared", lambda: _sylvester(()), invertible=False),
    _bijection_case("sylvester-per-example", lambda: _sylvester((B,)), invertible=False),
    _layer_case("sylvester-orthogonal", lambda: SylvesterOrthogonal(D, M), False, invertible=False),
    _layer_case("sylvester-orthogonal-full", lambda: SylvesterOrthogonal(D, D), False, False),
    _layer_case(
        "sylvester-orthogonal-conditional",
        lambda: SylvesterOrthogonal(D, M, context_dim=C),
        conditional=True,
        invertible=False,
    ),
    _layer_case("sylvester-householder", lambda: SylvesterHouseholder(D, 2), False, False),
    _layer_case(
        "sylvester-householder-conditional",
        lambda: SylvesterHouseholder(D, 2, context_dim=C),
        conditional=True,
        invertible=False,
    ),
    _layer_case("sylvester-triangular", lambda: SylvesterTriangular(D, False), False, False),
    _layer_case(
        "sylvester-triangular-reversed", lambda: SylvesterTriangular(D, True), False, False
    ),
    _layer_case(
        "sylvester-triangular-conditional",
        lambda: SylvesterTriangular(D, False, context_dim=C),
        conditional=True,
        invertible=False,
    ),
    _layer_case(
        "sylvester-triangular-reversed-conditional",
        lambda: SylvesterTriangular(D, True, context_dim=C),
        conditional=True,
        invertible=False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_transform(case: Case) -> None:
    check_case(case)


# -- invertibility under adversarial parameters ------------------------------------------------


def per_example_jacobian(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``[B, D, D]``: one Jacobian per example (examples are independent, checked in CASES)."""
    jac = torch.autograd.functional.jacobian(lambda v: f(v).sum(0), x)  # [D, B, D]
    return jac.permute(1, 0, 2)


def assert_positive_jacobian(t, x: Tensor, ladj: Tensor) -> None:
    """det df/dx > 0 for every example, and log|det| agrees with the closed-form ladj."""
    sign, logabsdet = torch.linalg.slogdet(per_example_jacobian(t, x))
    assert (sign > 0).all(), f"{int((sign <= 0).sum())} Jacobians with det <= 0"
    torch.testing.assert_close(ladj, logabsdet, atol=1e-6, rtol=1e-6)


N = 400  # random draws per scale, run as one per-example batch


@pytest.mark.parametrize("scale", [3.0, 30.0, 300.0])
def test_planar_invertible_for_any_raw_parameters(scale: float) -> None:
    torch.manual_seed(1)
    u, w, b, x = (
        randn(N, D, scale=scale),
        randn(N, D, scale=scale),
        randn(N, scale=scale),
        randn(N, D),
    )
    wu = (w * u).sum(-1)
    assert (wu < -1).float().mean() > 0.3, "the draws must include raw parameters that break f"
    t = PlanarTransform(u, w, b)
    wu_hat = (w * t.u_hat).sum(-1)
    # wᵀû = -1 + softplus(wᵀu) > -1, up to the rounding of the sum of the terms w_i û_i
    rounding = 1e-14 * (w * t.u_hat).abs().sum(-1)
    assert (wu_hat >= -1 - rounding).all()
    assert (t.wu_hat >= -1).all()  # and exactly so in the closed form the log-det uses
    y, ladj = t.call_and_ladj(x)
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    if scale == 3.0:
        assert_positive_jacobian(t, x, ladj)
        # the same draws without û: 1 + wᵀu h' < 0 somewhere, i.e. f would not be invertible
        h_slope = 1 - torch.tanh((w * x).sum(-1) + b) ** 2
        assert (1 + wu * h_slope < 0).any()


@pytest.mark.parametrize("scale", [3.0, 30.0, 300.0])
def test_radial_invertible_for_any_raw_parameters(scale: float) -> None:
    torch.manual_seed(2)
    z0, x = randn(N, D), randn(N, D)
    alpha, beta = randn(N, scale=scale), randn(N, scale=scale)
    t = RadialTransform(z0, alpha, beta)
    assert (t.beta_hat >= -t.alpha).all()
    # the raw beta used as β itself would break β >= -α in many draws
    assert (beta < -t.alpha).float().mean() > 0.3
    y, ladj = t.call_and_ladj(x)
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    if scale == 3.0:
        assert_positive_jacobian(t, x, ladj)


@pytest.mark.parametrize("scale", [3.0, 30.0, 300.0])
def test_sylvester_invertible_for_any_raw_parameters(scale: float) -> None:
    torch.manual_seed(3)
    q = orthogonalize(randn(N, D, M, scale=scale))
    r, r_tilde = randn(N, M, M, scale=scale), randn(N, M, M, scale=scale)
    t = SylvesterTransform(q, r, r_tilde, randn(N, M, scale=scale))
    x = randn(N, D)
    y, ladj = t.call_and_ladj(x)
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    if scale == 3.0:
        assert_positive_jacobian(t, x, ladj)
    else:
        # tanh saturates: r_ii r̃_ii rounds to exactly -1 in some draws, and the log-det stays finite
        assert (t._diag == -1).any()


def test_log_dets_exact_at_the_edge_of_invertibility() -> None:
    """Legal parameters where ``1 + (≈ -1)`` would round to 0: the log-dets stay exact."""
    x = torch.zeros(1, D, dtype=F64)
    # planar: wᵀu = -40 gives wᵀû = -1 + softplus(-40), which rounds to -1; at a = 0 (h' = 1)
    # the log-det is log softplus(-40)
    w = randn(D)
    planar = PlanarTransform(-40 * w / (w * w).sum(), w, torch.zeros((), dtype=F64))
    assert planar.wu_hat.item() == -1.0
    expected = torch.log(torch.nn.functional.softplus(torch.tensor(-40.0, dtype=F64)))
    torch.testing.assert_close(planar.call_and_ladj(x)[1], expected.reshape(1))
    # and the inverse, where the scalar equation s - tanh(s) = 0 is flat to third order
    x_back, ladj_inv = planar.inverse_and_ladj(planar(x))
    assert torch.isfinite(x_back).all() and torch.isfinite(ladj_inv).all()
    torch.testing.assert_close(planar(x_back), planar(x), atol=1e-12, rtol=0)
    # radial: α + β̂ = softplus(-40) with α = log 2; at the centre det = ((α + β̂)/α)^D
    radial = RadialTransform(x[0], torch.zeros((), dtype=F64), torch.full((), -40.0, dtype=F64))
    ratio = torch.nn.functional.softplus(torch.tensor(-40.0, dtype=F64)) / torch.log(
        torch.tensor(2.0, dtype=F64)
    )
    torch.testing.assert_close(radial.call_and_ladj(x)[1], (D * torch.log(ratio)).reshape(1))
    # Sylvester: r_ii = tanh(40), r̃_ii = tanh(-40), so r_ii r̃_ii rounds to -1; at b = 0, x = 0
    # each factor is 1 - tanh²(40) = 1/cosh²(40)
    eye = torch.eye(M, dtype=F64)
    sylvester = SylvesterTransform(
        orthogonalize(randn(D, M)), 40 * eye, -40 * eye, torch.zeros(M, dtype=F64)
    )
    log_cosh_40 = 40 - torch.log(torch.tensor(2.0, dtype=F64))  # to 1e-35
    torch.testing.assert_close(sylvester.call_and_ladj(x)[1], (-2 * M * log_cosh_40).reshape(1))


@pytest.mark.parametrize(
    "build",
    [
        lambda: SylvesterOrthogonal(D, M, context_dim=C),
        lambda: SylvesterHouseholder(D, 2, context_dim=C),
        lambda: SylvesterTriangular(D, True, context_dim=C),
    ],
    ids=["orthogonal", "householder", "triangular"],
)
def test_sylvester_layers_finite_on_huge_contexts(build: Callable[[], FlowLayer]) -> None:
    torch.manual_seed(4)
    layer = build().double()
    t = layer(randn(N, C, scale=100.0))
    q = t.q
    eye = torch.eye(q.shape[-1], dtype=F64)
    assert (q.mT @ q - eye).abs().max() < 1e-6
    y, ladj = t.call_and_ladj(randn(N, D))
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()


# -- inverses by the 1-D solve ------------------------------------------------------------------


def _planar_hard(n: int) -> tuple[PlanarTransform, Tensor]:
    """Per-example planar maps, half of them near-singular (wᵀû close to -1) near the hyperplane."""
    u, w, b = randn(n, D, scale=3.0), randn(n, D, scale=3.0), randn(n, scale=3.0)
    x = randn(n, D, scale=3.0)
    half = n // 2
    # wᵀu in [-10, -5]: wᵀû = -1 + 5e-5..7e-3, so the scalar equation is nearly flat at a = 0
    target = -5 - 5 * torch.rand(half, dtype=F64)
    wh = w[:half]
    u[:half] = target.unsqueeze(-1) * wh / (wh * wh).sum(-1, keepdim=True)
    # and x where a = wᵀx + b is within 0.1 of 0
    a = 0.2 * torch.rand(half, dtype=F64) - 0.1
    shift = (a - (wh * x[:half]).sum(-1) - b[:half]) / (wh * wh).sum(-1)
    x[:half] = x[:half] + shift.unsqueeze(-1) * wh
    return PlanarTransform(u, w, b), x


def test_planar_inverse_round_trips() -> None:
    torch.manual_seed(5)
    t, x = _planar_hard(N)
    y, ladj = t.call_and_ladj(x)
    x2, ladj_inv = t.inverse_and_ladj(y)
    torch.testing.assert_close(x2, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-8, rtol=1e-8)
    # and any point of the codomain: f(f^-1(y)) = y (to the 1e-12 of the scalar solve)
    y = randn(N, D, scale=5.0)
    x = t.inverse_and_ladj(y)[0]
    torch.testing.assert_close(t.call_and_ladj(x)[0], y, atol=1e-10, rtol=0)


def test_radial_inverse_round_trips() -> None:
    torch.manual_seed(6)
    t = RadialTransform(randn(N, D), randn(N, scale=3.0), randn(N, scale=3.0))
    x = randn(N, D, scale=3.0)
    x[0] = t.z0[0]  # r = 0: the centre maps to itself
    y, ladj = t.call_and_ladj(x)
    x2, ladj_inv = t.inverse_and_ladj(y)
    torch.testing.assert_close(x2, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-10, rtol=1e-10)
    y = randn(N, D, scale=5.0)
    torch.testing.assert_close(t.call_and_ladj(t.inverse_and_ladj(y)[0])[0], y, atol=1e-10, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 3.0, 30.0, 300.0])
def test_planar_solve_converges_in_few_steps(scale: float, seed: int) -> None:
    """The safeguards keep Newton out of cycles: the batch converges in a few dozen steps."""
    torch.manual_seed(seed)
    n = 2000
    t = PlanarTransform(randn(n, D, scale=scale), randn(n, D, scale=scale), randn(n, scale=scale))
    wy, c, b = (randn(n, D, scale=3.0) * t.w).sum(-1), t.wu_hat, t.b
    calls = 0

    def g(s: Tensor) -> tuple[Tensor, Tensor]:
        nonlocal calls
        calls += 1
        th = torch.tanh(s + b)
        return s + c * th - wy, 1 + c * (1 - th * th)

    s = solve_increasing(g, wy - c.abs() - 1, wy + c.abs() + 1)
    assert calls <= 30, f"{calls} Newton/bisection steps"
    assert (g(s)[0].abs() <= 1e-12 * (1 + wy.abs() + c.abs())).all()


def test_radial_inverse_accurate_near_the_centre() -> None:
    """Relative accuracy where ``r`` is tiny next to ``α + β̂`` (the quadratic's cancelling case)."""
    torch.manual_seed(16)
    # z₀ = 0 so that x - z₀ is exact and only the solve for r can lose digits
    # and α small too (softplus(-25) ≈ 1e-11), so that x - z₀ = (y - z₀)(α + r)/(α + β̂ + r) ∝ r
    alpha, beta = torch.tensor(-25.0, dtype=F64), torch.tensor(20.0, dtype=F64)
    t = RadialTransform(torch.zeros(D, dtype=F64), alpha, beta)
    x = randn(N, D, scale=1e-10)
    x2 = t.inverse_and_ladj(t.call_and_ladj(x)[0])[0]
    relative = (x2 - x).norm(dim=-1) / x.norm(dim=-1)
    assert relative.max() < 1e-12


def test_inverse_gradients_are_the_implicit_ones() -> None:
    torch.manual_seed(7)
    y = randn(3, D, scale=2.0).requires_grad_()
    u, w, b = (
        randn(3, D).requires_grad_(),
        randn(3, D).requires_grad_(),
        randn(3).requires_grad_(),
    )
    assert torch.autograd.gradcheck(
        lambda y, u, w, b: PlanarTransform(u, w, b).inverse_and_ladj(y), (y, u, w, b)
    )
    z0, alpha, beta = (
        randn(3, D).requires_grad_(),
        randn(3).requires_grad_(),
        randn(3).requires_grad_(),
    )
    assert torch.autograd.gradcheck(
        lambda y, z0, a, b: RadialTransform(z0, a, b).inverse_and_ladj(y), (y, z0, alpha, beta)
    )


def test_density_flow_of_planar_and_radial_samples() -> None:
    """A flow x -> z of these layers samples through its inverse: x = f^-1(z) with f(x) = z."""
    torch.manual_seed(8)
    flow = FlowSequence([Planar(D), Radial(D), Planar(D), Radial(D)]).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(torch.randn_like(p))
    t = flow()
    z = randn(64, D)
    x, ladj_inv = t.inverse_and_ladj(z)
    z2, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(z2, z, atol=1e-10, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-10, rtol=1e-10)


def test_float32_inverses() -> None:
    torch.manual_seed(9)
    planar = Planar(D, context_dim=C)
    radial = Radial(D, context_dim=C)
    context, x = torch.randn(B, C), torch.randn(B, D)
    for layer in (planar, radial):
        t = layer(context)
        y, ladj = t.call_and_ladj(x)
        x2, ladj_inv = t.inverse_and_ladj(y)
        assert x2.dtype == torch.float32
        torch.testing.assert_close(x2, x, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ladj_inv, -ladj, atol=1e-5, rtol=1e-5)


# -- orthogonality -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(5, 5), (6, 2), (8, 3), (1, 1), (B, 6, 4), (B, 5, 5)], ids=lambda s: str(s)
)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_orthogonalize(shape: tuple[int, ...], scale: float) -> None:
    torch.manual_seed(10)
    q = randn(*shape, scale=scale)
    out = orthogonalize(q)
    eye = torch.eye(shape[-1], dtype=F64)
    # < 1e-6 as asked, and in fact ~1e-12: the extra step after reaching tol squares the error
    assert (out.mT @ out - eye).abs().max() < 1e-10
    # the iteration's limit is the polar factor U Vᵀ, the closest orthonormal-column matrix
    u, _, vh = torch.linalg.svd(q, full_matrices=False)
    torch.testing.assert_close(out, u @ vh, atol=1e-6, rtol=0)


def test_orthogonalize_ill_conditioned_and_float32() -> None:
    torch.manual_seed(11)
    q = randn(B, 6, 3)
    q[..., 2] = q[..., 1] + 1e-4 * q[..., 2]  # two nearly parallel columns
    out = orthogonalize(q)
    assert (out.mT @ out - torch.eye(3, dtype=F64)).abs().max() < 1e-6
    out32 = orthogonalize(torch.randn(B, 16, 8))
    assert out32.dtype == torch.float32
    assert (out32.mT @ out32 - torch.eye(8)).abs().max() < 1e-5
    with pytest.raises(ValueError, match="M <= D"):
        orthogonalize(randn(3, 4))


def test_sylvester_orthogonal_q_per_example() -> None:
    torch.manual_seed(12)
    layer = SylvesterOrthogonal(6, 4, context_dim=C).double()
    q = layer(randn(16, C, scale=3.0)).q
    assert q.shape == (16, 6, 4)
    assert (q.mT @ q - torch.eye(4, dtype=F64)).abs().max() < 1e-6
    q = SylvesterOrthogonal(6, 4).double()().q
    assert q.shape == (6, 4)
    assert (q.mT @ q - torch.eye(4, dtype=F64)).abs().max() < 1e-6


@pytest.mark.parametrize("shape", [(D,), (3, D), (B, 3, D)], ids=str)
def test_householder_matrices_orthogonal(shape: tuple[int, ...]) -> None:
    torch.manual_seed(13)
    v = randn(*shape)
    q = householder_matrix(v)
    k = shape[-2] if len(shape) > 1 else 1
    eye = torch.eye(D, dtype=F64)
    torch.testing.assert_close(q @ q.mT, eye.expand_as(q), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        torch.linalg.det(q), torch.full(q.shape[:-2], (-1.0) ** k, dtype=F64)
    )
    # the matrix is what the transform applies
    t = HouseholderTransform(v)
    x = randn(B, D)
    torch.testing.assert_close(t(x), (q @ x.unsqueeze(-1)).squeeze(-1), atol=1e-12, rtol=0)
    if k == 1:  # a single reflection is symmetric and its own inverse
        torch.testing.assert_close(q, q.mT)
        torch.testing.assert_close(t(t(x)), x)


def test_sylvester_householder_and_triangular_q() -> None:
    torch.manual_seed(14)
    q = SylvesterHouseholder(D, 3, context_dim=C).double()(randn(B, C)).q
    assert q.shape == (B, D, D)
    torch.testing.assert_close(q @ q.mT, torch.eye(D, dtype=F64).expand_as(q), atol=1e-12, rtol=0)
    assert torch.equal(SylvesterTriangular(D, False)().q, torch.eye(D))
    assert torch.equal(SylvesterTriangular(D, True)().q, torch.eye(D).flip(-1))


def test_sylvester_has_no_inverse() -> None:
    t = SylvesterOrthogonal(D, M)()
    with pytest.raises(NotImplementedError, match="no closed-form inverse"):
        t.inverse_and_ladj(torch.randn(B, D))


# -- training: gradients reach every parameter ---------------------------------------------------

LAYERS: dict[str, tuple[Callable[[], FlowLayer], bool]] = {
    "planar": (lambda: Planar(D), False),
    "planar-conditional": (lambda: Planar(D, context_dim=C), True),
    "radial": (lambda: Radial(D), False),
    "radial-conditional": (lambda: Radial(D, context_dim=C), True),
    "householder": (lambda: Householder(D, reflections=3), False),
    "householder-conditional": (lambda: Householder(D, reflections=3, context_dim=C), True),
    "sylvester-orthogonal": (lambda: SylvesterOrthogonal(D, M), False),
    "sylvester-orthogonal-conditional": (lambda: SylvesterOrthogonal(D, M, context_dim=C), True),
    "sylvester-householder": (lambda: SylvesterHouseholder(D, 2), False),
    "sylvester-householder-conditional": (lambda: SylvesterHouseholder(D, 2, context_dim=C), True),
    "sylvester-triangular": (lambda: SylvesterTriangular(D, True), False),
    "sylvester-triangular-conditional": (
        lambda: SylvesterTriangular(D, False, context_dim=C),
        True,
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradients_reach_every_parameter_at_init(name: str) -> None:
    torch.manual_seed(15)
    build, conditional = LAYERS[name]
    layer = build().double()
    context = randn(B, C) if conditional else None
    if conditional:  # the context network (here the encoder's last layer) must learn too
        encoder = torch.nn.Linear(C, C).double()
        context = encoder(context)
    y, ladj = layer(context).call_and_ladj(randn(B, D))
    # a random linear read-out: ||y||² alone would not see reflections, which keep norms
    (y * randn(B, D)).sum().add(ladj.sum()).backward()
    params = list(layer.named_parameters())
    if conditional:
        params += [(f"encoder.{n}", p) for n, p in encoder.named_parameters()]
    assert params
    for pname, p in params:
        assert p.grad is not None and (p.grad != 0).all(), f"no gradient for {pname}"


@pytest.mark.parametrize("name", [n for n in LAYERS if n.endswith("conditional")])
def test_conditional_layers_need_a_context(name: str) -> None:
    with pytest.raises(ValueError, match="conditional"):
        LAYERS[name][0]()(None)
