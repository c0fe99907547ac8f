"""What every dataset is: three splits of one tensor each, and a spec that models read.

Discrete data is stored as float32 tensors holding integer levels ``0..levels-1`` (so one
tensor type flows everywhere); continuous data has ``levels=None``. Images are ``(C, H, W)``;
tabular data is ``(D,)``. Text is ``(max_len,)`` token ids with ``levels`` the vocabulary size
and ``tokenizer`` its kind (:mod:`dgm.data.text`: one end token per row, padding after it).
Audio (:mod:`dgm.data.audio`) is ``(crop,)``: the length of the training crops; each split holds
whole utterances as levels (8-bit mu-law or linear 16-bit), padded with silence after each
one's ``lengths``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dgm.errors import DataError

if TYPE_CHECKING:
    from dgm.data.molecules import Molecules
    from dgm.data.text import TextTokenizer


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data, without seeing the data."""

    name: str
    shape: tuple[int, ...]  # event shape: (C, H, W) for images, (D,) for vectors
    levels: int | None  # number of discrete values per dimension; None for continuous data
    low: float = 0.0  # smallest possible value
    high: float = 1.0  # largest possible value
    num_classes: int | None = None  # labels 0..num_classes-1, None when unlabelled
    binarize: bool = False  # True: training data are probabilities, binarized at every use
    class_names: tuple[str, ...] | None = None  # the name of each label 0..num_classes-1
    tokenizer: str | None = None  # text: the tokenizer's kind (word | char | bpe); else None
    # molecules (tokenizer smiles | selfies): the properties y holds ([N, P] float32) and their
    # training-split means and standard deviations (a property head predicts them standardised)
    properties: tuple[str, ...] | None = None
    property_mean: tuple[float, ...] | None = None
    property_std: tuple[float, ...] | None = None
    # molecules: the tokenizer's tokens in id order (a grammar model maps its terminals to ids)
    vocabulary: tuple[str, ...] | None = None
    # audio: samples per second, how amplitudes became levels (mulaw | linear) and the names
    # of the speakers (y[:, 1]); shape is (crop,), the training crops' length in samples
    sample_rate: int | None = None
    encoding: str | None = None
    speakers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # JSON gives lists back
        for key in ("properties", "property_mean", "property_std", "vocabulary", "speakers"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(getattr(self, key)))
        if self.class_names is None:
            return
        names = tuple(str(n) for n in self.class_names)  # JSON gives a list back
        object.__setattr__(self, "class_names", names)
        if self.num_classes != len(names):
            raise DataError(
                f"{self.name}: {len(names)} class names for {self.num_classes} classes; "
                "give one name per class"
            )

    def label_name(self, label: int) -> str:
        """The name of class ``label``, or the index itself when the data names no classes."""
        if self.class_names is not None and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    def class_index(self, label: str | int) -> int:
        """The index of class ``label``: one of :attr:`class_names`, or an index ``0..K-1``."""
        names = self.class_names or ()
        if isinstance(label, str) and label in names:
            return names.index(label)
        try:
            index = int(label)
        except ValueError:
            if names:
                raise DataError(
                    f"unknown class {label!r}; the classes of {self.name} are {', '.join(names)}"
                ) from None
            if self.num_classes is None:
                raise DataError(f"unknown class {label!r}; {self.name} has no labels") from None
            raise DataError(
                f"unknown class {label!r}; {self.name} names no classes: give an index "
                f"0..{self.num_classes - 1}"
            ) from None
        if self.num_classes is None or not 0 <= index < self.num_classes:
            known = (
                "has no labels"
                if self.num_classes is None
                else f"has labels 0..{self.num_classes - 1}"
            )
            raise DataError(f"class {index} is out of range: {self.name} {known}")
        return index

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def is_text(self) -> bool:
        """Token sequences: ``shape`` is ``(max_len,)`` and ``levels`` the vocabulary size."""
        return self.tokenizer is not None

    @property
    def is_audio(self) -> bool:
        """Waveforms: whole utterances of levels at ``sample_rate``, trained on crops."""
        return self.sample_rate is not None

    def speaker_index(self, speaker: str) -> int:
        """The index of ``speaker`` (a name of :attr:`speakers`)."""
        names = self.speakers or ()
        if speaker in names:
            return names.index(speaker)
        if not names:
            raise DataError(f"unknown speaker {speaker!r}; {self.name} names no speakers")
        raise DataError(
            f"unknown speaker {speaker!r}; the speakers of {self.name} are {', '.join(names)}"
        )

    @property
    def is_molecules(self) -> bool:
        """Molecules: text whose tokens are SMILES tokens or SELFIES symbols."""
        return self.tokenizer in ("smiles", "selfies")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["class_names"] is not None:
            d["class_names"] = list(d["class_names"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        """The spec of ``to_dict`` (runs saved before ``class_names`` or ``tokenizer`` existed
        load with None)."""
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        return cls(**d)


@dataclass
class Split:
    """One split: ``x`` is ``[N, *shape]`` float32; ``y`` is ``[N]`` int64 labels, ``[N, P]``
    float32 properties of molecules (``DataSpec.properties``), or None.

    Audio: ``x`` is ``[N, L]``, N utterances padded with silence to the longest, ``lengths``
    ``[N]`` int64 their own lengths; ``y`` is ``[N, 2]`` int64, the label and the speaker of
    each (-1 where the data has none), or None."""

    x: Tensor
    y: Tensor | None = None
    lengths: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(
            self.x.to(device),
            None if self.y is None else self.y.to(device),
            None if self.lengths is None else self.lengths.to(device),
        )


@dataclass
class Dataset:
    """A dataset: its spec and its train/val/test splits."""

    spec: DataSpec
    train: Split
    val: Split
    test: Split
    source: str = ""  # where it was read from, for reports
    notes: list[str] = field(default_factory=list)  # warnings raised while reading
    kind: str = ""  # what user data was read from ("folder of images", ...), for the summary
    levels_note: str = ""  # how the levels were found ("uint8 0..255", "set by --data-levels")
    tokenizer: TextTokenizer | None = None  # text: what encodes and decodes the token ids
    molecules: Molecules | None = None  # molecules: each split's SMILES, as read

    def split(self, name: str) -> Split:
        aliases = {
            "train": "train",
            "val": "val",
            "valid": "val",
            "validation": "val",
            "test": "test",
        }
        if name not in aliases:
            raise DataError(f"unknown split {name!r}; use one of train, val, test")
        return getattr(self, aliases[name])


def check_values(x: Tensor, spec: DataSpec, what: str) -> None:
    """Raise a DataError if ``x`` (``[N, *shape]``; audio ``[N, L]`` of any L) does not fit
    ``spec``."""
    if spec.is_audio:
        if x.dim() != 2:
            raise DataError(f"{what}: audio must be [N, L] (mono utterances), got {tuple(x.shape)}")
    elif tuple(x.shape[1:]) != tuple(spec.shape):
        raise DataError(
            f"{what}: examples have shape {tuple(x.shape[1:])}, expected {tuple(spec.shape)}"
        )
    if not x.numel():
        return
    low, high = x.min(), x.max()  # NaN and inf show up here, without a full-size mask
    if not (torch.isfinite(low) and torch.isfinite(high)):
        bad = int((~torch.isfinite(x)).sum())
        raise DataError(f"{what}: {bad} values are NaN or infinite; clean or drop them")
    if spec.levels is None or spec.binarize:
        return
    if low < 0 or high > spec.levels - 1:
        raise DataError(
            f"{what}: values span [{low.item():g}, {high.item():g}] but the data has "
            f"{spec.levels} levels (0..{spec.levels - 1})"
        )
    flat = x.reshape(-1)
    for i in range(0, flat.numel(), 1 << 24):  # in chunks: big datasets, small temporaries
        chunk = flat[i : i + (1 << 24)]
        if (chunk != chunk.round()).any():
            raise DataError(f"{what}: discrete data must hold whole numbers 0..{spec.levels - 1}")


def _levels_text(ds: Dataset) -> str:
    spec = ds.spec
    if spec.binarize:
        return "2 levels (binarized at every use)"
    if spec.levels is None:
        note = f" ({ds.levels_note})" if ds.levels_note else ""
        return f"continuous in [{spec.low:g}, {spec.high:g}]{note}"
    return f"{spec.levels} levels ({ds.levels_note or f'0..{spec.levels - 1}'})"


def _classes_text(spec: DataSpec) -> str:
    if not spec.num_classes:
        return "no labels"
    text = f"{spec.num_classes} classes"
    names = spec.class_names
    if names:
        shown = names if len(names) <= 4 else (*names[:3], "...")
        text += f" ({', '.join(shown)})"
    return text


def summary_line(ds: Dataset) -> str:
    """One line on what was found in the data: where from, size, shape, levels, classes, split.

    e.g. ``data: fashion-mnist (/data/fashion_mnist): 70000 examples, shape (1, 28, 28),
    256 levels (0..255), 10 classes (T-shirt/top, Trouser, Pullover, ...), split
    50000/10000/10000``; for text ``data: ptb (/data/ptb): 49199 examples, vocabulary 10002
    (word tokenizer), max length 83 tokens, 1136566 tokens, split 42068/3370/3761``.
    """
    spec = ds.spec
    where = ", ".join(s for s in (ds.kind, ds.source if ds.source != spec.name else "") if s)
    sizes = [len(ds.train), len(ds.val), len(ds.test)]
    if spec.is_audio:
        total = sum(
            int(s.lengths.sum()) for s in (ds.train, ds.val, ds.test) if s.lengths is not None
        )
        speakers = f", {len(spec.speakers)} speakers" if spec.speakers else ""
        return (
            f"data: {spec.name}{f' ({where})' if where else ''}: {sum(sizes)} utterances, "
            f"{total / spec.sample_rate / 60:.1f} min at {spec.sample_rate} Hz, "
            f"{_levels_text(ds)}, {_classes_text(spec)}{speakers}, training crops of "
            f"{spec.shape[0]} samples, split {'/'.join(map(str, sizes))}"
        )
    if spec.is_molecules:
        props = f", properties {', '.join(spec.properties)}" if spec.properties else ""
        return (
            f"data: {spec.name}{f' ({where})' if where else ''}: {sum(sizes)} molecules as "
            f"{spec.tokenizer.upper()} tokens, vocabulary {spec.levels}, max length "
            f"{spec.shape[0]} tokens (end token included){props}, split "
            f"{'/'.join(map(str, sizes))}"
        )
    if spec.is_text:
        # real tokens (end tokens included): padding is 0, every other id is a token
        tokens = sum(int((s.x != 0).sum()) for s in (ds.train, ds.val, ds.test))
        return (
            f"data: {spec.name}{f' ({where})' if where else ''}: {sum(sizes)} examples, "
            f"vocabulary {spec.levels} ({spec.tokenizer} tokenizer), max length {spec.shape[0]} "
            f"tokens (end token included), {tokens} tokens, split {'/'.join(map(str, sizes))}"
        )
    return (
        f"data: {spec.name}{f' ({where})' if where else ''}: {sum(sizes)} examples, shape "
        f"{tuple(spec.shape)}, {_levels_text(ds)}, {_classes_text(spec)}, split "
        f"{'/'.join(map(str, sizes))}"
    )
