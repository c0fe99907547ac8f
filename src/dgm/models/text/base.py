"""What every text model shares: a sentence is a row of ``max_len`` token ids, its words, one
end token ``</s>`` and padding after it, and its probability is

    p(x) = prod_{t < L} p(x_t | x_<t)        (L real tokens, the end token included),

each conditional a softmax over the vocabulary read from position t of a causal network that
sees ``<s>, x_0, ..., x_{t-1}`` (the begin token, then the sentence shifted right by one).

The output head never gives mass to ``<pad>`` or ``<s>`` (neither is ever a real token), and at
the last position it gives all of it to ``</s>`` (a sentence ends by ``max_len``): so the
probabilities of all sentences of up to ``max_len`` tokens sum to exactly 1, and ``log_prob``
is the log-likelihood of a proper distribution over sentences. Padding never counts.

:class:`TextBase` holds the config fields from the data (``shape`` = ``(max_len,)``,
``levels`` = the vocabulary size, special tokens included), the checks of a row of ids, the
head, and the sampling loop (temperature, nucleus sampling) that every text model runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from dgm.config import opt
from dgm.data.text import BOS, EOS, PAD, SPECIALS, UNK
from dgm.errors import ConfigError, DataError
from dgm.models.base import Batch, GenerativeModel, unpack
from dgm.models.capabilities import TextModel

TEXT_MODELS = "lstm-lm, transformer-lm or text-vae"
# logits computed per pass when scoring: a batch of 500 PTB sentences has 500 x 83 x 10002 of
# them (1.6 GB in float32, and log-softmax doubles it); 2^25 keeps a pass near 128 MB
LOGITS_PER_PASS = 1 << 25


@dataclass
class TextConfig:
    """The fields every text model's config has: what the data fixes."""

    shape: tuple[int, ...] = opt(
        (32,), "(max_len,): tokens per sentence with its end token, from the data"
    )
    levels: int = opt(64, "vocabulary size, the 4 special tokens included, from the data")

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if len(self.shape) != 1 or self.shape[0] < 1:
            raise ConfigError(
                f"text models take shape (max_len,) with max_len >= 1, got {self.shape}"
            )
        if self.levels <= len(SPECIALS):
            raise ConfigError(
                f"levels (the vocabulary size) must exceed the {len(SPECIALS)} special tokens, "
                f"got {self.levels}"
            )


def check_dropout(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"{name} must be in [0, 1), got {value}")


def draw_tokens(log_probs: Tensor, temperature: float, top_p: float) -> Tensor:
    """One token per row of ``log_probs`` ``[n, V]`` (banned tokens at -inf): the most likely
    at temperature 0, else a draw from the softmax of ``log_probs / temperature`` cut to its
    nucleus, the smallest set of most likely tokens whose mass reaches ``top_p`` (Holtzman et
    al. 2020, "The curious case of neural text degeneration"). ``[n]`` long."""
    if temperature == 0:
        return log_probs.argmax(-1)
    probs = torch.softmax(log_probs.float() / temperature, dim=-1)
    if top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of the tokens ranked above each
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)  # the first always stays
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1)[:, 0]


def check_top_p(name: str, top_p: Any) -> None:
    if isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0 < top_p <= 1:
        raise ConfigError(f"{name}.sample: top_p must be in (0, 1], got {top_p!r}")


# a step of generation: (position t, the tokens fed at t [n]) -> logits of x_t [n, V]
Step = Callable[[int, Tensor], Tensor]


