"""The grammar VAE (Kusner, Paige & Hernandez-Lobato 2017, "Grammar variational autoencoder").

A SMILES string is the sequence of production rules of its leftmost derivation in a
context-free grammar of SMILES (:mod:`dgm.models.molecules.grammar`: LL(1), so each string has
exactly one). The encoder reads the rules (embedded, 1-D convolutions, a dense layer) into
q(z|x) = N(mu, sigma^2); the decoder is a stack of GRUs fed z (and, here, the previous rule) at
every step, whose softmax over the rules is masked to those that expand the nonterminal on top
of a stack. So every sampled rule sequence is a complete derivation: the decoded string always
parses (RDKit still judges valence and ring closures, which no context-free grammar can).

    p(x | z) = prod_t softmax(logits_t masked to mask_t)[r_t],   r = the derivation of x

One derivation per string makes p(rules | z) the probability of the string itself, so this is a
model of the same token rows as ``mol-vae`` and ``char-rnn`` (SMILES tokens; the rules are
computed inside, parsed once per molecule and cached): its ``log_prob`` is comparable with
theirs, and a string the grammar cannot derive has log p = -inf. The masks also carry two
budgets (a row finishes within ``max_rules`` rules and ``max_len - 1`` tokens, so every draw is
a row of the data's layout and the masked softmaxes sum to 1 over those rows).

Differences from the paper, each for a reason: the decoder reads the previous rule as well as z
(the paper's Keras decoder reads z only; teacher forcing is what our chemical VAE does, and it
fits the data better); the grammar is the LL(1) rewrite of the paper's (one derivation per
string); the property head of the chemical VAE's joint model is on by default, so that
``dgm optimize`` searches this latent space too (the paper used Bayesian optimisation on it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.data.text import EOS, PAD
from dgm.errors import ConfigError, DataError
from dgm.models.base import Batch, unpack
from dgm.models.molecules.grammar import Grammar, decode
from dgm.models.molecules.mol_vae import DEFAULT_PROPERTIES, MolVAE, MolVAEConfig
from dgm.models.text.base import LOGITS_PER_PASS, TextConfig
from dgm.models.text.networks import ConvEncoder, GRUDecoder, GRUEncoder
from dgm.registry import register

# derivations per molecule: at most 2 rules per token in QM9, ZINC-250k and MOSES (an atom is
# `chain`/`after_*` then `atom -> C`), the end counted as a token
RULES_PER_TOKEN = 2


@lru_cache(maxsize=8)
def grammar_of(vocabulary: tuple[str, ...]) -> Grammar:
    """The SMILES grammar of a tokenizer's vocabulary (:meth:`Grammar.for_vocabulary`)."""
    try:
        return Grammar.for_vocabulary(vocabulary)
    except ValueError as e:
        raise ConfigError(f"grammar-vae: {e}") from None


@dataclass
class GrammarVAEConfig(MolVAEConfig):
    embed: int = opt(64, "width of the rule embeddings (the paper feeds one-hot rules)")
    decoder: Literal["gru"] = opt("gru", "gru (the paper's, 3 layers)")
    decoder_hidden: int = opt(501, "gru decoder: units of each GRU layer (the paper: 501)")
    max_rules: int = opt(
        0,
        "most rules in a derivation, the decoder's steps (0: 2 x max_len, enough for every "
        "molecule of QM9, ZINC-250k and MOSES)",
    )
    # from the data (DataSpec): the SMILES tokenizer's tokens, in id order
    vocabulary: tuple[str, ...] | None = opt(None, "the tokenizer's tokens, from the data")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocabulary is not None:
            self.vocabulary = tuple(self.vocabulary)
            if len(self.vocabulary) != self.levels:
                raise ConfigError(
                    f"vocabulary has {len(self.vocabulary)} tokens for levels={self.levels}"
                )
        if self.max_rules < 0:
            raise ConfigError(f"max_rules must be >= 0 (0: 2 x max_len), got {self.max_rules}")
        if self.word_dropout > 0:
            raise ConfigError("grammar-vae has no word dropout (its decoder reads rules)")


