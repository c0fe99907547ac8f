"""Waveforms as data: mono utterances read from ``.wav`` files, quantised to levels.

An utterance becomes levels one of two ways (``encoding``): 8-bit mu-law companding, 256
levels spaced finely near silence and coarsely at loud amplitudes (ITU-T G.711; the input of
van den Oord et al. 2016, "WaveNet: A generative model for raw audio"), or linear 16-bit,
65536 evenly spaced levels (PCM as stored). Each split holds whole utterances, ``x`` ``[N, L]``
padded after each one's ``lengths`` with the level of silence; models train on crops of
``spec.shape[0]`` samples (``crop``, default half a second).

Files are read with :mod:`scipy.io.wavfile` (8-bit unsigned, 16-, 24- and 32-bit PCM, 32- and
64-bit float); channels are averaged to mono, and a rate other than the one asked for is
changed with a polyphase filter (:func:`scipy.signal.resample_poly`).

Datasets: ``fsdd`` (the Free Spoken Digit Dataset, Jackson et al. 2018: 3,000 recordings of
the digits 0-9 by 6 speakers at 8 kHz, ``recordings/{digit}_{speaker}_{take}.wav``; takes 0-4
are its official test set) and a user's folder of ``.wav`` files (labels from class
subfolders or FSDD-style names).
"""

from __future__ import annotations

import math
import re
import struct
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.io import wavfile
from torch import Tensor

from dgm import progress
from dgm.data.base import Dataset, DataSpec, Split
from dgm.errors import ConfigError, DataError, setting

ENCODINGS = ("mulaw", "linear")
LEVELS = {"mulaw": 256, "linear": 65536}
LEVELS_NOTE = {"mulaw": "8-bit mu-law", "linear": "linear 16-bit"}
AUDIO_OPTIONS = ("sample_rate", "encoding", "crop")
MIN_RATE, MAX_RATE = 1000, 192_000  # samples per second a sample_rate option may ask for
FSDD_RATE = 8000
FSDD_TEST_TAKES = range(0, 5)  # the official split (the dataset's README): takes 0-4 are test
FSDD_VAL_TAKES = range(5, 10)  # the next five takes validate; takes 10 and on train
USER_SPLIT_SEED = 0
_FSDD_NAME = re.compile(r"([^_]+)_([^_]+)_([0-9]+)", re.ASCII)
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


# ----------------------------------------------------------------------------- levels


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ConfigError(f"unknown audio encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")


def mu_law_encode(x: Tensor | np.ndarray, levels: int = 256) -> Tensor:
    """Amplitudes in [-1, 1] (clamped) -> float32 levels ``0..levels-1``: WaveNet's companding
    ``f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)``, ``mu = levels - 1``, rounded to the nearest
    of ``levels`` even steps of ``f``."""
    mu = levels - 1
    # float64: the rounding must not depend on the input's precision
    x = torch.as_tensor(x).to(torch.float64).clamp(-1.0, 1.0)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu + 0.5).to(torch.float32)


def mu_law_decode(q: Tensor | np.ndarray, levels: int = 256) -> Tensor:
    """Levels -> amplitudes, the inverse of :func:`mu_law_encode` at each level's centre:
    ``y = 2 q / mu - 1``, ``x = sign(y) ((1 + mu)^|y| - 1) / mu``; float32."""
    mu = levels - 1
    y = 2 * torch.as_tensor(q).to(torch.float64) / mu - 1
    x = torch.sign(y) * (torch.pow(1.0 + mu, y.abs()) - 1) / mu
    return x.to(torch.float32)


def linear_encode(x: Tensor | np.ndarray, levels: int = 65536) -> Tensor:
    """Amplitudes in [-1, 1] (clamped) -> float32 levels ``0..levels-1``, evenly spaced."""
    x = torch.as_tensor(x).to(torch.float64).clamp(-1.0, 1.0)
    return torch.floor((x + 1) / 2 * (levels - 1) + 0.5).to(torch.float32)


