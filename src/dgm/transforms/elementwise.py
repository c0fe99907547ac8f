"""Elementwise and permutation transforms: the glue between the learnable layers of a flow.

- :class:`LogitTransform` is RealNVP's preprocessing of pixel data in ``(0, 1)`` (Dinh, Sohl-
  Dickstein & Bengio 2017, "Density estimation using Real NVP", section 4.1): the logit of
  ``alpha + (1 - 2 alpha) x``, which maps the bounded data to the real line;
  :class:`SigmoidTransform` is its inverse as a class of its own.
- :class:`PermutationTransform` reorders the features between coupling layers so that every
  feature is transformed (Dinh et al. 2017; Kingma & Dhariwal 2018 use a fixed reversal or a
  random shuffle before learning a 1x1 convolution instead).
- :class:`AffineTransform` / :class:`ElementwiseAffine`: ``y = x * exp(s) + b`` per element,
  shared or computed from a context (a diagonal Gaussian posterior is this map applied to noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from dgm.transforms.base import Bijection, FlowLayer, sum_except_batch, zeros_like_batch

# -- permutations ---------------------------------------------------------------------------


def reverse_permutation(n: int) -> Tensor:
    """``[n-1, ..., 1, 0]`` as a long tensor (RealNVP's alternation of the halves)."""
    if n < 1:
        raise ValueError(f"a permutation needs n >= 1, got {n}")
    return torch.arange(n - 1, -1, -1, dtype=torch.long)


def random_permutation(n: int, seed: int) -> Tensor:
    """A random permutation of ``range(n)``, the same for the same ``seed`` (long tensor)."""
    if n < 1:
        raise ValueError(f"a permutation needs n >= 1, got {n}")
    # a private generator: the model's architecture must not depend on the global RNG state
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen, dtype=torch.long)


def _check_permutation(perm: Tensor) -> Tensor:
    perm = torch.as_tensor(perm)
    if perm.dim() != 1 or perm.dtype.is_floating_point or perm.dtype.is_complex:
        raise ValueError(f"a permutation is a 1-d integer tensor, got {perm.dtype} {perm.shape}")
    perm = perm.long()
    if not torch.equal(perm.sort().values, torch.arange(perm.numel(), device=perm.device)):
        raise ValueError(f"not a permutation of range({perm.numel()}): {perm.tolist()}")
    return perm


class PermutationTransform(Bijection):
    """``y = x[:, perm]`` along ``dim`` (1: the features of ``[B, D]``, the channels of images).

    Volume-preserving (log-det 0); the inverse indexes with ``argsort(perm)``.
    """

    def __init__(self, perm: Tensor, dim: int = 1, event_dim: int = 1) -> None:
        if not 1 <= dim <= event_dim:
            raise ValueError(
                f"dim must be an event dim (1..{event_dim}), got {dim}; dim 0 is the batch"
            )
        super().__init__(event_dim)
        self.perm = perm.long()  # index_select wants long; a no-op on a long tensor
        self.dim = dim

    def _index(self, x: Tensor, index: Tensor) -> Tensor:
        if x.dim() != 1 + self._event_dim:
            raise ValueError(
                f"expected a batch [B, *event] with {self._event_dim} event dims, got "
                f"shape {tuple(x.shape)}"
            )
        # a no-op where the permutation already lives on x's device (a Permutation layer's
        # buffer follows .to(device)); a transform built by hand from a CPU tensor still works
        return x.index_select(self.dim, index.to(x.device))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._index(x, self.perm), zeros_like_batch(x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._index(y, torch.argsort(self.perm)), zeros_like_batch(y)

    def __repr__(self) -> str:
        return f"PermutationTransform(n={self.perm.numel()}, dim={self.dim})"


class Permutation(FlowLayer):
    """A fixed permutation held as a persistent buffer: it follows ``.to(device)`` and is saved
    with the model (a random permutation must be the same when the model is reloaded).

    The buffer is float (whole numbers, exact in float32 up to 2^24): the trainer's weight
    averaging lerps every buffer, which leaves equal floats exact but truncates integer
    buffers; and it stays float32 when the model goes to half precision, where bfloat16 would
    round indices above 256.
    """

    perm: Tensor

    def __init__(self, perm: Tensor, dim: int = 1, event_dim: int = 1) -> None:
        super().__init__()
        self.register_buffer("perm", _check_permutation(perm).to(torch.float32))
        self.dim = dim
        self.event_dim = event_dim

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Permutation:
        old = self.perm
        super()._apply(fn, recurse)
        if self.perm.dtype in (torch.float16, torch.bfloat16):
            self._buffers["perm"] = old.to(self.perm.device)
        return self

    def forward(self, context: Tensor | None = None) -> PermutationTransform:
        return PermutationTransform(self.perm.long(), self.dim, self.event_dim)

    def extra_repr(self) -> str:
        return f"n={self.perm.numel()}, dim={self.dim}, event_dim={self.event_dim}"


# -- logit / sigmoid ------------------------------------------------------------------------


class LogitTransform(Bijection):
    """``y = logit(alpha + (1 - 2 alpha) x)`` for ``x`` in ``(0, 1)`` (RealNVP, section 4.1).

    ``alpha > 0`` keeps the logit away from the infinities at 0 and 1 (RealNVP: 0.05 on CIFAR,
    Glow and MAF: 1e-6). log|det| = sum ``log(1 - 2 alpha) - log u - log(1 - u)`` with
    ``u = alpha + (1 - 2 alpha) x``; written with softplus of ``y`` so that it stays finite
    where ``u`` is close to 0 or 1.
    """

    def __init__(self, alpha: float = 0.0, event_dim: int = 1) -> None:
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        super().__init__(event_dim)
        self.alpha = float(alpha)
        self._log_scale = math.log1p(-2.0 * self.alpha)  # log(1 - 2 alpha)

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        interval = constraints.unit_interval if self.alpha > 0 else constraints.open_interval(0, 1)
        return constraints.independent(interval, self._event_dim)

    def _ladj(self, y: Tensor) -> Tensor:
        # -log u - log(1 - u) = softplus(-y) + softplus(y) at y = logit(u)
        return sum_except_batch(self._log_scale + F.softplus(y) + F.softplus(-y))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u = self.alpha + (1.0 - 2.0 * self.alpha) * x
        y = torch.log(u) - torch.log1p(-u)
        return y, self._ladj(y)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)
        return x, -self._ladj(y)

    def __repr__(self) -> str:
        return f"LogitTransform(alpha={self.alpha})"


