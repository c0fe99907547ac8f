"""Vector quantisation with a learned codebook (van den Oord, Vinyals & Kavukcuoglu 2017,
"Neural Discrete Representation Learning").

Each encoder output vector z_e (one per position of a code map ``[B, D, *grid]``) is replaced
by its nearest codebook vector e_k, k = argmin_j ||z_e - e_j||^2. The argmin has no gradient,
so the decoder's gradient is copied from z_q to z_e (the *straight-through* estimator,
z_q = z_e + sg[e_k - z_e]). Per example the losses are

- commitment: beta * sum_positions ||z_e - sg[e_k]||^2 (keeps the encoder near its codes);
- codebook (``ema=False``): sum_positions ||sg[z_e] - e_k||^2 (moves the codes to the outputs).

With ``ema=True`` (the paper's appendix A.1) the codebook is no parameter but buffers updated
in training mode by exponential moving averages of the assignment counts and sums,

    N_k <- gamma N_k + (1 - gamma) n_k,  m_k <- gamma m_k + (1 - gamma) sum_{i: k_i = k} z_e,i,
    e_k = m_k / N_k   (codes with N_k = 0, never used, keep their vector),

which is the codebook loss's minimiser on a running window (an online k-means step). Codes
whose running usage N_k falls below ``dead_threshold`` assignments per batch are *restarted*
at random encoder outputs of the current batch before quantising (training mode only, either
mode; Dhariwal et al. 2020, "Jukebox", sec. 3.2), so no code stays dead for long; since the
counts start at zero, the first training batch restarts every code, a data-dependent
initialisation.

Distributed training: under DDP each process sees its own batch, so the counts and sums are
all-reduced (summed over processes) before the update, and the vectors a restart picks are
broadcast from rank 0; every process then holds the same codebook (``dead_threshold`` then
counts assignments per *global* batch).

The encoder and decoder are the paper's image networks (sec. 4.1): stride-2 4x4 convolutions
halve the image ``downsample`` times, a 3x3 convolution and residual blocks (ReLU, 3x3, ReLU,
1x1) follow, and a 1x1 convolution maps to the ``D`` code channels; the decoder mirrors it with
stride-2 4x4 transposed convolutions, the last of which emits the likelihood's parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.activations import activation


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class Quantized(NamedTuple):
    """What :meth:`VectorQuantizer.forward` returns."""

    z_q: Tensor  # [B, D, *grid] straight-through: values of the codes, gradient to z_e
    codes: Tensor  # [B, *grid] code indices (long)
    loss: Tensor  # [B] commitment (+ codebook when not EMA), summed over the grid
    perplexity: Tensor  # [] exp(entropy) of the batch's code usage, in 1..num_codes


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantiser of ``[B, D, *grid]`` maps onto ``num_codes`` vectors of
    ``dim`` numbers.

    ``commitment`` is beta; ``ema`` picks the EMA codebook (buffers ``embed``,
    ``cluster_size``, ``embed_sum``; no gradient) or a learned one (parameter ``embed`` and
    the codebook loss); ``decay`` is gamma; ``dead_threshold`` (0: never) the EMA count per
    batch under which a code is restarted.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        commitment: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        dead_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ValueError(f"need num_codes, dim >= 1, got {num_codes}, {dim}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if commitment < 0 or dead_threshold < 0:
            raise ValueError("commitment and dead_threshold must be >= 0")
        self.num_codes, self.dim = num_codes, dim
        self.commitment, self.ema, self.decay = commitment, ema, decay
        self.dead_threshold = dead_threshold
        # small codes near the origin: the nearest one is picked by direction, so the first
        # assignments spread over the codebook (and restarts replace them at once anyway)
        embed = torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes)
        if ema:
            self.register_buffer("embed", embed)  # [K, D]
            self.register_buffer("embed_sum", torch.zeros(num_codes, dim))  # m_k, [K, D]
        else:
            self.embed = nn.Parameter(embed)
        # N_k: the running count of assignments per batch (also the usage restarts read)
        self.register_buffer("cluster_size", torch.zeros(num_codes))  # [K]

    # -- lookups ------------------------------------------------------------------------------
    def _flat(self, z_e: Tensor) -> Tensor:  # [B, D, *grid] -> [B * prod(grid), D]
        return z_e.movedim(1, -1).reshape(-1, self.dim)

    def quantize(self, z_e: Tensor) -> Tensor:
        """Index of the nearest code at every position: ``[B, D, *grid] -> [B, *grid]``."""
        flat = self._flat(z_e).to(self.embed.dtype)  # [N, D]
        e = self.embed  # [K, D]
        # in the codebook's precision even under mixed precision: close codes must not tie
        with torch.autocast(z_e.device.type, enabled=False):
            # ||z||^2 - 2 z.e + ||e||^2 without forming the [N, K, D] differences
            dist2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.T + e.pow(2).sum(1)  # [N, K]
        return dist2.argmin(1).view(z_e.shape[0], *z_e.shape[2:])

    def lookup(self, codes: Tensor) -> Tensor:
        """The code vectors of indices ``[B, *grid]``: ``[B, D, *grid]``."""
        return F.embedding(codes, self.embed).movedim(-1, 1)

    # -- training-mode codebook maintenance ----------------------------------------------------
    @torch.no_grad()
    def restart_dead(self, z_e: Tensor) -> Tensor:
        """Move codes whose usage is below ``dead_threshold`` to random rows of ``z_e``
        (``[B, D, *grid]``); their running statistics restart at the threshold. Returns the
        ``[K]`` boolean mask of restarted codes."""
        dead = self.cluster_size < self.dead_threshold  # [K]
        n_dead = int(dead.sum())
        if n_dead == 0:
            return dead
        flat = self._flat(z_e.detach()).to(self.embed.dtype)  # [N, D]
        n = flat.shape[0]
        if n >= n_dead:  # distinct rows where the batch has enough
            pick = torch.randperm(n, device=flat.device)[:n_dead]
        else:
            pick = torch.randint(n, (n_dead,), device=flat.device)
        new = flat[pick]  # [n_dead, D]
        if _distributed():  # every process must restart to the same vectors
            dist.broadcast(new, src=0)
        self.embed[dead] = new
        self.cluster_size[dead] = self.dead_threshold
        if self.ema:  # e_k = m_k / N_k must give the new vector
            self.embed_sum[dead] = new * self.dead_threshold
        return dead

    @torch.no_grad()
    def update_stats(self, z_e: Tensor, codes: Tensor) -> None:
        """One EMA step of the counts N_k (and, with ``ema``, sums m_k and codebook e_k)."""
        onehot = F.one_hot(codes.reshape(-1), self.num_codes).to(self.embed.dtype)  # [N, K]
        counts = onehot.sum(0)  # n_k, [K]
        sums = None
        if self.ema:  # running sums in the buffers' precision, even under mixed precision
            with torch.autocast(z_e.device.type, enabled=False):
                sums = onehot.T @ self._flat(z_e.detach()).to(self.embed.dtype)  # [K, D]
        if _distributed():
            dist.all_reduce(counts)
            if sums is not None:
                dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if sums is None:
            return
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        used = self.cluster_size > 0  # [K]; a never-used code has m = N = 0: keep its vector
        tiny = torch.finfo(self.embed.dtype).tiny
        ratio = self.embed_sum / self.cluster_size.clamp_min(tiny)[:, None]  # [K, D]
        self.embed.copy_(torch.where(used[:, None], ratio, self.embed))

    # -- the quantiser -------------------------------------------------------------------------
    def forward(self, z_e: Tensor) -> Quantized:
        """Quantise ``z_e [B, D, *grid]``; in training mode restart dead codes first and update
        the usage (and EMA codebook) after."""
        if self.training and self.dead_threshold > 0:
            self.restart_dead(z_e)
        codes = self.quantize(z_e)  # [B, *grid]
        e = self.lookup(codes).to(z_e.dtype)  # [B, D, *grid]
        loss = self.commitment * (z_e - e.detach()).pow(2).flatten(1).sum(1)  # [B]
        if not self.ema:
            loss = loss + (z_e.detach() - e).pow(2).flatten(1).sum(1)
        z_q = z_e + (e - z_e).detach()  # straight-through: forward e, backward identity
        if self.training:
            self.update_stats(z_e, codes)
        return Quantized(z_q, codes, loss, perplexity=self.perplexity(codes))

    def perplexity(self, codes: Tensor) -> Tensor:
        """exp(entropy) of the code frequencies in ``codes``: 1 (one code) .. num_codes."""
        freq = F.one_hot(codes.reshape(-1), self.num_codes).sum(0).to(self.embed.dtype)  # [K]
        p = freq / freq.sum().clamp_min(1)
        return torch.exp(-torch.special.xlogy(p, p).sum())

    def extra_repr(self) -> str:
        return (
            f"num_codes={self.num_codes}, dim={self.dim}, commitment={self.commitment}, "
            f"ema={self.ema}, decay={self.decay}, dead_threshold={self.dead_threshold}"
        )


# -- encoder and decoder -------------------------------------------------------------------------
def auto_downsample(height: int, width: int, most: int = 2) -> int:
    """Stride-2 halvings for an image: halve while both sides are even and stay >= 4, at most
    ``most`` times (the paper's two): 8x8 -> 4x4 (1), 28x28 -> 7x7 (2), 32x32 -> 8x8 (2)."""
    n = 0
    while n < most and height % 2 == 0 and width % 2 == 0 and min(height, width) >= 8:
        height, width, n = height // 2, width // 2, n + 1
    return n


class ResBlock(nn.Module):
    """h + 1x1(act(3x3(act(h)))): the paper's residual block, ``hidden // 2`` inner channels."""

    def __init__(self, channels: int, act: str) -> None:
        super().__init__()
        inner = max(1, channels // 2)
        self.net = nn.Sequential(
            activation(act),
            nn.Conv2d(channels, inner, 3, padding=1),
            activation(act),
            nn.Conv2d(inner, channels, 1),
        )

    def forward(self, h: Tensor) -> Tensor:  # [B, C, H, W] -> [B, C, H, W]
        return h + self.net(h)


class VQEncoder(nn.Module):
    """``[B, C, H, W] -> [B, D, H / 2^n, W / 2^n]``: ``n`` stride-2 4x4 convolutions, a 3x3
    convolution, ``blocks`` residual blocks, activation, 1x1 to ``code_dim`` channels."""

    def __init__(
        self, shape: Sequence[int], hidden: int, code_dim: int, n: int, blocks: int, act: str
    ) -> None:
        super().__init__()
        c = shape[0]
        layers: list[nn.Module] = []
        for _ in range(n):
            layers += [nn.Conv2d(c, hidden, 4, stride=2, padding=1), activation(act)]
            c = hidden
        layers.append(nn.Conv2d(c, hidden, 3, padding=1))
        layers += [ResBlock(hidden, act) for _ in range(blocks)]
        layers += [activation(act), nn.Conv2d(hidden, code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class VQDecoder(nn.Module):
    """``[B, D, h, w] -> [B, P, C, H, W]``: 3x3 convolution, ``blocks`` residual blocks,
    activation, ``n`` stride-2 4x4 transposed convolutions (a 3x3 convolution when ``n = 0``),
    the last emitting the ``P * C`` parameter maps."""

    def __init__(
        self,
        code_dim: int,
        shape: Sequence[int],
        params_per_dim: int,
        hidden: int,
        n: int,
        blocks: int,
        act: str,
    ) -> None:
        super().__init__()
        self.shape, self.params_per_dim = tuple(shape), params_per_dim
        out = params_per_dim * shape[0]
        layers: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, padding=1)]
        layers += [ResBlock(hidden, act) for _ in range(blocks)]
        layers.append(activation(act))
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), activation(act)]
        layers.append(
            nn.ConvTranspose2d(hidden, out, 4, stride=2, padding=1)
            if n > 0
            else nn.Conv2d(hidden, out, 3, padding=1)
        )
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z)  # [B, P * C, H, W], map p * C + c
        return out.view(z.shape[0], self.params_per_dim, *self.shape)


__all__ = [
    "Quantized",
    "ResBlock",
    "VQDecoder",
    "VQEncoder",
    "VectorQuantizer",
    "auto_downsample",
]
