"""Coupling layers: half the input passes unchanged and parameterises an elementwise bijection
of the other half, so the Jacobian is triangular and the inverse is as cheap as the forward.

- additive (NICE, Dinh et al. 2015): ``y_b = x_b + t(x_a)``, volume-preserving;
- affine (RealNVP, Dinh et al. 2017): ``y_b = x_b * exp(s(x_a)) + t(x_a)``, ``log|det| = sum s``;
- spline (Durkan et al. 2019, "Neural Spline Flows"): ``y_b = RQspline(x_b; theta(x_a))``.

Masks: ``half`` (vectors: first/second half of the features) and ``channel`` (images: first/
second half of the channels) split the tensor and run the conditioner on the kept part only;
``parity`` (vectors: even/odd features) and ``checkerboard`` (images: (i + j) even/odd) multiply
by a binary mask. ``flip`` swaps which part is kept, so consecutive layers alternate.
A *packed* checkerboard (``packed=True``, as normflows and several RealNVP ports do) gathers each
row's kept pixels into a ``[B, C, H, W/2]`` image and runs the conditioner on that: the same
partition, half the convolution work, but the network sees a half-width image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from dgm.distributions.base import full_precision
from dgm.nn.conv import ConvConditioner
from dgm.nn.mlp import MLP
from dgm.transforms.base import Bijection, FlowLayer, sum_except_batch

Kind = Literal["affine", "additive", "spline"]
MaskName = Literal["half", "parity", "channel", "checkerboard"]

# log-scales are soft-clamped to (-SCALE_CLAMP, SCALE_CLAMP): one layer can scale by at most
# e^2 either way, which keeps early training from blowing up without limiting a deep stack
SCALE_CLAMP = 2.0


def params_per_element(kind: Kind, bins: int = 8) -> int:
    return {"affine": 2, "additive": 1, "spline": 3 * bins - 1}[kind]


def elementwise(
    kind: Kind, x: Tensor, p: Tensor, inverse: bool = False, bins: int = 8, bound: float = 3.0
) -> tuple[Tensor, Tensor]:
    """Apply the elementwise bijection with parameters ``p [B, P, *x.shape[1:]]`` to ``x``;
    return ``y`` and the elementwise log|dy/dx| (of the direction computed). The map runs in
    float32 at least: under bf16 autocast only the networks that give ``p`` run in bf16."""
    p = full_precision(p)
    if kind == "additive":
        shift = p[:, 0]
        return (x - shift if inverse else x + shift), torch.zeros_like(x)
    if kind == "affine":
        shift = p[:, 0]
        log_scale = SCALE_CLAMP * torch.tanh(p[:, 1] / SCALE_CLAMP)
        if inverse:
            return (x - shift) * torch.exp(-log_scale), -log_scale
        return x * torch.exp(log_scale) + shift, log_scale
    from dgm.transforms.splines import rational_quadratic_spline, split_spline_params

    w, h, d = split_spline_params(p.movedim(1, -1), bins)
    return rational_quadratic_spline(x, w, h, d, bound=bound, inverse=inverse)


def make_mask(name: MaskName, shape: tuple[int, ...], flip: bool = False) -> Tensor:
    """Boolean mask of the event shape; True marks the part that passes unchanged."""
    if name in ("half", "channel"):
        n = shape[0]
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[: n // 2] = True
    elif name == "parity":
        mask = torch.arange(shape[0]) % 2 == 0
    elif name == "checkerboard":
        h, w = shape[-2:]
        board = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == 0
        mask = board.expand(shape).clone()
    else:  # pragma: no cover - Literal guards it
        raise ValueError(f"unknown mask {name!r}")
    return ~mask if flip else mask


class CouplingTransform(Bijection):
    """``y_a = x_a``, ``y_b = g(x_b; conditioner(x_a))`` for a fixed binary ``mask``.

    ``conditioner(x_a)`` returns ``[B, P, *part]``: with ``split = k`` the kept part is
    ``x[:, :k]`` (or ``x[:, k:]`` when ``keep_last``) and ``part`` is the other slice; without a
    split it gets ``x * mask`` and returns parameters for every element (the masked ones are
    ignored).
    """

    def __init__(
        self,
        conditioner: Callable[[Tensor], Tensor],
        mask: Tensor,
        kind: Kind = "affine",
        split: int | None = None,
        keep_last: bool = False,
        bins: int = 8,
        bound: float = 3.0,
        packed: bool = False,
    ) -> None:
        super().__init__(event_dim=mask.dim())
        self.conditioner, self.mask, self.kind = conditioner, mask, kind
        self.split, self.keep_last, self.bins, self.bound = split, keep_last, bins, bound
        self.packed = packed

    def _unpack(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Checkerboard halves of ``[B, C, H, W]`` as two ``[B, C, H, W/2]`` images."""
        b, c, h, w = x.shape
        pairs = x.reshape(b, c, h, w // 2, 2)  # each row's pixels in (even, odd) column pairs
        first = self.mask[0, :, 0].to(x.device)[:, None]  # [H, 1]: row i keeps column 0 of pairs
        kept = torch.where(first, pairs[..., 0], pairs[..., 1])
        other = torch.where(first, pairs[..., 1], pairs[..., 0])
        return kept, other

    def _pack(self, kept: Tensor, other: Tensor) -> Tensor:
        first = self.mask[0, :, 0].to(kept.device)[:, None]
        pairs = torch.stack(
            [torch.where(first, kept, other), torch.where(first, other, kept)], dim=-1
        )
        return pairs.flatten(-2)

    def _parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = self.split
        if self.keep_last:
            return x[:, x.shape[1] - k :], x[:, : x.shape[1] - k]
        return x[:, :k], x[:, k:]

    def _join(self, kept: Tensor, other: Tensor) -> Tensor:
        return torch.cat([other, kept] if self.keep_last else [kept, other], dim=1)

    def _apply(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        if self.packed:
            kept, other = self._unpack(x)
            out, ladj = elementwise(
                self.kind, other, self.conditioner(kept), inverse, self.bins, self.bound
            )
            return self._pack(kept, out), sum_except_batch(ladj)
        if self.split is not None:
            kept, other = self._parts(x)
            out, ladj = elementwise(
                self.kind, other, self.conditioner(kept), inverse, self.bins, self.bound
            )
            return self._join(kept, out), sum_except_batch(ladj)
        mask = self.mask.to(x.device)
        out, ladj = elementwise(
            self.kind, x, self.conditioner(x * mask), inverse, self.bins, self.bound
        )
        return torch.where(mask, x, out), sum_except_batch(ladj.masked_fill(mask, 0.0))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._apply(x, inverse=False)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # the kept part is the same in x and y, so the conditioner sees the same input
        return self._apply(y, inverse=True)


class Coupling(FlowLayer):
    """A coupling layer with its own conditioner network, sized from the event shape.

    Vectors ``(D,)`` get an :class:`~dgm.nn.mlp.MLP`; images ``(C, H, W)`` a
    :class:`~dgm.nn.mlp.ConvConditioner`. ``context_dim`` adds a context (a vector, or an
    image-sized map of that many channels) to the conditioner's input.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        mask: MaskName | None = None,
        flip: bool = False,
        kind: Kind = "affine",
        hidden: int = 64,
        layers: int = 2,
        blocks: int = 0,
        context_dim: int = 0,
        bins: int = 8,
        bound: float = 3.0,
        act: str = "relu",
        dropout: float = 0.0,
        packed: bool = False,
    ) -> None:
        super().__init__()
        shape = tuple(shape)
        image = len(shape) == 3
        mask = mask or ("channel" if image else "half")
        if image != (mask in ("channel", "checkerboard")):
            raise ValueError(f"mask {mask!r} does not fit event shape {shape}")
        if packed and (mask != "checkerboard" or shape[-1] % 2):
            raise ValueError(f"packing needs a checkerboard mask and an even width, got {shape}")
        if mask in ("half", "channel") and shape[0] < 2:
            raise ValueError(f"a {mask} mask needs >= 2 features/channels, got shape {shape}")
        self.shape, self.kind, self.bins, self.bound = shape, kind, bins, bound
        self.register_buffer("mask", make_mask(mask, shape, flip), persistent=False)
        self.split: int | None = None
        self.keep_last = False
        n_params = params_per_element(kind, bins)
        if mask in ("half", "channel"):
            half = shape[0] // 2
            # flip keeps the last ceil(n/2) instead of the first floor(n/2)
            self.split = shape[0] - half if flip else half
            self.keep_last = flip
            n_in, n_out = self.split, shape[0] - self.split
        else:
            n_in = n_out = shape[0]
        self.packed = packed
        part = (shape[1], shape[2] // 2) if packed else shape[1:]
        self.out_shape = (n_params, n_out, *part)  # [P, part...]
        if image:
            self.net: nn.Module = ConvConditioner(
                n_in,
                n_params * n_out,
                hidden,
                blocks=blocks,
                context_channels=context_dim,
                act=act,
                dropout=dropout,
            )
        else:
            self.net = MLP(
                n_in,
                n_params * n_out,
                [hidden] * layers,
                context_dim=context_dim,
                act=act,
                dropout=dropout,
            )

    def forward(self, context: Tensor | None = None) -> CouplingTransform:
        def conditioner(kept: Tensor) -> Tensor:
            return self.net(kept, context).reshape(kept.shape[0], *self.out_shape)

        return CouplingTransform(
            conditioner,
            self.mask,
            self.kind,
            split=self.split,
            keep_last=self.keep_last,
            bins=self.bins,
            bound=self.bound,
            packed=self.packed,
        )
