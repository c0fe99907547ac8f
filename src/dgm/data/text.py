"""Text as token sequences: tokenizers (word, char, BPE) on Hugging Face ``tokenizers``, saved as
JSON (never pickled), and the layout every text example has.

A text example is a float32 row of ``max_len`` token ids (one tensor type everywhere, like
discrete levels): the line's tokens, exactly one end token :data:`EOS`, then :data:`PAD` to the
end. ``mask = x != PAD`` marks the real tokens (the end token included) and
``lengths = mask.sum(1)``. The four special tokens have ids 0..3 in every vocabulary.

- ``word``: whitespace-separated words (HF ``WordLevel`` + ``WhitespaceSplit``); the vocabulary
  keeps the most frequent words (``vocab_size``) seen at least ``min_count`` times; the rest are
  :data:`UNK`. Decoding joins words with one space.
- ``char``: every character is a token, spaces and newlines included; decoding joins them with
  nothing between, so text whose characters were all seen comes back exactly.
- ``smiles`` and ``selfies`` (molecules, :mod:`dgm.data.molecules`): a SMILES token (Schwaller
  et al. 2019's regex: ``Cl``, ``[nH]``, ``[C@@H]``, ``%10`` whole) or a SELFIES symbol
  (``[=Branch1]``) is a token; the vocabulary is every token of the training split; decoding
  joins them with nothing between.
- ``bpe``: byte-pair encoding (HF ``BPE``) learnt on the training split, over characters (an
  unseen character is :data:`UNK`); whitespace stays attached to the word after it, so decoding
  (concatenation) gives the text back exactly when its characters were seen.

Training is deterministic: the same lines give the same vocabulary (ties in counts are broken
by the token itself), in any process.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dgm.errors import CheckpointError, ConfigError, DataError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
TOKENIZERS = ("word", "char", "bpe")  # the kinds of text data (the tokenizer option)
MOLECULE_KINDS = ("smiles", "selfies")  # molecules: the representation option's tokenizers
KINDS = TOKENIZERS + MOLECULE_KINDS
# the data options of text, as --set and the YAML config take them (kept in a run's config.json);
# molecules (dgm.data.molecules) add their representation and the properties read as targets
TEXT_OPTIONS = ("tokenizer", "vocab_size", "min_count", "max_len", "representation", "properties")
MOLECULE_OPTIONS = ("representation", "properties")
BPE_VOCAB = 1000  # a BPE vocabulary's size when no vocab_size is given
FORMAT = 1  # of the JSON this module writes

# Rust's char::is_whitespace (Unicode White_Space), which HF's WhitespaceSplit splits on; Python's
# str.split() also splits on \x1c-\x1f, so counting with it could disagree with encoding
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WORDS = re.compile(f"[^{_WHITESPACE}]+")
# BPE's pre-tokens: a word with the whitespace before it, or trailing whitespace (exact: every
# character of the text is in exactly one pre-token)
_BPE_SPLIT = r"\s*\S+|\s+"
# SMILES tokens (dgm.data.chem.SMILES_REGEX, repeated here: this module needs no chemistry),
# or SELFIES symbols: a bracketed symbol, or the dot between fragments
_SMILES_TOKENS = (
    r"\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$"
    r"|%[0-9]{2}|[0-9]"
)
_SELFIES_TOKENS = r"\[[^\]]*\]|\."
_MOLECULE_SPLIT = {"smiles": _SMILES_TOKENS, "selfies": _SELFIES_TOKENS}


def _hf() -> Any:
    import tokenizers

    return tokenizers


def check_kind(kind: str) -> str:
    """``kind`` if it names a tokenizer, else a one-line :class:`ConfigError`."""
    if kind not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {kind!r}; use one of {', '.join(TOKENIZERS)}")
    return kind


def _counts(kind: str, lines: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    if kind in _MOLECULE_SPLIT:
        pattern = re.compile(_MOLECULE_SPLIT[kind])
        for line in lines:
            counts.update(pattern.findall(line))
        return counts
    for line in lines:
        counts.update(_WORDS.findall(line) if kind == "word" else line)
    return counts


def _ranked(counts: Counter[str], vocab_size: int | None, min_count: int) -> list[str]:
    """The tokens to keep: seen at least ``min_count`` times, the most frequent first (ties by
    the token itself, so the order never depends on hashing), up to ``vocab_size`` in all."""
    kept = sorted(
        (t for t, n in counts.items() if n >= min_count and t not in SPECIALS),
        key=lambda t: (-counts[t], t),
    )
    return kept if vocab_size is None else kept[: vocab_size - len(SPECIALS)]


def _without_added_tokens(tok: Any) -> Any:
    """The same tokenizer with its special tokens kept in the vocabulary but no longer matched
    in raw text: a literal ``</s>`` in a line must not end the example."""
    d = json.loads(tok.to_str())
    d["added_tokens"] = []
    return _hf().Tokenizer.from_str(json.dumps(d))


class TextTokenizer:
    """A word, char or BPE tokenizer with :data:`SPECIALS` at ids 0..3 (wraps a HF
    ``tokenizers.Tokenizer``; saved and loaded as JSON)."""

    def __init__(self, kind: str, hf: Any) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown tokenizer {kind!r}; use one of {', '.join(KINDS)}")
        self.kind = kind
        self._hf = hf
        self._itos = [hf.id_to_token(i) for i in range(hf.get_vocab_size(with_added_tokens=False))]
        if tuple(self._itos[: len(SPECIALS)]) != SPECIALS or None in self._itos:
            raise CheckpointError(
                f"not a dgm tokenizer: the first ids must be {', '.join(SPECIALS)} with no gaps"
            )
        # char: a dict lookup gives HF's ids 40x faster (tinyshakespeare: 0.05 s, not 2 s)
        self._stoi = {t: i for i, t in enumerate(self._itos)} if kind == "char" else None

    # -- training ------------------------------------------------------------------------------
    @classmethod
    def train(
        cls, kind: str, lines: Iterable[str], vocab_size: int | None = None, min_count: int = 1
    ) -> TextTokenizer:
        """Learn a ``kind`` tokenizer from ``lines`` (the training split only).

        ``vocab_size`` counts the special tokens (at least 5: the four and one more); word and
        char keep the most frequent tokens up to it (all by default), BPE learns merges up to
        it (default :data:`BPE_VOCAB`). ``min_count``: fewer sightings make a word or character
        unknown, or a BPE merge not learnt.
        """
        if kind not in MOLECULE_KINDS:
            check_kind(kind)
        check_vocab_size(vocab_size)
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ConfigError(f"min_count must be a whole number >= 1, got {min_count!r}")
        hf = _hf()
        lines = list(lines)
        if kind == "bpe":
            size = vocab_size or BPE_VOCAB
            tok = hf.Tokenizer(hf.models.BPE(unk_token=SPECIALS[UNK]))
            tok.pre_tokenizer = hf.pre_tokenizers.Split(hf.Regex(_BPE_SPLIT), behavior="isolated")
            trainer = hf.trainers.BpeTrainer(
                vocab_size=size,
                min_frequency=min_count,
                special_tokens=list(SPECIALS),
                limit_alphabet=size - len(SPECIALS),  # the asked size wins over rare characters
                show_progress=False,
            )
            tok.train_from_iterator(lines, trainer)
        else:
            vocab = {t: i for i, t in enumerate(SPECIALS)}
            for t in _ranked(_counts(kind, lines), vocab_size, min_count):
                vocab[t] = len(vocab)
            if kind == "word":
                tok = hf.Tokenizer(hf.models.WordLevel(vocab=vocab, unk_token=SPECIALS[UNK]))
                tok.pre_tokenizer = hf.pre_tokenizers.WhitespaceSplit()
            elif kind in _MOLECULE_SPLIT:  # each token whole; text between tokens is unknown
                tok = hf.Tokenizer(hf.models.WordLevel(vocab=vocab, unk_token=SPECIALS[UNK]))
                tok.pre_tokenizer = hf.pre_tokenizers.Split(
                    hf.Regex(_MOLECULE_SPLIT[kind]), behavior="isolated"
                )
            else:  # a BPE without merges maps each character to its id, newlines included
                tok = hf.Tokenizer(hf.models.BPE(vocab=vocab, merges=[], unk_token=SPECIALS[UNK]))
        if kind != "word":
            tok.decoder = hf.decoders.Fuse()  # tokens are pieces of the text: join with nothing
        return cls(kind, _without_added_tokens(tok))

    # -- the vocabulary --------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, the four special ones included."""
        return len(self._itos)

    def token(self, id: int) -> str:
        """The token of id ``id``."""
        if not 0 <= int(id) < len(self._itos):
            raise DataError(f"token id {id} is outside the vocabulary 0..{len(self._itos) - 1}")
        return self._itos[int(id)]

    def __repr__(self) -> str:
        return f"TextTokenizer({self.kind!r}, vocab_size={self.vocab_size})"

    # -- encoding --------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s tokens, no special tokens added (unknown tokens are UNK; a
        special token written in the text, such as a literal ``</s>`` word, is unknown too)."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of every text (in one call to the HF tokenizer)."""
        if self._stoi is not None:
            stoi = self._stoi
            out = [[stoi.get(c, UNK) for c in text] for text in texts]
        else:
            out = [e.ids for e in self._hf.encode_batch(list(texts), add_special_tokens=False)]
        reserved = (PAD, BOS, EOS)
        return [[UNK if i in reserved else i for i in ids] for ids in out]

    def encode_lines(self, lines: Sequence[str], max_len: int) -> tuple[Tensor, int]:
        """``[N, max_len]`` float32 ids: each line's tokens cut to ``max_len - 1``, then
        :data:`EOS`, then :data:`PAD`; and how many lines were cut."""
        return pack(self.encode_batch(lines), max_len)

    # -- decoding --------------------------------------------------------------------------------
    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The text of ``ids``: up to the first EOS, PAD and BOS skipped; char and BPE tokens
        joined with nothing, words with one space."""
        if isinstance(ids, Tensor):
            ids = ids.detach().reshape(-1).round().long().tolist()
        tokens = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                tokens.append(self.token(i))
        return (" " if self.kind == "word" else "").join(tokens)

    def decode_batch(self, x: Tensor) -> list[str]:
        """The text of every row of ``x`` (``[N, max_len]`` ids)."""
        return [self.decode(row) for row in x.detach().cpu().round().long().tolist()]

    # -- JSON ------------------------------------------------------------------------------------
    def to_json(self) -> str:
        """``{"format", "kind", "tokenizer"}``: the HF tokenizer's own JSON, with our kind."""
        hf_json = json.loads(self._hf.to_str())
        return json.dumps({"format": FORMAT, "kind": self.kind, "tokenizer": hf_json})

    @classmethod
    def from_json(cls, text: str, what: str = "tokenizer JSON") -> TextTokenizer:
        """The tokenizer of :meth:`to_json`; a :class:`CheckpointError` naming ``what`` for
        anything else."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{what} is not valid JSON ({e})") from None
        if not isinstance(d, dict) or not {"kind", "tokenizer"} <= set(d):
            raise CheckpointError(f"{what} has no 'kind' and 'tokenizer': not a dgm tokenizer")
        if d.get("format", FORMAT) > FORMAT:
            raise CheckpointError(
                f"{what} has format {d['format']}, newer than this dgm reads ({FORMAT}); "
                "upgrade dgm"
            )
        if d["kind"] not in KINDS:
            raise CheckpointError(f"{what}: unknown tokenizer kind {d['kind']!r}")
        try:
            hf = _hf().Tokenizer.from_str(json.dumps(d["tokenizer"]))
        except Exception as e:  # HF raises plain Exceptions for bad JSON
            raise CheckpointError(f"{what}: not a tokenizer ({str(e).splitlines()[0]})") from None
        try:
            return cls(d["kind"], hf)
        except CheckpointError as e:
            raise CheckpointError(f"{what}: {e}") from None

    def save(self, path: str | Path) -> None:
        """Write the JSON to ``path`` atomically."""
        from dgm.io import atomic_write

        with atomic_write(path) as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> TextTokenizer:
        """Read a tokenizer saved by :meth:`save`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: cannot read the tokenizer ({e})") from None
        return cls.from_json(text, str(path))

    # a tokenizer never changes: copies share it; pickling (DDP spawn) goes through the JSON
    def __deepcopy__(self, memo: dict) -> TextTokenizer:
        return self

    def __reduce__(self) -> tuple:
        return (TextTokenizer.from_json, (self.to_json(),))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TextTokenizer)
            and self.kind == other.kind
            and self._hf.to_str() == other._hf.to_str()
        )

    __hash__ = object.__hash__


