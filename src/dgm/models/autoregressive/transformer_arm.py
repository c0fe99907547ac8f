"""Autoregressive model with a decoder-only (causal) transformer over the flattened image.

p(x) = prod_d p(x_d | x_<d) with pixels read in raster order as tokens (Chen et al. 2020,
"Generative pretraining from pixels"; Parmar et al. 2018, "Image transformer"). Each pixel
level 0..K-1 is a learned embedding; the sequence fed to the network is shifted right,
``[start, x_0, ..., x_{D-2}]`` plus learned position embeddings, so output ``d`` of the causal
transformer (``dgm.nn.transformer``) sees ``x_<d`` only and gives the
parameters of p(x_d | x_<d). Sampling is ancestral; by default it keeps every layer's keys and
values, so each step runs one token through the network instead of the whole prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.models.autoregressive.base import AutoregressiveModel
from dgm.models.base import DiscreteConfig
from dgm.nn.transformer import CausalTransformer, KVCache, check_sizes
from dgm.registry import register


@dataclass
class TransformerARMConfig(DiscreteConfig):
    dim: int = opt(64, "width of the token embeddings and of every block")
    layers: int = opt(4, "transformer blocks")
    heads: int = opt(4, "attention heads per block (dim must be a multiple)")
    mlp_ratio: float = opt(4.0, "hidden width of each block's MLP, as a multiple of dim")
    dropout: float = opt(0.1, "dropout on embeddings, attention weights and residual branches")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sizes(self.dim, self.layers, self.heads, self.mlp_ratio, self.dropout)


@register(
    "transformer-arm",
    "autoregressive",
    "decoder-only causal transformer over the flattened image, pixels as tokens",
)
class TransformerARM(AutoregressiveModel):
    """Transformer ARM: exact log-likelihood, ancestral sampling with a key/value cache.
    ``self.dim`` is the number of pixels D, ``config.dim`` the transformer's width."""

    Config = TransformerARMConfig
    config: TransformerARMConfig

    def __init__(self, config: TransformerARMConfig) -> None:
        super().__init__(config)
        c = config
        self.token = nn.Embedding(c.levels, c.dim)
        self.start = nn.Parameter(torch.zeros(c.dim))  # the token before x_0
        self.position = nn.Parameter(torch.zeros(self.dim, c.dim))  # [D, C]
        self.drop = nn.Dropout(c.dropout)
        self.body = CausalTransformer(
            c.dim, c.layers, c.heads, mlp_ratio=c.mlp_ratio, dropout=c.dropout
        )
        self.head = nn.Linear(c.dim, self.likelihood.params_per_dim)
        for p in (self.token.weight, self.start, self.position):
            nn.init.normal_(p, std=0.02)  # small next to the LayerNorm scale, as in GPT-2

    # -- the network, in two halves so tests can differentiate through the second ------------
    def embed(self, x: Tensor) -> Tensor:
        """Token embeddings of the levels, not yet shifted: ``[B, T] -> [B, T, C]``."""
        return self.token(x.long())

    def logits_from_embeddings(self, e: Tensor) -> Tensor:
        """Parameters of every conditional from token embeddings: ``[B, T, C] -> [B, P, T]``.

        Output ``d`` sees ``e[:, :d]`` only: the inputs are shifted right behind the start
        token, and the transformer is causal.
        """
        B, T, _ = e.shape
        start = self.start.expand(B, 1, -1)  # [B, 1, C]
        h = torch.cat([start, e[:, : T - 1]], dim=1) + self.position[:T]  # [B, T, C]
        out = self.head(self.body(self.drop(h)))  # [B, T, P]
        return out.transpose(1, 2)  # [B, P, T]

    def logits(self, flat: Tensor) -> Tensor:
        """Parameters of every conditional: ``[B, T] -> [B, P, T]``; output d sees x_<d only."""
        return self.logits_from_embeddings(self.embed(flat))

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, cache: bool = True) -> Tensor:
        """Ancestral sampling in raster order: ``[n, *shape]`` levels.

        ``cache=True`` feeds one token per step and attends over the cached keys and values
        (O(D) work per step); ``cache=False`` recomputes the whole prefix every step (O(D^2)).
        Both draw the same random numbers in the same order, so for one seed they give the
        same samples.
        """
        kv = self.body.new_cache(self.dim) if cache else None
        return self.ancestral(n, temperature, state=kv).view(n, *self.config.shape)

    def conditional_params(self, x: Tensor, d: int, state: Any = None) -> Tensor:
        """Params of p(x_d | x_<d) ``[B, P, 1]``: one cached step with ``state`` (the keys and
        values of positions < d), else a pass over the prefix (``x[:, :d+1]`` suffices:
        output d sees x_<d, and x_d is shifted out)."""
        return super().conditional_params(x, d) if state is None else self.step(x, d, state)

    def step(self, x: Tensor, d: int, kv: KVCache) -> Tensor:
        """Params of p(x_d | x_<d) ``[B, P, 1]``, given ``kv`` holding positions ``< d``.

        Adds the same two terms as ``logits_from_embeddings`` for input position ``d``, so the
        cached and the full pass compute the same numbers.
        """
        e = self.start.expand(x.shape[0], 1, -1) if d == 0 else self.embed(x[:, d - 1 : d])
        h = e + self.position[d : d + 1]  # [B, 1, C]
        out = self.head(self.body(self.drop(h), kv))  # [B, 1, P]
        return out.transpose(1, 2)
