"""Molecules as token sequences: SMILES or SELFIES strings on the text data layout
(:mod:`dgm.data.text`), with the properties a chemist scores them by.

A molecule dataset is text whose tokenizer is ``smiles`` (Schwaller et al.'s SMILES tokens) or
``selfies`` (Krenn et al. 2020's symbols: every string decodes to a valid molecule), chosen by
the ``representation`` option; ``Dataset.molecules`` keeps each split's SMILES as read (the
metrics compare canonical forms of them). Every SMILES is parsed by RDKit when read: one that
does not parse is skipped with a count and its first line numbers, never trained on.

Properties (``properties=logp,qed,sa``; RDKit's, see :data:`dgm.data.chem.PROPERTIES`, or a
dataset's own numeric columns such as QM9's) become ``y``: ``[N, P]`` float32, their names and
training-split means and standard deviations in the spec (a property head predicts them
standardised). RDKit's scores take about a millisecond a molecule, so they are computed once
per list of molecules, in processes, and cached under the user's cache folder (``$DGM_CACHE``
overrides it).

Datasets (``../shared/data``): ``qm9`` (a seeded 80/10/10 split of its 130,831 molecules; its
12 quantum-chemical columns are properties by name), ``zinc250k`` (the published 220,011 /
24,445 / 5,000 split), ``moses`` (train / test; validation a seeded 10,000 of train). User
files: ``.smi`` (a SMILES a line, anything after the first whitespace is its name) or ``.csv``
with a ``SMILES`` column (other numeric columns are properties).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgm import progress
from dgm.data import chem
from dgm.data.base import Dataset, DataSpec, Split
from dgm.data.text import SPECIALS, UNK, TextTokenizer, check_max_len, pack
from dgm.errors import ConfigError, DataError

MOLECULE_DATASETS = ("qm9", "zinc250k", "moses")
QM9_COLUMNS = (
    "Dipole_debye", "Polarizability_bohr3", "HOMO_au", "LUMO_au", "HOMO_LUMO_gap_au",
    "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au", "InternalEnergy_298K_au",
    "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K",
)  # fmt: skip
MOSES_VAL = 10_000  # molecules of MOSES's train held out for validation (seeded)
SHOWN_LINES = 5  # line numbers named in a note on skipped molecules
PARALLEL_FROM = 20_000  # molecules from which properties are computed in worker processes


@dataclass
class Molecules:
    """The SMILES of each split, as read (after skipping what RDKit cannot parse), and the
    representation the token ids hold."""

    representation: str
    train: list[str]
    val: list[str]
    test: list[str]
    property_names: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[str]:
        return {"train": self.train, "val": self.val, "valid": self.val, "test": self.test}[name]


# ----------------------------------------------------------------------------- options


# ----------------------------------------------------------------------------- reading


def _open_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


@dataclass
class _Table:
    smiles: list[str]
    lines: list[int]  # the line number of each molecule in its file (1-based)
    columns: dict[str, np.ndarray]  # numeric columns, by name


def read_smi(path: Path, header: bool = False) -> _Table:
    """A ``.smi`` file: one SMILES a line (its first whitespace-separated field), blank lines
    dropped; ``header``: the first line is a column name (MOSES's ``SMILES``)."""
    smiles, lines = [], []
    for i, line in enumerate(_open_text(path).splitlines(), 1):
        if header and i == 1:
            continue
        fields = line.split()
        if fields:
            smiles.append(fields[0])
            lines.append(i)
    return _Table(smiles, lines, {})


def read_smiles_csv(path: Path, *, required: bool = True) -> _Table | None:
    """A ``.csv`` file with a header and a ``SMILES`` column (any case): the SMILES and every
    other column whose values are all numbers. None when there is no such column and it is not
    ``required``; a :class:`DataError` naming the columns found when it is."""
    text = _open_text(path)
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]] if rows else []
    col = next((j for j, h in enumerate(header) if h.lower() == "smiles"), None)
    if col is None:
        if not required:
            return None
        found = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "") or "none"
        raise DataError(
            f"{path}: no SMILES column (columns found: {found}); name the column of SMILES "
            "strings 'SMILES'"
        )
    body = [(i, r) for i, r in enumerate(rows[1:], 2) if any(c.strip() for c in r)]
    smiles = [r[col].strip() if col < len(r) else "" for _, r in body]
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        if j == col or not name:
            continue
        try:
            columns[name] = np.array([float(r[j]) for _, r in body], dtype=np.float64)
        except (ValueError, IndexError):
            continue  # not a numeric column: neither a property nor an error
    return _Table(smiles, [i for i, _ in body], columns)