class TextBase(GenerativeModel, TextModel):
    """Base of the text family: ``config`` is a :class:`TextConfig`. A model gives the logits
    of every position at once (``[B, T, V]`` from the shifted inputs) and, for sampling, one
    position at a time; the head, the likelihood and the sampling loop are here."""

    text: ClassVar[bool] = True
    discrete_only = True
    # tests/test_precision.py: lstm-lm, transformer-lm and text-vae trained under bf16 autocast
    # reach float32's validation NLL on English characters within 0.05%; the head's softmax and
    # the sums stay in float32 (score). 1.3-1.9x faster training steps on AMX (bench_text.py)
    bf16_proven = True
    config: Any

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.tokenizer = None
        max_len, vocab = config.shape[0], config.levels
        banned = torch.zeros(max_len, vocab, dtype=torch.bool)
        banned[:, PAD] = banned[:, BOS] = True  # never real tokens
        banned[-1] = True  # the last position ends the sentence
        banned[-1, EOS] = False
        if self.molecules and max_len > 1:
            # a molecule is never empty, and never holds a token its training set lacked (the
            # data skips such molecules): <unk> would decode to no molecule at all
            banned[:, UNK] = True
            banned[0, EOS] = True
        # derived from the config, so not saved with the weights
        self.register_buffer("banned", banned, persistent=False)

    @property
    def max_len(self) -> int:
        return int(self.config.shape[0])

    # -- the data (GenerativeModel.check_spec refuses data that is not text) -----------------
    def check_input(self, x: Tensor) -> None:
        """The shape, then, for rows of whole ids in range, the form of a sentence: exactly one
        ``</s>``, ``<pad>`` after it and only there, no ``<s>``."""
        super().check_input(x)
        if x.dim() != 2 or not x.numel():
            return
        whole = torch.isfinite(x).all() and (x == x.round()).all()
        if not whole or x.min() < 0 or x.max() >= self.config.levels:
            return  # as_examples names the bad values
        ends = (x == EOS).sum(1)
        after = (x == EOS).long().cumsum(1) - (x == EOS).long() > 0  # positions after the end
        bad = (ends != 1) | ((x == PAD) != after).any(1) | (x == BOS).any(1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise DataError(
                f"{self.name} scores sentences as rows of token ids: each needs exactly one "
                f"end token ({EOS}) with padding ({PAD}) after it and only there, and no begin "
                f"token ({BOS}); row {row} is not one (encode text with the model's tokenizer: "
                "model.ids(lines))"
            )

    def shifted(self, x: Tensor) -> Tensor:
        """What the network reads: ``<s>`` then ``x`` shifted right by one, ``[B, T]`` long;
        input t holds x_{t-1}, so output t may see it and everything before."""
        start = torch.full_like(x[:, :1], BOS)
        return torch.cat([start, x[:, :-1]], dim=1).long()

    # -- the head ------------------------------------------------------------------------------
    def head_log_probs(self, logits: Tensor, start: int = 0) -> Tensor:
        """log p(x_t = v | x_<t) for logits ``[B, T, V]`` of positions ``start..start+T-1``:
        no mass on ``<pad>`` or ``<s>``, and only ``</s>`` at the last position. float32."""
        t = logits.shape[1]
        banned = self.banned[start : start + t]
        return torch.log_softmax(logits.float().masked_fill(banned, float("-inf")), dim=-1)

    def in_passes(self, score: Callable[..., Tensor], *rows: Tensor) -> Tensor:
        """``score(*chunks) -> [b]`` over chunks of the rows of ``rows`` (each ``[B, ...]``)
        of at most :data:`LOGITS_PER_PASS` logits, concatenated: ``[B]``. Rows are scored
        independently, so the numbers do not depend on the pass size."""
        per = max(1, LOGITS_PER_PASS // (self.max_len * self.config.levels))
        b = rows[0].shape[0]
        if b <= per:
            return score(*rows)
        return torch.cat([score(*(r[i : i + per] for r in rows)) for i in range(0, b, per)])

    def sequence_log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        """log p(x) ``[B]``: the head's log-probabilities of the real tokens (end included)
        summed; padding positions are skipped, whatever the network gave there."""
        logp = self.head_log_probs(logits)  # [B, T, V]
        target = x.long()
        real = self.real_tokens(x)
        picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1))[..., 0]  # [B, T]
        return torch.where(real, picked, torch.zeros_like(picked)).sum(1)

    def score(self, h: Tensor, x: Tensor, head: Callable[[Tensor], Tensor]) -> Tensor:
        """log p(x) ``[B]`` from the features ``h [B, T, C]`` of every position: ``head``
        (features ``[N, C]`` -> logits ``[N, V]``) runs at the real tokens only, so padding
        costs no output layer or softmax (on PTB batches, more than half of the positions);
        the same numbers as :meth:`sequence_log_prob` of the full logits."""
        rows, pos = self.real_tokens(x).nonzero(as_tuple=True)  # [N] each
        logits = head(h[rows, pos]).float().masked_fill(self.banned[pos], float("-inf"))
        target = x[rows, pos].long().unsqueeze(-1)
        picked = logits.gather(-1, target)[:, 0] - logits.logsumexp(-1)  # [N]
        return picked.new_zeros(x.shape[0]).index_add(0, rows, picked)

    def trim(self, x: Tensor) -> Tensor:
        """``x`` without the columns after the batch's longest sentence (padding everywhere):
        causal networks give the kept positions the same outputs, and skip the rest."""
        longest = int(self.token_counts(x).max()) if x.numel() else 1
        return x[:, : max(longest, 1)]

    @staticmethod
    def real_tokens(x: Tensor) -> Tensor:
        """``[B, T]`` True at the real tokens: up to and including the first end token (for a
        valid row, ``x != PAD``; read from the end token, whatever sits in the padding)."""
        ends = (x == EOS).long()
        return ends.cumsum(1) - ends == 0

    def token_counts(self, x: Tensor) -> Tensor:
        """Real tokens per sentence, the end token included: ``[B]``."""
        return self.real_tokens(x).sum(1)

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` per sentence and its real ``tokens``, ``[B]``: the trainer's means of the two
        give the validation perplexity exp(sum nll / sum tokens)."""
        x, _ = unpack(batch)
        return {"nll": -self.log_prob(x), "tokens": self.token_counts(x).float()}

    # -- sampling ------------------------------------------------------------------------------
    def generate(self, n: int, step: Step, temperature: float, top_p: float) -> Tensor:
        """``n`` sentences ``[n, max_len]``, token by token: ``step(t, fed)`` gives the logits of
        position t after the tokens fed so far (``fed`` the one fed at t: ``<s>`` at 0). Rows
        that have ended get padding; the loop stops when every row has ended. The draws are
        the same calls in the same order however ``step`` computes, so one seed gives one
        sample whatever the model caches."""
        check_top_p(self.name, top_p)
        x = torch.full((n, self.max_len), PAD, dtype=torch.long, device=self.device)
        fed = torch.full((n,), BOS, dtype=torch.long, device=self.device)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        for t in range(self.max_len):
            logp = self.head_log_probs(step(t, fed)[:, None], start=t)[:, 0]  # [n, V]
            token = draw_tokens(logp, temperature, top_p)
            token = torch.where(done, torch.full_like(token, PAD), token)
            x[:, t] = token
            done = done | (token == EOS)
            fed = token
            if bool(done.all()):
                break
        return x.float()


__all__ = [
    "TEXT_MODELS",
    "Step",
    "TextBase",
    "TextConfig",
    "check_dropout",
    "check_top_p",
    "draw_tokens",
]