class SigmoidTransform(Bijection):
    """``y = sigmoid(x)``, log|det| = sum ``log sigmoid(x) + log(1 - sigmoid(x))`` (via
    ``logsigmoid`` of ``x`` and ``-x``, finite for large ``|x|``). The inverse of
    :class:`LogitTransform` with ``alpha = 0``."""

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.open_interval(0, 1), self._event_dim)

    @staticmethod
    def _ladj(x: Tensor) -> Tensor:
        return sum_except_batch(F.logsigmoid(x) + F.logsigmoid(-x))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.sigmoid(x), self._ladj(x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.log(y) - torch.log1p(-y)
        return x, -self._ladj(x)


# -- elementwise affine ---------------------------------------------------------------------


class AffineTransform(Bijection):
    """``y = x * exp(log_scale) + shift`` elementwise; log|det| = sum of ``log_scale``.

    ``shift`` and ``log_scale`` broadcast against the batch: shared ``[*event]`` or per example
    ``[B, *event]`` (conditional).
    """

    def __init__(self, shift: Tensor, log_scale: Tensor, event_dim: int = 1) -> None:
        super().__init__(event_dim)
        self.shift = shift
        self.log_scale = log_scale

    def _ladj(self, x: Tensor) -> Tensor:
        return sum_except_batch(self.log_scale.expand_as(x))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale) + self.shift, self._ladj(x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return (y - self.shift) * torch.exp(-self.log_scale), -self._ladj(y)


class ElementwiseAffine(FlowLayer):
    """Learned elementwise affine map on events of ``shape``; starts at the identity.

    Unconditional: ``shift`` and ``log_scale`` are parameters ``[*shape]``. Conditional
    (``context_dim > 0``): both come from a linear map of the context ``[B, context_dim]``,
    zero-initialised (the identity, yet its weight gets a gradient ``∝ context`` at once).
    """

    def __init__(self, shape: int | Sequence[int], context_dim: int = 0) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.context_dim = context_dim
        numel = math.prod(self.shape)
        if context_dim > 0:
            self.net = nn.Linear(context_dim, 2 * numel)
            nn.init.zeros_(self.net.weight)
            nn.init.zeros_(self.net.bias)
        else:
            self.shift = nn.Parameter(torch.zeros(self.shape))
            self.log_scale = nn.Parameter(torch.zeros(self.shape))

    def forward(self, context: Tensor | None = None) -> AffineTransform:
        event_dim = len(self.shape)
        if self.context_dim == 0:
            return AffineTransform(self.shift, self.log_scale, event_dim)
        if context is None:
            raise ValueError(
                f"this ElementwiseAffine is conditional (context_dim={self.context_dim}); "
                "call it with a context [B, context_dim]"
            )
        shift, log_scale = self.net(context).chunk(2, dim=-1)  # [B, numel] each
        b = context.shape[0]
        return AffineTransform(
            shift.reshape(b, *self.shape), log_scale.reshape(b, *self.shape), event_dim
        )

    def extra_repr(self) -> str:
        return f"shape={self.shape}, context_dim={self.context_dim}"


__all__ = [
    "AffineTransform",
    "ElementwiseAffine",
    "LogitTransform",
    "Permutation",
    "PermutationTransform",
    "SigmoidTransform",
    "random_permutation",
    "reverse_permutation",
]
