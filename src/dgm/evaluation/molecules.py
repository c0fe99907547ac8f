"""Sample quality of generated molecules: the MOSES metrics (Polykovskiy et al. 2020,
"Molecular Sets (MOSES): A Benchmarking Platform for Molecular Generation Models").

Each metric follows MOSES's reference code (``moses/metrics``), which made the paper's tables:

- validity: the share of strings that are molecules (``fraction_valid``);
- unique@k: among the first k valid molecules, the share of distinct ones (``fraction_unique``);
- novelty: the share of the distinct valid molecules not in the training set (``novelty``);
- IntDiv_p: one minus the mean p-power Tanimoto similarity inside the generated set
  (``internal_diversity``, see :func:`internal_diversity` for the exact order of the means);
- SNN: the mean over generated molecules of the Tanimoto similarity to the nearest reference
  molecule (``SNNMetric``);
- Frag and Scaf: cosine similarity of BRICS-fragment and Bemis-Murcko-scaffold counts
  (``FragMetric``, ``ScafMetric``);
- logP, QED, SA, MW: 1-D Wasserstein distances between the generated and reference values
  (``WassersteinMetric``).

Similarities are Tanimoto on Morgan fingerprints, radius 2, 1024 bits (MOSES's ``fingerprint``).
Every metric after validity is computed on the valid generated molecules *with* repeats, as
MOSES does (a model that repeats one molecule gets the low IntDiv it deserves).

The reference side (the test set's fingerprints, fragment and scaffold counts, properties) is a
:class:`Reference`, built once and reused for every sample set scored against it. RDKit is the
``molecules`` extra; it is imported when first needed (:func:`dgm.data.chem.rdkit`).
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np

from dgm import progress as _progress
from dgm.data import chem
from dgm.errors import DataError

FINGERPRINT_RADIUS = 2  # MOSES: morgan__r=2
FINGERPRINT_BITS = 1024  # MOSES: morgan__n=1024
PROPERTY_NAMES = ("logp", "qed", "sa", "mw")
KS = (1000, 10000)
MIN_SCAFFOLD_RINGS = 2  # MOSES's compute_scaffolds(min_rings=2): see scaffold_counts
BLOCK = 2048  # rows and columns of one Tanimoto block: 2048 x 2048 float32 = 16 MB


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True, eq=False)
class _Parsed:
    """Strings parsed once: the valid molecules in order and their canonical SMILES."""

    size: int  # strings given
    mols: list[Any]
    canonical: list[str]

    @property
    def valid(self) -> int:
        return len(self.mols)

    @cached_property
    def distinct(self) -> tuple[list[Any], np.ndarray]:
        """One molecule per canonical SMILES and how often it occurs: fragments, scaffolds and
        properties are computed once per distinct molecule and counted with its repeats (the
        numbers of MOSES, which keeps repeats, for less work on a collapsed sample)."""
        where: dict[str, int] = {}
        mols, counts = [], []
        for m, c in zip(self.mols, self.canonical):
            i = where.setdefault(c, len(mols))
            if i == len(mols):
                mols.append(m)
                counts.append(0)
            counts[i] += 1
        return mols, np.asarray(counts, dtype=np.int64)


def _parse(smiles: Sequence[str] | _Parsed, desc: str = "", show: bool = False) -> _Parsed:
    if isinstance(smiles, _Parsed):
        return smiles
    chem.rdkit()  # the extra's error, before any work
    to_smiles = chem.rdkit().MolToSmiles
    mols, canonical = [], []
    for s in _maybe_track(smiles, desc or "parsing SMILES", show, "molecules"):
        m = chem.mol(s)
        if m is not None:
            mols.append(m)
            canonical.append(to_smiles(m))
    return _Parsed(len(smiles), mols, canonical)


def _maybe_track(items: Sequence[Any], desc: str, show: bool, unit: str) -> Iterable[Any]:
    return _progress.track(items, desc, unit=unit) if show else items


class _Silent:
    """A progress task that says nothing: for ``progress=False`` inside a command."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None


