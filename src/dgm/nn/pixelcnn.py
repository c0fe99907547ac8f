"""Masked 2-D convolutions for PixelCNN and Gated PixelCNN.

Pixels are read in raster order (row by row, left to right) and, within a pixel, colour by
colour (R -> G -> B). A *mask A* layer lets output (c, i, j) see inputs strictly before it:
every pixel before (i, j) and, at (i, j) itself, the colours before c. A *mask B* layer also
lets it see colour c at (i, j). One mask A layer followed by mask B layers gives a network
whose outputs are the conditionals of an autoregressive model (van den Oord et al. 2016,
"Pixel Recurrent Neural Networks", sec. 3.4).

Stacked masked k x k convolutions miss pixels above and to the right of the current one (the
*blind spot*). The gated network splits the work into a vertical stack that sees every row
above and a horizontal stack that sees the current row to the left, and has no blind spot
(van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders", sec. 2.1-2.3).

Channels are split into colour groups: channel ``j`` of a layer with ``n`` channels serves
colour ``j * C // n`` (contiguous blocks), for the inputs, hidden layers and outputs alike.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MaskType = Literal["A", "B"]


def channel_groups(n: int, colours: int) -> Tensor:
    """The colour each of ``n`` channels serves: ``[n]`` in ``0..colours-1``, contiguous."""
    return torch.arange(n) * colours // n


def causal_mask(
    kernel: tuple[int, int],
    centre: tuple[int, int],
    in_groups: Tensor,
    out_groups: Tensor,
    mask_type: MaskType,
) -> Tensor:
    """``[out, in, kh, kw]`` 0/1 mask: taps before ``centre`` in raster order are open; the
    centre is open from colour ``g_in`` to ``g_out`` iff ``g_in < g_out`` (A) or ``<=`` (B)."""
    kh, kw = kernel
    rows = torch.arange(kh).view(kh, 1)
    cols = torch.arange(kw).view(1, kw)
    before = (rows < centre[0]) | ((rows == centre[0]) & (cols < centre[1]))  # [kh, kw]
    at_centre = (rows == centre[0]) & (cols == centre[1])  # [kh, kw]
    g_out, g_in = out_groups.view(-1, 1), in_groups.view(1, -1)
    colour_ok = g_in < g_out if mask_type == "A" else g_in <= g_out  # [out, in]
    mask = before | (at_centre & colour_ok[..., None, None])  # [out, in, kh, kw]
    return mask.float()


class MaskedConv2d(nn.Conv2d):
    """A convolution whose output (i, j) sees only inputs before (i, j) (plus colour rules).

    The kernel is ``(kh, kw)`` with its centre tap at ``centre``; the input is zero-padded so
    that the centre tap lands on the output pixel. Taps after the centre never see anything,
    so kernels are cut to the rows and columns that can (e.g. ``(k//2 + 1, k)`` for a
    ``k x k`` PixelCNN mask): the same function as the paper's square masks at half the work.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int],
        centre: tuple[int, int],
        mask_type: MaskType,
        colours: int = 1,
        out_groups: Tensor | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel, bias=bias)
        kh, kw = kernel
        self.mask_type = mask_type
        # (left, right, top, bottom) zero padding that centres the kernel on each output pixel
        self.pad = (centre[1], kw - 1 - centre[1], centre[0], kh - 1 - centre[0])
        if out_groups is None:
            out_groups = channel_groups(out_channels, colours)
        mask = causal_mask(
            kernel, centre, channel_groups(in_channels, colours), out_groups, mask_type
        )
        # rebuilt from the config on load, so not saved with the weights
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # [B, C_in, H, W] -> [B, C_out, H, W]
        return F.conv2d(F.pad(x, self.pad), self.weight * self.mask, self.bias)


