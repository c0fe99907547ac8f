"""Readers of public data file formats, returning numpy arrays.

Every reader validates what it reads and raises :class:`~dgm.errors.DataError` with one line that
names the file, says what is wrong and how to fix it. None of them prints; problems that do not stop
reading (a non-image file in an image folder) are returned to the caller as a list of strings.
User files are never unpickled (``allow_pickle=False`` everywhere).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import math
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dgm.errors import DataError

__all__ = [
    "ImageFolder",
    "Table",
    "check_array",
    "read_amat",
    "read_csv",
    "read_idx",
    "read_image_folder",
    "read_mat",
    "read_npy",
    "read_npz",
    "read_text",
]

# IDX type codes (LeCun's format description): code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_LABEL_COLUMNS = ("label", "y", "class", "target")
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float
# .npz arrays that may hold class names (strings, label i's name at i) beside the data
NAME_KEYS = ("class_names", "classes", "label_names", "names")


class Table(NamedTuple):
    """A numeric table: ``x`` (N, D) float64, ``y`` (N,) int64 or None, notes for the user, and
    the class names when the label column holds names (``classes[i]`` is label ``i``)."""

    x: np.ndarray
    y: np.ndarray | None
    notes: list[str]
    classes: list[str] | None = None


class ImageFolder(NamedTuple):
    """Images ``x`` (N, C, H, W) uint8, labels ``y`` or None, class names and skipped-file notes."""

    x: np.ndarray
    y: np.ndarray | None
    classes: list[str]
    notes: list[str]


# --------------------------------------------------------------------------- helpers


def _existing_file(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise DataError(f"{path}: is a folder, not a file; name a file inside it")
    return path


def check_array(a: np.ndarray, path: str | Path, what: str = "array") -> np.ndarray:
    """Reject non-numeric dtypes and NaN/inf values; return ``a`` unchanged."""
    if a.dtype.kind not in _NUMERIC_KINDS:
        raise DataError(
            f"{path}: {what} has dtype {a.dtype}, not numbers; save a numeric (bool, int or float) "
            "array"
        )
    if a.dtype.kind == "f":
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise DataError(
                f"{path}: {what} holds {bad} NaN or infinite values; clean or drop them"
            )
    return a


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _first_bad_cell(
    lines: Sequence[Sequence[str]], first_line: int, header: Sequence[str] | None
) -> str | None:
    """Describe the first non-numeric cell or ragged row (slow; only used after a failed parse)."""
    width = None
    for i, row in enumerate(lines):
        if not row or all(not c.strip() for c in row):
            continue  # blank lines are skipped by the fast parser too
        for j, cell in enumerate(row):
            if not _is_number(cell):
                col = f"column {j + 1}"
                if header is not None and j < len(header):
                    col += f" ({header[j]!r})"
                hint = " (is the file comma-separated?)" if (";" in cell or "\t" in cell) else ""
                return f"line {first_line + i}, {col} holds {cell!r}, not a number{hint}"
        if width is None:
            width = len(row)
        elif len(row) != width:
            return f"line {first_line + i} has {len(row)} values, earlier lines have {width}"
    return None


# --------------------------------------------------------------------------- IDX


def _read_bytes_maybe_gzip(path: Path) -> bytes:
    with path.open("rb") as f:
        head = f.read(2)
    try:
        if head == _GZIP_MAGIC:  # detect by content: a user's copy may be named either way
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path}: corrupt or truncated gzip file ({e}); download or decompress it again"
        ) from e


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not), the format of MNIST (LeCun et al. 1998).

    Layout: two zero bytes, a type code, the number of dimensions, one big-endian int32 per
    dimension, then the data in C order.
    """
    path = _existing_file(path)
    data = _read_bytes_maybe_gzip(path)
    fix = "this is not an IDX file, or it is damaged; download it again"
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header; {fix}")
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{magic:08X} (expected 0x0000TTNN with type TT in "
            f"{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)} and NN >= 1 dimensions); {fix}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header for {ndim} dimensions is truncated; {fix}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has extra bytes"
        raise DataError(
            f"{path}: IDX file {what}: header says shape {dims} ({expected} data bytes) but the "
            f"file holds {got}; download it again"
        )
    # astype to the native byte order copies, so the result is writable (torch.from_numpy)
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    arr = arr.astype(dtype.newbyteorder("="))
    return check_array(arr, path, "IDX data")


# --------------------------------------------------------------------------- text tables


def read_amat(path: str | Path) -> np.ndarray:
    """Read a whitespace-separated text matrix, one example per line (``.amat``).

    This is the format of the statically binarized MNIST of Larochelle & Murray (2011).
    """
    path = _existing_file(path)
    try:
        # numpy >= 1.23 parses text in C: 50,000 x 784 takes about a second
        arr = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=None)
    except (ValueError, UnicodeDecodeError) as e:
        where = None
        if isinstance(e, ValueError):
            with path.open(encoding="utf-8", errors="replace") as f:
                where = _first_bad_cell([line.split() for line in f], 1, None)
        raise DataError(
            f"{path}: not a numeric text matrix: {where or e}; each line must hold the same "
            "number of space-separated numbers"
        ) from e
    if arr.size == 0:
        raise DataError(f"{path}: file holds no numbers; expected one example per line")
    return check_array(arr, path, "matrix")