def linear_decode(q: Tensor | np.ndarray, levels: int = 65536) -> Tensor:
    """Levels -> amplitudes: level ``q`` is ``2 q / (levels - 1) - 1``; float32."""
    q = torch.as_tensor(q).to(torch.float64)
    return (2 * q / (levels - 1) - 1).to(torch.float32)


def encode(x: Tensor | np.ndarray, encoding: str = "mulaw", levels: int | None = None) -> Tensor:
    """Amplitudes -> levels by ``encoding`` (mulaw | linear); ``levels`` defaults to
    :data:`LEVELS` of it."""
    _check_encoding(encoding)
    levels = levels or LEVELS[encoding]
    return mu_law_encode(x, levels) if encoding == "mulaw" else linear_encode(x, levels)


def decode(q: Tensor | np.ndarray, encoding: str = "mulaw", levels: int | None = None) -> Tensor:
    """Levels -> amplitudes by ``encoding`` (mulaw | linear), the inverse of :func:`encode`."""
    _check_encoding(encoding)
    levels = levels or LEVELS[encoding]
    return mu_law_decode(q, levels) if encoding == "mulaw" else linear_decode(q, levels)


def silence_level(encoding: str = "mulaw", levels: int | None = None) -> int:
    """The level of amplitude 0 (what pads an utterance): 128 of mu-law's 256, 32768 of
    linear's 65536."""
    return int(encode(torch.zeros(1), encoding, levels).item())


# ----------------------------------------------------------------------------- files


