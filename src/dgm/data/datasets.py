"""Named benchmark datasets and user data, loaded as :class:`~dgm.data.base.Dataset` objects.

Discrete data holds integer levels ``0..levels-1`` in float32 tensors; labels are int64. Every
split that needs a random permutation uses its own fixed seed (never the training seed), so a
dataset's splits are the same in every run and on every machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgm.data import formats
from dgm.data.base import Dataset, DataSpec, Split, check_values
from dgm.data.text import TextTokenizer, check_max_len, pack, text_options
from dgm.data.toy import SAMPLERS, load_toy
from dgm.errors import DataError, option

__all__ = [
    "DATASETS",
    "FOLDERS",
    "TEXT_DATASETS",
    "USER_FORMATS",
    "data_root",
    "data_roots",
    "list_datasets",
    "load_dataset",
]

SPLIT_SEED = 0  # the permutation behind every shuffled split (caltech, frey, user data)
BINARIZE_SEEDS = {"val": 1, "test": 2}  # the one fixed binarization of binarized-mnist val/test
MNIST_TRAIN = 50_000  # the papers' train[:50000] / train[50000:] convention
USER_FORMATS = (
    "a folder of images, a .npy or .npz array, a .csv table, text (a .txt file or a folder "
    "of .txt files), or audio (a folder of .wav files)"
)
TEXT_DATASETS = ("ptb", "tinyshakespeare")  # named text datasets: their loaders take text options
MOLECULE_DATASETS = ("qm9", "zinc250k", "moses")  # named molecule datasets (dgm.data.molecules)
AUDIO_DATASETS = ("fsdd",)  # named audio datasets (dgm.data.audio)
USER_TEXT_MAX_LEN = 128  # user text: max_len is the longest line's tokens + 1, at most this
SHAKESPEARE_MAX_LEN = 256  # tinyshakespeare's chunks: 255 tokens + the end token
# the subfolder of the data folder that holds each named dataset's files
FOLDERS = {
    "mnist": "mnist",
    "fashion-mnist": "fashion_mnist",
    "binarized-mnist": "mnist",
    "static-mnist": "binarized_mnist",
    "caltech-silhouettes": "caltech101_silhouettes",
    "frey-faces": "frey_faces",
    "omniglot": "omniglot",
    "ptb": "ptb",
    "tinyshakespeare": "tinyshakespeare",
    "qm9": "qm9",
    "zinc250k": "zinc250k",
    "moses": "moses",
    "fsdd": "fsdd",
}
DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (  # Xiao et al. (2017), the labels 0..9
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


# --------------------------------------------------------------------------- where data lives


def _checkout(start: Path) -> Path | None:
    """The dgm source checkout holding ``start``: a folder with pyproject.toml and src/dgm/."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "dgm").is_dir():
            return folder
    return None


def _installed(path: Path) -> bool:
    return any(part in ("site-packages", "dist-packages") for part in path.parts)


def _checkout_data() -> list[Path]:
    """``../shared/data`` next to the source checkout dgm runs from, found from this file's
    location (an editable install) and from the working directory; never from inside
    site-packages, where an installed package lives far from any project."""
    here = Path(__file__).resolve().parent
    starts = [] if _installed(here) else [here]
    with contextlib.suppress(OSError):  # a working directory that was deleted
        starts.append(Path.cwd().resolve())
    found: list[Path] = []
    for start in starts:
        root = _checkout(start)
        if root is not None and not _installed(root):
            data = root.parent / "shared" / "data"
            if data not in found:
                found.append(data)
    return found


def _user_data() -> Path:
    """The per-user data folder (``~/.local/share/dgm`` on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("dgm", appauthor=False))


def data_roots(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Every folder that may hold the named datasets, in the order they are searched, each
    with what put it there: ``data_dir`` (``--data-dir``), ``$DGM_DATA``, ``../shared/data``
    next to a source checkout, the per-user data folder."""
    roots: list[tuple[str, Path]] = []
    if data_dir is not None:
        roots.append((option("--data-dir", "data_dir"), Path(data_dir).expanduser()))
    if os.environ.get("DGM_DATA"):
        roots.append(("$DGM_DATA", Path(os.environ["DGM_DATA"]).expanduser()))
    roots += [("next to the project", p) for p in _checkout_data()]
    roots.append(("user data folder", _user_data()))
    return roots


def data_root(data_dir: str | Path | None = None) -> Path:
    """The first of :func:`data_roots` that exists, else the first of them."""
    roots = [p for _, p in data_roots(data_dir)]
    return next((p for p in roots if p.is_dir()), roots[0])


def _locate(dataset: str, data_dir: str | Path | None) -> Path:
    """The first data folder that holds ``dataset``'s subfolder, else a DataError naming every
    place looked."""
    folder = FOLDERS.get(dataset)
    roots = data_roots(data_dir)
    if folder is None:  # bundled or synthetic: read from nowhere
        return roots[0][1]
    for _, root in roots:
        if (root / folder).is_dir():
            return root
    looked = "; ".join(f"{why} {root / folder}" for why, root in roots)
    raise DataError(
        f"{dataset}: {folder}/ not found; looked in: {looked}. Put the files in one of them, "
        f"pass {_data_dir_option()} or set $DGM_DATA to a folder that holds {folder}/"
    )


def _find(root: Path, dataset: str, folder: str, name: str, *alternatives: str) -> Path:
    """``root/folder/name`` (or the first alternative name that exists), else a DataError."""
    for candidate in (name, *alternatives):
        path = root / folder / candidate
        if path.is_file():
            return path
    where = f"{folder}/{name}"
    raise DataError(
        f"{dataset}: {where} not found in the data folder {root}; pass {_data_dir_option()} or set "
        f"$DGM_DATA to a folder that holds {where}"
    )


# --------------------------------------------------------------------------- small helpers