def _csv_header(path: Path) -> list[str] | None:
    """The first row if it is a header (no cell parses as a number), else None."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            first = next((row for row in csv.reader(f) if row), None)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e}); save it as a CSV text") from e
    if first is None:
        raise DataError(f"{path}: CSV file is empty; expected a numeric table")
    if any(_is_number(c) for c in first):
        return None
    return [c.strip() for c in first]


def _parse_labels(
    raw: np.ndarray, path: Path, column: str
) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Integer labels as they are, or class names mapped to their sorted index (and the names)."""
    raw = np.char.strip(raw.astype(str))
    try:
        values = raw.astype(np.float64)
    except ValueError:
        names, y = np.unique(raw, return_inverse=True)
        shown = ", ".join(f"{n}={i}" for i, n in enumerate(names[:10]))
        more = ", ..." if len(names) > 10 else ""
        note = f"{path}: labels in column {column!r} are names, mapped to {shown}{more}"
        return y.astype(np.int64).reshape(-1), [note], [str(n) for n in names]
    if not np.isfinite(values).all() or (values != np.round(values)).any() or (values < 0).any():
        raise DataError(
            f"{path}: label column {column!r} must hold whole numbers >= 0 (or class names)"
        )
    return values.astype(np.int64), [], None


def read_csv(path: str | Path) -> Table:
    """Read a numeric CSV table with an optional header row.

    A header row is recognised when none of its cells is a number. A column named ``label``,
    ``y``, ``class`` or ``target`` (any case) becomes the labels; every other column is a feature.
    """
    path = _existing_file(path)
    header = _csv_header(path)
    label_col = None
    if header is not None:
        matches = [j for j, h in enumerate(header) if h.lower() in _LABEL_COLUMNS]
        label_col = matches[0] if matches else None
    n_cols = len(header) if header is not None else None
    usecols = None
    if label_col is not None and n_cols is not None:
        usecols = [j for j in range(n_cols) if j != label_col]
        if not usecols:
            raise DataError(f"{path}: CSV holds only a label column; add feature columns")
    skip = 1 if header is not None else 0
    kw = dict(delimiter=",", quotechar='"', skiprows=skip, comments=None, encoding="utf-8-sig")
    try:
        x = np.loadtxt(path, dtype=np.float64, ndmin=2, usecols=usecols, **kw)
    except ValueError as e:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))[skip:]
        if label_col is not None:  # the label column may hold names; check the others only
            rows = [[c for j, c in enumerate(r) if j != label_col] for r in rows]
            shown = [h for j, h in enumerate(header or []) if j != label_col]
        else:
            shown = header
        where = _first_bad_cell(rows, 1 + skip, shown)
        raise DataError(f"{path}: {where or e}; the table must be numeric") from e
    if x.size == 0:
        raise DataError(f"{path}: CSV file has no data rows; expected a numeric table")
    if n_cols is not None and usecols is None and x.shape[1] != n_cols:
        raise DataError(
            f"{path}: header has {n_cols} columns but the rows have {x.shape[1]}; fix the header"
        )
    check_array(x, path, "table")
    y, notes, classes = None, [], None
    if label_col is not None:
        raw = np.loadtxt(path, dtype=str, ndmin=1, usecols=[label_col], **kw)
        y, notes, classes = _parse_labels(raw, path, header[label_col])
    return Table(x, y, notes, classes)