def square_masked_conv(
    in_channels: int, out_channels: int, kernel_size: int, mask_type: MaskType, colours: int = 1
) -> MaskedConv2d:
    """The PixelCNN's ``k x k`` masked convolution (the all-zero rows below the centre cut)."""
    r = kernel_size // 2
    return MaskedConv2d(
        in_channels,
        out_channels,
        (r + 1, kernel_size),
        centre=(r, r),
        mask_type=mask_type,
        colours=colours,
    )


def pointwise(
    in_channels: int, out_channels: int, colours: int = 1, out_groups: Tensor | None = None
) -> MaskedConv2d:
    """A 1x1 convolution with mask B: colour c sees colours <= c of the same pixel."""
    return MaskedConv2d(
        in_channels,
        out_channels,
        (1, 1),
        centre=(0, 0),
        mask_type="B",
        colours=colours,
        out_groups=out_groups,
    )


# -- PixelCNN ---------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """PixelCNN residual block (van den Oord et al. 2016, fig. 5): ReLU -> 1x1 (h -> h/2) ->
    ReLU -> k x k mask B (h/2 -> h/2) -> ReLU -> 1x1 (h/2 -> h), added to the input."""

    def __init__(self, channels: int, kernel_size: int, colours: int, dropout: float) -> None:
        super().__init__()
        half = max(channels // 2, colours)
        self.down = pointwise(channels, half, colours)
        self.conv = square_masked_conv(half, half, kernel_size, "B", colours)
        self.up = pointwise(half, channels, colours)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: Tensor) -> Tensor:  # [B, C, H, W] -> [B, C, H, W]
        out = self.down(F.relu(h))
        out = self.conv(F.relu(out))
        out = self.up(F.relu(out))
        return h + self.drop(out)


class PixelCNNNet(nn.Module):
    """Mask A ``k x k`` input layer, residual blocks with mask B, two 1x1 ReLU output layers.

    ``[B, C_in, H, W] -> [B, C_out, H, W]``: output channel group c at (i, j) depends only on
    input pixels before (i, j) and input colours < c at (i, j).
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        out_channels: int,
        blocks: int,
        first_kernel: int = 7,
        kernel_size: int = 3,
        head: int = 64,
        colours: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.first = square_masked_conv(in_channels, hidden, first_kernel, "A", colours)
        self.blocks = nn.ModuleList(
            ResidualBlock(hidden, kernel_size, colours, dropout=dropout) for _ in range(blocks)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            pointwise(hidden, head, colours),
            nn.ReLU(),
            pointwise(head, out_channels, colours),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.first(x)  # [B, hidden, H, W]
        for block in self.blocks:
            h = block(h)
        return self.head(h)


# -- Gated PixelCNN ---------------------------------------------------------------------------


class VerticalConv(nn.Conv2d):
    """The vertical stack's convolution: output row i sees rows ``i - k//2 .. i`` across
    ``k`` columns, or, with ``shift``, rows ``i - k//2 - 1 .. i - 1`` (strictly above).

    The first layer shifts, so every vertical feature at row i depends on image rows < i
    only; later layers may then include their own row. No masks needed: the kernel is
    ``(k//2 + 1, k)`` and padded on top only.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, shift: bool) -> None:
        r = kernel_size // 2
        super().__init__(in_channels, out_channels, (r + 1, kernel_size))
        self.shift = shift
        self.pad = (r, r, r + int(shift), 0)

    def forward(self, x: Tensor) -> Tensor:  # [B, C_in, H, W] -> [B, C_out, H, W]
        return super().forward(F.pad(x, self.pad))[..., : x.shape[-2], :]


def gate(h: Tensor) -> Tensor:
    """tanh(a) * sigmoid(b) over the two halves of the channels: ``[B, 2p, ...] -> [B, p, ...]``."""
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of both stacks (van den Oord et al. 2016b, fig. 2).

    vertical:   v' = gate(V(v) + cond)
    horizontal: h' = h + 1x1(gate(H(h) + 1x1(V(v)) + cond)), skip = 1x1(gate(...))

    ``V`` is a :class:`VerticalConv`, ``H`` a ``1 x (k//2 + 1)`` masked convolution along the
    row (mask A in the first layer, which has no residual connection, B after). The link
    1x1(V(v)) carries what lies above into the horizontal stack; since ``v`` only ever sees
    rows above, it needs no mask. ``h_output=False`` drops h' (the last layer of a network that
    reads its skip outputs), so no parameter goes unused.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        kernel_size: int,
        first: bool,
        colours: int = 1,
        skip: bool = True,
        num_classes: int | None = None,
        dropout: float = 0.0,
        h_output: bool = True,
    ) -> None:
        super().__init__()
        r = kernel_size // 2
        groups = channel_groups(hidden, colours)
        gated_groups = torch.cat([groups, groups])  # both halves of the gate serve colour g
        self.first = first
        self.v_conv = VerticalConv(in_channels, 2 * hidden, kernel_size, shift=first)
        self.h_conv = MaskedConv2d(
            in_channels,
            2 * hidden,
            (1, r + 1),
            centre=(0, r),
            mask_type="A" if first else "B",
            colours=colours,
            out_groups=gated_groups,
        )
        self.link = nn.Conv2d(2 * hidden, 2 * hidden, 1)
        # the last layer of a skip network feeds the head through its skip output only
        self.h_out = pointwise(hidden, hidden, colours) if h_output else None
        self.skip = pointwise(hidden, hidden, colours) if skip else None
        # one learned bias per class and stack: V h in the paper (a one-hot h)
        self.embed = nn.Embedding(num_classes, 4 * hidden) if num_classes else None
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(
        self, v: Tensor, h: Tensor, y: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``v, h: [B, C, H, W]``, ``y: [B]`` class indices -> ``(v', h', skip)``."""
        v_pre = self.v_conv(v)  # [B, 2p, H, W]
        h_pre = self.h_conv(h) + self.link(v_pre)  # [B, 2p, H, W]
        if self.embed is not None:
            if y is None:
                raise ValueError("this layer is class-conditional: pass the labels y")
            v_bias, h_bias = self.embed(y)[..., None, None].chunk(2, dim=1)  # [B, 2p, 1, 1]
            v_pre, h_pre = v_pre + v_bias, h_pre + h_bias
        v_new = gate(v_pre)  # [B, p, H, W]
        g = self.drop(gate(h_pre))  # [B, p, H, W]
        h_new = h  # the last layer of a skip network keeps h as it is (unused)
        if self.h_out is not None:
            h_new = self.h_out(g) if self.first else h + self.h_out(g)
        return v_new, h_new, (self.skip(g) if self.skip is not None else None)


class GatedPixelCNNNet(nn.Module):
    """A ``k x k`` first gated layer (mask A), ``layers`` gated layers (mask B), and a head of
    two 1x1 ReLU layers over the sum of the skip connections (or the last horizontal stack).

    ``[B, C_in, H, W], y -> [B, C_out, H, W]``; no blind spot: output (i, j) sees every earlier
    pixel within its receptive field.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        out_channels: int,
        layers: int,
        first_kernel: int = 7,
        kernel_size: int = 3,
        head: int = 64,
        colours: int = 1,
        skip: bool = True,
        num_classes: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.use_skip = skip

        def layer(c_in: int, k: int, i: int) -> GatedLayer:
            last = i == layers
            return GatedLayer(
                c_in,
                hidden,
                k,
                first=i == 0,
                colours=colours,
                skip=skip,
                num_classes=num_classes,
                dropout=dropout,
                h_output=not (skip and last),
            )

        self.layers = nn.ModuleList(
            [layer(in_channels, first_kernel, 0)]
            + [layer(hidden, kernel_size, i) for i in range(1, layers + 1)]
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            pointwise(hidden, head, colours),
            nn.ReLU(),
            pointwise(head, out_channels, colours),
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        v, h, total = x, x, None
        for layer in self.layers:
            v, h, skip = layer(v, h, y)
            if skip is not None:
                total = skip if total is None else total + skip
        return self.head(total if self.use_skip and total is not None else h)