@register(
    "grammar-vae",
    "molecules",
    "grammar VAE: SMILES as production rules, decoded under the grammar's stack masks",
)
class GrammarVAE(MolVAE):
    """``encoder_embedding`` (rules) -> ``encoder`` (conv or GRU) -> ``posterior`` -> z;
    ``decoder_embedding`` (the previous rule) + z -> ``decoder`` (GRUs) -> masked rule logits;
    ``property_head`` z -> the data's properties (standardised)."""

    Config = GrammarVAEConfig  # type: ignore[assignment]
    config: GrammarVAEConfig  # type: ignore[assignment]
    DATA_FIELDS: ClassVar[tuple[str, ...]] = (*MolVAE.DATA_FIELDS, "vocabulary")
    data_defaults: ClassVar[dict[str, Any]] = {
        "properties": ",".join(DEFAULT_PROPERTIES),
        "representation": "smiles",  # the grammar is one of SMILES
    }

    def __init__(self, config: GrammarVAEConfig) -> None:
        if config.vocabulary is None:
            raise ConfigError(
                "grammar-vae needs the SMILES tokenizer's vocabulary: build it from molecule "
                "data (GrammarVAE.for_data(dataset.spec))"
            )
        super().__init__(config)
        r = self.grammar.num_rules
        # the text VAE embeds tokens; this one reads rules, and rule id r = pad_id is the
        # padding the encoder sees and the "nothing yet" the decoder reads first
        self.encoder_embedding = nn.Embedding(r + 1, config.embed)
        self.decoder_embedding = nn.Embedding(r + 1, config.embed)
        ids = {t: i for i, t in enumerate(config.vocabulary)}
        # the grammar's terminals are vocabulary tokens (Grammar.for_vocabulary): their ids
        self._terminal_ids = {t: ids[t] for t in self.grammar.terminals}
        _ = self.grammar._tensors  # the stacks' tables: built once on the CPU, moved per device
        self._derivations: dict[bytes, np.ndarray | None] = {}
        self._warned = False

    @property
    def grammar(self) -> Grammar:
        assert self.config.vocabulary is not None
        return grammar_of(self.config.vocabulary)

    @property
    def max_rules(self) -> int:
        return int(self.config.max_rules or RULES_PER_TOKEN * self.max_len)

    def make_encoder(self, c: TextConfig) -> nn.Module:
        assert isinstance(c, GrammarVAEConfig)
        if c.encoder == "gru":
            return GRUEncoder(c.embed, c.hidden)
        return ConvEncoder(c.embed, self.max_rules, c.conv_channels, c.conv_kernels, c.hidden)

    def make_decoder(self, c: TextConfig) -> GRUDecoder:  # type: ignore[override]
        assert isinstance(c, GrammarVAEConfig)
        return GRUDecoder(
            c.embed, c.latent, c.decoder_hidden, self.grammar.num_rules, c.dropout, c.decoder_layers
        )

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        super().check_spec(spec)
        if spec.tokenizer != "smiles":
            raise DataError(
                f"grammar-vae derives SMILES; {spec.name} holds {spec.tokenizer} strings: train "
                "it with --set representation=smiles"
            )

    # -- strings <-> derivations ---------------------------------------------------------------
    def derivations(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The leftmost derivation of each row of token ids ``x [B, T]``: rule ids ``[B, R]``
        (``R`` the batch's longest, padded with ``pad_id``) and ``ok [B]``, False where the
        string has none within the budgets (its rules are then all padding). Parsed once per
        distinct row and cached."""
        g, vocab = self.grammar, self.config.vocabulary
        assert vocab is not None
        rows = x.detach().to("cpu", torch.int16).numpy()
        found: list[np.ndarray | None] = []
        for row in rows:
            key = row.tobytes()
            if key not in self._derivations:
                n = int(np.argmax(row == EOS)) if (row == EOS).any() else len(row)
                rules = g.parse([vocab[i] for i in row[:n]])
                fits = rules is not None and len(rules) <= self.max_rules and n < self.max_len
                self._derivations[key] = np.asarray(rules, np.int16) if fits else None
            found.append(self._derivations[key])
        width = max([1] + [len(r) for r in found if r is not None])
        out = np.full((len(found), width), g.pad_id, np.int64)
        for i, r in enumerate(found):
            if r is not None:
                out[i, : len(r)] = r
        ok = torch.tensor([r is not None for r in found], device=x.device)
        return torch.from_numpy(out).to(x.device), ok

    def tokens_of(self, rules: Tensor) -> Tensor:
        """Token rows ``[n, max_len]`` (end token, then padding) of complete derivations."""
        x = np.full((rules.shape[0], self.max_len), PAD, np.float32)
        for i, row in enumerate(rules.cpu()):
            ids = [self._terminal_ids[t] for t in self.grammar.generate(row)]
            x[i, : len(ids)] = ids
            x[i, len(ids)] = EOS  # the token budget keeps len(ids) <= max_len - 1
        return torch.from_numpy(x).to(self.device)

    # -- the two halves ------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """The encoder's features ``[B, H]`` of the rows' derivations, read to ``max_rules``
        (padded) so a molecule's code never depends on its batch."""
        rules, _ = self.derivations(x)
        rules = nn.functional.pad(rules, (0, self.max_rules - rules.shape[1]), value=self.pad)
        e = self.drop(self.encoder_embedding(rules))
        return self.encoder(e, (rules != self.pad).sum(1))

    @property
    def pad(self) -> int:
        return self.grammar.pad_id

    def recon(self, x: Tensor, z: Tensor, tokens: Tensor | None = None) -> Tensor:
        """log p(x|z) ``[B]``: the masked rule log-probabilities of each row's derivation
        summed, -inf for a row without one (``tokens`` is unused: the decoder reads rules)."""
        rules, ok = self.derivations(x)
        out = torch.full((len(x),), float("-inf"), device=z.device)
        rules, z, index = rules[ok], z[ok], ok.nonzero()[:, 0]
        per = max(1, LOGITS_PER_PASS // (rules.shape[1] * self.grammar.num_rules))
        for i in range(0, len(rules), per):
            part = self._rule_log_prob(rules[i : i + per], z[i : i + per])
            out = out.to(part.dtype).index_put((index[i : i + per],), part)
        return out

    def _rule_log_prob(self, rules: Tensor, z: Tensor) -> Tensor:
        masks = self.grammar.step_masks(
            rules, max_steps=self.max_rules, max_tokens=self.max_len - 1
        )  # [B, R, num_rules]; all False at padding and on rows without a derivation
        read = torch.cat([torch.full_like(rules[:, :1], self.pad), rules[:, :-1]], 1)
        h = self.decoder.features(self.drop(self.decoder_embedding(read)), z)  # [B, R, H]
        real = rules != self.pad
        rows, pos = real.nonzero(as_tuple=True)
        logits = self.decoder.out(h[rows, pos]).float()
        logits = logits.masked_fill(~masks[rows, pos], float("-inf"))
        picked = logits.gather(-1, rules[rows, pos, None])[:, 0] - logits.logsumexp(-1)
        return picked.new_zeros(rules.shape[0]).index_add(0, rows, picked)

    def _loss(self, batch: Batch, hold_encoder: bool) -> Tensor:
        x, y = unpack(batch)
        _, ok = self.derivations(x)
        if not bool(ok.all()):
            if not bool(ok.any()):
                raise DataError(
                    "grammar-vae: no molecule of this batch has a derivation within "
                    f"max_rules={self.max_rules}; raise max_rules"
                )
            if not self._warned:  # the loss is the mean over the molecules that have one
                self._warned = True
                warnings.warn(
                    f"grammar-vae: {int((~ok).sum())} of a batch's {len(ok)} molecules have no "
                    "derivation in its grammar (a token it has no rule for, or more than "
                    f"max_rules={self.max_rules} rules); training skips them",
                    stacklevel=2,
                )
            batch = (x[ok], None if y is None else y[ok])
        return super()._loss(batch, hold_encoder)

    # -- generation --------------------------------------------------------------------------
    def decode_codes(self, z: Tensor, temperature: float, top_p: float = 1.0) -> Tensor:
        """Molecules ``[n, max_len]`` from codes ``z [n, K]``: rules drawn under the stack
        masks (``temperature``; 0 the most likely), then the tokens they derive."""
        if top_p != 1.0:
            raise ConfigError("grammar-vae draws rules at a temperature only; drop --top-p")
        z = z.to(next(self.decoder.parameters()).dtype)
        state: list[Any] = [None]

        def logits(t: int, previous: Tensor, top: Tensor) -> Tensor:
            e = self.drop(self.decoder_embedding(previous[:, None]))
            out, state[0] = self.decoder.step(e, z, state[0])
            return out

        rules, _ = decode(
            self.grammar,
            logits,
            z.shape[0],
            self.max_rules,
            temperature=temperature,
            max_tokens=self.max_len - 1,
            device=z.device,
        )
        return self.tokens_of(rules)


__all__ = ["GrammarVAE", "GrammarVAEConfig", "grammar_of"]