def _missing_bytes(path: Path) -> int:
    """How many bytes of samples the data chunk's header promises beyond the end of the file: 0
    for a whole file, and where the header cannot say (not RIFF/RIFX, RF64, a streamed size, no
    data chunk found), as scipy then reads what it can and reports what it cannot."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return 0
        order = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            length = struct.unpack(order + "I", chunk[4:])[0]
            if chunk[:4] == b"data":
                return 0 if length == 0xFFFFFFFF else max(0, pos + 8 + length - size)
            pos += 8 + length + (length & 1)  # chunks are padded to an even length
    return 0


def _read(path: Path) -> tuple[np.ndarray, int, int, int]:
    """(mono float32 samples, rate, channels in the file, samples clipped to [-1, 1])."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path} holds no samples; remove it")
        missing = _missing_bytes(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    # scipy reads a cut data chunk without a word (np.fromfile stops at the end of the file):
    # the header's promise is the only sign, so it is checked before reading
    if missing:
        raise DataError(
            f"{path} is truncated ({missing} bytes of samples missing): re-export it as PCM or "
            "float wav"
        )
    try:
        with warnings.catch_warnings():
            # unknown chunks (LIST, cue, broadcast extensions) are metadata, not a problem
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except UnboundLocalError:  # scipy found no data chunk to read
        raise DataError(
            f"{path} is not a readable wav file (no data chunk): re-export it as PCM or float wav"
        ) from None
    except (ValueError, EOFError, struct.error, IndexError, TypeError, ZeroDivisionError) as e:
        # what a damaged header makes scipy raise (a zero block size divides by zero)
        detail = " ".join(str(e).split()) or type(e).__name__
        raise DataError(
            f"{path} is not a readable wav file ({detail}): re-export it as PCM or float wav"
        ) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    channels = 1 if data.ndim == 1 else data.shape[1]
    if data.size == 0:
        raise DataError(f"{path} holds no samples; remove it")
    kind = data.dtype.kind
    if kind not in "uif":
        raise DataError(f"{path} holds {data.dtype} samples: re-export it as PCM or float wav")
    with np.errstate(all="ignore"):  # damaged float samples: the finite check below says so
        if kind == "u":  # 8-bit PCM is unsigned, centred at 128
            x = (data.astype(np.float64) - 128) / 128
        elif kind == "i":  # 16-bit; 24- and 32-bit come back as int32, 64-bit ones as int64
            x = data.astype(np.float64) / 2.0 ** (8 * data.dtype.itemsize - 1)
        else:
            x = data.astype(np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)  # downmix: the average of the channels
    if not np.isfinite(x).all():
        raise DataError(f"{path} holds NaN or infinite samples; re-export it")
    clipped = int((np.abs(x) > 1).sum())
    return np.clip(x, -1, 1).astype(np.float32), int(rate), channels, clipped


def read_wav(path: Path) -> tuple[np.ndarray, int, list[str]]:
    """A ``.wav`` file's samples as mono float32 in [-1, 1], its sample rate and notes (channels
    averaged, float samples clipped); a :class:`DataError` for an empty, corrupt or truncated
    file."""
    x, rate, channels, clipped = _read(path)
    notes = []
    if channels > 1:
        notes.append(f"{path}: {channels} channels, downmixed to mono")
    if clipped:
        notes.append(f"{path}: {clipped} samples outside [-1, 1], clipped")
    return x, rate, notes


def write_wav(path: Path, x: Tensor | np.ndarray, rate: int) -> None:
    """Amplitudes in [-1, 1] (clipped) -> a 16-bit PCM mono ``.wav`` file, written atomically."""
    from dgm.io import atomic_write  # the layer below; imported here as the other readers do

    a = np.asarray(torch.as_tensor(x).detach().cpu().to(torch.float64)).reshape(-1)
    # x 32768 (not 32767) so that reading back (/ 32768) is within half a step; 1.0 clips
    pcm = np.clip(np.round(a * 32768), -32768, 32767).astype("<i2")
    with atomic_write(Path(path), "wb") as f:
        wavfile.write(f, int(rate), pcm)


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``x`` at ``from_rate`` -> at ``to_rate`` samples per second with a polyphase filter
    (:func:`scipy.signal.resample_poly`, its Kaiser-windowed low-pass); float32."""
    x = np.asarray(x, dtype=np.float32)
    if from_rate == to_rate:
        return x
    from scipy.signal import resample_poly  # a heavy import, only when rates differ

    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(x, int(to_rate) // g, int(from_rate) // g).astype(np.float32)


def check_rate(found: int, wanted: int, what: str, fix: str | None = None) -> None:
    """A :class:`DataError` when ``what`` (at ``found`` Hz) is not at the model's ``wanted``
    rate, saying how to resample it (``fix``, default: add ``--set sample_rate=WANTED``)."""
    if found != wanted:
        fix = fix or f"add {setting('sample_rate', str(wanted))} to resample it"
        raise DataError(f"{what} is at {found} Hz but the model runs at {wanted} Hz: {fix}")


def parse_name(stem: str) -> tuple[str | None, str | None]:
    """(label, speaker) of an FSDD-style name ``{digit}_{speaker}_{take}``: exactly three
    non-empty parts joined by ``_``, the last a whole number; else (None, None)."""
    m = _FSDD_NAME.fullmatch(stem)
    return (m[1], m[2]) if m else (None, None)


def _take(stem: str) -> int | None:
    m = _FSDD_NAME.fullmatch(stem)
    return int(m[3]) if m else None


@dataclass
class Recordings:
    """Utterances read from files, at one rate, with what their paths say about them."""

    waves: list[np.ndarray]  # float32 mono in [-1, 1], at ``rate``
    rate: int
    paths: list[Path]
    labels: list[str | None]
    speakers: list[str | None]
    takes: list[int | None]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.waves)


def _files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the .wav files, the other files) under ``folder``, at any depth, sorted by relative
    path; hidden files and folders (.DS_Store, macOS's ._x.wav) are skipped silently."""
    files = sorted(
        (p for p in folder.rglob("*")
         if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts)),
        key=lambda p: p.relative_to(folder).parts,
    )  # fmt: skip
    waves = [p for p in files if p.suffix.lower() == ".wav"]
    return waves, [p for p in files if p.suffix.lower() != ".wav"]


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _rates_text(rates: Counter[int]) -> str:
    parts = [f"{r} Hz ({_count(n, 'file')})" for r, n in sorted(rates.items())]
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]