def pack(ids: Sequence[Sequence[int]], max_len: int) -> tuple[Tensor, int]:
    """``[N, max_len]`` float32 rows from token id lists: each cut to ``max_len - 1``, then
    :data:`EOS`, then :data:`PAD`; and how many were cut."""
    check_max_len(max_len)
    full = np.fromiter((len(seq) for seq in ids), dtype=np.int64, count=len(ids))
    lengths = np.minimum(full, max_len - 1)
    x = np.full((len(ids), max_len), PAD, dtype=np.float32)
    # row-major boolean assignment fills each row's first `length` places in order
    kept = itertools.chain.from_iterable(seq[: max_len - 1] for seq in ids)
    x[np.arange(max_len) < lengths[:, None]] = np.fromiter(kept, np.float32, int(lengths.sum()))
    x[np.arange(len(ids)), lengths] = EOS
    return torch.from_numpy(x), int((full > max_len - 1).sum())


def attach_tokenizer(model: Any, file: Path) -> None:
    """``model.tokenizer`` from ``file``: what :func:`dgm.load` does for a text model's folder."""
    model.tokenizer = TextTokenizer.load(file)


# --------------------------------------------------------------------------- the data options


def check_vocab_size(vocab_size: int | None) -> None:
    if vocab_size is None:
        return
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise ConfigError(f"vocab_size must be a whole number, got {vocab_size!r}")
    if vocab_size < len(SPECIALS) + 1:
        raise ConfigError(
            f"vocab_size {vocab_size} is too small: it counts the {len(SPECIALS)} special tokens "
            f"({', '.join(SPECIALS)}), so it must be at least {len(SPECIALS) + 1}"
        )


