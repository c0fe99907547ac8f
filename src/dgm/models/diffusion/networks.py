"""The networks of the diffusion family: a function of a noisy example and its time,
``(y [B, *shape], t [B]) -> [B, k, *shape]`` (k values per dimension: a noise prediction, a
velocity, a mean and a variance...).

- :class:`UNet` for images (Ho et al. 2020, appendix B, at a small size): residual blocks with
  group norm and the time embedding added inside each block, a downsampling path, a middle
  with self-attention, an upsampling path with skip connections. Its depth is sized from the
  image: 8x8 -> 8, 4; 28x28 -> 28, 14, 7 (a resolution is halved while it stays even and >= 4).
- :class:`TimeMLP` for vectors and 2-D data: residual MLP blocks, the time embedding added to
  each.

Both embed ``t`` in [0, 1] with the transformer's sinusoids (Vaswani et al. 2017) of 1000 t,
the scale of DDPM's integer steps, followed by an MLP.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TIME_SCALE = 1000.0  # t in [0, 1] is embedded as DDPM's step 1000 t


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """``t [B] -> [B, dim]``: sines and cosines of ``TIME_SCALE * t`` at geometric frequencies."""
    half = dim // 2
    steps = torch.arange(half, device=t.device, dtype=t.dtype)
    freqs = torch.exp(-math.log(10000.0) * steps / max(half - 1, 1))
    args = TIME_SCALE * t[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


class TimeEmbedding(nn.Module):
    """``t [B] -> [B, dim]``: sinusoids, then a two-layer MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        dtype = self.mlp[0].weight.dtype  # t may come as float64 from an ODE solver
        return self.mlp(sinusoidal_embedding(t.to(dtype), self.dim))


def _groups(channels: int) -> int:
    """Group norm groups: 8 where they divide the channels, else the largest that does."""
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    """Two 3x3 convolutions with group norm and SiLU; the time embedding scales and shifts the
    normalised features in between (Nichol & Dhariwal 2021's scale-shift norm: a time term
    added before a group norm would be partly removed by it, wholly with one channel a
    group)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        out = self.norm2(self.conv1(F.silu(self.norm1(h))))
        scale, shift = self.time(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        out = self.conv2(self.dropout(F.silu(out * (1 + scale) + shift)))
        return self.skip(h) + out


class SelfAttention(nn.Module):
    """Single-head self-attention over the positions of a feature map, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, h: Tensor) -> Tensor:
        b, c, hh, ww = h.shape
        q, k, v = self.qkv(self.norm(h)).reshape(b, 3, c, hh * ww).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # [B, HW, C]
        return h + self.out(a.transpose(-1, -2).reshape(b, c, hh, ww))


def resolutions(size: int) -> int:
    """How many resolutions the U-Net uses for images ``size`` wide: halve while even and the
    half is >= 4 (8 -> 2 levels, 28 -> 3, 32 -> 4)."""
    n = 1
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        n += 1
    return n


class UNet(nn.Module):
    """``(y [B, C, H, W], t [B]) -> [B, k, C, H, W]``: a small DDPM U-Net.

    ``hidden`` channels at full resolution, twice that below; ``blocks`` residual blocks per
    resolution; self-attention in the middle (the lowest resolution) when ``attention``."""

    def __init__(
        self,
        shape: tuple[int, ...],
        k: int = 1,
        *,
        hidden: int = 64,
        blocks: int = 2,
        attention: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = shape
        self.k, self.shape = k, tuple(shape)
        levels = min(resolutions(h), resolutions(w))
        widths = [hidden * min(2**i, 2) for i in range(levels)]
        time_dim = 4 * hidden
        self.time = TimeEmbedding(time_dim)
        self.stem = nn.Conv2d(c, hidden, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [hidden]
        ch = hidden
        for i, width in enumerate(widths):
            for _ in range(blocks):
                self.down.append(ResBlock(ch, width, time_dim, dropout))
                ch = width
                skips.append(ch)
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid1 = ResBlock(ch, ch, time_dim, dropout)
        self.attn = SelfAttention(ch) if attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, time_dim, dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, width in reversed(list(enumerate(widths))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(ch + skips.pop(), width, time_dim, dropout))
                ch = width
            if i > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.blocks, self.levels = blocks, levels
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.head = nn.Conv2d(ch, k * c, 3, padding=1)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():  # start near zero output (DDPM zero-initialises the last conv)
            self.head.weight.mul_(1e-2)

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        emb = self.time(t)
        h = self.stem(y)
        hs = [h]
        blocks = iter(self.down)
        for i in range(self.levels):
            for _ in range(self.blocks):
                h = next(blocks)(h, emb)
                hs.append(h)
            if i < self.levels - 1:
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        blocks = iter(self.up)
        for i in range(self.levels):
            for _ in range(self.blocks + 1):
                h = next(blocks)(torch.cat([h, hs.pop()], dim=1), emb)
            if i < self.levels - 1:
                size = hs[-1].shape[-2:]  # odd sizes (7 -> 14 is fine; 7 from 14 too)
                h = self.upsample[i](F.interpolate(h, size=size, mode="nearest"))
        out = self.head(F.silu(self.norm(h)))
        return out.view(y.shape[0], self.k, *self.shape)


class TimeMLP(nn.Module):
    """``(y [B, D], t [B]) -> [B, k, D]``: residual MLP blocks with the time embedding added."""

    def __init__(
        self,
        shape: tuple[int, ...],
        k: int = 1,
        *,
        hidden: int = 256,
        blocks: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        (d,) = shape
        self.k, self.d = k, d
        self.time = TimeEmbedding(hidden)
        self.inp = nn.Linear(d, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
            )
            for _ in range(blocks)
        )  # fmt: skip
        self.times = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(hidden, k * d))

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        emb = F.silu(self.time(t))
        h = self.inp(y)
        for block, time in zip(self.blocks, self.times):
            h = h + block(h + time(emb))
        return self.head(h).view(y.shape[0], self.k, self.d)


def network(
    shape: tuple[int, ...],
    k: int,
    *,
    hidden: int,
    blocks: int,
    attention: bool,
    dropout: float,
) -> nn.Module:
    """The family's network for data of ``shape``: a U-Net for images ``(C, H, W)``, a time
    MLP for vectors ``(D,)``."""
    if len(shape) == 3:
        return UNet(shape, k, hidden=hidden, blocks=blocks, attention=attention, dropout=dropout)
    if len(shape) == 1:
        return TimeMLP(shape, k, hidden=hidden, blocks=blocks, dropout=dropout)
    raise ValueError(f"diffusion networks take images (C, H, W) or vectors (D,), got {shape}")
