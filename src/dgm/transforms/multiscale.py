"""The multi-scale architecture of RealNVP (Dinh et al. 2017, section 3.6) and Glow (Kingma &
Dhariwal 2018): at each scale, transform, squeeze (space to depth), transform, then factor out
half the channels straight to the base distribution and carry on with the other half only.

Factored-out parts have other spatial shapes than the rest, so the output is flat: the
factored-out channels of every scale, flattened, then the last scale's output. The base is a
standard normal over those ``D`` numbers, exactly as in the papers (where the latents of all
scales together are ``D``-dimensional). Glow's learned prior for a factored-out part (a
Gaussian whose mean and scale depend on the kept half) is an affine coupling that transforms
the factored half given the kept half, so it is one more step of ``post`` (see models/flows.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.transforms.base import Bijection, FlowLayer, FlowSequence


class MultiScaleTransform(Bijection):
    """``x [B, C, H, W] -> z [B, D]``: ``pre``, squeeze, ``post``, factor out ``split`` channels,
    ``inner`` on the rest (or, on the last scale, flatten everything)."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        pre: Bijection | None,
        squeeze: bool,
        post: Bijection | None,
        split: int,
        inner: Bijection | None,
    ) -> None:
        super().__init__(event_dim=3)
        self.shape, self.pre, self.squeeze, self.post = shape, pre, squeeze, post
        self.split, self.inner = split, inner
        c, h, w = shape
        self.mid = (c * 4, h // 2, w // 2) if squeeze else (c, h, w)
        self.factored = split * self.mid[1] * self.mid[2] if inner is not None else 0

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        total = x.new_zeros(b)
        if self.pre is not None:
            x, ladj = self.pre.call_and_ladj(x)
            total = total + ladj
        if self.squeeze:
            x = F.pixel_unshuffle(x, 2)  # [B, 4C, H/2, W/2]
        if self.post is not None:
            x, ladj = self.post.call_and_ladj(x)
            total = total + ladj
        if self.inner is None:
            return x.reshape(b, -1), total
        out, ladj = self.inner.call_and_ladj(x[:, self.split :])
        return torch.cat([x[:, : self.split].reshape(b, -1), out], dim=1), total + ladj

    def inverse_and_ladj(self, z: Tensor) -> tuple[Tensor, Tensor]:
        b = z.shape[0]
        total = z.new_zeros(b)
        c, h, w = self.mid
        if self.inner is None:
            x = z.reshape(b, c, h, w)
        else:
            kept, ladj = self.inner.inverse_and_ladj(z[:, self.factored :])
            total = total + ladj
            x = torch.cat([z[:, : self.factored].reshape(b, self.split, h, w), kept], dim=1)
        if self.post is not None:
            x, ladj = self.post.inverse_and_ladj(x)
            total = total + ladj
        if self.squeeze:
            x = F.pixel_shuffle(x, 2)
        if self.pre is not None:
            x, ladj = self.pre.inverse_and_ladj(x)
            total = total + ladj
        return x, total

    def forward_shape(self, shape: Sequence[int]) -> Sequence[int]:
        return (*shape[:-3], math.prod(self.shape))

    def inverse_shape(self, shape: Sequence[int]) -> Sequence[int]:
        return (*shape[:-1], *self.shape)


class MultiScale(FlowLayer):
    """One scale: ``pre`` layers on ``shape``, squeeze, ``post`` layers on the squeezed shape,
    then factor out ``split`` channels and hand the rest to ``inner`` (the next scale)."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        pre: Sequence[FlowLayer] = (),
        squeeze: bool = True,
        post: Sequence[FlowLayer] = (),
        split: int = 0,
        inner: MultiScale | None = None,
    ) -> None:
        super().__init__()
        c, h, w = shape
        if squeeze and (h % 2 or w % 2):
            raise ValueError(f"cannot squeeze {h}x{w} images: height and width must be even")
        if (inner is None) != (split == 0):
            raise ValueError("give both split and inner (a scale that factors out) or neither")
        self.shape, self.squeeze, self.split = (c, h, w), squeeze, split
        self.pre = FlowSequence(pre) if pre else None
        self.post = FlowSequence(post) if post else None
        self.inner = inner

    def forward(self, context: Tensor | None = None) -> MultiScaleTransform:
        return MultiScaleTransform(
            self.shape,
            self.pre(context) if self.pre is not None else None,
            self.squeeze,
            post=self.post(context) if self.post is not None else None,
            split=self.split,
            inner=self.inner(context) if self.inner is not None else None,
        )