def _check_sample_rate(sample_rate: Any) -> int:
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int | np.integer)
        or not MIN_RATE <= sample_rate <= MAX_RATE
    ):
        raise ConfigError(
            f"sample_rate must be a whole number of samples per second in {MIN_RATE}..{MAX_RATE},"
            f" got {sample_rate!r}"
        )
    return int(sample_rate)


def read_folder(path: Path, sample_rate: int | None = None) -> Recordings:
    """Every ``.wav`` file under ``path`` (any depth, any case of suffix), sorted by relative path.

    A file directly inside a subfolder (``path/<class>/x.wav``) is labelled by the subfolder's
    name; otherwise an FSDD-style name gives its label; the name gives speaker and take either
    way. Without ``sample_rate`` every file must have one rate; with it, files at another rate
    are resampled (:func:`resample`), with a note.
    """
    path = Path(path)
    if sample_rate is not None:
        sample_rate = _check_sample_rate(sample_rate)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise DataError(f"{path} {what}: give a folder of .wav files")
    files, others = _files(path)
    if not files:
        raise DataError(
            f"no .wav files in {path} (skipped {_count(len(others), 'other file')}): give a "
            "folder of .wav files"
        )
    notes = []
    if others:
        notes.append(f"skipped {_count(len(others), 'file')} that are not .wav, e.g. {others[0]}")
    waves, rates, downmixed, clipped = [], [], 0, 0
    for file in progress.track(files, "reading wav files", total=len(files), unit="files"):
        x, rate, channels, cut = _read(file)
        waves.append(x)
        rates.append(rate)
        downmixed += channels > 1
        clipped += cut
    if downmixed:
        notes.append(f"downmixed {_count(downmixed, 'multi-channel file')} to mono (their mean)")
    if clipped:
        notes.append(f"clipped {clipped} float samples outside [-1, 1]")
    found = Counter(rates)
    if sample_rate is None:
        if len(found) > 1:
            raise DataError(
                f"{path} holds wav files at {_rates_text(found)}: resample them to one rate with "
                f"{setting('sample_rate', 'R')}"
            )
        rate = rates[0]
    else:
        rate = sample_rate
        moved = Counter(r for r in rates if r != rate)
        if moved:
            waves = [resample(x, r, rate) for x, r in zip(waves, rates)]
            sources = " and ".join(f"{r} Hz" for r in sorted(moved))
            notes.append(
                f"resampled {_count(sum(moved.values()), 'file')} from {sources} to {rate} Hz "
                "(polyphase filter)"
            )
    labels, speakers, takes = [], [], []
    for file in files:
        label, speaker = parse_name(file.stem)
        if len(file.relative_to(path).parts) == 2:  # directly in a class folder
            label = file.parent.name
        labels.append(label)
        speakers.append(speaker)
        takes.append(_take(file.stem))
    return Recordings(waves, rate, files, labels, speakers, takes, notes)


# ----------------------------------------------------------------------------- datasets


def _names(values: list[str | None]) -> tuple[str, ...] | None:
    """The distinct names, sorted (as numbers when all are whole numbers); None when none."""
    found = {v for v in values if v is not None}
    if not found:
        return None
    if all(_INTEGER.fullmatch(v) for v in found):
        return tuple(sorted(found, key=int))
    return tuple(sorted(found))


def check_crop(crop: Any) -> int:
    """``crop`` (training crops' length in samples) as a whole number >= 2, else ConfigError."""
    if isinstance(crop, bool) or not isinstance(crop, int | np.integer) or crop < 2:
        raise ConfigError(f"crop must be a whole number of samples >= 2, got {crop!r}")
    return int(crop)


