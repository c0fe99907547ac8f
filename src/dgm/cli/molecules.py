"""What the commands share for models of molecules (text models whose tokenizer reads SMILES
tokens or SELFIES symbols): the SMILES of samples, writing them as ``.smi`` or a picture drawn
by RDKit, and the refusals. Not a command itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dgm.cli.text import Entry
from dgm.errors import ConfigError, DataError

MOLECULE_OUT = (".smi", ".txt", ".png")


def is_molecule_model(model: Any) -> bool:
    """A text model whose tokens are SMILES tokens or SELFIES symbols."""
    from dgm.data.text import MOLECULE_KINDS
    from dgm.models.capabilities import TextModel

    return (
        isinstance(model, TextModel)
        and model.tokenizer is not None
        and model.tokenizer.kind in MOLECULE_KINDS
    )


def smiles(model: Any, x: Any) -> list[str]:
    """SMILES of rows of ids: the tokens decoded, SELFIES turned into SMILES."""
    from dgm.data.molecules import smiles_of

    return smiles_of(model.texts(x.cpu()), model.tokenizer.kind)


def check_out(path: str) -> None:
    if Path(path).suffix.lower() not in MOLECULE_OUT:
        raise ConfigError(
            f"--out {path}: molecules are written as .smi (one SMILES a line) or drawn as .png"
        )


def write(strings: list[str], out: Path, title: str) -> str:
    """``strings`` to ``out``: ``.smi``/``.txt`` one a line, ``.png`` a grid of the valid ones
    drawn by RDKit. What was written, in words."""
    from dgm.data import chem
    from dgm.io import atomic_write

    valid = [s for s in strings if chem.mol(s) is not None]
    if out.suffix.lower() == ".png":
        from dgm.plotting import save_molecules

        if not valid:
            raise ConfigError(
                f"--out {out}: none of the {len(strings)} samples is a valid molecule, so there "
                "is nothing to draw; write them to a .smi file to read them"
            )
        save_molecules(valid, out, title=title)
        return f"drew the {len(valid)} valid of {len(strings)} molecules"
    with atomic_write(out, "wb") as f:
        f.write(("\n".join(strings) + "\n").encode("utf-8"))
    return f"wrote {len(strings)} SMILES ({len(valid)} valid)"


def read_for_scoring(model: Any, path: Path) -> list[Entry]:
    """The molecules of a ``.smi`` (or ``.txt``) file or of a ``.csv``'s SMILES column, as the
    model reads them: SMILES as written (SELFIES for a SELFIES model). A SMILES RDKit cannot
    parse is invalid; one longer than ``max_len - 1`` tokens, or with a token outside the
    vocabulary, is neither cut nor read with ``<unk>`` (either is another molecule) but has
    probability 0, with a note. A :class:`DataError` when no line is a molecule."""
    from dgm.data import chem
    from dgm.data.molecules import read_smi, read_smiles_csv
    from dgm.data.text import UNK, pack

    path = path.expanduser()
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in (".smi", ".csv", ".txt"):
        raise DataError(
            f"{path}: {model.name} scores molecules: give a .smi file (one SMILES a line) or a "
            ".csv with a SMILES column"
        )
    table = read_smiles_csv(path) if suffix == ".csv" else read_smi(path)
    assert table is not None
    if not table.smiles:
        raise DataError(f"{path}: holds no SMILES (every line is blank)")
    tok = model.tokenizer
    max_len = int(model.event_shape[0])
    entries: list[Entry] = []
    for s, line in zip(table.smiles, table.lines):
        name = f"{path}:{line}"
        if chem.mol(s) is None:
            entries.append(Entry(name, s, None, error="not a SMILES RDKit can parse"))
            continue
        text = chem.to_selfies(s) if tok.kind == "selfies" else s
        if text is None:
            entries.append(Entry(name, s, None, error="SELFIES cannot encode this molecule"))
            continue
        ids = tok.encode(text)
        unk = sum(i == UNK for i in ids)
        if len(ids) > max_len - 1 or unk:
            # the model's strings are rows of its own tokens: any other has probability 0 (a
            # cut SMILES, or one with <unk> for an atom, is another molecule)
            why = (
                f"{unk} token{'s' * (unk > 1)} outside the run's vocabulary"
                if unk
                else f"{len(ids)} tokens, longer than the model's max_len - 1 = {max_len - 1}"
            )
            note = f"{why}: the model gives it probability 0 (log p = -inf)"
            entries.append(Entry(name, s, None, note, tokens=len(ids) + 1))
            continue
        row, _ = pack([ids], max_len)
        entries.append(Entry(name, s, row[0].to(model.device)))
    if all(e.error is not None for e in entries):
        raise DataError(
            f"{path}: none of its {len(entries)} lines is a SMILES RDKit can parse; give one "
            "SMILES a line (.smi) or a CSV with a SMILES column"
        )
    return entries


__all__ = ["check_out", "is_molecule_model", "read_for_scoring", "smiles", "write"]