# --------------------------------------------------------------------------- binary arrays


def read_mat(path: str | Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read numeric variables ``keys`` from a MATLAB v5 ``.mat`` file (``scipy.io.loadmat``)."""
    import scipy.io

    path = _existing_file(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=list(keys))
    except NotImplementedError as e:  # scipy raises this for HDF5-based v7.3 files
        raise DataError(
            f"{path}: MATLAB v7.3 files are not supported; re-save with save(..., '-v7')"
        ) from e
    except Exception as e:  # scipy raises many types on damaged input; all mean "unreadable"
        raise DataError(
            f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e}); check the file"
        ) from e
    out = {}
    for key in keys:
        if key not in mat:
            present = ", ".join(k for k in mat if not k.startswith("__")) or "none of them"
            # listing the variables is only a courtesy for the message: never fail on it
            with contextlib.suppress(Exception):
                present = ", ".join(name for name, _, _ in scipy.io.whosmat(path)) or present
            raise DataError(
                f"{path}: variable {key!r} not found (the file holds: {present}); is this the "
                "right file?"
            )
        a = mat[key]
        if not isinstance(a, np.ndarray):
            raise DataError(f"{path}: variable {key!r} is not an array; is this the right file?")
        out[key] = check_array(a, path, f"variable {key!r}")
    return out


def read_mat_names(path: str | Path, key: str) -> list[str] | None:
    """The strings of a MATLAB cell array ``key`` (class names), or None when the file has no
    such variable or it holds something else."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(_existing_file(path), variable_names=[key])
    except Exception:  # the names are optional: an unreadable file fails in read_mat instead
        return None
    cells = mat.get(key)
    if not isinstance(cells, np.ndarray) or cells.dtype != object:
        return None
    names = []
    for cell in cells.reshape(-1):
        flat = np.asarray(cell).reshape(-1)
        if flat.size != 1 or flat.dtype.kind not in "US":
            return None
        names.append(str(flat[0]))
    return names


_PICKLE_FIX = (
    "refusing to unpickle a user file for safety; save a numeric array, e.g. "
    "np.save(path, x.astype(np.float32))"
)


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with entries, an empty zip


def _expect_magic(path: Path, magics: tuple[bytes, ...], what: str, saver: str) -> None:
    """Check the first bytes, so that numpy never guesses (it would try pickle on anything)."""
    with path.open("rb") as f:
        head = f.read(8)
    if any(head.startswith(m) for m in magics):
        return
    if head.startswith(_NPY_MAGIC):
        fix = "it is an .npy array: rename it to .npy"
    elif any(head.startswith(m) for m in _ZIP_MAGICS):
        fix = "it is a zip (.npz) archive: rename it to .npz"
    elif head[:1] == b"\x80":
        fix = f"it is a Python pickle, never loaded for safety: save a numeric array with {saver}"
    else:
        fix = f"save the data with {saver}"
    raise DataError(f"{path}: not an {what}; {fix}")


def read_npy(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` array without ever unpickling it."""
    path = _existing_file(path)
    _expect_magic(path, (_NPY_MAGIC,), ".npy array", "np.save")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise DataError(f"{path}: holds pickled Python objects; {_PICKLE_FIX}") from e
        raise DataError(f"{path}: not a readable .npy file ({e}); save it with np.save") from e
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e}); save it with np.save") from e
    return check_array(arr, path)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of a ``.npz`` archive without ever unpickling it."""
    path = _existing_file(path)
    _expect_magic(path, _ZIP_MAGICS, ".npz archive", "np.savez")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}); save it with np.savez") from e
    out = {}
    with z:
        for key in z.files:
            try:
                a = z[key]
            except ValueError as e:
                raise DataError(
                    f"{path}: array {key!r} holds Python objects (dtype=object); {_PICKLE_FIX}"
                ) from e
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise DataError(
                    f"{path}: array {key!r} is damaged ({e}); save the archive again"
                ) from e
            if key in NAME_KEYS and a.ndim == 1 and a.dtype.kind in "US":
                out[key] = a  # class names: text, checked by whoever uses them
                continue
            out[key] = check_array(a, path, f"array {key!r}")
    if not out:
        raise DataError(f"{path}: archive holds no arrays; save your data with np.savez")
    return out


# --------------------------------------------------------------------------- text


def read_text(path: str | Path) -> str:
    """A UTF-8 text file's contents (a leading byte-order mark dropped, line ends as written).

    A file that is not valid UTF-8, or holds NUL bytes (a binary file posing as text), is
    refused with the byte offset of the first bad byte.
    """
    path = _existing_file(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not valid UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "is it a binary file? save text as UTF-8"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        offset = len(text[:nul].encode("utf-8"))
        raise DataError(
            f"{path}: holds a NUL byte at offset {offset}: a binary file, not text; save text "
            "as UTF-8"
        )
    return text.removeprefix("\ufeff")


# --------------------------------------------------------------------------- images

_GRAY_MODES = frozenset({"1", "L", "LA", "La"})


def _visible(paths: list[Path]) -> list[Path]:
    # hidden entries (.DS_Store, .ipynb_checkpoints) are never data: skip them silently
    return sorted(p for p in paths if not p.name.startswith("."))


def read_image_folder(path: str | Path) -> ImageFolder:
    """Read a folder of images with Pillow, flat or with one subfolder per class.

    With class subfolders, labels are the index of the subfolder in sorted order. Files Pillow
    cannot read are skipped and reported in ``notes``. All images must have one size; if any image
    has colour, all become RGB (3 channels), else grayscale (1 channel). Alpha is dropped.
    """
    from PIL import Image

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; name a folder of images")
    entries = _visible(list(root.iterdir()))
    subdirs = [p for p in entries if p.is_dir()]
    notes: list[str] = []
    classes = [d.name for d in subdirs]
    if subdirs:
        files: list[tuple[Path, int]] = []
        for label, d in enumerate(subdirs):
            inner = _visible(list(d.iterdir()))
            nested = [p for p in inner if p.is_dir()]
            notes += [f"skipped {p}: folders inside class folders are not read" for p in nested]
            found = [(p, label) for p in inner if p.is_file()]
            if not found:
                notes.append(f"class folder {d} holds no files")
            files += found
        notes += [f"skipped {p}: not inside a class folder" for p in entries if p.is_file()]
    else:
        files = [(p, -1) for p in entries if p.is_file()]
    if not files:
        raise DataError(f"{root}: folder holds no image files; put images (png, jpg, ...) in it")

    images, labels, first = [], [], None
    for file, label in files:
        try:
            with Image.open(file) as im:
                size = im.size
                if first is not None and size != first[1]:
                    raise DataError(
                        f"{root}: images differ in size: {first[0]} is {first[1][0]}x"
                        f"{first[1][1]} but {file} is {size[0]}x{size[1]} (width x height); "
                        "resize them to one size"
                    )
                im.load()
                gray = im.mode in _GRAY_MODES
                arr = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8)
        except DataError:
            raise
        except Exception as e:  # Pillow raises many types on non-images and damaged files
            notes.append(f"skipped {file}: not an image Pillow can read ({type(e).__name__})")
            continue
        if first is None:
            first = (file, size)
        images.append(arr)
        labels.append(label)
    if not images:
        raise DataError(f"{root}: none of its {len(files)} files is a readable image")

    if any(a.ndim == 3 for a in images):  # any colour image: make every image RGB
        images = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in images]
        x = np.stack(images).transpose(0, 3, 1, 2)
    else:
        x = np.stack(images)[:, None]
    y = np.asarray(labels, dtype=np.int64) if subdirs else None
    return ImageFolder(np.ascontiguousarray(x), y, classes, notes=notes)
