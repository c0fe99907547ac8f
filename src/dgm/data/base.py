"""What every dataset is: three splits of one tensor each, and a spec that models read.

Discrete data is stored as float32 tensors holding integer levels ``0..levels-1`` (so one
tensor type flows everywhere); continuous data has ``levels=None``. Images are ``(C, H, W)``;
tabular data is ``(D,)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from dgm.errors import DataError


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

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        return cls(**d)


@dataclass
class Split:
    """One split: ``x`` is ``[N, *shape]`` float32, ``y`` is ``[N]`` int64 or None."""

    x: Tensor
    y: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), None if self.y is None else self.y.to(device))


@dataclass
class Dataset:
    """A dataset: its spec and its train/val/test splits."""

    spec: DataSpec
    train: Split
    val: Split
    test: Split
    source: str = ""  # where it was read from, for reports
    notes: list[str] = field(default_factory=list)  # warnings raised while reading

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
    """Raise a DataError if ``x`` (``[N, *shape]``) does not fit ``spec``."""
    if tuple(x.shape[1:]) != tuple(spec.shape):
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
