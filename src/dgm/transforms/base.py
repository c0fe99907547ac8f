"""Bijections in torch.distributions' vocabulary, with log|det J| in the same pass.

Direction: as in the normalising-flow literature (and zuko), a flow's transform maps data
``x`` to noise ``z`` (the *normalising* direction), so that

    log p(x) = log p_base(f(x)) + log |det df/dx|      (Rezende & Mohamed 2015, eq. 3)

and sampling runs the inverse. A transform that is cheap one way only (IAF, planar) is used
through ``.inv`` where the other direction is wanted.

Two kinds of objects, kept apart as in zuko:

- a *transform* (:class:`Bijection`, a ``torch.distributions.Transform``) is pure maths. It is
  handed its parameters (tensors, or a callable such as a coupling network) and maps batches
  ``[B, *event] -> [B, *event']``, with the per-example ``log|det J|`` ``[B]``;
- a *layer* (:class:`FlowLayer`, an ``nn.Module``) owns learnable parameters and builds its
  transform on each call, optionally from a context ``[B, ...]`` (conditional flows, the
  amortised flows of VAE posteriors): ``layer(context) -> Bijection``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence

from torch import Tensor, nn
from torch.distributions import Transform, constraints

from dgm.distributions.base import full_precision


def sum_except_batch(t: Tensor) -> Tensor:
    """``[B, ...] -> [B]``: the per-example sum of an elementwise log-det, in float32 at least
    (a bf16 sum of hundreds of log-scales under autocast would be off by nats)."""
    return full_precision(t).reshape(t.shape[0], -1).sum(1)


class Bijection(Transform):
    """An invertible map on batches ``[B, *event]`` with its log-det in one pass.

    Subclasses implement :meth:`call_and_ladj` and, where the inverse is closed-form,
    :meth:`inverse_and_ladj`. ``log_abs_det_jacobian(x, y)`` is per example (``[B]``): the
    log-det of the map on the whole event, already summed over its ``event_dim`` dims.
    """

    bijective = True

    def __init__(self, event_dim: int = 1) -> None:
        super().__init__(cache_size=0)
        self._event_dim = event_dim

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, self._event_dim)

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, self._event_dim)

    # -- what subclasses implement ----------------------------------------------------------
    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``y = f(x)`` and ``log|det df/dx|`` per example: ``[B, *event] -> (y, [B])``."""
        raise NotImplementedError

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``x = f^-1(y)`` and ``log|det df^-1/dy|`` (= minus the forward log-det at ``x``)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form inverse; use it in the direction it "
            "computes (e.g. through .inv) or choose an invertible transform"
        )

    # -- torch.distributions.Transform's vocabulary -------------------------------------------
    def _call(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        return self.inverse_and_ladj(y)[0]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]

    @property
    def inv(self) -> Bijection:  # type: ignore[override]
        # one inverse object per transform, held weakly as torch.distributions does, so that
        # t.inv.inv is t (an inverted layer's transform round-trips to itself)
        inv = self._inv() if self._inv is not None else None
        if inv is None:
            inv = InverseBijection(self)
            self._inv = weakref.ref(inv)
        return inv

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class InverseBijection(Bijection):
    """``f^-1`` of a bijection: its forward is ``f``'s inverse and vice versa."""

    def __init__(self, base: Bijection) -> None:
        super().__init__(base._event_dim)
        self.base = base

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.base.inverse_and_ladj(x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.base.call_and_ladj(y)

    @property
    def inv(self) -> Bijection:  # type: ignore[override]
        return self.base

    def forward_shape(self, shape: Sequence[int]) -> Sequence[int]:
        return self.base.inverse_shape(shape)

    def inverse_shape(self, shape: Sequence[int]) -> Sequence[int]:
        return self.base.forward_shape(shape)

    def __repr__(self) -> str:
        return f"Inverse({self.base!r})"


class ComposedBijection(Bijection):
    """``f_K o ... o f_1``: log-dets add up (the chain rule), inverses run backwards."""

    def __init__(self, parts: Iterable[Bijection]) -> None:
        self.parts = list(parts)
        super().__init__(max((p._event_dim for p in self.parts), default=1))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for part in self.parts:
            x, ladj = part.call_and_ladj(x)
            total = total + ladj
        return x, total

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[0])
        for part in reversed(self.parts):
            y, ladj = part.inverse_and_ladj(y)
            total = total + ladj
        return y, total

    def forward_shape(self, shape: Sequence[int]) -> Sequence[int]:
        for part in self.parts:
            shape = part.forward_shape(shape)
        return shape

    def inverse_shape(self, shape: Sequence[int]) -> Sequence[int]:
        for part in reversed(self.parts):
            shape = part.inverse_shape(shape)
        return shape

    def __repr__(self) -> str:
        return f"Composed({', '.join(map(repr, self.parts))})"


class FlowLayer(nn.Module):
    """A module that owns parameters and builds its :class:`Bijection` on each call.

    ``layer(context)`` returns the transform; ``context`` is ``None`` for an unconditional
    layer, or a batch ``[B, ...]`` whose row ``i`` parameterises example ``i``'s transform.
    """

    def forward(self, context: Tensor | None = None) -> Bijection:
        raise NotImplementedError


class FlowSequence(FlowLayer):
    """Layers applied in order (data -> noise): ``FlowSequence([l1, l2])(c) = l2(c) o l1(c)``."""

    def __init__(self, layers: Iterable[FlowLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, context: Tensor | None = None) -> ComposedBijection:
        return ComposedBijection(layer(context) for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)


class Inverted(FlowLayer):
    """A layer used backwards: builds ``layer(context).inv`` (IAF from an autoregressive layer)."""

    def __init__(self, layer: FlowLayer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, context: Tensor | None = None) -> Bijection:
        return self.layer(context).inv


class Fixed(FlowLayer):
    """A layer without parameters: always the same transform (permutation, squeeze, logit)."""

    def __init__(self, transform: Bijection) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, context: Tensor | None = None) -> Bijection:
        return self.transform


def zeros_like_batch(x: Tensor) -> Tensor:
    """A ``[B]`` zero log-det on ``x``'s device and dtype (volume-preserving transforms)."""
    return x.new_zeros(x.shape[0])


__all__ = [
    "Bijection",
    "ComposedBijection",
    "Fixed",
    "FlowLayer",
    "FlowSequence",
    "InverseBijection",
    "Inverted",
    "sum_except_batch",
    "zeros_like_batch",
]
