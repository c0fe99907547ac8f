"""Chemistry through RDKit: parsing SMILES, canonical forms, SELFIES, and the properties the
molecule papers optimise and report (logP, QED, SA, molecular weight, penalized logP).

RDKit and ``selfies`` are the ``molecules`` extra (``pip install "dgm[molecules]"``); every
entry point here asks for them through :func:`rdkit` / :func:`selfies`, which raise a
one-line :class:`~dgm.errors.ConfigError` naming the extra when they are missing. RDKit's
own warnings (one per unparseable string) are silenced: callers count invalid strings and
say so once.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

import numpy as np

from dgm.errors import ConfigError, DataError

EXTRA = 'pip install "dgm[molecules]"'
REPRESENTATIONS = ("smiles", "selfies")

# penalized logP as the grammar VAE (Kusner et al. 2017) and JT-VAE (Jin et al. 2018) score it:
# each term standardised by its mean and std over ZINC-250k (the grammar VAE's published
# constants), so the numbers are comparable with the papers' tables
_ZINC_LOGP = (2.4570953396190123, 1.434324401111988)
_ZINC_SA = (-3.0525811293166134, 0.8335207024513095)  # of -SA
_ZINC_CYCLE = (-0.0485696876403053, 0.2860212110245455)  # of -cycle


@cache
def rdkit() -> Any:
    """The ``rdkit.Chem`` module, its logger silenced; a :class:`ConfigError` naming the extra
    when RDKit is not installed."""
    try:
        chem = importlib.import_module("rdkit.Chem")
        rdbase = importlib.import_module("rdkit.RDLogger")
    except ImportError:
        raise ConfigError(f"molecules need RDKit, which is not installed: {EXTRA}") from None
    rdbase.DisableLog("rdApp.*")
    return chem


@cache
def selfies() -> Any:
    """The ``selfies`` module (Krenn et al. 2020), or a :class:`ConfigError` naming the extra."""
    try:
        return importlib.import_module("selfies")
    except ImportError:
        raise ConfigError(f"SELFIES needs the selfies package, not installed: {EXTRA}") from None


def check_representation(name: str) -> str:
    if name not in REPRESENTATIONS:
        raise ConfigError(
            f"unknown molecule representation {name!r}; use one of {', '.join(REPRESENTATIONS)}"
        )
    return name


# ----------------------------------------------------------------------------- parsing


def mol(smiles: str) -> Any | None:
    """The RDKit molecule of ``smiles``, or None when it does not parse or is empty (MOSES's
    ``get_mol``: parsed and sanitised)."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    m = rdkit().MolFromSmiles(smiles)  # sanitises: None for bad valences, kekulisation, ...
    if m is None or m.GetNumAtoms() == 0:
        return None
    return m


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES of ``smiles`` (isomeric), or None when it is not a molecule."""
    m = mol(smiles)
    return None if m is None else rdkit().MolToSmiles(m)


def canonical_all(smiles: Iterable[str]) -> list[str | None]:
    """:func:`canonical` of each string."""
    return [canonical(s) for s in smiles]


# ----------------------------------------------------------------------------- SMILES tokens

# Schwaller et al. 2019 ("Molecular transformer"): bracket atoms, two-letter organic atoms
# (Cl, Br), two-digit ring closures (%10) and every bond, branch and ring symbol whole
SMILES_REGEX = (
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$"
    r"|%[0-9]{2}|[0-9])"
)
_SMILES = re.compile(SMILES_REGEX)


def smiles_tokens(smiles: str) -> list[str] | None:
    """The tokens of ``smiles`` (``Cl``, ``[nH]``, ``[C@@H]``, ``%10`` whole), or None when some
    character is not part of any SMILES token (the tokens would not give the string back)."""
    tokens = _SMILES.findall(smiles)
    return tokens if "".join(tokens) == smiles else None


# ----------------------------------------------------------------------------- SELFIES


def to_selfies(smiles: str) -> str | None:
    """The SELFIES string of ``smiles``, or None when the encoder refuses it."""
    sf = selfies()
    try:
        return sf.encoder(smiles)
    except Exception:  # selfies.EncoderError, and RDKit-free parse errors
        return None


def from_selfies(text: str) -> str:
    """The SMILES of a SELFIES string (every SELFIES string decodes to a molecule; a string that
    is not SELFIES at all decodes to ``""``, which is invalid)."""
    sf = selfies()
    try:
        return sf.decoder(text)
    except Exception:
        return ""


def selfies_symbols(text: str) -> list[str]:
    """The symbols of a SELFIES string (``[C]``, ``[=Branch1]``, ``.``)."""
    return list(selfies().split_selfies(text))


# ----------------------------------------------------------------------------- properties


@cache
def _sascorer() -> Any:
    """Ertl & Schuffenhauer's synthetic accessibility score, as RDKit ships it in Contrib (its
    fragment table is RDKit's own file, read by the scorer itself)."""
    chem = rdkit()
    contrib = os.path.join(importlib.import_module("rdkit.RDConfig").RDContribDir, "SA_Score")
    if contrib not in sys.path:
        sys.path.append(contrib)
    try:
        return importlib.import_module("sascorer")
    except ImportError:
        raise ConfigError(
            f"RDKit's SA scorer (Contrib/SA_Score) is missing from this RDKit ({chem.__name__}); "
            f"reinstall it: {EXTRA}"
        ) from None