def _floats(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _longs(y: np.ndarray | None) -> torch.Tensor | None:
    return None if y is None else torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def _split(x: np.ndarray, y: np.ndarray | None, index: slice | np.ndarray) -> Split:
    return Split(_floats(x[index]), None if y is None else _longs(y[index]))


def _permutation(n: int, seed: int = SPLIT_SEED) -> np.ndarray:
    # the legacy RandomState stream is frozen by numpy's compatibility policy, unlike Generator's,
    # so these splits stay the same across numpy versions
    return np.random.RandomState(seed).permutation(n)


def _standard_sizes(n: int, sizes: tuple[int, int, int], what: str) -> tuple[int, int]:
    """The papers' (train, val) ``sizes`` when the file is full size, else the same proportions.

    Small or partial copies (as in tests) keep the proportions of ``sizes`` (train, val, test),
    with at least one example in every split.
    """
    n_train, n_val, _ = sizes
    if n > n_train + n_val:
        return n_train, n_val
    if n < 3:
        raise DataError(f"{what}: only {n} examples; need at least 3 for train, val and test")
    total = sum(sizes)
    val = max(1, round(n * n_val / total))
    train = max(1, min(n - val - 1, round(n * n_train / total)))
    return train, val


def _shuffled(
    x: np.ndarray, y: np.ndarray | None, n_train: int, n_val: int
) -> tuple[Split, Split, Split]:
    order = _permutation(len(x))
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    # permutation order, not file order: files sorted by class (caltech) must not give
    # single-class heads to code that takes the first examples of a split for a quick look
    return tuple(_split(x, y, p) for p in parts)


def _expect_shape(a: np.ndarray, path: Path, shape: tuple, what: str) -> None:
    """Check ``a.shape`` against ``shape`` (``None`` entries match any size)."""
    ok = a.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, a.shape))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise DataError(
            f"{path}: {what} has shape {a.shape}, expected {want}; is this the right file?"
        )


# --------------------------------------------------------------------------- named datasets


