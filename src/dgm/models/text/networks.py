"""The networks of the text family: the output layer over the vocabulary, the sentence encoder
of the text VAE, and its two decoders, each fed the code z at every step.

- :class:`SentenceEncoder`: an LSTM over the sentence's embeddings, read at its last real
  token (Bowman et al. 2016); ``bidirectional`` adds an LSTM over the sentence reversed.
- :class:`LSTMDecoder`: an LSTM whose initial state comes from z and whose every input is the
  previous token's embedding concatenated with z (Bowman et al. 2016; He et al. 2019).
- :class:`DilatedCNNDecoder`: residual blocks of dilated causal 1-D convolutions over the same
  inputs (Yang, Hu, Salakhutdinov & Berg-Kirkpatrick 2017, "Improved variational autoencoders
  for text modeling using dilated convolutions"), whose depth and dilations, and so how much
  of the past each word sees, are the paper's schedules by name (:data:`CNN_SCHEDULES`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.causal import CausalConv1d

CNNSize = Literal["small", "medium", "large", "very-large"]
# Yang et al. 2017's decoders SCNN, MCNN, LCNN and VLCNN: filter width 3, dilations doubling
# from 1 to 4 (small) or to 16, the latter stacked once, twice or three times: depth 3, 5, 10
# and 15 layers, receptive fields 15, 63, 125 and 187 tokens
_BLOCK = (1, 2, 4, 8, 16)
CNN_SCHEDULES: dict[str, tuple[int, ...]] = {
    "small": (1, 2, 4),
    "medium": _BLOCK,
    "large": _BLOCK * 2,
    "very-large": _BLOCK * 3,
}


class TokenOutput(nn.Module):
    """Features ``[..., H]`` -> logits over the vocabulary ``[..., V]``: its own linear layer, or
    (tied) the input embedding's transpose after a linear map H -> E where the widths differ
    (Press & Wolf 2017). The embedding is passed in at each call, so its weight is stored once,
    by its owner."""

    def __init__(self, features: int, vocab: int, width: int, tied: bool) -> None:
        super().__init__()
        self.tied = tied
        if tied:
            self.proj: nn.Module = (
                nn.Linear(features, width) if features != width else nn.Identity()
            )
            self.bias = nn.Parameter(torch.zeros(vocab))
        else:
            self.out = nn.Linear(features, vocab)

    def forward(self, h: Tensor, embedding: nn.Embedding) -> Tensor:
        if self.tied:
            return F.linear(self.proj(h), embedding.weight, self.bias)
        return self.out(h)


def last_real(h: Tensor, lengths: Tensor) -> Tensor:
    """``h [B, T, H]`` at each row's last real position ``lengths - 1``: ``[B, H]``."""
    index = (lengths - 1).clamp_min(0).view(-1, 1, 1).expand(-1, 1, h.shape[-1])
    return h.gather(1, index)[:, 0]


def reverse_real(e: Tensor, lengths: Tensor) -> Tensor:
    """Each row's first ``lengths`` positions reversed, the padding left where it is:
    ``[B, T, E]``. An LSTM run forwards over it reads the sentence backwards and never sees
    padding before a real token (no packing, no host sync)."""
    t = torch.arange(e.shape[1], device=e.device).unsqueeze(0)  # [1, T]
    n = lengths.unsqueeze(1)  # [B, 1]
    index = torch.where(t < n, n - 1 - t, t)  # [B, T]
    return e.gather(1, index.unsqueeze(-1).expand(-1, -1, e.shape[-1]))


