"""Inputs to score one by one (``dgm detect``): files of images or arrays, each checked on its own.

Unlike a dataset, where one bad file stops reading, a folder of inputs may mix valid and invalid
files: every example comes back as an :class:`Input` holding either its values in the model's
units or the reason it cannot be scored, so a report can list both.

Units. Image files hold 8-bit values 0..255; they are mapped to the model's levels as a user's
own picture would be (``round(v * (L - 1) / 255)``; two levels: ``v >= 128``). Arrays
(``.npy``, ``.npz``, ``.csv``) are taken as they are, in the data's own units (levels 0..L-1,
or the continuous values the model was trained on), and checked against the spec.

Derived out-of-distribution sets (``noise``, ``inverted``) are built from a split here too, for
``dgm ood`` and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dgm.data import formats
from dgm.data.base import DataSpec, check_values
from dgm.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
ARRAY_SUFFIXES = frozenset({".npy", ".npz", ".csv"})
# inputs that `dgm ood --out` builds from the in-distribution split instead of reading
DERIVED = {
    "noise": "uniform random levels (or uniform values in [low, high]) of the data's shape",
    "inverted": "the in-distribution inputs with levels reversed: L - 1 - x",
}


@dataclass
class Input:
    """One example to score: ``x`` of the spec's shape, or ``error`` saying why not."""

    name: str
    x: Tensor | None = None
    error: str | None = None


def _image_levels(a: np.ndarray, spec: DataSpec) -> np.ndarray:
    """8-bit pixel values -> the model's levels (or its continuous range)."""
    v = a.astype(np.float64)
    if spec.levels is None:
        return spec.low + v / 255.0 * (spec.high - spec.low)
    if spec.levels == 2:
        return (v >= 128).astype(np.float64)
    return np.round(v * (spec.levels - 1) / 255.0)


def _read_image(path: Path, spec: DataSpec) -> np.ndarray:
    from PIL import Image

    if len(spec.shape) != 3 or spec.shape[0] not in (1, 3):
        raise DataError(f"the model takes vectors of shape {spec.shape}, not images; pass arrays")
    c, h, w = spec.shape
    try:
        with Image.open(path) as im:
            im.load()
            size = im.size
            a = np.asarray(im.convert("L" if c == 1 else "RGB"), dtype=np.uint8)
    except Exception as e:  # Pillow raises many types on non-images and damaged files
        raise DataError(f"not an image Pillow can read ({type(e).__name__})") from e
    if size != (w, h):
        raise DataError(
            f"image is {size[0]}x{size[1]} (width x height); the model takes {w}x{h}: resize it"
        )
    a = a[None] if c == 1 else a.transpose(2, 0, 1)
    return _image_levels(a, spec)[None]  # [1, C, H, W]


def _as_batch(a: np.ndarray, spec: DataSpec) -> np.ndarray:
    """One example of the spec's shape, or a batch ``[N, *shape]`` (channel-less images too)."""
    shape = tuple(spec.shape)
    if a.shape == shape:
        return a[None]
    if a.shape[1:] == shape:
        return a
    if len(shape) == 3 and shape[0] == 1:  # (H, W) or (N, H, W) for one-channel images
        if a.shape == shape[1:]:
            return a[None, None]
        if a.shape[1:] == shape[1:]:
            return a[:, None]
    if len(shape) == 1 and a.ndim >= 2 and int(np.prod(a.shape[1:])) == shape[0]:
        return a.reshape(a.shape[0], -1)
    raise DataError(
        f"array has shape {a.shape}; the model takes examples of shape {shape} "
        f"(one example, or a batch of shape (N, {', '.join(map(str, shape))}))"
    )


def _read_arrays(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return formats.read_npy(path)
    if suffix == ".csv":
        return formats.read_csv(path).x
    arrays = formats.read_npz(path)
    key = next((k for k in ("x", "X", "data", "images", "x_test") if k in arrays), None)
    if key is None:
        arrays = {k: a for k, a in arrays.items() if a.dtype.kind not in "US"}  # class names
        if len(arrays) != 1:
            raise DataError(
                f"cannot tell which array holds the inputs ({', '.join(arrays)}): name it 'x'"
            )
        key = next(iter(arrays))
    return arrays[key]


def _check(x: np.ndarray, spec: DataSpec) -> Tensor:
    t = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    check_values(t, spec, "input")
    return t


def read_input_file(path: Path, spec: DataSpec) -> list[Input]:
    """Every example in one file, or one :class:`Input` with the file's error."""
    suffix = path.suffix.lower()
    try:
        if suffix in IMAGE_SUFFIXES:
            x = _read_image(path, spec)
        elif suffix in ARRAY_SUFFIXES:
            x = _as_batch(_read_arrays(path), spec)
        else:
            raise DataError(
                f"unsupported file type {suffix or '(no extension)'!r}; use images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) or arrays (.npy, .npz, .csv)"
            )
        t = _check(x, spec)
    except DataError as e:
        msg = str(e)
        prefix = f"{path}: "
        return [Input(str(path), error=msg[len(prefix) :] if msg.startswith(prefix) else msg)]
    if t.shape[0] == 1:
        return [Input(str(path), t[0])]
    return [Input(f"{path}[{i}]", t[i]) for i in range(t.shape[0])]


def read_inputs(path: str | Path, spec: DataSpec) -> list[Input]:
    """The examples in a file, or in every visible file of a folder (sorted, subfolders too)."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or folder; name a file or folder of inputs")
    if root.is_file():
        return read_input_file(root, spec)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DataError(f"{root}: folder holds no files; put images or arrays in it")
    return [item for f in files for item in read_input_file(f, spec)]


def derived_inputs(name: str, x: Tensor, spec: DataSpec, seed: int = 0) -> Tensor:
    """An out-of-distribution set built from in-distribution inputs ``x``: see :data:`DERIVED`."""
    g = torch.Generator().manual_seed(seed)
    if name == "noise":
        if spec.levels is None:
            u = torch.rand(x.shape, generator=g, dtype=x.dtype)
            return spec.low + u * (spec.high - spec.low)
        return torch.randint(0, spec.levels, x.shape, generator=g).to(x.dtype)
    if name == "inverted":
        if spec.levels is None:
            return spec.low + spec.high - x
        return (spec.levels - 1) - x
    raise DataError(f"unknown derived inputs {name!r}; use {', '.join(DERIVED)}")


def mutate(x: Tensor, rate: float, levels: int, generator: torch.Generator | None = None) -> Tensor:
    """Ren et al. (2019), "Likelihood ratios for out-of-distribution detection": each value is
    replaced, with probability ``rate``, by a level drawn uniformly from 0..levels-1; the
    background model of the likelihood ratio trains on such inputs."""
    if not 0 <= rate <= 1:
        raise DataError(f"the perturbation rate must be in [0, 1], got {rate}")
    if rate == 0:
        return x
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    noise = torch.randint(0, levels, x.shape, generator=generator, device=x.device)
    return torch.where(u < rate, noise.to(x.dtype), x)