def _load_digits(root: Path) -> Dataset:
    """scikit-learn's 8x8 digits (UCI optical digits test set), split 1000/350/447 in order."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.reshape(-1, 1, 8, 8)
    y = d.target
    spec = DataSpec(
        "digits", (1, 8, 8), levels=17, low=0.0, high=16.0, num_classes=10, class_names=DIGIT_NAMES
    )
    parts = slice(0, 1000), slice(1000, 1350), slice(1350, None)
    train, val, test = (_split(x, y, p) for p in parts)
    return Dataset(spec, train, val, test=test, source="sklearn.datasets.load_digits")


def _read_mnist_files(root: Path, dataset: str, folder: str) -> dict[str, np.ndarray]:
    """The four IDX files of MNIST or Fashion-MNIST, gzipped or already decompressed."""
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        names = {"x": f"{prefix}-images-idx3-ubyte", "y": f"{prefix}-labels-idx1-ubyte"}
        for kind, name in names.items():
            path = _find(root, dataset, folder, name + ".gz", name)
            a = formats.read_idx(path)
            shape = (None, 28, 28) if kind == "x" else (None,)
            _expect_shape(a, path, shape, "images" if kind == "x" else "labels")
            out[kind + split] = a
        if len(out["x" + split]) != len(out["y" + split]):
            raise DataError(
                f"{dataset}: {split} has {len(out['x' + split])} images but "
                f"{len(out['y' + split])} labels in {root / folder}; download the files again"
            )
    return out


def _mnist_val_start(n: int) -> int:
    """Train is ``[:50000]``, val ``[50000:]``; smaller copies use their last sixth as val."""
    return MNIST_TRAIN if n > MNIST_TRAIN else n - max(1, n // 6)


def _load_mnist(root: Path, name: str = "mnist", folder: str = "mnist") -> Dataset:
    """MNIST (LeCun et al. 1998) or Fashion-MNIST (Xiao et al. 2017): 28x28, 256 levels."""
    f = _read_mnist_files(root, name, folder)
    cut = _mnist_val_start(len(f["xtrain"]))
    xtr, xte = f["xtrain"][:, None], f["xtest"][:, None]
    names = FASHION_NAMES if name == "fashion-mnist" else DIGIT_NAMES
    spec = DataSpec(
        name, (1, 28, 28), levels=256, low=0.0, high=255.0, num_classes=10, class_names=names
    )
    train = _split(xtr, f["ytrain"], slice(0, cut))
    val = _split(xtr, f["ytrain"], slice(cut, None))
    test = _split(xte, f["ytest"], slice(None))
    return Dataset(spec, train, val, test=test, source=str(root / folder))


def _load_binarized_mnist(root: Path) -> Dataset:
    """Dynamically binarized MNIST (as in Salakhutdinov & Murray 2008; Burda et al. 2016).

    Train holds probabilities ``pixel/255`` that the batcher samples at every use; val and test
    are binarized once, each with its own fixed seed, so every run evaluates on the same bits.
    """
    base = _load_mnist(root)
    spec = DataSpec(
        "binarized-mnist",
        (1, 28, 28),
        levels=2,
        low=0.0,
        high=1.0,
        num_classes=10,
        binarize=True,
        class_names=DIGIT_NAMES,
    )

    def fixed(split: Split, seed: int) -> Split:
        gen = torch.Generator().manual_seed(seed)
        return Split(torch.bernoulli(split.x / 255.0, generator=gen), split.y)

    train = Split(base.train.x / 255.0, base.train.y)
    val = fixed(base.val, BINARIZE_SEEDS["val"])
    test = fixed(base.test, BINARIZE_SEEDS["test"])
    note = (
        f"val and test are binarized once with torch seeds {BINARIZE_SEEDS['val']} and "
        f"{BINARIZE_SEEDS['test']}; train is resampled at every use"
    )
    return Dataset(spec, train, val, test=test, source=base.source, notes=[note])


def _load_static_mnist(root: Path) -> Dataset:
    """Statically binarized MNIST of Larochelle & Murray (2011): the three ``.amat`` files."""
    splits = []
    for part in ("train", "valid", "test"):
        path = _find(root, "static-mnist", "binarized_mnist", f"binarized_mnist_{part}.amat")
        a = formats.read_amat(path)
        _expect_shape(a, path, (None, 784), "matrix")
        splits.append(Split(_floats(a.reshape(-1, 1, 28, 28))))
    spec = DataSpec("static-mnist", (1, 28, 28), levels=2, low=0.0, high=1.0)
    return Dataset(spec, *splits, source=str(root / "binarized_mnist"))


def _load_caltech(root: Path) -> Dataset:
    """Caltech 101 Silhouettes 28x28 (Marlin et al. 2010); silhouette = 1."""
    path = _find(
        root, "caltech-silhouettes", "caltech101_silhouettes", "caltech101_silhouettes_28.mat"
    )
    mat = formats.read_mat(path, ["X", "Y"])
    big_x, big_y = mat["X"], mat["Y"].reshape(-1)
    _expect_shape(big_x, path, (None, 784), "variable 'X'")
    if len(big_y) != len(big_x) or (big_y.size and big_y.min() < 1):
        raise DataError(
            f"{path}: 'Y' must hold one class id >= 1 per row of 'X'; is this the right file?"
        )
    # each row is a column-major (MATLAB) 28x28 image: reshape C-order, then transpose
    x = 1.0 - big_x.reshape(-1, 1, 28, 28).transpose(0, 1, 3, 2).astype(np.float32)
    y = big_y.astype(np.int64) - 1
    n_train, n_val = _standard_sizes(len(x), (4100, 2264, 2307), str(path))
    names = formats.read_mat_names(path, "classnames")  # absent from some copies
    if names is not None and len(names) != 101:
        names = None
    spec = DataSpec(
        "caltech-silhouettes", (1, 28, 28), levels=2, num_classes=101, class_names=names
    )
    note = (
        f"caltech-silhouettes: the standard split1 indices are not available; using a fixed "
        f"permutation (seed {SPLIT_SEED}) into {n_train} train / {n_val} val / "
        f"{len(x) - n_train - n_val} test (the split1 sizes): numbers are not exactly "
        "comparable with published ones"
    )
    return Dataset(spec, *_shuffled(x, y, n_train, n_val), source=str(path), notes=[note])


def _load_frey(root: Path) -> Dataset:
    """Frey Faces (Roweis; used by Kingma & Welling 2014): 1965 faces of 28x20, 256 levels."""
    path = _find(root, "frey-faces", "frey_faces", "frey_rawface.mat")
    ff = formats.read_mat(path, ["ff"])["ff"]
    _expect_shape(ff, path, (560, None), "variable 'ff'")
    x = ff.T.reshape(-1, 1, 28, 20)  # each column is one face, stored row-major
    n_train, n_val = _standard_sizes(len(x), (1565, 200, 200), str(path))
    spec = DataSpec("frey-faces", (1, 28, 20), levels=256, low=0.0, high=255.0)
    note = (
        f"frey-faces has no standard split; using a fixed permutation (seed {SPLIT_SEED}) into "
        f"{n_train} train / {n_val} val / {len(x) - n_train - n_val} test"
    )
    return Dataset(spec, *_shuffled(x, None, n_train, n_val), source=str(path), notes=[note])


def _read_omniglot(root: Path, part: str) -> np.ndarray:
    """Strokes (1) on background (0), shape (characters, drawers, H, W), bool."""
    path = _find(root, "omniglot", "omniglot", f"images_{part}.npz")
    arrays = formats.read_npz(path)
    if "images" not in arrays:
        raise DataError(f"{path}: no 'images' array (found {', '.join(arrays)}); wrong file?")
    images = arrays["images"]
    _expect_shape(images, path, (None, None, None, None), "'images'")
    return np.logical_not(images)  # the files store True = white background


def _load_omniglot(root: Path) -> Dataset:
    """Omniglot raw 105x105 images (Lake et al. 2015), one example per drawing.

    Train: the background alphabets minus their last 10% of characters (val); test: the
    evaluation alphabets. Labels are the character index within its file.
    """
    background, evaluation = _read_omniglot(root, "background"), _read_omniglot(root, "evaluation")
    if background.shape[2:] != evaluation.shape[2:]:
        raise DataError(
            f"omniglot: background images are {background.shape[2:]} but evaluation images are "
            f"{evaluation.shape[2:]} in {root / 'omniglot'}; download the files again"
        )
    n_chars = background.shape[0]
    if n_chars < 2:
        raise DataError(f"omniglot: background file holds {n_chars} characters; need at least 2")
    cut = n_chars - max(1, round(0.1 * n_chars))
    h, w = background.shape[2:]

    def examples(images: np.ndarray, first_label: int) -> Split:
        labels = np.repeat(np.arange(first_label, first_label + len(images)), images.shape[1])
        x = torch.from_numpy(np.ascontiguousarray(images.reshape(-1, 1, h, w))).to(torch.float32)
        return Split(x, torch.from_numpy(labels))

    spec = DataSpec("omniglot", (1, h, w), levels=2, num_classes=max(n_chars, evaluation.shape[0]))
    note = (
        "omniglot: raw 105x105 images, not the 28x28 chardata.mat of IWAE/VampPrior; numbers are "
        "not comparable with theirs. Test labels index evaluation characters (other classes)"
    )
    return Dataset(
        spec,
        examples(background[:cut], 0),
        examples(background[cut:], cut),
        test=examples(evaluation, 0),
        source=str(root / "omniglot"),
        notes=[note],
    )


# --------------------------------------------------------------------------- text


def _lines(text: str) -> list[str]:
    """The non-blank lines of ``text`` (split at ``\\n`` only, a ``\\r`` before it dropped:
    form feeds and other characters ``str.splitlines`` breaks at stay in their line)."""
    lines = (line.removesuffix("\r") for line in text.split("\n"))
    return [line for line in lines if line.strip()]


def _tokenizer(
    given: str | TextTokenizer | None,
    default: str,
    train_lines: list[str],
    vocab_size: int | None,
    min_count: int | None,
) -> TextTokenizer:
    """A run's tokenizer as it is (never re-trained), else one of kind ``given`` (or
    ``default``) trained on the training split only."""
    if isinstance(given, TextTokenizer):
        return given
    return TextTokenizer.train(given or default, train_lines, vocab_size, min_count or 1)


def _text_spec(name: str, tok: TextTokenizer, max_len: int) -> DataSpec:
    return DataSpec(
        name, (max_len,), tok.vocab_size, low=0.0, high=float(tok.vocab_size - 1),
        tokenizer=tok.kind,
    )  # fmt: skip


def _cut_note(cut: int, total: int, max_len: int) -> list[str]:
    if not cut:
        return []
    return [
        f"{cut} of {total} examples were longer than max_len - 1 = {max_len - 1} tokens and "
        f"were cut to it (the end token follows); set max_len to keep more"
    ]


def _line_dataset(
    name: str,
    parts: dict[str, list[str]],
    *,
    default_kind: str,
    max_len_cap: int | None,
    tokenizer: str | TextTokenizer | None,
    vocab_size: int | None,
    min_count: int | None,
    max_len: int | None,
    source: str,
    kind: str = "",
    notes: list[str] | None = None,
) -> Dataset:
    """Text with one example a line, ``parts`` the lines of train, val and test: the tokenizer
    learnt on train, every line cut at ``max_len`` (by default the longest line's tokens + 1,
    at most ``max_len_cap``)."""
    tok = _tokenizer(tokenizer, default_kind, parts["train"], vocab_size, min_count)
    ids = {k: tok.encode_batch(lines) for k, lines in parts.items()}
    how = "given"
    if max_len is None:
        longest = max(len(seq) for seqs in ids.values() for seq in seqs) + 1
        max_len = longest if max_len_cap is None else min(longest, max_len_cap)
        how = "the longest line's tokens + 1" + (
            f", at most {max_len_cap}" if max_len_cap is not None else ""
        )
    check_max_len(max_len)
    splits, cut = {}, 0
    for k, seqs in ids.items():
        x, c = pack(seqs, max_len)
        splits[k], cut = Split(x), cut + c
    total = sum(len(v) for v in ids.values())
    notes = [
        *(notes or []),
        *_cut_note(cut, total, max_len),
    ]
    if how != "given":
        notes.append(f"max_len {max_len} ({how}); set max_len to change it")
    return Dataset(
        _text_spec(name, tok, max_len),
        splits["train"],
        splits["val"],
        test=splits["test"],
        source=source,
        notes=notes,
        kind=kind,
        levels_note=f"{tok.kind} vocabulary",
        tokenizer=tok,
    )


def _load_ptb(
    root: Path,
    tokenizer: str | TextTokenizer | None = None,
    vocab_size: int | None = None,
    min_count: int | None = None,
    max_len: int | None = None,
) -> Dataset:
    """Penn Treebank as Mikolov et al. (2010) prepared it for language modelling: one sentence
    a line, numbers as ``N``, rare words already ``<unk>`` (our :data:`~dgm.data.text.UNK`),
    train/valid/test as the three files; the sentence-level data of Bowman et al. (2016).

    Word level by default, the vocabulary the training file's own words (9,998 + the 4
    special tokens: no word of valid or test is outside it). ``max_len`` defaults to the
    longest sentence + 1 (83: nothing is cut, so NLLs count every token; the Sentence-VAE
    reference cuts at 60).
    """
    parts = {}
    for split, file in (("train", "train"), ("val", "valid"), ("test", "test")):
        path = _find(root, "ptb", "ptb", f"ptb.{file}.txt")
        # the files pad each sentence with spaces: strip them (char and BPE see clean lines)
        parts[split] = [line.strip() for line in _lines(formats.read_text(path))]
        if not parts[split]:
            raise DataError(f"{path}: holds no sentences; download the PTB files again")
    return _line_dataset(
        "ptb", parts, default_kind="word", max_len_cap=None, tokenizer=tokenizer,
        vocab_size=vocab_size, min_count=min_count, max_len=max_len,
        source=str(root / "ptb"),
    )  # fmt: skip


def _chunks(ids: list[int], max_len: int) -> torch.Tensor:
    """Consecutive chunks of ``max_len - 1`` tokens, each then the end token; the last chunk
    holds what is left (shorter, padded)."""
    step = max_len - 1
    return pack([ids[i : i + step] for i in range(0, len(ids), step)], max_len)[0]


def _load_tinyshakespeare(
    root: Path,
    tokenizer: str | TextTokenizer | None = None,
    vocab_size: int | None = None,
    min_count: int | None = None,
    max_len: int | None = None,
) -> Dataset:
    """tiny-shakespeare (Karpathy's char-rnn corpus), character level by default.

    The language-modelling convention: the text is split contiguously, its first 90% of
    characters train, the next 5% validate, the last 5% test (nanoGPT holds out the last 10%
    for validation; we halve it for a test split). Each part is tokenized (the tokenizer learnt
    on train) and cut into consecutive chunks of ``max_len - 1`` tokens, each followed by the
    end token (``max_len`` 256 by default: 255 characters + the end); the last chunk of a part
    is shorter. Chunks do not overlap and carry no context from the chunk before.
    """
    path = _find(root, "tinyshakespeare", "tinyshakespeare", "input.txt")
    text = formats.read_text(path)
    if len(text) < 20:
        raise DataError(f"{path}: holds {len(text)} characters; download input.txt again")
    a, b = int(0.9 * len(text)), int(0.95 * len(text))
    parts = {"train": text[:a], "val": text[a:b], "test": text[b:]}
    tok = _tokenizer(
        tokenizer, "char", parts["train"].splitlines(keepends=True), vocab_size, min_count
    )
    max_len = SHAKESPEARE_MAX_LEN if max_len is None else max_len
    check_max_len(max_len)
    splits = {k: Split(_chunks(tok.encode(part), max_len)) for k, part in parts.items()}
    note = (
        f"tinyshakespeare: characters 0..{a - 1} train, {a}..{b - 1} validate, {b}..{len(text) - 1}"
        f" test, each cut into chunks of {max_len - 1} tokens + the end token"
    )
    return Dataset(
        _text_spec("tinyshakespeare", tok, max_len),
        splits["train"],
        splits["val"],
        test=splits["test"],
        source=str(path),
        notes=[note],
        levels_note=f"{tok.kind} vocabulary",
        tokenizer=tok,
    )


def _load_molecules(name: str, root: Path, **options: Any) -> Dataset:
    from dgm.data import molecules

    loader, files = {
        "qm9": (molecules.load_qm9, ("qm9_smiles_props.csv.gz",)),
        "zinc250k": (molecules.load_zinc250k, ("train.csv.gz", "valid.csv.gz", "test.csv.gz")),
        "moses": (molecules.load_moses, ("train.csv.gz", "test.csv.gz")),
    }[name]
    for file in files:  # a missing file: the one line that names every place to put it
        _find(root, name, FOLDERS[name], file)
    return loader(root / FOLDERS[name], SPLIT_SEED, **options)


Loader = Callable[..., Dataset]

DATASETS: dict[str, tuple[str, Loader]] = {
    "digits": ("scikit-learn 8x8 digits, 17 levels, 1000/350/447 (bundled)", _load_digits),
    "mnist": ("MNIST 28x28, 256 levels, 50k/10k/10k (mnist/, IDX)", _load_mnist),
    "fashion-mnist": (
        "Fashion-MNIST 28x28, 256 levels, 50k/10k/10k (fashion_mnist/, IDX)",
        partial(_load_mnist, name="fashion-mnist", folder="fashion_mnist"),
    ),
    "binarized-mnist": (
        "MNIST dynamically binarized (train resampled, val/test fixed), 50k/10k/10k",
        _load_binarized_mnist,
    ),
    "static-mnist": (
        "statically binarized MNIST (Larochelle & Murray), 50k/10k/10k (binarized_mnist/)",
        _load_static_mnist,
    ),
    "caltech-silhouettes": (
        "Caltech 101 Silhouettes 28x28, binary, 101 classes, 4100/2264/2307 seeded split",
        _load_caltech,
    ),
    "frey-faces": ("Frey faces 28x20, 256 levels, 1565/200/200 seeded split", _load_frey),
    "omniglot": (
        "Omniglot raw 105x105, binary; background (last 10% of characters val) / evaluation",
        _load_omniglot,
    ),
    "ptb": (
        "Penn Treebank sentences (Mikolov), word level, 10k vocabulary, 42068/3370/3761 (ptb/)",
        _load_ptb,
    ),
    "tinyshakespeare": (
        "tiny-shakespeare, character level, contiguous 90/5/5 in chunks of 256 (tinyshakespeare/)",
        _load_tinyshakespeare,
    ),
    "qm9": (
        "QM9 molecules (SMILES, up to 9 heavy atoms), 12 properties, seeded 80/10/10 (qm9/)",
        partial(_load_molecules, "qm9"),
    ),
    "zinc250k": (
        "ZINC-250k drug-like molecules (SMILES), 220011/24445/5000 as JT-VAE (zinc250k/)",
        partial(_load_molecules, "zinc250k"),
    ),
    "moses": (
        "MOSES benchmark molecules (SMILES), train/test, 10k of train validate (moses/)",
        partial(_load_molecules, "moses"),
    ),
    "fsdd": (
        "Free Spoken Digit Dataset: 8 kHz speech, 10 digits, 6 speakers; takes 0-4 test, 5-9 "
        "val, 10-49 train (fsdd/)",
        lambda root: _load_fsdd(root),
    ),
    **{
        name: (desc, lambda root, name=name: load_toy(name)) for name, (desc, _) in SAMPLERS.items()
    },
}


def list_datasets() -> list[tuple[str, str]]:
    """(name, description) of every named dataset, for ``dgm list``."""
    return [(name, desc) for name, (desc, _) in DATASETS.items()]


# --------------------------------------------------------------------------- user data


def _as_examples(x: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Bring an array to ``(N, D)`` or ``(N, C, H, W)`` following the documented rank rules."""
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3, 4):
            return x
        if x.shape[3] in (1, 3, 4):
            return x.transpose(0, 3, 1, 2)  # channel-last (N, H, W, C) to channel-first
        raise DataError(
            f"{path}: {what} has shape {x.shape}: neither dim 1 nor dim 3 is a channel count "
            "(1, 3 or 4); save images as (N, C, H, W) or (N, H, W, C)"
        )
    raise DataError(
        f"{path}: {what} has shape {x.shape}; expected an array of examples, shape (N, ...): "
        "(N, D) vectors, (N, H, W) or (N, C, H, W) images"
    )


