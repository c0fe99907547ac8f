"""The LSTM language model, the baseline of the text-VAE papers (Bowman et al. 2016; Yang et al.
2017; He et al. 2019): p(x) = prod_t p(x_t | x_<t) with

    h_t = LSTM(dropout(E[x_{t-1}]), h_{t-1}),    p(x_t | x_<t) = softmax(W dropout(h_t) + b),

``x_{-1}`` the begin token (Zaremba, Sutskever & Vinyals 2014's regularised LSTM: dropout on
the embeddings, between layers and before the output). The output layer may be tied to the
input embedding, W = E (Press & Wolf 2017, "Using the output embedding to improve language
models"; Inan et al. 2017), through a linear map when the LSTM is wider than the embedding.
Sampling runs the LSTM one token at a time, carrying its state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.text.base import TextBase, TextConfig, check_dropout
from dgm.models.text.networks import TokenOutput
from dgm.registry import register


@dataclass
class LSTMLMConfig(TextConfig):
    embed: int = opt(256, "width of the token embeddings")
    hidden: int = opt(256, "units of each LSTM layer")
    layers: int = opt(1, "stacked LSTM layers")
    dropout: float = opt(
        0.5,
        "dropout on the embeddings, between LSTM layers and before the output layer "
        "(Zaremba et al. 2014)",
    )
    tied: bool = opt(
        False,
        "the output layer reuses the input embedding (Press & Wolf 2017), through a linear "
        "map from hidden to embed when they differ",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embed < 1 or self.hidden < 1 or self.layers < 1:
            raise ConfigError("need embed, hidden and layers >= 1")
        check_dropout("dropout", self.dropout)


@register("lstm-lm", "text", "LSTM language model over tokens (the text-VAE papers' baseline)")
class LSTMLM(TextBase):
    """``embedding`` -> dropout -> ``lstm`` -> dropout -> ``output`` (tied or not)."""

    Config = LSTMLMConfig
    config: LSTMLMConfig

    def __init__(self, config: LSTMLMConfig) -> None:
        super().__init__(config)
        c = config
        self.embedding = nn.Embedding(c.levels, c.embed)
        self.lstm = nn.LSTM(
            c.embed, c.hidden, c.layers, batch_first=True, dropout=c.dropout if c.layers > 1 else 0
        )
        self.drop = nn.Dropout(c.dropout)
        self.output = TokenOutput(c.hidden, c.levels, c.embed, c.tied)

    def features(self, x: Tensor) -> Tensor:
        """What the output layer reads at every position ``[B, T, H]``; t sees x_<t only."""
        h, _ = self.lstm(self.drop(self.embedding(self.shifted(x))))
        return self.drop(h)

    def head(self, h: Tensor) -> Tensor:
        """Features ``[..., H]`` -> logits ``[..., V]``."""
        return self.output(h, self.embedding)

    def logits(self, x: Tensor) -> Tensor:
        """Logits of every position ``[B, T, V]``; position t sees x_<t only."""
        return self.head(self.features(x))

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats ``[B]``: every real token, the end token included."""
        return self.in_passes(lambda r: self.score(self.features(r), r, self.head), self.trim(x))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, top_p: float = 1.0) -> Tensor:
        """``n`` sentences ``[n, max_len]`` (ids, padding after the end token): token by token,
        carrying the LSTM's state; ``temperature`` 0 takes the most likely token, ``top_p`` < 1
        draws from the nucleus."""
        state: list[tuple[Tensor, Tensor] | None] = [None]

        def step(t: int, fed: Tensor) -> Tensor:
            h, state[0] = self.lstm(self.drop(self.embedding(fed[:, None])), state[0])
            return self.output(self.drop(h[:, 0]), self.embedding)

        return self.generate(n, step, temperature, top_p)


__all__ = ["LSTMLM", "LSTMLMConfig"]