def build_dataset(
    name: str,
    splits: dict[str, list[int]],
    rec: Recordings,
    *,
    encoding: str = "mulaw",
    crop: int | None = None,
    source: str = "",
    kind: str = "",
) -> Dataset:
    """The :class:`Dataset` of ``rec``'s utterances chosen for each split (``splits``: train,
    val, test -> indices into ``rec``; val may be empty, train and test may not).

    Each split's ``x`` is ``[N, L_max]`` float32 levels of ``encoding``, padded after each
    utterance with the level of silence; ``lengths`` ``[N]``; ``y`` ``[N, 2]`` (label index,
    speaker index; -1 where a file has none) or None when no file has either. ``crop``
    (``spec.shape``) defaults to half a second.
    """
    _check_encoding(encoding)
    crop = rec.rate // 2 if crop is None else check_crop(crop)
    unknown = set(splits) - {"train", "val", "test"}
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; use train, val and test")
    chosen = [i for part in splits.values() for i in part]
    if len(set(chosen)) != len(chosen):
        raise ValueError("a recording is in more than one split")
    for split in ("train", "test"):
        if not splits.get(split):
            raise DataError(
                f"{name}: the {split} split has no recordings; give recordings for train and test"
            )
    class_names = _names([rec.labels[i] for i in chosen])
    speakers = _names([rec.speakers[i] for i in chosen])
    label_index = {n: k for k, n in enumerate(class_names or ())}
    speaker_index = {n: k for k, n in enumerate(speakers or ())}
    levels = LEVELS[encoding]
    silence = silence_level(encoding, levels)

    def split_of(indices: list[int]) -> Split:
        lengths = torch.tensor([len(rec.waves[i]) for i in indices], dtype=torch.int64)
        longest = int(lengths.max()) if len(indices) else 0
        x = torch.full((len(indices), longest), float(silence), dtype=torch.float32)
        for row, i in enumerate(indices):
            x[row, : len(rec.waves[i])] = encode(rec.waves[i], encoding, levels)
        y = None
        if class_names is not None or speakers is not None:
            pairs = [
                [label_index.get(rec.labels[i], -1), speaker_index.get(rec.speakers[i], -1)]
                for i in indices
            ]
            y = torch.tensor(pairs, dtype=torch.int64).reshape(len(indices), 2)
        return Split(x, y, lengths)

    spec = DataSpec(
        name=name,
        shape=(crop,),
        levels=levels,
        low=0,
        high=levels - 1,
        num_classes=len(class_names) if class_names else None,
        class_names=class_names,
        speakers=speakers,
        sample_rate=rec.rate,
        encoding=encoding,
    )
    return Dataset(
        spec,
        split_of(list(splits.get("train", []))),
        split_of(list(splits.get("val", []))),
        split_of(list(splits.get("test", []))),
        source=source,
        notes=list(rec.notes),
        kind=kind,
        levels_note=LEVELS_NOTE[encoding],
    )


def _by_take(rec: Recordings) -> dict[str, list[int]]:
    """FSDD's split by take: 0-4 test, 5-9 val, 10 and on train (files without one: none)."""
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, take in enumerate(rec.takes):
        if take is None:
            continue
        part = "test" if take in FSDD_TEST_TAKES else "val" if take in FSDD_VAL_TAKES else "train"
        splits[part].append(i)
    return splits


def load_fsdd(
    root: Path,
    *,
    sample_rate: int | None = None,
    encoding: str = "mulaw",
    crop: int | None = None,
) -> Dataset:
    """The Free Spoken Digit Dataset (Jackson et al. 2018): ``root/recordings/{digit}_{speaker}_
    {take}.wav``, 3,000 recordings of the digits 0-9, 50 takes each by 6 speakers, 8 kHz 16-bit.

    The split is the dataset's own: takes 0-4 are the test set (300 files), takes 5-9 validate
    (300) and takes 10-49 train (2,400). ``y`` is (digit, speaker). ``sample_rate`` other than
    8000 resamples every file.
    """
    root = Path(root)
    folder = root / "recordings"
    if not folder.is_dir():
        raise DataError(
            f"{folder} does not exist: put the recordings folder of the Free Spoken Digit "
            f"Dataset (github.com/Jakobovski/free-spoken-digit-dataset) in {root}"
        )
    rec = read_folder(folder, sample_rate)
    splits = _by_take(rec)
    unnamed = sum(t is None for t in rec.takes)
    if unnamed:
        named = "{digit}_{speaker}_{take}.wav"
        rec.notes.append(f"skipped {_count(unnamed, 'file')} not named {named}")
    return build_dataset("fsdd", splits, rec, encoding=encoding, crop=crop, source=str(root))