def _as_labels(y: np.ndarray, n: int, path: Path, what: str) -> np.ndarray:
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: {what} has shape {y.shape}, expected ({n},): one per example")
    if y.dtype.kind not in "biuf" or (y.size and (y.min() < 0 or (y != np.floor(y)).any())):
        raise DataError(f"{path}: {what} must be whole numbers >= 0 (class indices)")
    return y.astype(np.int64)


def _levels(
    xs: list[np.ndarray], path: Path, images: bool = False
) -> tuple[int | None, float, float, str]:
    """(levels, low, high, how) of the data, inferred from the values present.

    8-bit images have 256 levels; a uint8 array too, unless it holds only 0 and 1 (binary);
    other whole numbers 0..K-1 have K levels (at least 2); anything else is continuous.
    """
    xs = [x for x in xs if x.size]
    for x in xs:
        formats.check_array(x, path, "data")  # non-numeric or NaN/inf, counted
    lo, hi = min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)
    dtypes = {x.dtype.name for x in xs}
    dtype = dtypes.pop() if len(dtypes) == 1 else "values"
    if images:
        return 256, 0.0, 255.0, f"8-bit images 0..255, values {lo:g}..{hi:g} found"
    if dtype == "bool":
        return 2, 0.0, 1.0, "bool"
    integers = all(x.dtype.kind in "biu" for x in xs)
    if integers and lo < 0:
        raise DataError(
            f"{path}: integer data holds negative values (min {lo:g}); discrete data must be "
            "levels 0..K-1: shift it, or save it as float for continuous data"
        )
    whole = integers or all(bool((x == np.floor(x)).all()) for x in xs)
    if not whole or lo < 0:
        return None, lo, hi, f"{dtype}, not whole numbers 0..K-1" if not whole else dtype
    if hi <= 1:
        return 2, 0.0, 1.0, f"binary: {dtype} holding only 0 and 1"
    if dtype == "uint8":  # 8-bit data, whatever part of 0..255 these examples reach
        note = "uint8 0..255" + (f", values 0..{hi:g} found" if hi < 255 else "")
        return 256, 0.0, 255.0, note
    levels = int(hi) + 1
    return levels, 0.0, float(levels - 1), f"whole numbers 0..{levels - 1} in {dtype}"


