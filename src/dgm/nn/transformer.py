"""Decoder-only (causal) transformer blocks, with a key/value cache for incremental decoding:
shared by the transformer ARM (pixels as tokens) and the transformer language model (text).

Pre-LayerNorm blocks (Radford et al. 2019, "GPT-2"; Xiong et al. 2020, "On layer normalization
in the transformer architecture") of causal multi-head self-attention (Vaswani et al. 2017,
"Attention is all you need") and a GELU MLP. Position ``t`` of the output sees inputs ``<= t``;
a model that feeds in its sequence shifted right by one gets outputs that see inputs ``< t``.

Sampling one token at a time need not recompute the prefix: the keys and values of past
positions do not change, so each layer keeps them in a ``LayerCache`` and a step attends from
the new token's query over the cached keys (the "KV cache" of autoregressive decoding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.errors import ConfigError


def check_sizes(dim: int, layers: int, heads: int, mlp_ratio: float, dropout: float) -> None:
    """Raise a ConfigError for sizes a :class:`CausalTransformer` cannot be built with (the
    configs of transformer-arm and transformer-lm share them)."""
    if dim < 1 or layers < 1 or heads < 1:
        raise ConfigError("need dim >= 1, layers >= 1 and heads >= 1")
    if dim % heads:
        raise ConfigError(f"dim ({dim}) must be a multiple of heads ({heads})")
    if mlp_ratio <= 0:
        raise ConfigError(f"mlp_ratio must be positive, got {mlp_ratio}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")


class LayerCache:
    """Keys and values ``[B, H, T_max, Dh]`` of the positions one layer has seen so far.

    Allocated on the first append (with the keys' batch, device and dtype, so it follows
    autocast too) for ``max_len`` positions and filled in place: a step copies one position
    and attends over the filled part, with no re-allocation.
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.keys: Tensor | None = None
        self.values: Tensor | None = None
        self.length = 0  # positions filled

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``[B, H, T_new, Dh]`` keys/values; return all of them so far ``[B, H, T, Dh]``."""
        if self.keys is None or self.values is None:
            B, H, _, Dh = k.shape
            self.keys = k.new_zeros(B, H, self.max_len, Dh)
            self.values = v.new_zeros(B, H, self.max_len, Dh)
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"cache holds {self.max_len} positions, asked for {end}")
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


KVCache = list[LayerCache]  # one per block


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` attends to positions ``<= t``."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, cache: LayerCache | None = None) -> Tensor:
        """``[B, T, C] -> [B, T, C]``; with ``cache``, ``h`` holds the positions after it."""
        B, T, C = h.shape
        # [B, T, 3C] -> 3 x [B, H, T, Dh]
        q, k, v = self.qkv(h).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # [B, H, past + T, Dh]
        p = self.dropout if self.training else 0.0
        if past == 0:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:
            # one new query may see every cached key: no mask needed
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            # is_causal aligns the mask top-left, wrong when queries start at ``past``
            mask = torch.ones(T, past + T, dtype=torch.bool, device=h.device).tril(past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.transpose(1, 2).reshape(B, T, C)  # [B, T, C]
        return self.resid_drop(self.proj(out))


class MLP(nn.Module):
    """Position-wise feed-forward network: Linear -> GELU -> Linear -> dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.proj = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor) -> Tensor:  # [B, T, C] -> [B, T, C]
        return self.drop(self.proj(self.act(self.fc(h))))


class TransformerBlock(nn.Module):
    """Pre-LN block: ``h + attn(LN(h))``, then ``h + mlp(LN(h))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, max(1, round(mlp_ratio * dim)), dropout)

    def forward(self, h: Tensor, cache: LayerCache | None = None) -> Tensor:
        h = h + self.attn(self.ln1(h), cache)
        return h + self.mlp(self.ln2(h))


class CausalTransformer(nn.Module):
    """A stack of causal pre-LN blocks and a final LayerNorm: ``[B, T, C] -> [B, T, C]``.

    Output ``t`` depends on inputs ``<= t`` only. Pass a cache from ``new_cache`` to feed the
    sequence in pieces (e.g. one token per step); the outputs equal those of one full pass.
    """

    def __init__(
        self, dim: int, layers: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, dropout=dropout) for _ in range(layers)
        )
        # PyTorch's default Linear init (std ~ 1/sqrt(3 fan_in)), not GPT-2's fixed N(0, 0.02):
        # at the small widths used here 0.02 leaves attention near uniform and learning slow
        # (digits, 60 s of training: test NLL 86.4 nats against 90.5)
        self.ln_f = nn.LayerNorm(dim)

    def new_cache(self, max_len: int) -> KVCache:
        """An empty key/value cache for sequences of up to ``max_len`` positions."""
        return [LayerCache(max_len) for _ in self.blocks]

    def forward(self, h: Tensor, cache: KVCache | None = None) -> Tensor:
        for i, block in enumerate(self.blocks):
            h = block(h, None if cache is None else cache[i])
        return self.ln_f(h)
