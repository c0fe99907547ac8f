"""The MOSES sample-quality metrics of molecules (dgm.evaluation.molecules) against values worked
out by hand on tiny lists, and the property picture (dgm.plotting.property_histograms)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("rdkit")

from PIL import Image
from rdkit import DataStructs
from rdkit.Chem import rdFingerprintGenerator

from dgm import progress
from dgm.data import chem
from dgm.errors import DataError
from dgm.evaluation import molecules as M
from dgm.plotting import property_histograms

ETHER = "c1ccc(Oc2ccccc2)cc1"  # BRICS: two phenyls and the ether oxygen
BIPHENYL = "c1ccc(-c2ccccc2)cc1"  # BRICS: two phenyls
NAPHTHALENE = "Cc1ccc2ccccc2c1"  # no BRICS bond; scaffold naphthalene (2 rings)
DECALIN = "C1CCC2CCCCC2C1"  # no BRICS bond; scaffold itself (2 rings)


def tanimoto(a: str, b: str) -> float:
    """Tanimoto on Morgan r=2, 1024 bits, straight from RDKit (MOSES's fingerprint)."""
    g = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    return DataStructs.TanimotoSimilarity(
        g.GetFingerprint(chem.mol(a)), g.GetFingerprint(chem.mol(b))
    )


def similarity_matrix(smiles: list[str]) -> np.ndarray:
    return np.array([[tanimoto(a, b) for b in smiles] for a in smiles])


# --------------------------------------------------------------------------- validity, unique


def test_validity_counts_molecules():
    # "C1CC": ring 1 never closed; "": empty; "xyz": not SMILES; "CCO" and benzene: molecules
    assert M.validity(["C1CC", "", "xyz", "CCO"]) == 1 / 4
    assert M.validity(["C1CC", "", "xyz", "CCO", "c1ccccc1"]) == 2 / 5
    with pytest.raises(DataError):
        M.validity([])


def test_uniqueness_on_canonical_forms_of_the_first_k_valid():
    gen = ["CCO", "C1CC", "OCC", "c1ccccc1", "CCN"]  # OCC is CCO written backwards
    # the first 3 valid: CCO, OCC (= CCO), benzene -> 2 distinct of 3
    u = M.uniqueness(gen, k=3)
    assert (u.value, u.n, u.short, u.note) == (2 / 3, 3, False, None)
    # k beyond the 4 valid: all 4 used (3 distinct), and the result says so
    u = M.uniqueness(gen, k=10)
    assert (u.value, u.n, u.short) == (3 / 4, 4, True)
    assert u.note == "unique@10 computed on 4 valid molecules (fewer than 10)"
    assert M.uniqueness(gen).value == 3 / 4
    assert M.uniqueness(["xyz"], k=5).value is None


def test_novelty_against_canonical_training_set():
    train = M.training_set(["OCC", "CCCC", "not a molecule"])
    assert train == {"CCO", "CCCC"}
    # distinct valid: CCO (in train as OCC), benzene, CCN -> 2 of 3 are new
    assert M.novelty(["CCO", "OCC", "c1ccccc1", "CCN", ""], train) == 2 / 3
    assert M.novelty(["xyz"], train) is None


# --------------------------------------------------------------------------- IntDiv, SNN


def test_internal_diversity_of_one_repeated_molecule_is_zero():
    for p in (1, 2):
        assert M.internal_diversity(["CCO", "OCC", "CCO"], p=p) == pytest.approx(0, abs=1e-7)


def test_internal_diversity_of_two_molecules_by_hand():
    a, b = "CCO", "CCCO"
    t = tanimoto(a, b)
    assert 0 < t < 1
    # ordered pairs with self-pairs: (a,a)=(b,b)=1, (a,b)=(b,a)=t
    assert M.internal_diversity([a, b], p=1) == pytest.approx(1 - (2 + 2 * t) / 4, abs=1e-6)
    expected2 = 1 - math.sqrt((2 + 2 * t**2) / 4)
    assert M.internal_diversity([a, b], p=2) == pytest.approx(expected2, abs=1e-6)


def test_internal_diversity_two_is_moses_code_order_of_means():
    """MOSES's code takes the p-mean of each row, then the mean of rows; with three molecules
    of unequal similarity this differs from one p-mean over all pairs (the paper's formula)."""
    smiles = ["CCO", "CCCO", "c1ccccc1"]
    t = similarity_matrix(smiles)
    per_row = 1 - np.mean(np.sqrt((t**2).mean(1)))
    pooled = 1 - np.sqrt((t**2).mean())
    assert abs(per_row - pooled) > 1e-3
    assert M.internal_diversity(smiles, p=2) == pytest.approx(per_row, abs=1e-6)
    assert M.internal_diversity(smiles, p=1) == pytest.approx(1 - t.mean(), abs=1e-6)


def test_similarities_across_blocks(monkeypatch):
    """Blocks of 2 x 2 (symmetric blocks mirrored, a ragged last block) give the full matrix."""
    monkeypatch.setattr(M, "BLOCK", 2)
    gen = ["CCO", "CCCO", "c1ccccc1", "CCN", "CC(=O)O", "OCC", "c1ccncc1"]
    ref = ["CCCCO", "c1ccccc1O", "CC(N)=O", "CCOC"]
    t = similarity_matrix(gen)
    assert M.internal_diversity(gen, p=1) == pytest.approx(1 - t.mean(), abs=1e-6)
    per_row = 1 - np.mean(np.sqrt((t**2).mean(1)))
    assert M.internal_diversity(gen, p=2) == pytest.approx(per_row, abs=1e-6)
    nearest = [max(tanimoto(g, r) for r in ref) for g in gen]
    assert M.snn(gen, ref) == pytest.approx(np.mean(nearest), abs=1e-6)


def test_snn_of_a_set_against_itself_is_one():
    ref = ["CCO", "c1ccccc1", ETHER, NAPHTHALENE]
    assert M.snn(ref, ref) == pytest.approx(1.0)
    assert M.snn(ref, M.Reference.of(ref)) == pytest.approx(1.0)
    # one molecule against two: its nearest one, invalid samples left out
    expected = max(tanimoto("CCCO", "CCO"), tanimoto("CCCO", "c1ccccc1"))
    assert M.snn(["CCCO", "xyz"], ["CCO", "c1ccccc1"]) == pytest.approx(expected, abs=1e-6)
    assert M.snn(["xyz"], ref) is None


# --------------------------------------------------------------------------- Frag, Scaf


def test_fragment_and_scaffold_counts_by_hand():
    # BRICS cuts both aryl-O bonds of the ether: phenyl twice, counted twice (MOSES)
    assert M.fragment_counts([chem.mol(ETHER)]) == Counter({"[16*]c1ccccc1": 2, "[3*]O[3*]": 1})
    assert M.fragment_counts([chem.mol("CCO")]) == Counter({"CCO": 1})
    mols = [chem.mol(s) for s in (NAPHTHALENE, "c1ccc2ccccc2c1", "Cc1ccccc1", "CCO", BIPHENYL)]
    # toluene's one-ring scaffold and ethanol's empty one are not counted (MOSES: min 2 rings)
    assert M.scaffold_counts(mols) == Counter({"c1ccc2ccccc2c1": 2, BIPHENYL: 1})
    assert M.scaffold_counts(mols, min_rings=1)["c1ccccc1"] == 1


def test_frag_and_scaf_of_a_set_against_itself_is_one_and_disjoint_is_zero():
    a = [NAPHTHALENE, DECALIN, NAPHTHALENE]
    b = [BIPHENYL, ETHER]
    for metric in (M.fragment_similarity, M.scaffold_similarity):
        assert metric(a, a) == pytest.approx(1.0)
        assert metric(b, M.Reference.of(b)) == pytest.approx(1.0)
        assert metric(a, b) == 0.0
    # Frag: {phenyl: 2, O: 1} against {phenyl: 2} -> 4 / (sqrt(5) * 2)
    assert M.fragment_similarity([ETHER], [BIPHENYL]) == pytest.approx(2 / math.sqrt(5))
    # Scaf: {naphthalene: 2, biphenyl: 1} against {naphthalene: 1, biphenyl: 2} -> 4 / 5
    scaf = M.scaffold_similarity([NAPHTHALENE, "c1ccc2ccccc2c1", BIPHENYL],
                                 [NAPHTHALENE, BIPHENYL, "Cc1ccc(-c2ccccc2)cc1"])  # fmt: skip
    assert scaf == pytest.approx(4 / 5)
    assert M.scaffold_similarity(["CCO", "Cc1ccccc1"], a) is None  # no scaffold to compare


# --------------------------------------------------------------------------- properties


def test_wasserstein_of_identical_sets_is_zero_and_by_hand_otherwise():
    s = ["CCO", "c1ccccc1", ETHER, "CC(=O)O"]
    d = M.property_distances(s, list(reversed(s)))
    assert set(d.distances) == set(M.PROPERTY_NAMES)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in d.distances.values())
    assert len(d.gen_values["qed"]) == len(d.ref_values["qed"]) == 4
    # one molecule each: W1 is the difference of the two values
    w = M.property_distances(["C"], ["CC"], names=("mw",)).distances["mw"]
    assert w == pytest.approx(chem.weight(chem.mol("CC")) - chem.weight(chem.mol("C")))
    # repeats count: [C, C, CC] against [CC] -> two thirds of the mass moved by the difference
    w = M.property_distances(["C", "C", "CC"], ["CC"], names=("mw",)).distances["mw"]
    assert w == pytest.approx(2 / 3 * (chem.weight(chem.mol("CC")) - chem.weight(chem.mol("C"))))