def _user_dataset(
    path: Path,
    parts: dict[str, tuple[np.ndarray, np.ndarray | None]],
    notes: list[str],
    *,
    kind: str,
    class_names: list[str] | None = None,
    images: bool = False,
) -> Dataset:
    """A Dataset from explicit ``train``/``val``/``test`` parts, or one ``all`` to be split."""
    parts = {
        k: (_as_examples(x, path, f"{k} data" if k != "all" else "the data"), y)
        for k, (x, y) in parts.items()
    }
    shapes = {k: x.shape[1:] for k, (x, _) in parts.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{path}: splits have different example shapes {shapes}; make them equal")
    parts = {
        k: (x, None if y is None else _as_labels(y, len(x), path, f"{k} labels"))
        for k, (x, y) in parts.items()
    }
    if all(len(x) == 0 for x, _ in parts.values()):
        raise DataError(f"{path}: holds no examples")
    levels, low, high, how = _levels([x for x, _ in parts.values()], path, images)
    labels = [y for _, y in parts.values() if y is not None and y.size]
    num_classes = None
    if any(y is not None for _, y in parts.values()):
        largest = max((int(y.max()) for y in labels), default=0)
        num_classes = largest + 1
        if class_names is not None:
            if largest >= len(class_names):
                raise DataError(
                    f"{path}: labels go up to {largest} but {len(class_names)} class names are "
                    "given; give one name per class"
                )
            num_classes = len(class_names)
    else:
        class_names = None  # names without labels name nothing
    shape = tuple(int(s) for s in next(iter(shapes.values())))
    name = str(path.resolve())
    spec = DataSpec(
        name, shape, levels, low=low, high=high, num_classes=num_classes, class_names=class_names
    )

    if "all" in parts:
        x, y = parts["all"]
        n = len(x)
        if n < 3:
            raise DataError(f"{path}: only {n} examples; need at least 3 (train, val and test)")
        n_val = n_test = max(1, n // 10)
        splits = _shuffled(x, y, n - n_val - n_test, n_val)
        notes = [
            *notes,
            f"split with a fixed permutation (seed {SPLIT_SEED}) into {n - n_val - n_test} train "
            f"/ {n_val} val / {n_test} test",
        ]
    else:
        splits = tuple(_split(*parts[k], slice(None)) for k in ("train", "val", "test"))
    return Dataset(spec, *splits, source=name, notes=notes, kind=kind, levels_note=how)


def _npz_names(arrays: dict[str, np.ndarray]) -> list[str] | None:
    """The class names an archive holds beside its data (see ``formats.NAME_KEYS``), if any."""
    for key in formats.NAME_KEYS:
        a = arrays.get(key)
        if a is not None and a.dtype.kind in "US":
            return [v.decode() if isinstance(v, bytes) else str(v) for v in a.tolist()]
    return None


def _npz_parts(arrays: dict[str, np.ndarray], path: Path) -> tuple[dict, list[str]]:
    """Pick data and labels from an archive: explicit ``x_train``/... splits or one array."""
    notes: list[str] = []
    if "x_train" in arrays:
        if "x_test" not in arrays:
            raise DataError(f"{path}: has 'x_train' but no 'x_test'; add it, or save one 'x'")
        val_key = next((k for k in ("x_val", "x_valid") if k in arrays), None)
        parts = {
            "train": (arrays["x_train"], arrays.get("y_train")),
            "test": (arrays["x_test"], arrays.get("y_test")),
        }
        if val_key is not None:
            parts["val"] = (arrays[val_key], arrays.get("y" + val_key[1:]))
        else:  # e.g. Keras' mnist.npz: hold out a fixed tenth of train for validation
            x, y = parts["train"]
            if len(x) < 2:
                raise DataError(f"{path}: 'x_train' needs at least 2 examples to hold out val")
            order = _permutation(len(x))
            n_val = max(1, len(x) // 10)
            val_idx, train_idx = order[:n_val], order[n_val:]
            parts["train"] = (x[train_idx], None if y is None else y[train_idx])
            parts["val"] = (x[val_idx], None if y is None else y[val_idx])
            notes.append(f"no 'x_val': held out {n_val} of 'x_train' (seed {SPLIT_SEED}) as val")
        if any(y is not None for _, y in parts.values()) and any(
            y is None for _, y in parts.values()
        ):
            notes.append("labels dropped: only some splits have them (y_train, y_val, y_test)")
            parts = {k: (x, None) for k, (x, _) in parts.items()}
        return parts, notes
    if any(k in arrays for k in ("x_val", "x_valid", "x_test")):
        raise DataError(f"{path}: has split arrays but no 'x_train'; add 'x_train'")
    x_key = next((k for k in ("x", "X", "data", "images") if k in arrays), None)
    if x_key is None:
        arrays = {k: a for k, a in arrays.items() if a.dtype.kind not in "US"}  # not names
        if len(arrays) != 1:
            raise DataError(
                f"{path}: cannot tell which array is the data (found {', '.join(arrays)}); "
                "name it 'x' (labels 'y'), or save 'x_train', 'x_val', 'x_test'"
            )
        x_key = next(iter(arrays))
    y_key = next((k for k in ("y", "labels", "targets") if k in arrays and k != x_key), None)
    return {"all": (arrays[x_key], None if y_key is None else arrays[y_key])}, notes


def _unknown(name: str, reason: str) -> DataError:
    key = name.lower().replace("_", "-")
    close = [key] if key in DATASETS else difflib.get_close_matches(key, list(DATASETS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return DataError(
        f"{reason}{hint}: known datasets are {', '.join(DATASETS)}; user data must be "
        f"{USER_FORMATS}"
    )


def _text_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the .txt files, the other files) under ``folder``, at any depth, sorted by path; hidden
    files and folders are skipped."""
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )  # fmt: skip
    texts = [p for p in files if p.suffix.lower() == ".txt"]
    return texts, [p for p in files if p.suffix.lower() != ".txt"]


def _load_user_text(path: Path, text: dict[str, Any]) -> Dataset:
    """A user's text: a ``.txt`` file with one example a line, or a folder of ``.txt`` files
    (at any depth, read in sorted path order) whose lines are all examples, as if one file.

    Blank lines are dropped; the lines are split 80/10/10 with a fixed permutation (seed
    :data:`SPLIT_SEED`), like other user data; the tokenizer (``word`` unless ``tokenizer`` says
    otherwise) learns from the training lines only. ``max_len`` defaults to the longest line's
    tokens + 1, at most :data:`USER_TEXT_MAX_LEN`; longer lines are cut, with a note.
    """
    if path.is_dir():
        files, others = _text_files(path)
        if not files:
            raise DataError(
                f"{path}: folder holds no .txt files; text data is a .txt file (one example a "
                "line) or a folder of .txt files"
            )
        notes = (
            [f"skipped {len(others)} files that are not .txt, e.g. {others[0]}"] if others else []
        )
        kind = f"folder of {len(files)} .txt files, one example a line"
    else:
        files, notes, kind = [path], [], "text file, one example a line"
    texts = [formats.read_text(file) for file in files]
    lines = [line for text in texts for line in _lines(text)]
    if not lines:
        if not any(texts):
            what = "its .txt files are empty" if path.is_dir() else "the file is empty"
        else:
            what = "its .txt files hold" if path.is_dir() else "it holds"
            what += " only blank lines"
        raise DataError(f"{path}: no text: {what}; give one example a line")
    n = len(lines)
    if n < 3:
        raise DataError(f"{path}: only {n} non-blank lines; need at least 3 (train, val and test)")
    n_val = n_test = max(1, n // 10)
    n_train = n - n_val - n_test
    order = _permutation(n)
    parts = {
        "train": [lines[i] for i in order[:n_train]],
        "val": [lines[i] for i in order[n_train : n_train + n_val]],
        "test": [lines[i] for i in order[n_train + n_val :]],
    }
    notes.append(
        f"split with a fixed permutation (seed {SPLIT_SEED}) into {n_train} train / {n_val} val "
        f"/ {n_test} test lines"
    )
    name = str(path.resolve())
    return _line_dataset(
        name, parts, default_kind="word", max_len_cap=USER_TEXT_MAX_LEN, source=name,
        kind=kind, notes=notes, **text,
    )  # fmt: skip


def _molecule_file(path: Path, asked: bool) -> bool:
    """Whether user data at ``path`` is molecules: a ``.smi`` file, a ``.csv`` with a SMILES
    column, or (``asked``, a molecule model's data) any ``.csv``, so that one without the
    column is refused with the columns it has."""
    from dgm.data.molecules import is_molecule_file

    if asked and path.is_file() and path.suffix.lower() == ".csv":
        return True
    return is_molecule_file(path)


def _is_text(path: Path, requested: bool) -> bool:
    """Whether user data at ``path`` is text: a ``.txt`` file, a folder asked to be read as text
    (a ``tokenizer`` or other text option given), or a folder that holds only ``.txt`` files."""
    if path.is_file():
        return path.suffix.lower() == ".txt"
    if requested:
        return True
    texts, others = _text_files(path)
    return bool(texts) and not others


def _is_audio(path: Path, asked: bool) -> bool:
    """Whether user data at ``path`` is audio: a folder asked to be read as audio (an audio
    option given), or a folder that holds ``.wav`` files at any depth."""
    if not path.is_dir():
        return False
    return asked or any(p.suffix.lower() == ".wav" for p in path.rglob("*") if p.is_file())


def _load_user(name: str, text: dict[str, Any] | None = None) -> Dataset:
    path = Path(name).expanduser()
    if not path.exists():
        raise _unknown(name, f"unknown dataset {name!r} (no such name, file or folder)")
    if text is not None:
        return _load_user_text(path, text)
    if path.is_dir():
        folder = formats.read_image_folder(path)
        for note in folder.notes:
            warnings.warn(note, stacklevel=3)
        labelled = folder.y is not None
        return _user_dataset(
            path,
            {"all": (folder.x, folder.y)},
            folder.notes,
            kind="folder of images"
            + (f", {len(folder.classes)} class subfolders" if labelled else ""),
            class_names=folder.classes if labelled else None,
            images=True,
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _user_dataset(path, {"all": (formats.read_npy(path), None)}, [], kind=".npy array")
    if suffix == ".npz":
        arrays = formats.read_npz(path)
        parts, notes = _npz_parts(arrays, path)
        for note in notes:
            warnings.warn(f"{path}: {note}", stacklevel=3)
        names = _npz_names(arrays)
        return _user_dataset(path, parts, notes, kind=".npz archive", class_names=names)
    if suffix == ".csv":
        table = formats.read_csv(path)
        return _user_dataset(
            path,
            {"all": (table.x, table.y)},
            table.notes,
            kind="CSV table",
            class_names=table.classes,
        )
    raise _unknown(name, f"{path}: unsupported file type {suffix or '(no extension)'!r}")


def _load_fsdd(root: Path, **audio: Any) -> Dataset:
    from dgm.data.audio import load_fsdd

    where = f"{FOLDERS['fsdd']}/recordings/"
    if not (root / where).is_dir():
        raise DataError(
            f"fsdd: {where} not found in the data folder {root}; pass {_data_dir_option()} or "
            f"set $DGM_DATA to a folder that holds {where}"
        )
    return load_fsdd(root / FOLDERS["fsdd"], **audio)


def _load_audio(
    name: str,
    path: Path,
    data_dir: str | Path | None,
    audio: dict[str, Any],
    text: dict[str, Any],
    levels: int | None,
    continuous: bool,
) -> Dataset:
    """fsdd or a user's folder of .wav files; text and level options are refused."""
    from dgm.data.audio import load_audio_folder

    if text:
        raise DataError(f"{_text_option_names(text)}: text options, but {name} is audio: drop them")
    if levels is not None or continuous:
        flag = _levels_option() if levels is not None else _continuous_option()
        raise DataError(
            f"{flag} does not apply to audio ({name}): its levels are its encoding; use "
            "--set encoding=mulaw|linear"
        )
    if name in AUDIO_DATASETS:
        ds = _load_fsdd(_locate(name, data_dir), **audio)
    else:
        ds = load_audio_folder(path, seed=SPLIT_SEED, **audio)
    _validate(ds)
    return ds


# --------------------------------------------------------------------------- entry point


def _validate(ds: Dataset) -> None:
    spec = ds.spec
    strict = dataclasses.replace(spec, binarize=False)
    for name in ("train", "val", "test"):
        split = ds.split(name)
        what = f"{spec.name} {name}"
        if spec.binarize and name == "train":
            # probabilities, binarized at every use: check_values skips the level check
            check_values(split.x, spec, what)
            if split.x.numel() and (split.x.min() < 0 or split.x.max() > 1):
                raise DataError(f"{what}: binarize data must be probabilities in [0, 1]")
        else:
            check_values(split.x, strict, what)
        if spec.is_audio:
            if split.lengths is None or split.lengths.shape != (len(split),):
                raise DataError(f"{what}: audio needs the length of every utterance")
            if split.y is not None and split.y.shape != (len(split), 2):
                raise DataError(f"{what}: audio labels must be [N, 2] (label, speaker)")
            continue
        if split.y is None:
            continue
        if spec.properties is not None:  # molecules: [N, P] properties, not labels
            if split.y.shape != (len(split), len(spec.properties)):
                raise DataError(f"{what}: properties of shape {tuple(split.y.shape)}")
            continue
        if split.y.shape != (len(split),):
            raise DataError(f"{what}: {tuple(split.y.shape)} labels for {len(split)} examples")
        k = spec.num_classes
        if k is not None and split.y.numel() and (split.y.min() < 0 or split.y.max() >= k):
            raise DataError(f"{what}: labels outside 0..{k - 1}")


def _value_range(ds: Dataset) -> tuple[float, float, bool]:
    """(min, max, all whole numbers) over every split of ``ds``."""
    xs = [split.x for split in (ds.train, ds.val, ds.test) if split.x.numel()]
    lo = min(float(x.min()) for x in xs)
    hi = max(float(x.max()) for x in xs)
    whole = True
    for x in xs:
        flat = x.reshape(-1)
        for i in range(0, flat.numel(), 1 << 24):  # in chunks: small temporaries
            chunk = flat[i : i + (1 << 24)]
            if (chunk != chunk.round()).any():
                whole = False
                break
    return lo, hi, whole


def _levels_option(k: int | str = "") -> str:
    """The levels override, as the user wrote it (``--data-levels K`` or ``levels=K``)."""
    return option(f"--data-levels {k}".strip(), f"levels={k or 'K'}")


def _continuous_option() -> str:
    return option("--data-continuous", "continuous=True")


def _data_dir_option() -> str:
    return option("--data-dir DIR", "data_dir=DIR")


def set_levels(ds: Dataset, levels: int | None = None, continuous: bool = False) -> Dataset:
    """``ds`` with the user's choice of levels: ``levels`` K (the values must be whole numbers
    0..K-1) or ``continuous`` data; unchanged when neither is given."""
    if levels is None and not continuous:
        return ds
    spec = ds.spec
    if levels is not None and continuous:
        raise DataError(
            f"{_levels_option()} and {_continuous_option()} exclude each other; give one"
        )
    if spec.binarize:
        raise DataError(
            f"{spec.name} is binarized at every use (2 levels); drop {_levels_option()} and "
            f"{_continuous_option()}, or choose data that is not binarized"
        )
    if continuous:
        new = dataclasses.replace(spec, levels=None)
        how = f"set by {_continuous_option()}"
    else:
        if levels < 2:
            raise DataError(f"{_levels_option()} must be >= 2, got {levels}")
        lo, hi, whole = _value_range(ds)
        if not whole or lo < 0:
            what = "values that are not whole numbers" if not whole else "negative values"
            raise DataError(
                f"{_levels_option(levels)}: {spec.name} holds {what} (range {lo:g}..{hi:g}); "
                f"levels are whole numbers 0..{levels - 1}: drop {_levels_option()} for this data"
            )
        if hi > levels - 1:
            raise DataError(
                f"{_levels_option(levels)} is too few: {spec.name} holds values {lo:g}..{hi:g}, "
                f"which need at least {int(hi) + 1} levels"
            )
        new = dataclasses.replace(spec, levels=levels, low=0.0, high=float(levels - 1))
        how = f"set by {_levels_option()}, values {lo:g}..{hi:g} found"
    return dataclasses.replace(ds, spec=new, levels_note=how)


def _text_option_names(given: dict[str, Any]) -> str:
    return ", ".join(option(f"--set {k}", k) for k in given)


def _molecule_options(name: str, text: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The options a molecule loader takes; text options that do not apply are refused."""
    wrong = [k for k in ("tokenizer", "vocab_size", "min_count") if k in given]
    if wrong:
        raise DataError(
            f"{_text_option_names({k: 1 for k in wrong})}: {name} is molecules, whose tokens "
            "are SMILES tokens or SELFIES symbols: use --set representation=smiles|selfies"
        )
    tok = text["tokenizer"]
    return {
        "representation": text["representation"],
        "tokenizer": tok if isinstance(tok, TextTokenizer) else None,
        "max_len": text["max_len"],
        "properties": text["properties"],
    }


def load_dataset(
    name_or_path: str | Path,
    data_dir: str | Path | None = None,
    *,
    levels: int | None = None,
    continuous: bool = False,
    tokenizer: str | TextTokenizer | None = None,
    vocab_size: int | None = None,
    min_count: int | None = None,
    max_len: int | None = None,
    representation: str | None = None,
    properties: str | Sequence[str] | None = None,
    molecules: bool = False,
    sample_rate: int | None = None,
    encoding: str | None = None,
    crop: int | None = None,
) -> Dataset:
    """Load a named dataset (see :data:`DATASETS`) or user data from a path.

    Named datasets are read from the first of :func:`data_roots` that holds them
    (``data_dir``, ``$DGM_DATA``, ``../shared/data`` next to a source checkout, the per-user
    data folder). User data is a folder of images (class subfolders give labels and class
    names), a ``.npy``/``.npz`` array, a ``.csv`` table, or text: a ``.txt`` file (one example a
    line) or a folder of ``.txt`` files; it is split 80/10/10 with a fixed permutation unless
    an ``.npz`` holds ``x_train``/``x_val``/``x_test``. Its levels are inferred from the values
    (see ``_levels``); ``levels`` or ``continuous`` overrides them, for named datasets too (see
    :func:`set_levels`).

    Text (``ptb``, ``tinyshakespeare``, user text) takes ``tokenizer`` (word | char | bpe, or a
    trained :class:`~dgm.data.text.TextTokenizer`, a run's own, used as it is),
    ``vocab_size`` and ``min_count`` (for the tokenizer learnt on the training split) and
    ``max_len`` (tokens per example, the end token included). A run's tokenizer is ignored
    by data that is not text; the other text options are refused there.

    Molecules (``qm9``, ``zinc250k``, ``moses``, a ``.smi`` file or a ``.csv`` with a SMILES
    column; :mod:`dgm.data.molecules`) take ``representation`` (smiles | selfies),
    ``max_len`` and ``properties`` (names, read into ``y``). ``molecules=True``: the caller
    models molecules, so data that is not molecules is refused with what was found.

    Audio (``fsdd``, a folder of ``.wav`` files; :mod:`dgm.data.audio`) takes ``sample_rate``
    (resample every file to it), ``encoding`` (mulaw | linear) and ``crop`` (samples per
    training crop).
    """
    name = str(name_or_path)
    reuse = isinstance(tokenizer, TextTokenizer)
    given = text_options(
        {"tokenizer": None if reuse else tokenizer, "vocab_size": vocab_size,
         "min_count": min_count, "max_len": max_len, "representation": representation,
         "properties": properties}
    )  # fmt: skip
    text: dict[str, Any] = {
        "tokenizer": tokenizer if reuse else given.get("tokenizer"),
        "vocab_size": given.get("vocab_size"),
        "min_count": given.get("min_count"),
        "max_len": given.get("max_len"),
        "representation": given.get("representation"),
        "properties": given.get("properties"),
    }
    path = Path(name).expanduser()
    user = name not in DATASETS and path.exists()
    audio = {
        k: v
        for k, v in (("sample_rate", sample_rate), ("encoding", encoding), ("crop", crop))
        if v is not None
    }
    if name in AUDIO_DATASETS or (user and _is_audio(path, bool(audio))):
        return _load_audio(name, path, data_dir, audio, given, levels, continuous)
    if audio and (name in DATASETS or path.exists()):
        raise DataError(
            f"{', '.join(option(f'--set {k}', k) for k in audio)}: audio options, but {name} is "
            f"not audio (audio is {', '.join(AUDIO_DATASETS)} or a folder of .wav files): drop them"
        )
    is_molecules = name in MOLECULE_DATASETS or (user and _molecule_file(path, molecules))
    if molecules and not is_molecules:
        what = "a folder" if path.is_dir() else f"a {path.suffix or 'file'} file"
        raise DataError(
            f"{name} is not molecules ({what if user else 'a dataset of other data'}); "
            f"molecules are {', '.join(MOLECULE_DATASETS)}, a .smi file (one SMILES a line) "
            "or a .csv with a SMILES column"
        )
    if not is_molecules:
        mol_given = [k for k in ("representation", "properties") if k in given]
        if mol_given and (name in DATASETS or path.exists()):
            raise DataError(
                f"{_text_option_names({k: 1 for k in mol_given})}: molecule options, but {name} "
                f"is not molecules ({', '.join(MOLECULE_DATASETS)}, a .smi file or a .csv with a "
                "SMILES column): drop them"
            )
        for key in ("representation", "properties"):
            given.pop(key, None)
            text.pop(key)
    is_text = (
        is_molecules
        or name in TEXT_DATASETS
        or (user and _is_text(path, bool(given) and not reuse))
    )
    if not is_text and given and not reuse and (name in DATASETS or path.exists()):
        raise DataError(
            f"{_text_option_names(given)}: text options, but {name} is not text (text is "
            f"{', '.join(TEXT_DATASETS)}, a .txt file or a folder of .txt files): drop them"
        )
    if is_text and (levels is not None or continuous):
        flag = _levels_option() if levels is not None else _continuous_option()
        raise DataError(
            f"{flag} does not apply to text ({name}): its levels are its vocabulary; drop it"
        )
    if is_molecules:
        options = _molecule_options(name, text, given)
        if name in DATASETS:
            ds = DATASETS[name][1](_locate(name, data_dir), **options)
        else:
            from dgm.data.molecules import load_user_molecules

            ds = load_user_molecules(path, SPLIT_SEED, **options)
    elif name in DATASETS:
        _, loader = DATASETS[name]
        root = _locate(name, data_dir)
        ds = loader(root, **text) if name in TEXT_DATASETS else loader(root)
    else:
        ds = _load_user(name, text if is_text else None)
    _validate(ds)
    return set_levels(ds, levels, continuous)