def load_audio_folder(
    path: Path,
    *,
    sample_rate: int | None = None,
    encoding: str = "mulaw",
    crop: int | None = None,
    seed: int = USER_SPLIT_SEED,
) -> Dataset:
    """A user's folder of ``.wav`` files (:func:`read_folder`), split by take like FSDD when
    every file has an FSDD-style name and that leaves train and test non-empty, else 80/10/10
    by a fixed permutation (``seed``), at least one file in each split."""
    path = Path(path)
    rec = read_folder(path, sample_rate)
    n = len(rec)
    if n < 3:
        raise DataError(f"{path} has {n} wav files; need at least 3 (train, val and test)")
    splits = _by_take(rec) if all(t is not None for t in rec.takes) else {}
    if splits and splits["train"] and splits["test"]:
        how = "by take like FSDD (takes 0-4 test, 5-9 val, 10 and on train)"
    else:
        n_val = n_test = max(1, n // 10)
        n_train = n - n_val - n_test
        # the legacy RandomState stream is frozen by numpy's compatibility policy, unlike
        # Generator's, so a folder's split stays the same across numpy versions
        order = np.random.RandomState(seed).permutation(n).tolist()
        splits = {
            "train": sorted(order[:n_train]),
            "val": sorted(order[n_train : n_train + n_val]),
            "test": sorted(order[n_train + n_val :]),
        }
        how = f"with a fixed permutation (seed {seed})"
    sizes = "/".join(str(len(splits[s])) for s in ("train", "val", "test"))
    rec.notes.append(f"split {how} into {sizes} train/val/test files")
    name = str(path.resolve())
    kind = f"folder of {n} .wav files at {rec.rate} Hz"
    return build_dataset(name, splits, rec, encoding=encoding, crop=crop, source=name, kind=kind)


# ----------------------------------------------------------------------------- options


def _whole(key: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, int | np.integer) and not isinstance(value, bool)
    ):
        return int(value)
    raise ConfigError(f"{key} must be a whole number, got {value!r}")


def audio_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The audio options in ``values`` (``--set`` strings or YAML values), checked and typed:
    ``sample_rate`` (Hz, 1000..192000), ``encoding`` (mulaw | linear), ``crop`` (samples,
    >= 2); only those given."""
    out: dict[str, Any] = {}
    for key in AUDIO_OPTIONS:
        if values.get(key) is None:
            continue
        value = values[key]
        if key == "encoding":
            encoding = str(value).strip()
            _check_encoding(encoding)
            out[key] = encoding
        elif key == "sample_rate":
            out[key] = _check_sample_rate(_whole(key, value))
        else:
            out[key] = check_crop(_whole(key, value))
    return out


def pop_audio_options(values: dict[str, Any]) -> dict[str, Any]:
    """:func:`audio_options`, removed from ``values`` (the rest are model and training
    options)."""
    return audio_options({k: values.pop(k) for k in AUDIO_OPTIONS if k in values})


__all__ = [
    "AUDIO_OPTIONS",
    "ENCODINGS",
    "LEVELS",
    "Recordings",
    "audio_options",
    "build_dataset",
    "check_crop",
    "check_rate",
    "decode",
    "encode",
    "linear_decode",
    "linear_encode",
    "load_audio_folder",
    "load_fsdd",
    "mu_law_decode",
    "mu_law_encode",
    "parse_name",
    "pop_audio_options",
    "read_folder",
    "read_wav",
    "resample",
    "silence_level",
    "write_wav",
]
