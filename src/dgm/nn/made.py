"""Masked linear layers and the MADE network (Germain et al. 2015, "MADE: Masked Autoencoder
for Distribution Estimation").

Every unit gets a *degree*. Input dimension ``d`` has the degree ``m(d)`` of its place in the
ordering (1..D); a hidden unit gets a degree drawn uniformly from [min degree of the layer
below, D - 1]. A hidden unit sees units below of degree <= its own; an output of degree
``m(d)`` sees hidden units of degree < ``m(d)`` only (the paper's "Deep MADE" masks). Degrees
never fall along a path and the last step rises strictly, so output ``d`` depends on input
``i`` only when ``m(i) < m(d)``: the outputs are the conditionals of
p(x) = prod_d p(x_d | x_<d) in that order.

One network carries ``num_masks`` orderings and connectivities (order- and connectivity-
agnostic training in the paper). Their degrees are drawn from a seeded generator and
kept as buffers, so a saved model restores them exactly; the dense masks are rebuilt from the
degrees on every call (a few comparisons, cheap next to the matmuls).

A *conditional* MADE (``context_dim > 0``, as in conditional MAF and IAF posteriors) adds a
context ``[B, C]`` to every hidden pre-activation through a plain, unmasked linear map: the
context is visible to every conditional. Its hidden degrees are drawn from [0, D - 1]
instead, and unit 0 of every layer gets degree 0: such units see the context only and feed
every output, so even the first dimension of the order (which sees no input) gets a
nonlinear function of the context rather than a constant.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.activations import activation

Order = Literal["natural", "random"]
# the orderings a MADENet can draw; "reverse" (D..1) is for stacks of autoregressive flows
MaskOrder = Literal["natural", "reverse", "random"]


class MaskedLinear(nn.Linear):
    """``y = (W * M) x + b``, the mask ``M [out, in]`` given at call time.

    With ``mask_bias`` the layer adds the paper's mask-conditioned term ``(V * M) 1`` (here
    divided by the fan-in), a bias that tells each unit which inputs it is connected to under
    the current mask (the paper's "connectivity-agnostic training"); V starts at zero.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, mask_bias: bool = False
    ) -> None:
        super().__init__(in_features, out_features, bias)
        self.mask_weight = (
            nn.Parameter(torch.zeros(out_features, in_features)) if mask_bias else None
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # [B, in], [out, in] -> [B, out]
        m = mask.to(self.weight.dtype)
        out = F.linear(x, self.weight * m, self.bias)
        if self.mask_weight is not None:
            # averaged rather than summed over the inputs: Adam moves every weight by about lr,
            # and a sum would move the bias fan-in times faster than any other parameter
            out = out + (self.mask_weight * m).mean(1)
        return out


def made_degrees(
    dim: int,
    hidden_sizes: Sequence[int],
    num_masks: int,
    order: MaskOrder,
    seed: int,
    context: bool = False,
) -> tuple[Tensor, list[Tensor]]:
    """Draw ``num_masks`` orderings and connectivities from a generator seeded with ``seed``.

    Returns ``orders [M, D]`` (the degree 1..D of every input dimension) and, per hidden layer,
    ``degrees [M, H_l]`` (each in [min degree below, D - 1]; 1 when D = 1). With ``context``
    the degrees start at 0 (units that see the context only) and unit 0 of every layer has
    degree 0, so that a context-only path to every output always exists.
    """
    gen = torch.Generator().manual_seed(seed)
    orders: list[Tensor] = []
    hidden: list[list[Tensor]] = [[] for _ in hidden_sizes]
    bottom = 0 if context else 1
    top = max(dim - 1, bottom)  # a hidden unit of degree D would feed no output
    for _ in range(num_masks):
        if order == "natural":
            orders.append(torch.arange(1, dim + 1))
        elif order == "reverse":
            orders.append(torch.arange(dim, 0, -1))
        else:
            orders.append(torch.randperm(dim, generator=gen) + 1)
        low = bottom  # the smallest degree below the first hidden layer
        for layer, size in enumerate(hidden_sizes):
            deg = torch.randint(min(low, top), top + 1, (size,), generator=gen)
            if context:
                deg[0] = 0
            hidden[layer].append(deg)
            low = int(deg.min())
    return torch.stack(orders), [torch.stack(h) for h in hidden]


class MADENet(nn.Module):
    """The masked MLP: ``[B, D * C_in] -> [B, P * D]`` under mask ``m`` (0 <= m < num_masks).

    Input unit ``d * C_in + c`` belongs to dimension ``d`` (so a one-hot ``[B, D, C_in]``
    flattens straight in); output unit ``p * D + d`` is parameter ``p`` of dimension ``d`` (so
    the output views as ``[B, P, D]``). With ``context_dim > 0`` the forward takes a context
    ``[B, context_dim]`` that enters every hidden layer unmasked (see the module docstring).
    """

    def __init__(
        self,
        dim: int,
        in_per_dim: int,
        out_per_dim: int,
        hidden_sizes: Sequence[int],
        num_masks: int = 1,
        order: MaskOrder = "natural",
        seed: int = 0,
        act: str = "relu",
        dropout: float = 0.0,
        direct: bool = False,
        mask_bias: bool = False,
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        if not hidden_sizes:
            raise ValueError("MADE needs at least one hidden layer")
        self.dim, self.in_per_dim, self.out_per_dim = dim, in_per_dim, out_per_dim
        self.num_masks = num_masks
        self.context_dim = context_dim
        orders, degrees = made_degrees(
            dim, hidden_sizes, num_masks, order, seed, context=context_dim > 0
        )
        # float buffers: they follow .to(device), and stay exact under the trainer's weight
        # averaging (a lerp between equal values; integer buffers would be truncated there)
        self.register_buffer("orders", orders.float())  # [M, D]
        self.num_hidden = len(hidden_sizes)
        for layer, deg in enumerate(degrees):
            self.register_buffer(f"degrees{layer}", deg.float())  # [M, H_l]
        sizes = [dim * in_per_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(
            MaskedLinear(a, b, mask_bias=mask_bias) for a, b in itertools.pairwise(sizes)
        )
        self.last = MaskedLinear(sizes[-1], dim * out_per_dim)
        self.direct = (
            MaskedLinear(dim * in_per_dim, dim * out_per_dim, bias=False) if direct else None
        )
        # no bias: the masked layers have theirs; absent (no state-dict keys) without a context
        self.context = (
            nn.ModuleList(nn.Linear(context_dim, size, bias=False) for size in hidden_sizes)
            if context_dim > 0
            else None
        )
        self.act = activation(act)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> MADENet:
        # the degrees are whole numbers: keep them in float32 (or wider) when the weights go
        # to half precision, since bfloat16 rounds whole numbers above 256 and breaks the masks
        before = {k: b for k, b in self._buffers.items() if b is not None}
        super()._apply(fn, recurse)
        for key, old in before.items():
            new = self._buffers[key]
            if new is not None and new.dtype in (torch.float16, torch.bfloat16):
                self._buffers[key] = old.to(new.device)
        return self

    def order(self, m: int) -> Tensor:
        """The dimensions in the order mask ``m`` generates them: ``[D]`` (long)."""
        return torch.argsort(self.orders[m])

    def masks(self, m: int) -> tuple[list[Tensor], Tensor, Tensor]:
        """Boolean masks of mask ``m``: hidden ``[H_l, H_l-1]`` each, output, direct."""
        deg_in = self.orders[m].repeat_interleave(self.in_per_dim)  # [D * C_in]
        deg_out = self.orders[m].repeat(self.out_per_dim)  # [P * D]
        degs = [deg_in] + [getattr(self, f"degrees{i}")[m] for i in range(self.num_hidden)]
        hidden = [hi[:, None] >= lo[None, :] for lo, hi in itertools.pairwise(degs)]
        out = deg_out[:, None] > degs[-1][None, :]  # strictly: output d never sees x_d
        direct = deg_out[:, None] > deg_in[None, :]
        return hidden, out, direct

    def forward(
        self, x: Tensor, m: int = 0, context: Tensor | None = None
    ) -> Tensor:  # [B, D * C_in] (, [B, context_dim]) -> [B, P * D]
        if (context is None) != (self.context is None):
            raise ValueError(
                f"this MADENet has context_dim={self.context_dim}: "
                + ("pass a context" if context is None else "it takes no context")
            )
        hidden_masks, out_mask, direct_mask = self.masks(m)
        h = x
        for i, (layer, mask) in enumerate(zip(self.hidden, hidden_masks)):
            pre = layer(h, mask)
            if self.context is not None:
                pre = pre + self.context[i](context.to(pre.dtype))  # [B, H_l]
            h = self.drop(self.act(pre))
        out = self.last(h, out_mask)
        if self.direct is not None:
            out = out + self.direct(x, direct_mask)
        return out
