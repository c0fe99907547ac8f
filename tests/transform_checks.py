"""The checks every transform passes, in float64 (used by the test_transforms_*.py files).

A *case* builds a transform and an input batch. ``check_case`` proves, for that batch:

- ``call_and_ladj`` agrees with ``t(x)`` and ``t.log_abs_det_jacobian(x, y)``;
- the log-det equals ``slogdet`` of the autograd Jacobian, example by example, and examples do
  not leak into each other (the off-diagonal blocks of the batch Jacobian are zero);
- where an inverse exists: ``inverse(forward(x)) == x`` and the inverse's log-det is minus
  the forward's; the same through ``t.inv``.

Every test file lists its cases in ``CASES``; ``test_transforms.py`` checks that every
transform class exported by ``dgm.transforms`` appears in some file's cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dgm.transforms import Bijection


@dataclass
class Case:
    """``make()`` returns ``(transform, x)``; ``x`` is a float64 batch ``[B, *event]``."""

    name: str
    make: Callable[[], tuple[Bijection, Tensor]]
    invertible: bool = True  # False where no inverse exists (Sylvester)
    atol: float = 1e-8


def batch_jacobian(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``[B, N, B, M]`` Jacobian of ``f`` at the flattened batch ``x``."""
    b = x.shape[0]
    shape = x.shape[1:]

    def flat(v: Tensor) -> Tensor:
        return f(v.view(b, *shape)).reshape(b, -1)

    return torch.autograd.functional.jacobian(flat, x.reshape(b, -1))


def check_case(case: Case) -> None:
    torch.manual_seed(0)
    t, x = case.make()
    assert x.dtype == torch.float64, "cases run in float64"
    b = x.shape[0]
    y, ladj = t.call_and_ladj(x)
    assert ladj.shape == (b,), f"log-det must be per example [B], got {tuple(ladj.shape)}"
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    # the torch.distributions vocabulary gives the same numbers
    torch.testing.assert_close(t(x), y, atol=case.atol, rtol=1e-6)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), ladj, atol=case.atol, rtol=1e-6)

    # log|det J| against autograd, one example at a time; no example leaks into another
    jac = batch_jacobian(lambda v: t.call_and_ladj(v)[0], x)  # [B, N, B, M]
    n, m = jac.shape[1], jac.shape[3]
    assert n == m, f"a bijection keeps the dimension: {m} -> {n}"
    for i in range(b):
        _, logdet = torch.linalg.slogdet(jac[i, :, i, :])
        torch.testing.assert_close(ladj[i], logdet, atol=1e-6, rtol=1e-6)
        others = torch.cat([jac[i, :, :i], jac[i, :, i + 1 :]], dim=1)
        assert others.abs().max() <= 1e-10 if others.numel() else True, (
            "output of one example depends on another example's input"
        )

    if not case.invertible:
        return
    x2, ladj_inv = t.inverse_and_ladj(y)
    torch.testing.assert_close(x2, x, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-6, rtol=1e-6)
    inv = t.inv
    torch.testing.assert_close(inv(y), x, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(inv.call_and_ladj(y)[1], -ladj, atol=1e-6, rtol=1e-6)
    assert inv.inv is t
