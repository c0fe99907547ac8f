"""A decoder-only transformer language model (Radford et al. 2018/2019, GPT; nanoGPT's shape):
token and learned position embeddings of ``<s>, x_0, ..., x_{T-2}`` through causal pre-LN
blocks (``dgm.nn.transformer``, shared with the transformer ARM), then a linear layer over the
vocabulary, tied to the token embedding by default (Press & Wolf 2017). Output t sees x_<t.

Sampling keeps every layer's keys and values (the KV cache), so each step runs one token
through the network; ``sample(..., cache=False)`` recomputes the prefix at every step instead
(the reference, and the benchmark's baseline): both make the same draws in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.models.text.base import TextBase, TextConfig
from dgm.models.text.networks import TokenOutput
from dgm.nn.transformer import CausalTransformer, check_sizes
from dgm.registry import register


@dataclass
class TransformerLMConfig(TextConfig):
    dim: int = opt(256, "width of the token embeddings and of every block")
    layers: int = opt(4, "transformer blocks")
    heads: int = opt(4, "attention heads per block (dim must be a multiple)")
    mlp_ratio: float = opt(4.0, "hidden width of each block's MLP, as a multiple of dim")
    dropout: float = opt(0.1, "dropout on embeddings, attention weights and residual branches")
    tied: bool = opt(True, "the output layer reuses the token embedding (Press & Wolf 2017)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sizes(self.dim, self.layers, self.heads, self.mlp_ratio, self.dropout)


@register("transformer-lm", "text", "causal transformer language model with a key/value cache")
class TransformerLM(TextBase):
    """``token`` + ``position`` embeddings -> dropout -> ``body`` (causal blocks, final
    LayerNorm) -> ``output``."""

    Config = TransformerLMConfig
    config: TransformerLMConfig

    def __init__(self, config: TransformerLMConfig) -> None:
        super().__init__(config)
        c = config
        self.token = nn.Embedding(c.levels, c.dim)
        self.position = nn.Parameter(torch.zeros(self.max_len, c.dim))  # [T, C]
        self.drop = nn.Dropout(c.dropout)
        self.body = CausalTransformer(
            c.dim, c.layers, c.heads, mlp_ratio=c.mlp_ratio, dropout=c.dropout
        )
        self.output = TokenOutput(c.dim, c.levels, c.dim, c.tied)
        for p in (self.token.weight, self.position):
            nn.init.normal_(p, std=0.02)  # small next to the LayerNorm scale, as in GPT-2

    def embed(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Inputs of positions ``start..start+T-1``: ``[B, T]`` ids -> ``[B, T, C]``."""
        t = tokens.shape[1]
        return self.drop(self.token(tokens) + self.position[start : start + t])

    def features(self, x: Tensor) -> Tensor:
        """What the output layer reads at every position ``[B, T, C]``; t sees x_<t only."""
        return self.body(self.embed(self.shifted(x)))

    def head(self, h: Tensor) -> Tensor:
        """Features ``[..., C]`` -> logits ``[..., V]``."""
        return self.output(h, self.token)

    def logits(self, x: Tensor) -> Tensor:
        """Logits of every position ``[B, T, V]``; position t sees x_<t only."""
        return self.head(self.features(x))

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats ``[B]``: every real token, the end token included."""
        return self.in_passes(lambda r: self.score(self.features(r), r, self.head), self.trim(x))

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, top_p: float = 1.0, cache: bool = True
    ) -> Tensor:
        """``n`` sentences ``[n, max_len]`` (ids, padding after the end token). ``cache=True``
        feeds one token per step and attends over the cached keys and values (O(T) work per
        step); ``cache=False`` runs the whole prefix every step (O(T^2)); one seed gives the
        same sentences either way."""
        kv = self.body.new_cache(self.max_len) if cache else None
        fed: list[Tensor] = []

        def step(t: int, token: Tensor) -> Tensor:
            if kv is not None:
                h = self.body(self.embed(token[:, None], start=t), kv)  # [n, 1, C]
                return self.output(h[:, 0], self.token)
            fed.append(token)
            h = self.body(self.embed(torch.stack(fed, 1)))  # [n, t + 1, C]
            return self.output(h[:, -1], self.token)

        return self.generate(n, step, temperature, top_p)


__all__ = ["TransformerLM", "TransformerLMConfig"]