class SentenceEncoder(nn.Module):
    """Embeddings of a sentence ``[B, T, E]`` and its lengths ``[B]`` -> features ``[B, H]``
    (``[B, 2H]`` bidirectional): the LSTM's output at the last real token (the end token), and
    with ``bidirectional`` that of a second LSTM over the sentence reversed, at its last
    (the first word). Padding is never read."""

    def __init__(self, embed: int, hidden: int, bidirectional: bool) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(embed, hidden, batch_first=True) if bidirectional else None
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, e: Tensor, lengths: Tensor) -> Tensor:
        h, _ = self.forward_lstm(e)
        out = last_real(h, lengths)
        if self.backward_lstm is None:
            return out
        hb, _ = self.backward_lstm(reverse_real(e, lengths))
        return torch.cat([out, last_real(hb, lengths)], dim=-1)


class GRUEncoder(nn.Module):
    """A GRU over the embedded tokens ``[B, T, E]``: its state at the end token, ``[B, H]``."""

    def __init__(self, embed: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.out_dim = hidden

    def forward(self, e: Tensor, lengths: Tensor) -> Tensor:
        h, _ = self.gru(e)
        return last_real(h, lengths)


def with_code(e: Tensor, z: Tensor) -> Tensor:
    """The decoder's inputs: each position's embedding ``[B, T, E]`` concatenated with the
    code ``z [B, K]``: ``[B, T, E + K]``."""
    return torch.cat([e, z.unsqueeze(1).expand(-1, e.shape[1], -1)], dim=-1)


class LSTMDecoder(nn.Module):
    """p(x_t | x_<t, z): an LSTM whose initial cell state is a linear map of z (and its hidden
    state that through tanh, as He et al. 2019), reading [E[x_{t-1}]; z] at every step, then
    dropout and a linear layer over the vocabulary."""

    def __init__(self, embed: int, latent: int, hidden: int, vocab: int, dropout: float) -> None:
        super().__init__()
        self.init = nn.Linear(latent, hidden)
        self.lstm = nn.LSTM(embed + latent, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)

    def initial_state(self, z: Tensor) -> tuple[Tensor, Tensor]:
        c = self.init(z).unsqueeze(0)  # [1, B, H]
        return torch.tanh(c), c

    def features(self, e: Tensor, z: Tensor) -> Tensor:
        """Input embeddings ``[B, T, E]`` (of ``<s>, x_0, ...``) and codes ``[B, K]`` -> what
        the output layer ``out`` reads, ``[B, T, H]``; output t sees inputs <= t."""
        h, _ = self.lstm(with_code(e, z), self.initial_state(z))
        return self.drop(h)

    def forward(self, e: Tensor, z: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` of every position."""
        return self.out(self.features(e, z))

    def step(
        self, e: Tensor, z: Tensor, state: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One position: embeddings ``[B, 1, E]`` -> logits ``[B, V]`` and the new state."""
        h, state = self.lstm(with_code(e, z), state if state is not None else self.initial_state(z))
        return self.out(self.drop(h[:, 0])), state


class GRUDecoder(nn.Module):
    """p(x_t | x_<t, z) as the chemical VAE decodes (Gomez-Bombarelli et al. 2018): stacked GRUs
    whose first hidden states are linear maps of z, reading [E[x_{t-1}]; z] at every step (z
    at every step, teacher-forced), then dropout and a linear layer over the vocabulary."""

    def __init__(
        self, embed: int, latent: int, hidden: int, vocab: int, dropout: float, layers: int = 3
    ) -> None:
        super().__init__()
        self.layers = layers
        self.init = nn.Linear(latent, hidden * layers)
        self.gru = nn.GRU(embed + latent, hidden, layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)

    def initial_state(self, z: Tensor) -> Tensor:
        h = torch.tanh(self.init(z))  # [B, L * H]
        return h.view(z.shape[0], self.layers, -1).transpose(0, 1).contiguous()  # [L, B, H]

    def features(self, e: Tensor, z: Tensor) -> Tensor:
        """Input embeddings ``[B, T, E]`` and codes ``[B, K]`` -> ``[B, T, H]``; output t sees
        inputs <= t."""
        h, _ = self.gru(with_code(e, z), self.initial_state(z))
        return self.drop(h)

    def forward(self, e: Tensor, z: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` of every position."""
        return self.out(self.features(e, z))

    def step(self, e: Tensor, z: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """One position: embeddings ``[B, 1, E]`` -> logits ``[B, V]`` and the new state."""
        h, state = self.gru(with_code(e, z), state if state is not None else self.initial_state(z))
        return self.out(self.drop(h[:, 0])), state


class ConvEncoder(nn.Module):
    """The chemical VAE's encoder: 1-D convolutions over the embedded string with its padding
    (``[B, length, E]``: every row its full length, so a string's features never depend on the
    batch it came in), flattened, then a dense layer: features ``[B, H]``."""

    def __init__(
        self,
        embed: int,
        length: int,
        channels: tuple[int, ...],
        kernels: tuple[int, ...],
        hidden: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width, t = embed, length
        for c, k in zip(channels, kernels):
            k = min(k, t)  # short strings (QM9's 20-odd tokens) keep at least one position
            layers += [nn.Conv1d(width, c, k), nn.Tanh()]
            width, t = c, t - k + 1
        self.convs = nn.Sequential(*layers)
        self.length = length
        self.dense = nn.Linear(width * t, hidden)
        self.out_dim = hidden

    def forward(self, e: Tensor, lengths: Tensor) -> Tensor:
        h = self.convs(e.transpose(1, 2))  # [B, C, T']
        return torch.tanh(self.dense(h.flatten(1)))


class ResidualDilatedBlock(nn.Module):
    """x + W_3 ReLU(dilated causal conv ReLU(W_1 ReLU(x))): a bottleneck residual block with
    1x1 convolutions to and from half the width around a causal width-k convolution of
    dilation d (He et al. 2016's bottleneck, as in ByteNet and Yang et al. 2017)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        inner = max(1, channels // 2)
        self.reduce = nn.Conv1d(channels, inner, 1)
        self.conv = CausalConv1d(inner, inner, kernel_size, dilation=dilation)
        self.expand = nn.Conv1d(inner, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor) -> Tensor:  # [B, C, T] -> [B, C, T]
        r = self.conv(F.relu(self.reduce(F.relu(h))))
        return h + self.drop(self.expand(F.relu(r)))


class DilatedCNNDecoder(nn.Module):
    """p(x_t | x_<t, z): [E[x_{t-1}]; z] at every position, a 1x1 convolution to ``channels``,
    residual blocks of dilated causal convolutions with the dilations of ``schedule``, then
    ReLU, dropout and a linear layer over the vocabulary. Output t sees inputs <= t, that is
    the tokens before t, up to ``receptive_field - 1`` of them."""

    def __init__(
        self,
        *,
        embed: int,
        latent: int,
        channels: int,
        vocab: int,
        schedule: CNNSize,
        kernel_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dilations = CNN_SCHEDULES[schedule]
        self.inp = nn.Conv1d(embed + latent, channels, 1)
        self.blocks = nn.ModuleList(
            ResidualDilatedBlock(channels, kernel_size, d, dropout) for d in self.dilations
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(channels, vocab)
        self.receptive_field = 1 + (kernel_size - 1) * sum(self.dilations)

    def features(self, e: Tensor, z: Tensor) -> Tensor:
        """Input embeddings ``[B, T, E]`` and codes ``[B, K]`` -> what the output layer
        ``out`` reads, ``[B, T, C]``."""
        h = self.inp(with_code(e, z).transpose(1, 2))  # [B, C, T]
        for block in self.blocks:
            h = block(h)
        return self.drop(F.relu(h.transpose(1, 2)))

    def forward(self, e: Tensor, z: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` of every position."""
        return self.out(self.features(e, z))


__all__ = [
    "CNN_SCHEDULES",
    "CNNSize",
    "DilatedCNNDecoder",
    "LSTMDecoder",
    "ResidualDilatedBlock",
    "SentenceEncoder",
    "TokenOutput",
    "last_real",
    "reverse_real",
    "with_code",
]
