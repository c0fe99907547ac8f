"""WaveNet: a stack of dilated causal convolutions with gated residual and skip connections.

van den Oord et al. 2016, "WaveNet: A generative model for raw audio": an exclusive causal
input layer (output ``t`` sees inputs ``< t``), residual blocks of dilated causal convolutions
with gated units ``tanh(W_f * h) * sigmoid(W_g * h)``, 1x1 residual and skip convolutions, and
a ReLU -> 1x1 -> ReLU -> 1x1 head on the sum of the skips. Dilations double (1, 2, 4, ...) up
to a maximum and the pattern repeats, so the receptive field grows exponentially with depth.

Conditioning (the paper's section 2.5): a conditioning sequence ``h`` ``[B, C_h, L]`` enters
every layer through a 1x1 projection added before the gate, ``tanh(W_f * x + V_f h) *
sigmoid(W_g * x + V_g h)``. Global conditioning (a speaker, a class) is one vector per example,
``[B, C_h, 1]``, broadcast over time; local conditioning (features at a lower rate) is upsampled
to the sample rate by the caller, ``[B, C_h, L]``.

Generation one step at a time follows Paine et al. 2016, "Fast WaveNet generation algorithm":
every causal conv keeps a queue (a ring buffer) of the last ``(k - 1) * d + 1`` inputs it has
seen, so a new step costs O(layers) instead of re-running the network over the whole prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.causal import CausalConv1d


def dilations(max_dilation: int, stacks: int) -> list[int]:
    """``[1, 2, 4, ..., <= max_dilation]`` repeated ``stacks`` times."""
    cycle = []
    d = 1
    while d <= max_dilation:
        cycle.append(d)
        d *= 2
    return cycle * stacks


def gate(a: Tensor) -> Tensor:
    """Gated activation unit: the first half of the channels filters, the second gates."""
    f, g = a.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class Queue:
    """The recent inputs of one causal conv, as a ring buffer (Fast WaveNet's queue).

    An inclusive conv with kernel ``k`` and dilation ``d`` needs, at step ``t``, its inputs at
    ``t - (k - 1) d, ..., t - d, t``: the queue holds the last ``(k - 1) d + 1`` of them. It
    starts full of zeros, which is exactly the left padding of the full convolution.
    """

    def __init__(self, conv: CausalConv1d, batch: int, dtype: torch.dtype, device: torch.device):
        k, d = conv.kernel_size[0], conv.dilation[0]
        self.size = (k - 1) * d + 1
        self.buf = torch.zeros(batch, conv.in_channels, self.size, dtype=dtype, device=device)
        self.newest = -1
        # oldest tap first, the order of the kernel's weights
        self.offsets = [(k - 1 - j) * d for j in range(k)]
        # [C_out, C_in * k], matching a [B, C_in, k] window flattened to [B, C_in * k]
        self.weight = conv.weight.reshape(conv.out_channels, -1)
        self.bias = conv.bias

    def push(self, v: Tensor) -> Tensor:
        """Add the input of the new step ``[B, C_in]``; return the conv's output ``[B, C_out]``."""
        self.newest = (self.newest + 1) % self.size
        self.buf[:, :, self.newest] = v
        idx = [(self.newest - o) % self.size for o in self.offsets]
        window = self.buf[:, :, idx]  # [B, C_in, k]
        return F.linear(window.reshape(v.shape[0], -1), self.weight, self.bias)


def _pointwise(conv: nn.Conv1d, v: Tensor) -> Tensor:
    """A 1x1 conv applied to one step: ``[B, C_in] -> [B, C_out]``."""
    return F.linear(v, conv.weight[..., 0], conv.bias)


class GatedResidualBlock(nn.Module):
    """Dilated causal conv (+ 1x1 projection of the conditioning) -> gated unit -> 1x1 skip
    out, 1x1 residual back into the stack.

    The last block of a stack has no residual conv: its residual output would reach nothing.
    """

    def __init__(
        self,
        channels: int,
        skip_channels: int,
        kernel_size: int,
        dilation: int,
        residual: bool,
        cond_channels: int = 0,
    ) -> None:
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.skip = nn.Conv1d(channels, skip_channels, 1)
        self.res = nn.Conv1d(channels, channels, 1) if residual else None
        # V_f and V_g of the paper, one 1x1 conv for both halves; the dilated conv has the bias
        self.cond = nn.Conv1d(cond_channels, 2 * channels, 1, bias=False) if cond_channels else None

    def _gate(self, a: Tensor, cond: Tensor | None, project: bool) -> Tensor:
        if self.cond is not None:
            if cond is None:
                raise ValueError("this WaveNet is conditioned: pass its conditioning")
            a = a + (self.cond(cond) if project else _pointwise(self.cond, cond))
        return gate(a)

    def forward(
        self, h: Tensor, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:  # [B, C, L], [B, C_h, L or 1] -> [B, C, L], [B, S, L]
        z = self._gate(self.conv(h), cond, project=True)  # [B, C, L]
        skip = self.skip(z)  # [B, S, L]
        return (h + self.res(z) if self.res is not None else h), skip

    def step(
        self, h: Tensor, queue: Queue, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:  # [B, C], [B, C_h] -> [B, C], [B, S]
        """The same computation for one new time step, reading the past from ``queue``."""
        z = self._gate(queue.push(h), cond, project=False)  # [B, C]
        skip = _pointwise(self.skip, z)
        return (h + _pointwise(self.res, z) if self.res is not None else h), skip


class WaveNet(nn.Module):
    """``[B, C_in, L] -> [B, C_out, L]`` where output ``t`` depends on inputs ``< t`` only
    (and on the conditioning, when ``cond_channels`` > 0): ``hidden`` residual channels,
    ``skip_channels``, a head of ``head_channels``, one gated block per dilation (see
    :func:`dilations`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        hidden: int,
        skip_channels: int,
        head_channels: int,
        kernel_size: int,
        dilations: Sequence[int],
        cond_channels: int = 0,
    ) -> None:
        super().__init__()
        if not dilations or min(dilations) < 1 or kernel_size < 1:
            raise ValueError("need at least one dilation, all >= 1, and kernel_size >= 1")
        # exclusive: shifts everything one step right, so no output sees its own input
        self.first = CausalConv1d(in_channels, hidden, kernel_size, exclusive=True)
        dils = list(dilations)
        self.blocks = nn.ModuleList(
            GatedResidualBlock(
                hidden,
                skip_channels,
                kernel_size,
                dilation=d,
                residual=i < len(dils) - 1,
                cond_channels=cond_channels,
            )
            for i, d in enumerate(dils)
        )
        self.head1 = nn.Conv1d(skip_channels, head_channels, 1)
        self.head2 = nn.Conv1d(head_channels, out_channels, 1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, C_in, L]`` (and the conditioning ``[B, C_h, L]`` or ``[B, C_h, 1]``) ->
        ``[B, C_out, L]``."""
        h = self.first(x)  # [B, C, L]
        skips: Tensor | int = 0
        for block in self.blocks:
            h, s = block(h, cond)
            skips = skips + s  # [B, S, L]
        return self.head2(F.relu(self.head1(F.relu(skips))))  # type: ignore[arg-type]

    @property
    def receptive_field(self) -> int:
        """Number of past inputs an output sees: output ``t`` sees ``t - rf, ..., t - 1``."""
        return self.first.reach + sum(b.conv.reach for b in self.blocks)  # type: ignore[union-attr]

    def extra_repr(self) -> str:
        return f"receptive_field={self.receptive_field}"

    # -- incremental generation (Fast WaveNet) ----------------------------------------------
    def start(self, batch: int, dtype: torch.dtype, device: torch.device) -> list[Queue]:
        """Empty queues, one per causal conv (the input layer's first)."""
        convs = [self.first] + [b.conv for b in self.blocks]  # type: ignore[union-attr]
        return [Queue(c, batch, dtype, device=device) for c in convs]

    def step(self, x_prev: Tensor, queues: list[Queue], cond: Tensor | None = None) -> Tensor:
        """Output at step ``t`` from the input at ``t - 1`` (and the conditioning at ``t``,
        ``[B, C_h]``): ``[B, C_in] -> [B, C_out]``.

        Call with ``t = 0, 1, 2, ...`` in turn; at ``t = 0`` pass zeros (the padding). The
        exclusive input layer's output at ``t`` is an inclusive conv's output at ``t - 1``, so
        its queue is fed ``x_{t-1}``.
        """
        h = queues[0].push(x_prev)  # [B, C]
        skips: Tensor | int = 0
        for block, queue in zip(self.blocks, queues[1:]):
            h, s = block.step(h, queue, cond)  # type: ignore[operator]
            skips = skips + s  # [B, S]
        return _pointwise(self.head2, F.relu(_pointwise(self.head1, F.relu(skips))))  # type: ignore[arg-type]