def logp(m: Any) -> float:
    """Wildman-Crippen logP (RDKit's ``MolLogP``)."""
    return float(importlib.import_module("rdkit.Chem.Crippen").MolLogP(m))


def qed(m: Any) -> float:
    """Quantitative estimate of drug-likeness (Bickerton et al. 2012), in [0, 1]."""
    return float(importlib.import_module("rdkit.Chem.QED").qed(m))


def sa(m: Any) -> float:
    """Synthetic accessibility (Ertl & Schuffenhauer 2009), 1 (easy) .. 10 (hard)."""
    return float(_sascorer().calculateScore(m))


def weight(m: Any) -> float:
    """Molecular weight in daltons (RDKit's ``MolWt``)."""
    return float(importlib.import_module("rdkit.Chem.Descriptors").MolWt(m))


def cycle_penalty(m: Any) -> int:
    """The size of the largest ring above 6 atoms (0 when none is larger)."""
    rings = m.GetRingInfo().AtomRings()
    largest = max((len(r) for r in rings), default=0)
    return max(largest - 6, 0)


def penalized_logp(m: Any) -> float:
    """logP - SA - (largest ring above 6 atoms), each term standardised over ZINC-250k as the
    grammar VAE and JT-VAE papers score it (so 1.98 / 2.94 / 5.30 in their tables are on this
    scale)."""

    def z(value: float, stats: tuple[float, float]) -> float:
        return (value - stats[0]) / stats[1]

    return z(logp(m), _ZINC_LOGP) + z(-sa(m), _ZINC_SA) + z(-cycle_penalty(m), _ZINC_CYCLE)


PROPERTIES: dict[str, tuple[Callable[[Any], float], str]] = {
    "logp": (logp, "Wildman-Crippen logP"),
    "qed": (qed, "drug-likeness QED (Bickerton et al. 2012)"),
    "sa": (sa, "synthetic accessibility (Ertl & Schuffenhauer 2009), lower is easier"),
    "mw": (weight, "molecular weight (Da)"),
    "penalized-logp": (penalized_logp, "logP - SA - large rings, ZINC-standardised terms"),
}


def check_property(name: str) -> str:
    if name not in PROPERTIES:
        raise ConfigError(f"unknown property {name!r}; use one of {', '.join(PROPERTIES)}")
    return name


def property_values(mols: Sequence[Any], name: str) -> np.ndarray:
    """Property ``name`` of each RDKit molecule, float64 ``[N]``; NaN where RDKit fails."""
    fn = PROPERTIES[check_property(name)][0]
    out = np.full(len(mols), np.nan)
    for i, m in enumerate(mols):
        if m is None:
            continue
        try:
            out[i] = fn(m)
        except Exception:  # a descriptor RDKit cannot compute for this molecule
            continue
    return out


def check_smiles_list(smiles: Sequence[str], what: str) -> None:
    if not len(smiles):
        raise DataError(f"{what}: no molecules")


__all__ = [
    "EXTRA",
    "PROPERTIES",
    "REPRESENTATIONS",
    "SMILES_REGEX",
    "canonical",
    "canonical_all",
    "check_property",
    "check_representation",
    "cycle_penalty",
    "from_selfies",
    "logp",
    "mol",
    "penalized_logp",
    "property_values",
    "qed",
    "rdkit",
    "sa",
    "selfies",
    "selfies_symbols",
    "smiles_tokens",
    "to_selfies",
    "weight",
]