def has_smiles_column(path: Path) -> bool:
    """Whether ``path`` is a CSV whose header names a SMILES column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return False
    return any(h.strip().lower() == "smiles" for h in header)


def is_molecule_file(path: Path) -> bool:
    """A user's molecule file: ``.smi``, or a ``.csv`` with a SMILES column."""
    suffix = path.suffix.lower()
    return path.is_file() and (suffix == ".smi" or (suffix == ".csv" and has_smiles_column(path)))


def _valid(table: _Table, what: str) -> tuple[_Table, list[str]]:
    """``table`` without the SMILES RDKit cannot parse, and a note naming how many and the first
    line numbers; a :class:`DataError` when none parses."""
    keep = [i for i, s in enumerate(progress.track(table.smiles, f"parsing {what}")) if chem.mol(s)]
    bad = len(table.smiles) - len(keep)
    if not keep:
        raise DataError(
            f"{what}: none of its {len(table.smiles)} lines is a SMILES RDKit can parse; give "
            "one SMILES a line (.smi) or a CSV with a SMILES column"
        )
    notes = []
    if bad:
        kept = set(keep)
        first = [str(table.lines[i]) for i in range(len(table.smiles)) if i not in kept]
        shown = ", ".join(first[:SHOWN_LINES]) + (", ..." if bad > SHOWN_LINES else "")
        notes.append(f"{what}: skipped {bad} SMILES that RDKit cannot parse (lines {shown})")
    idx = np.asarray(keep)
    return _Table(
        [table.smiles[i] for i in keep],
        [table.lines[i] for i in keep],
        {k: v[idx] for k, v in table.columns.items()},
    ), notes


# ----------------------------------------------------------------------------- properties


