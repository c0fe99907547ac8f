"""Coupling layers (NICE, RealNVP, spline couplings), the multi-scale architecture and the
variational dequantiser, checked in float64."""

from __future__ import annotations

import math

import pytest
import torch

from dgm.transforms import FlowSequence
from dgm.transforms.coupling import Coupling, CouplingTransform, make_mask
from dgm.transforms.dequantization import UniformDequantizer, VariationalDequantizer
from dgm.transforms.multiscale import MultiScale, MultiScaleTransform
from tests.transform_checks import Case, check_case


def _perturbed(layer: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    """Move every parameter off its near-identity initialisation."""
    layer = layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * scale)
    return layer


def _coupling_case(name, shape, mask, flip=False, kind="affine", context=0, b=4, **kw) -> Case:
    def make():
        layer = _perturbed(
            Coupling(shape, mask, flip, kind, hidden=8, layers=1, context_dim=context, **kw)
        )
        c = torch.randn(b, context, dtype=torch.float64) if context else None
        x = torch.randn(b, *shape, dtype=torch.float64) * (2.0 if kind == "spline" else 1.0)
        return layer(c), x

    return Case(name, make)


def _multiscale() -> tuple[MultiScaleTransform, torch.Tensor]:
    last = MultiScale((2, 2, 2), pre=[Coupling((2, 2, 2), "checkerboard", hidden=4)], squeeze=False)
    top = MultiScale(
        (1, 4, 4),
        pre=[Coupling((1, 4, 4), "checkerboard", hidden=4)],
        post=[Coupling((4, 2, 2), "channel", hidden=4), Coupling((4, 2, 2), "channel", True)],
        split=2,
        inner=last,
    )
    return _perturbed(top)(), torch.randn(3, 1, 4, 4, dtype=torch.float64)


def _multiscale_squeeze_last() -> tuple[MultiScaleTransform, torch.Tensor]:
    top = MultiScale((1, 4, 4), post=[Coupling((4, 2, 2), "channel", kind="additive", hidden=4)])
    return _perturbed(top)(), torch.randn(3, 1, 4, 4, dtype=torch.float64)


CASES = [
    _coupling_case("affine-half", (5,), "half"),
    _coupling_case("affine-half-flip", (5,), "half", flip=True),
    _coupling_case("additive-parity", (4,), "parity", kind="additive"),
    _coupling_case("affine-parity-flip", (4,), "parity", flip=True),
    _coupling_case("spline-half", (4,), "half", kind="spline", bins=4),
    _coupling_case("affine-half-context", (4,), "half", context=3),
    _coupling_case("spline-half-context", (4,), "half", kind="spline", context=2, bins=3),
    _coupling_case("affine-checkerboard", (1, 4, 4), "checkerboard"),
    _coupling_case("affine-checkerboard-flip", (2, 4, 4), "checkerboard", flip=True),
    _coupling_case("affine-checkerboard-packed", (1, 3, 4), "checkerboard", packed=True),
    _coupling_case(
        "spline-checkerboard-packed-flip",
        (2, 4, 6),
        "checkerboard",
        True,
        "spline",
        packed=True,
        bins=3,
    ),
    _coupling_case("affine-channel", (3, 2, 4), "channel"),
    _coupling_case("additive-channel-flip", (3, 2, 4), "channel", True, "additive"),
    _coupling_case("spline-channel", (2, 2, 2), "channel", kind="spline", bins=3),
    _coupling_case("affine-channel-context", (2, 2, 4), "channel", context=3),
    Case("multiscale-realnvp", _multiscale),
    Case("multiscale-squeeze-only", _multiscale_squeeze_last),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_transform(case):
    check_case(case)


def test_masks_alternate_and_cover():
    for name, shape in (("half", (5,)), ("parity", (5,)), ("checkerboard", (2, 3, 4))):
        a, b = make_mask(name, shape), make_mask(name, shape, flip=True)
        assert torch.equal(a, ~b) and a.any() and b.any()


def test_kept_part_passes_unchanged():
    torch.manual_seed(0)
    for mask, shape, packed in (
        ("half", (6,), False),
        ("checkerboard", (1, 4, 4), False),
        ("checkerboard", (2, 3, 4), True),
        ("channel", (4, 2, 2), False),
    ):
        t = _perturbed(Coupling(shape, mask, hidden=8, packed=packed))()
        x = torch.randn(3, *shape, dtype=torch.float64)
        y, _ = t.call_and_ladj(x)
        keep = t.mask
        assert isinstance(t, CouplingTransform)
        assert torch.equal(y[:, keep], x[:, keep]) and not torch.allclose(y, x)


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match="does not fit"):
        Coupling((4,), "checkerboard")
    with pytest.raises(ValueError, match=">= 2"):
        Coupling((1, 4, 4), "channel")
    with pytest.raises(ValueError, match="even"):
        MultiScale((1, 3, 4))
    with pytest.raises(ValueError, match="packing needs"):
        Coupling((1, 4, 3), "checkerboard", packed=True)


def test_gradients_reach_every_coupling_parameter():
    layer = Coupling((2, 4, 4), "checkerboard", hidden=4, blocks=1, context_dim=2)
    x, c = torch.randn(3, 2, 4, 4), torch.randn(3, 2)
    y, ladj = layer(c).call_and_ladj(x)
    (y.square().sum() + ladj.sum()).backward()
    dead = [n for n, p in layer.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead


@pytest.mark.parametrize(("shape", "n", "tol"), [((2,), 1000, 1e-3), ((1, 1, 2), 300, 1e-2)])
def test_variational_dequantizer_is_a_normalised_density_on_the_unit_square(shape, n, tol):
    """q(u|x) integrates to 1 over (0, 1)^2: integrate the density of v = logit(u) over a
    wide grid (smooth there, so the midpoint rule is accurate)."""
    torch.manual_seed(0)
    deq = _perturbed(VariationalDequantizer(shape, levels=4, hidden=8, layers=2), 0.3)
    x = torch.tensor([1.0, 2.0], dtype=torch.float64).view(1, *shape)
    lim = 40.0
    g = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 * lim - lim
    v = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, *shape)
    h = deq.embed((x * (2.0 / 3) - 1).expand(len(v), *shape))
    eps, ladj_inv = deq.flow(h).inverse_and_ladj(v)
    density = (deq.noise.log_prob(eps) + ladj_inv).exp()
    assert abs(density.sum().item() * (2 * lim / n) ** 2 - 1.0) < tol
    # and its samples lie in (0, 1) with the log-density that the formula gives
    u1, lq1 = deq(x.expand(5, *shape))
    assert ((u1 > 0) & (u1 < 1)).all() and torch.isfinite(lq1).all()


def test_uniform_dequantizer():
    u, log_q = UniformDequantizer()(torch.zeros(1000, 3))
    assert ((u >= 0) & (u < 1)).all() and torch.equal(log_q, torch.zeros(1000))
    assert abs(u.mean().item() - 0.5) < 0.03


def test_flow_sequence_composes_in_order():
    a, b = Coupling((4,), "half"), Coupling((4,), "half", flip=True)
    _perturbed(a), _perturbed(b)
    x = torch.randn(2, 4, dtype=torch.float64)
    y1, l1 = a().call_and_ladj(x)
    y2, l2 = b().call_and_ladj(y1)
    y, ladj = FlowSequence([a, b])().call_and_ladj(x)
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(ladj, l1 + l2)
    assert math.isfinite(ladj.sum().item())