# --------------------------------------------------------------------------- all at once


def test_molecule_metrics_matches_the_parts_and_notes_what_is_short():
    gen = ["CCO", "OCC", "c1ccccc1", "xyz", ETHER, NAPHTHALENE, ""]
    train = ["OCC", "CCCC"]
    test = [BIPHENYL, ETHER, NAPHTHALENE, DECALIN, "CCN", "C1CC"]
    out = M.molecule_metrics(gen, train, test, ks=(2, 10))
    json.dumps(out, allow_nan=False)  # JSON-able, no NaN
    assert (out["n"], out["valid"], out["reference"]) == (7, 5, 5)
    assert out["validity"] == 5 / 7
    assert out["unique@2"] == 1 / 2  # CCO, OCC
    assert out["unique@10"] == 4 / 5
    assert out["novelty"] == 3 / 4  # CCO is in train
    assert out["intdiv1"] == pytest.approx(M.internal_diversity(gen, 1))
    assert out["intdiv2"] == pytest.approx(M.internal_diversity(gen, 2))
    assert out["snn"] == pytest.approx(M.snn(gen, test))
    assert out["frag"] == pytest.approx(M.fragment_similarity(gen, test))
    assert out["scaf"] == pytest.approx(M.scaffold_similarity(gen, test))
    d = M.property_distances(gen, test)
    for name in M.PROPERTY_NAMES:
        assert out[f"{name}_w1"] == pytest.approx(d.distances[name])
    assert out["notes"] == [
        "reference: 1 of 6 strings are not molecules and were left out",
        "unique@10 computed on 5 valid molecules (fewer than 10)",
    ]
    # a prepared reference and a canonical training set give the same numbers, with progress on
    ref = M.Reference.of(test)
    with progress.shown("lines"):
        again = M.molecule_metrics(gen, M.training_set(train), ref, ks=(2, 10))
    assert again == out