def _task(total: float, desc: str, unit: str, show: bool) -> Any:
    return _progress.task(total, desc, unit) if show else _Silent()


def validity(gen: Sequence[str]) -> float:
    """MOSES ``fraction_valid``: the share of ``gen`` that parses and sanitises to a molecule
    (:func:`dgm.data.chem.mol`; empty strings are invalid)."""
    chem.check_smiles_list(gen, "validity")
    return _parse(gen).valid / len(gen)


# ----------------------------------------------------------------------------- unique, novel


@dataclass(frozen=True)
class Unique:
    """unique@k: ``value`` is the share of distinct molecules among the first ``n`` valid ones;
    ``n`` is ``k``, or fewer when the sample has fewer valid molecules than ``k`` (MOSES then
    warns and uses them all); ``value`` is None when there is no valid molecule."""

    value: float | None
    k: int | None
    n: int

    @property
    def short(self) -> bool:
        """Whether it was computed on fewer than ``k`` molecules."""
        return self.k is not None and self.n < self.k

    @property
    def name(self) -> str:
        return "unique" if self.k is None else f"unique@{self.k}"

    @property
    def note(self) -> str | None:
        """A sentence for the report when ``short``, else None."""
        if not self.short:
            return None
        return f"{self.name} computed on {self.n} valid molecules (fewer than {self.k})"


def _unique(parsed: _Parsed, k: int | None) -> Unique:
    if k is not None and k < 1:
        raise ValueError(f"unique@k needs k >= 1, got {k}")
    first = parsed.canonical if k is None else parsed.canonical[:k]
    value = len(set(first)) / len(first) if first else None
    return Unique(value, k, len(first))


def uniqueness(gen: Sequence[str], k: int | None = None) -> Unique:
    """MOSES unique@k (``fraction_unique``): among the valid molecules of ``gen`` in order, the
    first ``k`` (all when None); the share of distinct canonical SMILES. Fewer valid molecules
    than ``k`` are all used, and the result says so (:attr:`Unique.short`, :attr:`Unique.note`)."""
    return _unique(_parse(gen), k)


def training_set(smiles: Iterable[str], show: bool = False) -> frozenset[str]:
    """The canonical SMILES of the molecules of ``smiles`` (invalid strings left out): the form
    :func:`novelty` compares against, computed once per training set."""
    from dgm.data.molecules import canonical_smiles

    return frozenset(c for c in canonical_smiles(list(smiles), "canonical training SMILES") if c)


def _check_canonical(train: AbstractSet[str], probe: int = 64) -> None:
    """A set passed as the training set must already be canonical (:func:`training_set`); a few
    of its members are checked, since a raw set would silently inflate novelty."""
    for i, s in enumerate(train):
        if i >= probe:
            return
        c = chem.canonical(s)
        if c is not None and c != s:
            raise DataError(
                f"the training set holds non-canonical SMILES ({s!r} is {c!r} in canonical "
                "form); pass the strings as a list, or canonicalise them with training_set()"
            )


def _novelty(parsed: _Parsed, train: AbstractSet[str]) -> float | None:
    distinct = set(parsed.canonical)
    if not distinct:
        return None
    return len(distinct - train) / len(distinct)


def novelty(gen: Sequence[str], train_canonical: AbstractSet[str]) -> float | None:
    """MOSES ``novelty``: the share of the distinct valid molecules of ``gen`` whose canonical
    SMILES is not in ``train_canonical`` (canonical SMILES, :func:`training_set`); None when
    ``gen`` has no valid molecule."""
    return _novelty(_parse(gen), train_canonical)


# ----------------------------------------------------------------------------- fingerprints


@cache
def _morgan() -> Any:
    chem.rdkit()
    gen = importlib.import_module("rdkit.Chem.rdFingerprintGenerator")
    # the same bits as MOSES's GetMorganFingerprintAsBitVect(m, 2, nBits=1024)
    return gen.GetMorganGenerator(radius=FINGERPRINT_RADIUS, fpSize=FINGERPRINT_BITS)