def cache_dir() -> Path:
    """Where computed properties are kept: ``$DGM_CACHE``, else the per-user cache folder."""
    if os.environ.get("DGM_CACHE"):
        return Path(os.environ["DGM_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("dgm"))


CHUNK = 2000  # molecules a worker process takes at a time


def _chunks(smiles: Sequence[str]) -> list[list[str]]:
    return [list(smiles[i : i + CHUNK]) for i in range(0, len(smiles), CHUNK)]


def _in_chunks(fn: Callable[[Any], Any], chunks: list[Any], what: str) -> list[Any]:
    """``fn`` of each chunk (its first item, or itself, a list of molecules), in spawned worker
    processes when there are PARALLEL_FROM molecules or more and more than one CPU, with
    progress; the results in order."""

    def size(c: Any) -> int:
        return len(c[0]) if isinstance(c, tuple) else len(c)

    total = sum(size(c) for c in chunks)
    parts: list[Any] = []
    with progress.task(total, what, unit="mol") as bar:
        if total >= PARALLEL_FROM and (os.cpu_count() or 1) > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(min(os.cpu_count() or 1, 8)) as pool:
                for c, part in zip(chunks, pool.imap(fn, chunks)):
                    parts.append(part)
                    bar.update(size(c))
        else:
            for c in chunks:
                parts.append(fn(c))
                bar.update(size(c))
    return parts


def _chunk_values(args: tuple[list[str], str]) -> np.ndarray:
    smiles, name = args
    return chem.property_values([chem.mol(s) for s in smiles], name)


def rdkit_property(smiles: Sequence[str], name: str) -> np.ndarray:
    """RDKit's property ``name`` of every SMILES, float64 ``[N]`` (NaN where it fails),
    cached by the list's contents and RDKit's version."""
    chem.check_property(name)
    version = chem.rdkit().rdBase.rdkitVersion
    key = hashlib.sha256(f"{name}\n{version}\n".encode() + "\n".join(smiles).encode()).hexdigest()
    file = cache_dir() / "properties" / f"{name}-{key[:32]}.npy"
    if file.exists():
        try:
            values = np.load(file, allow_pickle=False)
            if values.shape == (len(smiles),):
                return values
        except (OSError, ValueError):
            pass  # a damaged cache entry is computed again
    parts = _in_chunks(_chunk_values, [(c, name) for c in _chunks(smiles)], f"RDKit {name}")
    values = np.concatenate(parts) if parts else np.zeros(0)
    try:
        from dgm.io import atomic_write

        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(file, "wb") as f:
            np.save(f, values, allow_pickle=False)
    except OSError:
        pass  # no cache folder: the values are still right
    return values


def _chunk_canonical(smiles: list[str]) -> list[str]:
    return [chem.canonical(s) or "" for s in smiles]


def canonical_smiles(smiles: Sequence[str], what: str = "canonical SMILES") -> list[str]:
    """RDKit's canonical SMILES of every string (``""`` where it is no molecule), computed in
    worker processes for large lists and cached by the list's contents and RDKit's version:
    MOSES's 1.6M training molecules take about 13 CPU-minutes once. No molecule object is kept
    (a million of them is more than 10 GB)."""
    if len(smiles) < PARALLEL_FROM:  # a second or two: neither processes nor a cache entry
        return _chunk_canonical(list(smiles))
    version = chem.rdkit().rdBase.rdkitVersion
    key = hashlib.sha256(f"canonical\n{version}\n".encode() + "\n".join(smiles).encode())
    file = cache_dir() / "canonical" / f"{key.hexdigest()[:32]}.txt.gz"
    if file.exists():
        try:
            with gzip.open(file, "rt", encoding="utf-8") as f:
                cached = f.read().split("\n")
            if len(cached) == len(smiles):
                return cached
        except (OSError, EOFError, UnicodeDecodeError):
            pass  # a damaged cache entry is computed again
    out = [s for part in _in_chunks(_chunk_canonical, _chunks(smiles), what) for s in part]
    try:
        from dgm.io import atomic_write

        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(file, "wb") as f, gzip.open(f, "wt", encoding="utf-8") as g:
            g.write("\n".join(out))
    except OSError:
        pass  # no cache folder: the strings are still right
    return out


def _with_properties(tables: dict[str, _Table], names: tuple[str, ...], what: str) -> None:
    """Add the properties ``names`` to each split's columns: a column of the data by that name
    stays; RDKit's property is computed over all splits at once (one cache entry a dataset)."""
    known = next(iter(tables.values())).columns
    for n in names:
        if n not in known and n not in chem.PROPERTIES:
            cols = f"; its columns: {', '.join(known)}" if known else ""
            raise ConfigError(
                f"unknown property {n!r} for {what}: use RDKit's {', '.join(chem.PROPERTIES)}{cols}"
            )
    everything = [s for t in tables.values() for s in t.smiles]
    for n in names:
        if n in known:
            continue
        values, start = rdkit_property(everything, n), 0
        for t in tables.values():
            t.columns[n] = values[start : start + len(t.smiles)]
            start += len(t.smiles)


# ----------------------------------------------------------------------------- the dataset


def molecule_dataset(
    name: str,
    tables: dict[str, _Table],
    *,
    representation: str | None,
    tokenizer: TextTokenizer | None,
    max_len: int | None,
    properties: tuple[str, ...] | None,
    source: str,
    kind: str = "",
    notes: Sequence[str] = (),
) -> Dataset:
    """Token rows of the valid SMILES (or their SELFIES) of each split: the tokenizer learnt on
    train (or a run's own), ``max_len`` the longest molecule's tokens + 1 unless given
    (molecules longer are skipped with a note: a cut SMILES is another molecule), and
    ``properties`` as ``y``."""
    notes = list(notes)
    tables = {k: _subset(t, range(len(t.smiles))) for k, t in tables.items()}  # ours to change
    names = properties or ()
    if names:
        _with_properties(tables, names, name)
    rep = representation or (tokenizer.kind if tokenizer is not None else "smiles")
    chem.check_representation(rep)
    if tokenizer is not None and tokenizer.kind != rep:
        raise ConfigError(
            f"representation={rep}, but the run's tokenizer reads {tokenizer.kind}: drop "
            "representation (a run keeps its own)"
        )
    texts: dict[str, list[str]] = {}
    for split, t in tables.items():
        if rep == "selfies":
            encoded = [chem.to_selfies(s) for s in t.smiles]
            keep = [i for i, e in enumerate(encoded) if e]
            if len(keep) < len(encoded):
                notes.append(
                    f"{name} {split}: skipped {len(encoded) - len(keep)} molecules SELFIES "
                    "cannot encode"
                )
            tables[split] = _subset(t, keep)
            texts[split] = [encoded[i] for i in keep]  # type: ignore[misc]
        else:
            texts[split] = list(t.smiles)
    if not texts["train"]:
        raise DataError(f"{name}: no training molecules left")
    tok = tokenizer or TextTokenizer.train(rep, texts["train"])
    ids = {k: tok.encode_batch(v) for k, v in texts.items()}
    how = "given"
    if max_len is None:
        max_len = max(len(seq) for seqs in ids.values() for seq in seqs) + 1
        how = "the longest molecule's tokens + 1"
    check_max_len(max_len)
    skipped = unknown = 0
    for split in ids:
        fits = [i for i, seq in enumerate(ids[split]) if len(seq) <= max_len - 1]
        keep = [i for i in fits if UNK not in ids[split][i]]
        skipped += len(ids[split]) - len(fits)
        unknown += len(fits) - len(keep)
        if len(keep) < len(ids[split]):
            ids[split] = [ids[split][i] for i in keep]
            tables[split] = _subset(tables[split], keep)
    if skipped:
        notes.append(
            f"skipped {skipped} molecules longer than max_len - 1 = {max_len - 1} tokens (a cut "
            "SMILES is another molecule); set max_len to keep them"
        )
    if unknown:
        notes.append(
            f"skipped {unknown} molecules with tokens the tokenizer's vocabulary lacks (a "
            "molecule model gives them probability 0)"
        )
    if how != "given":
        notes.append(f"max_len {max_len} ({how}); set max_len to change it")
    values = (
        {k: np.stack([t.columns[n] for n in names], 1) for k, t in tables.items()}
        if names
        else None
    )
    mean = std = None
    if values is not None:
        bad = {k: ~np.isfinite(v).all(1) for k, v in values.items()}
        dropped = sum(int(b.sum()) for b in bad.values())
        if dropped:
            notes.append(f"skipped {dropped} molecules whose properties RDKit cannot compute")
            for k, b in bad.items():
                keep = list(np.flatnonzero(~b))
                ids[k] = [ids[k][i] for i in keep]
                tables[k] = _subset(tables[k], keep)
                values[k] = values[k][~b]
        mean = tuple(float(m) for m in values["train"].mean(0))
        std = tuple(float(s) if s > 0 else 1.0 for s in values["train"].std(0))
    splits = {}
    for k, seqs in ids.items():
        x, _ = pack(seqs, max_len)
        y = None if values is None else torch.from_numpy(values[k].astype(np.float32))
        splits[k] = Split(x, y)
    spec = DataSpec(
        name, (max_len,), tok.vocab_size, low=0.0, high=float(tok.vocab_size - 1),
        tokenizer=tok.kind, properties=tuple(names) if names else None,
        property_mean=mean, property_std=std,
        vocabulary=tuple(tok.token(i) for i in range(tok.vocab_size)),
    )  # fmt: skip
    return Dataset(
        spec,
        splits["train"],
        splits["val"],
        splits["test"],
        source=source,
        notes=notes,
        kind=kind,
        levels_note=f"{tok.kind} vocabulary",
        tokenizer=tok,
        molecules=Molecules(
            rep,
            tables["train"].smiles,
            tables["val"].smiles,
            tables["test"].smiles,
            tuple(names),
        ),
    )


def _subset(t: _Table, keep: Sequence[int]) -> _Table:
    idx = np.asarray(list(keep), dtype=np.int64)
    return _Table(
        [t.smiles[i] for i in idx],
        [t.lines[i] for i in idx],
        {k: v[idx] for k, v in t.columns.items()},
    )


def _seeded_split(t: _Table, val: int, test: int, seed: int) -> dict[str, _Table]:
    order = np.random.default_rng(seed).permutation(len(t.smiles))
    n_train = len(order) - val - test
    return {
        "train": _subset(t, np.sort(order[:n_train])),
        "val": _subset(t, np.sort(order[n_train : n_train + val])),
        "test": _subset(t, np.sort(order[n_train + val :])),
    }


def load_qm9(root: Path, seed: int, **options: Any) -> Dataset:
    """QM9 (Ramakrishnan et al. 2014): 130,831 molecules of up to 9 heavy atoms, a seeded
    80/10/10 split; its 12 properties are columns by name (``properties=HOMO_au,...``)."""
    path = root / "qm9_smiles_props.csv.gz"
    if not path.exists():
        raise DataError(f"{path}: not found; QM9 is qm9/qm9_smiles_props.csv.gz")
    table = read_smiles_csv(path)
    assert table is not None
    table.columns = {k: v for k, v in table.columns.items() if k in QM9_COLUMNS}
    table, notes = _valid(table, "qm9")
    n = len(table.smiles)
    tables = _seeded_split(table, n // 10, n // 10, seed)
    notes.append(f"qm9: a seeded split (seed {seed}) of {n} molecules, 80/10/10")
    return molecule_dataset("qm9", tables, source=str(path), notes=notes, **options)


def load_zinc250k(root: Path, seed: int, **options: Any) -> Dataset:
    """ZINC-250k as the JT-VAE papers split it: 220,011 / 24,445 / 5,000."""
    tables, notes = {}, []
    for split, file in (("train", "train"), ("val", "valid"), ("test", "test")):
        path = root / f"{file}.csv.gz"
        if not path.exists():
            raise DataError(f"{path}: not found; ZINC-250k is zinc250k/{{train,valid,test}}.csv.gz")
        tables[split], n = _valid(read_smi(path), f"zinc250k {split}")
        notes += n
    return molecule_dataset("zinc250k", tables, source=str(root), notes=notes, **options)


def load_moses(root: Path, seed: int, **options: Any) -> Dataset:
    """MOSES (Polykovskiy et al. 2020): its train and test sets; a seeded 10,000 molecules of
    train validate (MOSES has no validation set). The scaffold test set is read by the
    metrics, not here."""
    tables, notes = {}, []
    for split in ("train", "test"):
        path = root / f"{split}.csv.gz"
        if not path.exists():
            raise DataError(f"{path}: not found; MOSES is moses/{{train,test}}.csv.gz")
        tables[split], n = _valid(read_smi(path, header=True), f"moses {split}")
        notes += n
    train = tables["train"]
    order = np.random.default_rng(seed).permutation(len(train.smiles))
    tables["val"] = _subset(train, np.sort(order[:MOSES_VAL]))
    tables["train"] = _subset(train, np.sort(order[MOSES_VAL:]))
    notes.append(f"moses: validation is a seeded {MOSES_VAL} of train (seed {seed})")
    return molecule_dataset("moses", tables, source=str(root), notes=notes, **options)


def load_user_molecules(path: Path, seed: int, **options: Any) -> Dataset:
    """A ``.smi`` or ``.csv`` (SMILES column) file, split 80/10/10 with a seeded permutation."""
    if path.suffix.lower() == ".smi":
        table, kind = read_smi(path), ".smi file, one SMILES a line"
    else:
        table = read_smiles_csv(path)
        assert table is not None
        kind = "CSV with a SMILES column" + (
            f" and {len(table.columns)} numeric columns" if table.columns else ""
        )
    if not table.smiles:
        raise DataError(f"{path}: holds no SMILES; give one SMILES a line")
    table, notes = _valid(table, str(path))
    n = len(table.smiles)
    if n < 3:
        raise DataError(f"{path}: only {n} valid molecules; need at least 3 (train, val, test)")
    k = max(1, n // 10)
    tables = _seeded_split(table, k, k, seed)
    notes.append(f"split with a fixed permutation (seed {seed}) into {n - 2 * k}/{k}/{k}")
    name = str(path.resolve())
    return molecule_dataset(name, tables, source=name, kind=kind, notes=notes, **options)


def smiles_of(texts: Sequence[str], representation: str) -> list[str]:
    """SMILES of decoded model outputs: SELFIES decoded, SMILES as they are."""
    if representation == "selfies":  # every SELFIES symbol string is a molecule; <unk> is none
        return [chem.from_selfies(t.replace(SPECIALS[UNK], "")) for t in texts]
    return list(texts)


__all__ = [
    "MOLECULE_DATASETS",
    "Molecules",
    "is_molecule_file",
    "load_moses",
    "load_qm9",
    "load_user_molecules",
    "load_zinc250k",
    "molecule_dataset",
    "rdkit_property",
    "smiles_of",
]