def test_molecule_metrics_subsampled_reference_and_bad_inputs():
    test = ["CCO", "CCN", "CCC", "c1ccccc1", "CC(=O)O"]
    out = M.molecule_metrics(["CCO"], ["CCO"], test, ks=(1,), ref_limit=3, seed=1)
    assert out["reference"] == 3
    assert out["notes"][0] == "reference: a random subsample of 3 of its 5 molecules (seed 1)"
    assert out["novelty"] == 0.0
    ref = M.Reference.of(test, limit=3, seed=1)
    assert M.molecule_metrics(["CCO"], ["CCO"], ref, ks=(1,)) == out
    nothing = M.molecule_metrics(["xyz", ""], ["CCO"], test, ks=(1,))
    assert nothing["validity"] == 0 and nothing["snn"] is None and nothing["unique@1"] is None
    json.dumps(nothing, allow_nan=False)
    with pytest.raises(DataError, match="non-canonical"):
        M.molecule_metrics(["CCO"], {"OCC"}, test)  # a raw set would inflate novelty
    with pytest.raises(DataError):
        M.molecule_metrics([], ["CCO"], test)
    with pytest.raises(ValueError):
        M.molecule_metrics(["CCO"], ["CCO"], ref, ref_limit=2)


# --------------------------------------------------------------------------- the picture


def test_property_histograms_writes_a_png(tmp_path):
    gen = ["CCO", "c1ccccc1", ETHER, NAPHTHALENE, "CCN"]
    d = M.property_distances(gen, [BIPHENYL, DECALIN, "CC(=O)O", "CCCO"])
    path = tmp_path / "properties.png"
    property_histograms(d.gen_values, d.ref_values, path, distances=d.distances)
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width > 400 and img.height > 100
        img.load()  # the whole file decodes
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    with pytest.raises(ValueError):
        property_histograms({"qed": np.ones(2)}, {"sa": np.ones(2)}, tmp_path / "x.png")
