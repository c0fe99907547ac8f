"""What the commands share for text models (:class:`~dgm.models.capabilities.TextModel`):
sentences from the command line or a ``.txt`` file encoded with the run's own tokenizer, the
notes a line earns (cut at the maximum length, unknown words), and the refusals of text given to
a model of images and of images given to a model of text. Not a command itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dgm.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torch import Tensor

    from dgm.models.base import GenerativeModel

TEXT_SUFFIXES = frozenset({".txt"})
# suffixes that are surely not text: images and arrays (dgm.data.inputs reads them)
NOT_TEXT = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".npy", ".npz", ".csv"}
)


def is_text_model(model: GenerativeModel) -> bool:
    from dgm.models.capabilities import TextModel

    return isinstance(model, TextModel)


def refuse_text(model: GenerativeModel, what: str) -> None:
    """One line for text given to a model that does not read text."""
    raise DataError(
        f"{what} is text, but {model.name} models {_kind(model)}; use a run of a text model "
        "(lstm-lm, transformer-lm, text-vae)"
    )


def refuse_non_text(model: GenerativeModel, what: str) -> None:
    """One line for an image or array given to a text model."""
    raise DataError(
        f"{what} is not text, but {model.name} models sentences; give it text (a .txt file, "
        "one sentence a line)"
    )


def _kind(model: GenerativeModel) -> str:
    shape = tuple(model.event_shape)
    return f"images of shape {shape}" if len(shape) == 3 else f"arrays of shape {shape}"


def looks_like_text(path: str | Path) -> bool:
    """A ``.txt`` file, or a folder holding one (what ``dgm detect`` takes as text input)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return any(q.suffix.lower() in TEXT_SUFFIXES for q in p.rglob("*") if q.is_file())
    return p.suffix.lower() in TEXT_SUFFIXES


@dataclass
class Line:
    """One line of a text file: where it is, its text."""

    name: str
    text: str


def read_lines(path: str | Path) -> list[Line]:
    """The lines of a text file, or of every ``.txt`` file in a folder (sorted, subfolders
    too), blank lines left out (they hold no sentence); each named ``FILE:LINE``. A file that
    is not UTF-8 text, or that holds no sentence, is a DataError."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or folder; name a .txt file")
    if root.is_dir():
        files = sorted(
            q
            for q in root.rglob("*")
            if q.is_file()
            and q.suffix.lower() in TEXT_SUFFIXES
            and not any(part.startswith(".") for part in q.relative_to(root).parts)
        )
        if not files:
            raise DataError(f"{root}: folder holds no .txt files")
    else:
        if root.suffix.lower() in NOT_TEXT:
            raise DataError(f"{root}: not a text file ({root.suffix}); give a .txt file")
        files = [root]
    out: list[Line] = []
    for f in files:
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{f}: not valid UTF-8 text (byte {e.start}); is it a binary file?"
            ) from None
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                out.append(Line(f"{f}:{i}", line.strip()))
    if not out:
        raise DataError(f"{root}: holds no sentence (every line is blank)")
    return out


@dataclass
class Encoded:
    """Sentences as the model reads them: ids ``[N, max_len]``, and a note per sentence (cut
    at the maximum length, unknown words), ``None`` where there is nothing to say."""

    x: Tensor
    notes: list[str | None] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)


@dataclass
class Entry:
    """One line to score (a sentence, or a molecule): its name (``FILE:LINE``), its text, its
    row of ids (None: not scored), a note, and why it is invalid (None when it is not);
    ``tokens`` counts a string too long for the model's rows."""

    name: str
    text: str
    x: Tensor | None
    note: str | None = None
    error: str | None = None
    tokens: int = 0


def encode(model: Any, sentences: list[str]) -> Encoded:
    """``model.ids(sentences)`` with what the encoding did to each: a sentence longer than the
    model's maximum length is cut (``max_len - 1`` tokens and the end token), a word outside
    the vocabulary becomes ``<unk>``; a sentence made only of unknown words is scored all the
    same, with a note (its log p(x) is that of a row of ``<unk>``)."""
    from dgm.data.text import EOS, PAD, UNK

    if not sentences:
        raise DataError("no sentence to encode")
    x = model.ids(sentences)
    tok = model.tokenizer
    max_len = int(x.shape[1])
    notes: list[str | None] = []
    unknown: list[int] = []
    for s, row in zip(sentences, x.long().tolist()):
        real = [t for t in row if t not in (PAD, EOS)]  # the sentence's own tokens
        n_unk = sum(t == UNK for t in real)
        said: list[str] = []
        if len(tok.encode(s)) > max_len - 1:
            said.append(f"cut to its first {max_len - 1} tokens (the model's max_len {max_len})")
        if n_unk and n_unk == len(real):
            said.append("every word is unknown to the run's vocabulary: read as <unk> tokens")
        elif n_unk:
            said.append(f"{n_unk} unknown token{'s' * (n_unk > 1)} read as <unk>")
        notes.append("; ".join(said) or None)
        unknown.append(n_unk)
    return Encoded(x, notes, unknown)


def texts(model: Any, x: Tensor) -> list[str]:
    """Rows of ids as text, by the run's tokenizer (``model.texts``)."""
    return list(model.texts(x.cpu()))


def one_line(text: str) -> str:
    """``text`` on one line: line breaks (a character model's) shown as ``\\n``."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def require_latent_text(model: GenerativeModel, command: str) -> None:
    """``dgm interpolate`` and ``dgm reconstruct`` of sentences need a text model that
    encodes (:class:`~dgm.models.capabilities.Autoencoder`): text-vae."""
    from dgm.models.capabilities import Autoencoder

    if not (is_text_model(model) and isinstance(model, Autoencoder)):
        what = "has no latent code" if is_text_model(model) else f"models {_kind(model)}"
        raise ConfigError(
            f"dgm {command} of sentences needs a latent text model (text-vae); {model.name} {what}"
        )