def check_max_len(max_len: int) -> None:
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ConfigError(
            f"max_len must be a whole number >= 2 (tokens and the end token), got {max_len!r}"
        )


def _whole(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{key} must be a whole number, got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    return value


def property_list(value: Any) -> tuple[str, ...]:
    """Molecule properties as the ``properties`` option gives them: ``"logp,qed"``,
    ``["logp", "qed"]`` or ``"none"`` -> a tuple of names (``()`` for none)."""
    if isinstance(value, str):
        items = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        items = [str(p).strip() for p in value]
    else:
        raise ConfigError(f"properties must be names separated by commas, got {value!r}")
    if items in (["none"], []):
        return ()
    if len(set(items)) != len(items):
        raise ConfigError(f"properties names one property twice: {','.join(items)}")
    return tuple(items)


def text_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The text data options in ``values`` (``--set`` strings or YAML values), checked and typed:
    ``tokenizer`` (word | char | bpe), ``vocab_size``, ``min_count``, ``max_len``, and for
    molecules ``representation`` (smiles | selfies) and ``properties`` (a tuple of names); only
    those given."""
    out: dict[str, Any] = {}
    for key in TEXT_OPTIONS:
        if values.get(key) is None:
            continue
        value = values[key]
        if key == "tokenizer":
            out[key] = check_kind(str(value).strip())
            continue
        if key == "representation":
            rep = str(value).strip()
            if rep not in MOLECULE_KINDS:
                raise ConfigError(
                    f"unknown molecule representation {rep!r}; use one of "
                    f"{', '.join(MOLECULE_KINDS)}"
                )
            out[key] = rep
            continue
        if key == "properties":
            out[key] = property_list(value)
            continue
        out[key] = _whole(key, value)
    if "vocab_size" in out:
        check_vocab_size(out["vocab_size"])
    if out.get("min_count", 1) < 1:
        raise ConfigError(f"min_count must be >= 1, got {out['min_count']}")
    if "max_len" in out:
        check_max_len(out["max_len"])
    return out


def pop_text_options(values: dict[str, Any]) -> dict[str, Any]:
    """:func:`text_options`, removed from ``values`` (the rest are model and training
    options)."""
    found = {k: values.pop(k) for k in TEXT_OPTIONS if k in values}
    return text_options(found)


__all__ = [
    "BOS",
    "EOS",
    "KINDS",
    "MOLECULE_KINDS",
    "MOLECULE_OPTIONS",
    "PAD",
    "SPECIALS",
    "TEXT_OPTIONS",
    "TOKENIZERS",
    "UNK",
    "TextTokenizer",
    "attach_tokenizer",
    "pack",
    "pop_text_options",
    "property_list",
    "text_options",
]
