"""What the commands share for models of molecules (text models whose tokenizer reads SMILES
tokens or SELFIES symbols): the SMILES of samples, writing them as ``.smi`` or a picture drawn
by RDKit, and the refusals. Not a command itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dgm.errors import ConfigError

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


__all__ = ["check_out", "is_molecule_model", "smiles", "write"]