def fingerprints(mols: Sequence[Any]) -> np.ndarray:
    """Morgan fingerprints (radius 2, 1024 bits) of RDKit molecules, bit-packed: uint8
    ``[N, 128]`` (a 176k-molecule test set is 22 MB packed, 720 MB as float32)."""
    if not len(mols):
        return np.zeros((0, FINGERPRINT_BITS // 8), np.uint8)
    g = _morgan()
    return np.packbits(np.stack([g.GetFingerprintAsNumPy(m) for m in mols]), axis=1)


def _popcount(packed: np.ndarray) -> np.ndarray:
    return np.unpackbits(packed, axis=1).sum(1, dtype=np.float32)


def _tanimoto_blocks(
    a: np.ndarray, b: np.ndarray, symmetric: bool = False, desc: str = "", show: bool = False
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Tanimoto similarities of the packed fingerprints ``a`` against ``b``, block by block:
    ``(i0, j0, T)`` with ``T[i, j] = sim(a[i0 + i], b[j0 + j])``, float32, at most
    ``BLOCK x BLOCK``, so memory stays bounded whatever the sizes. ``symmetric`` (``a is b``):
    only the blocks on or above the diagonal.

    The intersections are one product of a sparse 0/1 matrix (about 45 of 1024 bits are set)
    by a dense one, exact in float32 (counts below 2^24), about twice as fast as a dense
    product and five times as fast as RDKit's BulkTanimotoSimilarity, whose per-pair Python
    floats dominate at 10^8 pairs. Two empty fingerprints have similarity 1, as in MOSES."""
    sparse = importlib.import_module("scipy.sparse")
    ca, cb = _popcount(a), _popcount(b)
    left = sparse.csr_matrix(np.unpackbits(a, axis=1).astype(np.float32))
    starts = range(0, len(b), BLOCK)
    total = sum(len(range(0, j0 + 1 if symmetric else len(a), BLOCK)) for j0 in starts)
    with _task(total, desc or "Tanimoto similarities", "blocks", show) as bar:
        for j0 in starts:  # each reference block unpacked once
            right = np.unpackbits(b[j0 : j0 + BLOCK], axis=1).astype(np.float32).T.copy()
            cj = cb[j0 : j0 + BLOCK]
            for i0 in range(0, j0 + 1 if symmetric else len(a), BLOCK):
                inter = np.asarray(left[i0 : i0 + BLOCK] @ right, dtype=np.float32)
                union = ca[i0 : i0 + BLOCK, None] + cj[None, :] - inter
                t = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
                yield i0, j0, t
                bar.update(1)


def _internal_diversity(
    fps: np.ndarray, ps: Sequence[float], show: bool = False
) -> list[float | None]:
    """IntDiv_p for each p of ``ps``, from one pass over the similarities."""
    if any(p <= 0 for p in ps):
        raise ValueError(f"IntDiv_p needs p > 0, got {list(ps)}")
    n = len(fps)
    if n == 0:
        return [None] * len(ps)
    rows = np.zeros((len(ps), n))  # sum over j of T(i, j)^p: all ordered pairs, self-pairs too
    for i0, j0, t in _tanimoto_blocks(fps, fps, True, "IntDiv similarities", show):
        for r, p in zip(rows, ps):
            tp = t if p == 1 else t.astype(np.float64) ** p
            r[i0 : i0 + len(tp)] += tp.sum(1, dtype=np.float64)
            if j0 != i0:  # the block below the diagonal is this one transposed
                r[j0 : j0 + tp.shape[1]] += tp.sum(0, dtype=np.float64)
    # MOSES's average_agg_tanimoto(agg="mean", p): the p-mean of each row, then the mean of the
    # rows; the paper writes one p-mean over all pairs. The two agree for p = 1 (and for any p
    # when every row has the same mean); the code made the published IntDiv2 numbers
    return [float(1.0 - np.mean((r / n) ** (1.0 / p))) for r, p in zip(rows, ps)]


def internal_diversity(gen: Sequence[str], p: float = 1) -> float | None:
    """MOSES IntDiv_p (``internal_diversity``) of the valid molecules of ``gen`` (repeats kept):
    ``1 - mean_i (mean_j T(i, j)^p)^(1/p)`` over all ordered pairs, self-pairs included, ``T``
    Tanimoto on Morgan fingerprints. This is MOSES's code; the paper writes
    ``1 - (mean_ij T(i, j)^p)^(1/p)``, equal for p = 1, and for p = 2 whenever every molecule
    has the same mean squared similarity to the set (two molecules, for instance). None when
    ``gen`` has no valid molecule."""
    return _internal_diversity(fingerprints(_parse(gen).mols), [p])[0]


def _snn(gen_fps: np.ndarray, ref_fps: np.ndarray, show: bool = False) -> float | None:
    if not len(gen_fps) or not len(ref_fps):
        return None
    best = np.zeros(len(gen_fps), np.float32)
    for i0, _, t in _tanimoto_blocks(gen_fps, ref_fps, desc="SNN similarities", show=show):
        part = best[i0 : i0 + len(t)]
        np.maximum(part, t.max(1), out=part)
    return float(best.mean(dtype=np.float64))


# ----------------------------------------------------------------------------- fragments


def fragment_counts(mols: Iterable[Any], weights: Iterable[int] | None = None) -> Counter[str]:
    """BRICS fragments of each molecule, counted with repeats (MOSES's ``compute_fragments``:
    RDKit's ``FragmentOnBRICSBonds``, the pieces of its SMILES; a molecule with a fragment twice
    counts it twice). RDKit's ``BRICSDecompose`` would give each molecule's *set* of fragments,
    after a recursive search five times slower, and other numbers than MOSES's. ``weights``:
    how many times each molecule counts (default once)."""
    rd = chem.rdkit()
    counts: Counter[str] = Counter()
    for m, w in zip(mols, weights if weights is not None else _ones()):
        for piece in rd.MolToSmiles(rd.FragmentOnBRICSBonds(m)).split("."):
            counts[piece] += int(w)
    return counts


def _ones() -> Iterator[int]:
    while True:
        yield 1


def _scaffold(m: Any, min_rings: int) -> str | None:
    rd = chem.rdkit()
    murcko = importlib.import_module("rdkit.Chem.Scaffolds.MurckoScaffold")
    try:
        scaffold = murcko.GetScaffoldForMol(m)
    except (ValueError, RuntimeError):  # as MOSES: a molecule RDKit cannot reduce has none
        return None
    smiles = rd.MolToSmiles(scaffold)  # isomeric, as MOSES (MurckoScaffoldSmiles drops it)
    if not smiles or scaffold.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


def scaffold_counts(
    mols: Iterable[Any], min_rings: int = MIN_SCAFFOLD_RINGS, weights: Iterable[int] | None = None
) -> Counter[str]:
    """Bemis-Murcko scaffolds (canonical SMILES) counted over the molecules (MOSES's
    ``compute_scaffolds``). As in MOSES, molecules without a scaffold (acyclic: the empty
    scaffold) and scaffolds with fewer than ``min_rings`` rings (default 2: MOSES's default,
    which its ScafMetric uses) are not counted, so a single benzene ring is not a scaffold.
    ``weights``: how many times each molecule counts (default once)."""
    counts: Counter[str] = Counter()
    for m, w in zip(mols, weights if weights is not None else _ones()):
        s = _scaffold(m, min_rings)
        if s is not None:
            counts[s] += int(w)
    return counts


def cosine_similarity(ref: Counter[str], gen: Counter[str]) -> float | None:
    """MOSES ``cos_similarity``: the cosine of two count vectors over the union of their keys
    (missing keys count 0); None (MOSES: NaN) when either has no key."""
    if not ref or not gen:
        return None
    keys = list(ref.keys() | gen.keys())
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))


# ----------------------------------------------------------------------------- the reference


def _properties(parsed: _Parsed, names: Sequence[str], show: bool = False) -> dict[str, np.ndarray]:
    """Each property of each valid molecule, repeats included (computed once per distinct
    molecule); values RDKit cannot compute (NaN) left out."""
    mols, counts = parsed.distinct
    out = {}
    for name in names:
        chem.check_property(name)
        values = np.full(len(mols), np.nan)
        with _task(len(mols), f"property {name}", "molecules", show) as bar:
            for i0 in range(0, len(mols), 1000):
                values[i0 : i0 + 1000] = chem.property_values(mols[i0 : i0 + 1000], name)
                bar.update(len(values[i0 : i0 + 1000]))
        values = np.repeat(values, counts)
        out[name] = values[~np.isnan(values)]
    return out


def _fragments(parsed: _Parsed, show: bool = False) -> Counter[str]:
    mols, counts = parsed.distinct
    return fragment_counts(_maybe_track(mols, "BRICS fragments", show, "molecules"), counts)


def _scaffolds(parsed: _Parsed, show: bool = False) -> Counter[str]:
    mols, counts = parsed.distinct
    return scaffold_counts(_maybe_track(mols, "scaffolds", show, "molecules"), weights=counts)


@dataclass(frozen=True, eq=False)
class Reference:
    """What the metrics need of a reference set (the test set), computed once by :meth:`of`
    (MOSES's ``compute_intermediate_statistics``): the Morgan fingerprints (packed,
    :func:`fingerprints`), BRICS-fragment and scaffold counts, and the properties.

    ``size`` is the number of strings given, ``n`` the molecules kept (valid, and within the
    subsample when ``limit`` capped it); ``notes`` says what was left out."""

    size: int
    n: int
    fingerprints: np.ndarray
    fragments: Counter[str]
    scaffolds: Counter[str]
    properties: dict[str, np.ndarray]
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def of(
        cls,
        smiles: Sequence[str],
        limit: int | None = None,
        seed: int = 0,
        names: Sequence[str] = PROPERTY_NAMES,
        show: bool = False,
    ) -> Reference:
        """The statistics of ``smiles``. ``limit``: use a subsample of that many strings drawn
        without replacement with ``seed`` (a 176k-molecule test set takes minutes on one core,
        mostly QED and SA); a note says so. ``show``: report progress through
        :mod:`dgm.progress` (visible inside a command)."""
        chem.check_smiles_list(smiles, "reference set")
        notes = []
        items = list(smiles)
        if limit is not None:
            if limit < 1:
                raise ValueError(f"reference limit must be >= 1, got {limit}")
            if len(items) > limit:
                keep = np.sort(np.random.default_rng(seed).choice(len(items), limit, False))
                notes.append(
                    f"reference: a random subsample of {limit} of its {len(items)} molecules "
                    f"(seed {seed})"
                )
                items = [items[i] for i in keep]
        parsed = _parse(items, "parsing the reference", show)
        if parsed.valid < len(items):
            notes.append(
                f"reference: {len(items) - parsed.valid} of {len(items)} strings are not "
                "molecules and were left out"
            )
        if not parsed.valid:
            raise DataError("reference set: no string is a molecule")
        return cls(
            size=len(smiles),
            n=parsed.valid,
            fingerprints=fingerprints(parsed.mols),
            fragments=_fragments(parsed, show),
            scaffolds=_scaffolds(parsed, show),
            properties=_properties(parsed, names, show),
            notes=tuple(notes),
        )


def snn(gen: Sequence[str], ref: Sequence[str] | Reference) -> float | None:
    """MOSES SNN (``SNNMetric``): the mean over the valid molecules of ``gen`` (repeats kept)
    of the largest Tanimoto similarity to a molecule of ``ref`` (Morgan, radius 2, 1024 bits);
    None when ``gen`` has no valid molecule."""
    ref_fps = ref.fingerprints if isinstance(ref, Reference) else fingerprints(_parse(ref).mols)
    return _snn(fingerprints(_parse(gen).mols), ref_fps)


def fragment_similarity(gen: Sequence[str], ref: Sequence[str] | Reference) -> float | None:
    """MOSES Frag (``FragMetric``): cosine similarity of the BRICS-fragment counts
    (:func:`fragment_counts`) of the valid molecules of ``gen`` and of ``ref``."""
    ref_counts = ref.fragments if isinstance(ref, Reference) else _fragments(_parse(ref))
    return cosine_similarity(ref_counts, _fragments(_parse(gen)))


def scaffold_similarity(gen: Sequence[str], ref: Sequence[str] | Reference) -> float | None:
    """MOSES Scaf (``ScafMetric``): cosine similarity of the Bemis-Murcko scaffold counts
    (:func:`scaffold_counts`: scaffolds of two rings or more) of the valid molecules of ``gen``
    and of ``ref``; None when either set has no such scaffold."""
    ref_counts = ref.scaffolds if isinstance(ref, Reference) else _scaffolds(_parse(ref))
    return cosine_similarity(ref_counts, _scaffolds(_parse(gen)))


# ----------------------------------------------------------------------------- properties


@dataclass(frozen=True, eq=False)
class PropertyDistances:
    """Per property: the 1-D Wasserstein distance (None when either side has no value) and the
    values on each side, for :func:`dgm.plotting.property_histograms`."""

    distances: dict[str, float | None]
    gen_values: dict[str, np.ndarray]
    ref_values: dict[str, np.ndarray]


def _property_distances(
    gen_values: dict[str, np.ndarray], ref_values: dict[str, np.ndarray]
) -> PropertyDistances:
    from scipy.stats import wasserstein_distance

    distances: dict[str, float | None] = {}
    for name, g in gen_values.items():
        r = ref_values[name]
        distances[name] = float(wasserstein_distance(r, g)) if len(g) and len(r) else None
    return PropertyDistances(distances, gen_values, {k: ref_values[k] for k in gen_values})


def property_distances(
    gen: Sequence[str], ref: Sequence[str] | Reference, names: Sequence[str] = PROPERTY_NAMES
) -> PropertyDistances:
    """MOSES's property metrics (``WassersteinMetric``): per property of
    :data:`dgm.data.chem.PROPERTIES` (logP, QED, SA, MW by default), the 1-D Wasserstein
    distance (``scipy.stats.wasserstein_distance``) between the values of the valid molecules of
    ``gen`` (repeats kept) and of ``ref``, and the values themselves."""
    if isinstance(ref, Reference):
        missing = [n for n in names if n not in ref.properties]
        if missing:
            raise ValueError(f"the reference has no values of {', '.join(missing)}; rebuild it")
        ref_values = ref.properties
    else:
        ref_values = _properties(_parse(ref), names)
    return _property_distances(_properties(_parse(gen), names), ref_values)


# ----------------------------------------------------------------------------- all at once


@dataclass(frozen=True, eq=False)
class MoleculeScores:
    """:func:`score_molecules`' result: ``metrics``, the JSON-able dict of
    :func:`molecule_metrics`, and the property values behind its ``*_w1`` entries (for
    :func:`dgm.plotting.property_histograms`, without computing QED and SA twice)."""

    metrics: dict[str, Any]
    properties: PropertyDistances


def score_molecules(
    gen: Sequence[str],
    train: Sequence[str] | AbstractSet[str],
    test: Sequence[str] | Reference,
    ks: Sequence[int] = KS,
    ref_limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> MoleculeScores:
    """The MOSES metrics of the generated SMILES ``gen`` (see :func:`molecule_metrics`), and
    the property values behind them."""
    chem.check_smiles_list(gen, "generated molecules")
    show = progress and _progress.enabled()
    if isinstance(test, Reference):
        if ref_limit is not None:
            raise ValueError("test is a Reference already: give the limit to Reference.of")
        ref = test
    else:
        ref = Reference.of(test, limit=ref_limit, seed=seed, show=show)
    if isinstance(train, AbstractSet):
        _check_canonical(train)
        train_set: AbstractSet[str] = train
    else:
        train_set = training_set(train, show)
    parsed = _parse(gen, "parsing the samples", show)
    notes = list(ref.notes)
    out: dict[str, Any] = {"n": parsed.size, "valid": parsed.valid, "reference": ref.n}
    out["validity"] = parsed.valid / parsed.size
    for k in ks:
        u = _unique(parsed, k)
        out[u.name] = u.value
        if u.note:
            notes.append(u.note)
    out["novelty"] = _novelty(parsed, train_set)
    mols = parsed.mols
    fps = fingerprints(mols)
    out["intdiv1"], out["intdiv2"] = _internal_diversity(fps, (1, 2), show)
    out["snn"] = _snn(fps, ref.fingerprints, show)
    out["frag"] = cosine_similarity(ref.fragments, _fragments(parsed, show))
    gen_scaffolds = _scaffolds(parsed, show)
    out["scaf"] = cosine_similarity(ref.scaffolds, gen_scaffolds)
    if mols and out["scaf"] is None:
        notes.append(
            f"scaf: no scaffold of {MIN_SCAFFOLD_RINGS} or more rings among the "
            f"{'samples' if not gen_scaffolds else 'reference'} (MOSES counts only those)"
        )
    names = [n for n in PROPERTY_NAMES if n in ref.properties]
    props = _property_distances(_properties(parsed, names, show), ref.properties)
    for name in names:
        out[f"{name}_w1"] = props.distances[name]
        lost = len(mols) - len(props.gen_values[name])
        if lost:
            notes.append(f"{name}: RDKit could not compute it for {lost} of {len(mols)} samples")
    if not mols:
        notes.append("no generated string is a molecule: the other metrics are undefined")
    out["notes"] = notes
    return MoleculeScores(out, props)


def molecule_metrics(
    gen: Sequence[str],
    train: Sequence[str] | AbstractSet[str],
    test: Sequence[str] | Reference,
    ks: Sequence[int] = KS,
    ref_limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The MOSES metrics of the generated SMILES ``gen``, as a JSON-able dict:

    ``n`` (strings), ``valid`` (molecules among them), ``reference`` (test molecules used),
    ``validity``, ``unique@k`` for each k of ``ks``, ``novelty`` (against ``train``),
    ``intdiv1``, ``intdiv2``, ``snn``, ``frag``, ``scaf`` (against ``test``), ``logp_w1``,
    ``qed_w1``, ``sa_w1``, ``mw_w1`` (Wasserstein-1 to ``test``), and ``notes``: sentences for
    whatever was computed on fewer molecules than asked (unique@k on fewer valid molecules, a
    subsampled or partly invalid reference). An undefined value (no valid sample) is None.

    ``train``: SMILES, or a set of canonical SMILES from :func:`training_set` (to canonicalise a
    large training set once). ``test``: SMILES, or a :class:`Reference` built once for several
    sample sets; ``ref_limit`` caps a test given as SMILES by a subsample drawn with ``seed``.
    ``progress``: report the long steps through :mod:`dgm.progress` (shown inside a command)."""
    return score_molecules(gen, train, test, ks, ref_limit, seed, progress).metrics


# ----------------------------------------------------------------------------- models


def model_smiles(model: Any, x: Any) -> list[str]:
    """SMILES of rows of token ids of a molecule model (``TextModel``): the tokens decoded by
    its tokenizer, SELFIES turned into SMILES."""
    from dgm.data.molecules import smiles_of

    return smiles_of(model.texts(x.cpu()), model.tokenizer.kind)


def sample_smiles(model: Any, n: int, seed: int = 0, batch: int = 1000) -> list[str]:
    """``n`` samples of a molecule model as SMILES, drawn in batches (``torch`` seeded)."""
    import torch

    torch.manual_seed(seed)
    out: list[str] = []
    with _progress.task(n, "sampling molecules", unit="mol") as bar:
        for start in range(0, n, batch):
            k = min(batch, n - start)
            out += model_smiles(model, model.sample(k))
            bar.update(k)
    return out


# the papers' sampled reconstruction (Kusner et al. 2017; Jin et al. 2018): codes drawn per
# molecule, decodes drawn per code, on the first SAMPLED_MOLECULES test molecules (10 x 10 on
# all 5,000 of ZINC's is half a million decodes: hours on a CPU)
SAMPLED_CODES = 10
SAMPLED_DECODES = 10
SAMPLED_MOLECULES = 500


def reconstruction_accuracy(
    model: Any,
    x: Any,
    batch: int = 500,
    *,
    codes: int = SAMPLED_CODES,
    decodes: int = SAMPLED_DECODES,
    sampled_limit: int = SAMPLED_MOLECULES,
) -> dict[str, Any]:
    """Reconstruction of molecules ``x`` (token rows), canonical SMILES compared:

    - ``reconstruction``: the share whose posterior mean decodes greedily to the same molecule
      (Gomez-Bombarelli et al. 2018), over all of ``x``;
    - ``reconstruction_sampled``: for a :class:`StochasticAutoencoder`, the share of ``codes``
      draws z ~ q(z|x) times ``decodes`` draws x' ~ p(x|z) that give the molecule back, as
      Kusner et al. 2017 and Jin et al. 2018 (10 x 10) measure it, over the first
      ``sampled_limit`` molecules of ``x``."""
    import torch

    from dgm.models.capabilities import StochasticAutoencoder

    same = total = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            rows = x[i : i + batch].to(model.device)
            want = [chem.canonical(s) for s in model_smiles(model, rows)]
            got = [chem.canonical(s) for s in model_smiles(model, model.decode(model.encode(rows)))]
            same += sum(w is not None and w == g for w, g in zip(want, got))
            total += len(want)
    out: dict[str, Any] = {"reconstruction": same / max(total, 1), "reconstruction_n": total}
    if not isinstance(model, StochasticAutoencoder) or codes < 1 or decodes < 1:
        return out
    subset = x[:sampled_limit]
    per = max(1, batch // (codes * decodes))  # molecules per pass
    hits = tries = 0
    with torch.no_grad():
        for i in range(0, len(subset), per):
            rows = subset[i : i + per].to(model.device)
            want = [chem.canonical(s) for s in model_smiles(model, rows)]
            z = model.encode_draw(rows.repeat(codes, 1))  # [codes * b, K], code-major
            got = model_smiles(model, model.decode_draw(z.repeat(decodes, 1)))
            b = len(want)
            for j, smiles in enumerate(got):
                w = want[j % b]
                hits += w is not None and chem.canonical(smiles) == w
            tries += len(got)
    out["reconstruction_sampled"] = hits / max(tries, 1)
    out["reconstruction_sampled_n"] = len(subset)
    out["reconstruction_sampled_draws"] = f"{codes} codes x {decodes} decodes"
    return out


def evaluate_molecules(
    model: Any,
    train: Sequence[str],
    test: Sequence[str],
    num_generated: int,
    seed: int = 0,
    ref_limit: int | None = 20_000,
) -> MoleculeScores:
    """The MOSES metrics of ``num_generated`` samples of ``model`` against the run's training
    molecules (novelty) and test molecules (SNN, Frag, Scaf, properties; at most ``ref_limit``
    of them, a seeded subsample)."""
    gen = sample_smiles(model, num_generated, seed)
    ks = tuple(k for k in KS if k <= max(num_generated, KS[0]))
    return score_molecules(gen, train, test, ks, ref_limit, seed, True)


__all__ = [
    "FINGERPRINT_BITS",
    "FINGERPRINT_RADIUS",
    "KS",
    "MIN_SCAFFOLD_RINGS",
    "PROPERTY_NAMES",
    "SAMPLED_CODES",
    "SAMPLED_DECODES",
    "SAMPLED_MOLECULES",
    "MoleculeScores",
    "PropertyDistances",
    "Reference",
    "Unique",
    "cosine_similarity",
    "evaluate_molecules",
    "fingerprints",
    "fragment_counts",
    "fragment_similarity",
    "internal_diversity",
    "model_smiles",
    "molecule_metrics",
    "novelty",
    "property_distances",
    "reconstruction_accuracy",
    "sample_smiles",
    "scaffold_counts",
    "scaffold_similarity",
    "score_molecules",
    "snn",
    "training_set",
    "uniqueness",
    "validity",
]
