"""What the molecule models share: they take molecules only (text whose tokens are SMILES tokens
or SELFIES symbols), and say so in one line otherwise."""

from __future__ import annotations

from dgm.data.base import DataSpec
from dgm.errors import DataError

MOLECULE_DATA = "qm9, zinc250k, moses, a .smi file or a .csv with a SMILES column"


def check_molecules(name: str, spec: DataSpec) -> None:
    """A :class:`DataError` when ``spec`` is not molecules."""
    if spec.is_molecules:
        return
    kind = (
        "text" if spec.is_text else "an image dataset" if spec.is_image else "a dataset of vectors"
    )
    raise DataError(f"{name} models molecules; {spec.name} is {kind}: give it {MOLECULE_DATA}")


__all__ = ["MOLECULE_DATA", "check_molecules"]
