"""Out-of-distribution scores from likelihood models, detection metrics and calibration.

Every score follows one convention: higher = more likely out-of-distribution, and OOD inputs
are the positive class of the detection metrics. The scores:

- ``likelihood``: -log p(x) in nats, the baseline that fails famously (Nalisnick et al. 2019,
  "Do deep generative models know what they don't know?");
- ``typicality``: |-log p(x) - H|, distance from the model's entropy H (Nalisnick, Matsukawa,
  Teh & Lakshminarayanan 2019, "Detecting out-of-distribution inputs to deep generative models
  using typicality"); batches of M inputs with the bootstrap threshold of their Algorithm 1;
- ``likelihood-ratio``: -(log p(x) - log p_background(x)), the background model trained on
  mutated inputs (Ren et al. 2019, "Likelihood ratios for out-of-distribution detection");
- ``complexity``: -log2 p(x) - L(x), L the lossless compressed length in bits (Serra et al.
  2020, "Input complexity and out-of-distribution detection with likelihood-based generative
  models");
- ``hybrid``: -(log p(x) + max_y log p(y|x)) for models with a classifier (Nalisnick et al.
  2019, "Hybrid models with deep and invertible features");
- for text models only (:data:`TEXT_SCORES`), ``likelihood-per-token``: -log p(x) / tokens,
  the likelihood with the length of the sequence taken out (a short sentence of another
  corpus is more probable than a long one of the training corpus for its length alone).

"""

from __future__ import annotations

import bz2
import io
import lzma
import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import Tensor

from dgm.data.inputs import mutate
from dgm.errors import ConfigError, DataError
from dgm.evaluation.classification import classifies
from dgm.evaluation.likelihood import per_example, per_example_nll
from dgm.evaluation.text import is_text, token_counts

ArrayLike = Tensor | np.ndarray | list | tuple

SCORES: dict[str, str] = {
    "likelihood": "-log p(x) in nats (the baseline; Nalisnick et al. 2019)",
    "typicality": "|-log p(x) - H|, distance from the model's entropy (Nalisnick et al. 2019, "
    "typicality test)",
    "likelihood-ratio": "-(log p(x) - log p_background(x)), background trained on mutated "
    "inputs (Ren et al. 2019)",
    "complexity": "-log2 p(x) - compressed length in bits (Serra et al. 2020, input complexity)",
    "hybrid": "-(log p(x) + max_y log p(y|x)), for models with a classifier (Nalisnick et al. "
    "2019, hybrid models)",
}

# scores of text models only (TextModel), beside SCORES
TEXT_SCORES: dict[str, str] = {
    "likelihood-per-token": "-log p(x) / tokens in nats, the likelihood without the length of "
    "the sequence (text models)",
}

COMPRESSORS = ("png", "zlib", "bz2", "lzma")
PNG_LEVEL = 9  # zlib level of Pillow's PNG writer (its default is 6); no `optimize` search
# xz preset 9 (extreme) with a 1 MiB dictionary: the same sizes as plain preset 9 for inputs up
# to 1 MiB, without allocating preset 9's 64 MiB dictionary for every example (300x faster)
LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]


# -- detection metrics --------------------------------------------------------------------------
def _scores(s: ArrayLike, what: str) -> np.ndarray:
    """1-D float64 numpy scores; DataError for empty or NaN inputs."""
    if isinstance(s, Tensor):
        s = s.detach().double().cpu().numpy()
    a = np.asarray(s, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise DataError(f"no {what} scores: score at least one input of each set")
    if np.isnan(a).any():
        raise DataError(
            f"{int(np.isnan(a).sum())} of {a.size} {what} scores are NaN; the model gave no "
            "usable log p(x) for them"
        )
    return a


def _finite_ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace +-inf by values just beyond the finite ones: the metrics below depend on order
    only, and scikit-learn refuses infinities (log p(x) = -inf gives a score of +inf)."""
    both = np.concatenate([a, b])
    fin = both[np.isfinite(both)]
    lo, hi = (fin.min() - 1.0, fin.max() + 1.0) if fin.size else (-1.0, 1.0)
    fix = lambda v: np.where(v == np.inf, hi, np.where(v == -np.inf, lo, v))  # noqa: E731
    return fix(a), fix(b)


def _labelled(in_scores: ArrayLike, out_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = _finite_ranks(_scores(in_scores, "in-distribution"), _scores(out_scores, "OOD"))
    labels = np.concatenate([np.zeros(a.size), np.ones(b.size)])  # OOD is the positive class
    return labels, np.concatenate([a, b])


def auroc(in_scores: ArrayLike, out_scores: ArrayLike) -> float:
    """Area under the ROC curve with OOD positive: P(out > in) + P(out == in) / 2."""
    return float(roc_auc_score(*_labelled(in_scores, out_scores)))


def aupr(in_scores: ArrayLike, out_scores: ArrayLike) -> float:
    """Area under the precision-recall curve with OOD positive (scikit-learn's average
    precision); its chance level is the OOD share n_out / (n_in + n_out)."""
    return float(average_precision_score(*_labelled(in_scores, out_scores)))


def fpr_at_tpr(in_scores: ArrayLike, out_scores: ArrayLike, tpr: float = 0.95) -> float:
    """FPR at ``tpr`` TPR in the sense of Hendrycks & Gimpel (2017) and Liang et al. (2018),
    where in-distribution inputs are the ones to keep: the share of OOD inputs an
    in-distribution threshold lets through.

    The threshold ``t`` is the k-th smallest in-distribution score with
    ``k = ceil(tpr * n_in)``: the smallest value with at least ``tpr`` of the in-distribution
    scores ``<= t`` (ties at ``t`` all pass, so the kept share may exceed ``tpr``). The result
    is the share of OOD scores ``<= t``; OOD inputs tied with ``t`` pass (count against the
    detector)."""
    if not 0 < tpr <= 1:
        raise ConfigError(f"tpr must be in (0, 1], got {tpr}")
    a = _scores(in_scores, "in-distribution")
    b = _scores(out_scores, "OOD")
    k = math.ceil(tpr * a.size - 1e-9)  # - 1e-9: 0.95 * 20 is 19.000000000000004
    t = np.sort(a)[max(k, 1) - 1]
    return float(np.mean(b <= t))


def detection_metrics(in_scores: ArrayLike, out_scores: ArrayLike) -> dict[str, float]:
    """``{"auroc", "aupr", "fpr95"}`` for one score (OOD positive, higher = more OOD)."""
    return {
        "auroc": auroc(in_scores, out_scores),
        "aupr": aupr(in_scores, out_scores),
        "fpr95": fpr_at_tpr(in_scores, out_scores, 0.95),
    }


def ood_report(
    scores_in: dict[str, ArrayLike], scores_out: dict[str, ArrayLike]
) -> dict[str, dict[str, float]]:
    """:func:`detection_metrics` for every score present in both dicts (in ``scores_in``'s
    order)."""
    return {k: detection_metrics(v, scores_out[k]) for k, v in scores_in.items() if k in scores_out}


# -- scores from per-example numbers ------------------------------------------------------------
def likelihood_score(log_px: Tensor) -> Tensor:
    """-log p(x) in nats ``[B]``."""
    return -log_px


def _nll(nll: ArrayLike, what: str, finite: bool = True) -> Tensor:
    """NLLs as a tensor; DataError when empty, NaN, or (``finite``) infinite."""
    t = nll.detach() if isinstance(nll, Tensor) else torch.as_tensor(nll, dtype=torch.float64)
    if t.numel() == 0:
        raise DataError(f"no {what} NLL values: score at least one input")
    bad = ~torch.isfinite(t) if finite else torch.isnan(t)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} {what} NLL values are NaN or infinite; the model gave no usable "
            "log p(x) for them"
        )
    return t


def estimate_entropy(reference_nll: ArrayLike) -> float:
    """The model's entropy H = E_p[-log p(x)], estimated as the mean NLL (nats) of
    in-distribution inputs the model did not train on (or its training inputs, as in
    Nalisnick et al.'s Algorithm 1)."""
    return float(_nll(reference_nll, "reference").double().mean())


def typicality_statistic(nll_batch: Tensor, entropy: float) -> Tensor:
    """|mean(nll_batch) - entropy| over the last dimension: ``[M] -> []`` or ``[N, M] -> [N]``
    (N batches of M inputs). Large for batches outside the typical set, on either side."""
    return (nll_batch.mean(dim=-1) - entropy).abs()


def typicality_threshold(
    reference_nll: ArrayLike,
    batch_size: int,
    alpha: float = 0.99,
    num_bootstrap: int = 1000,
    *,
    entropy: float | None = None,
    seed: int = 0,
) -> float:
    """epsilon_alpha of Nalisnick et al.'s Algorithm 1: the ``alpha`` quantile of the
    statistic over ``num_bootstrap`` batches of ``batch_size`` reference NLLs drawn with
    replacement. A batch whose statistic exceeds it is declared OOD (about 1 - alpha of
    in-distribution batches are). ``entropy`` defaults to the reference NLLs' mean; the paper
    takes it from the training data and bootstraps the validation data."""
    ref = _nll(reference_nll, "reference").double().reshape(-1)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    if num_bootstrap < 1:
        raise ConfigError(f"num_bootstrap must be >= 1, got {num_bootstrap}")
    h = estimate_entropy(ref) if entropy is None else float(entropy)
    g = torch.Generator(device=ref.device).manual_seed(seed)
    idx = torch.randint(0, ref.numel(), (num_bootstrap, batch_size), generator=g, device=ref.device)
    eps = typicality_statistic(ref[idx], h)  # [K]
    return float(torch.quantile(eps, alpha))


def typicality_scores(nll: ArrayLike, entropy: float, batch_size: int = 1, seed: int = 0) -> Tensor:
    """Typicality statistics of ``nll`` ``[N]``: per example (``batch_size`` 1, ``[N]``) or per
    batch of ``batch_size`` inputs (``[N // batch_size]``; inputs shuffled under ``seed``
    first, since data files are often sorted by class; the remainder is left out)."""
    t = _nll(nll, "scored", finite=False).reshape(-1)  # -log p = inf: as atypical as can be
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size == 1:
        return typicality_statistic(t.unsqueeze(-1), entropy)
    n = t.numel() // batch_size
    if n == 0:
        raise DataError(f"{t.numel()} inputs make no batch of {batch_size}; use a smaller batch")
    g = torch.Generator(device=t.device).manual_seed(seed)
    perm = torch.randperm(t.numel(), generator=g, device=t.device)[: n * batch_size]
    return typicality_statistic(t[perm].view(n, batch_size), entropy)


def likelihood_ratio_score(log_px: Tensor, log_px_background: Tensor) -> Tensor:
    """-(log p(x) - log p_background(x)) ``[B]``: the background model explains the
    population-level statistics (Ren et al. 2019), the ratio what is left."""
    return log_px_background - log_px


def _uint8_examples(x: Tensor, levels: int) -> np.ndarray:
    """``[B, *shape]`` whole levels -> uint8 numpy, the level value itself per value."""
    a = x.detach().cpu().double().numpy()
    if a.size and (not np.isfinite(a).all() or (a != np.round(a)).any()):
        raise DataError("input complexity needs whole levels, but the inputs hold fractions")
    if a.size and (a.min() < 0 or a.max() > levels - 1):
        raise DataError(
            f"values span [{a.min():g}, {a.max():g}], outside the {levels} levels 0..{levels - 1}"
        )
    return a.astype(np.uint8)


def _png_bytes(img: np.ndarray) -> bytes:
    """One ``(C, H, W)`` uint8 image as a PNG file (greyscale or RGB)."""
    from PIL import Image

    # uint8 [H, W] is greyscale ("L"), [H, W, 3] RGB
    pic = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0).copy())
    buf = io.BytesIO()
    pic.save(buf, format="PNG", compress_level=PNG_LEVEL, optimize=False)
    return buf.getvalue()


_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "zlib": lambda b: zlib.compress(b, 9),
    "bz2": lambda b: bz2.compress(b, 9),
    "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, filters=LZMA_FILTERS),
}


def _compressor_reason(shape: tuple[int, ...], levels: int | None, compressor: str) -> str | None:
    """Why ``compressor`` cannot code data of this shape and levels, or None if it can."""
    if compressor not in COMPRESSORS:
        return f"unknown compressor {compressor!r}; use one of {', '.join(COMPRESSORS)}"
    if levels is None:
        return (
            "input complexity needs discrete data: continuous values (levels None) have no "
            "lossless code length; quantise the data to whole levels first"
        )
    if levels > 256:
        return (
            f"input complexity stores values as 8-bit bytes, but the data has {levels} levels; "
            "quantise it to at most 256 levels"
        )
    if compressor == "png" and (len(shape) != 3 or shape[0] not in (1, 3)):
        return (
            f"png codes images of shape (C, H, W) with C 1 or 3, not {tuple(shape)}; "
            "use zlib, bz2 or lzma"
        )
    return None


def code_length_bits(x: Tensor, levels: int | None, compressor: str = "png") -> Tensor:
    """The lossless compressed size in bits of each example of ``x`` ``[B, *shape]``: ``[B]``
    float64 on the CPU (compressors run there).

    Values are stored as uint8 bytes, each the level itself (as a user's own 8-bit image would
    be stored). ``png``: Pillow's PNG writer, zlib level 9, no ``optimize`` search, images
    ``(C, H, W)`` with C 1 (greyscale) or 3 (RGB). ``zlib`` (level 9), ``bz2`` (level 9),
    ``lzma`` (xz, preset 9e, 1 MiB dictionary): the bytes in row-major order, any shape. Sizes
    are of the whole file, container included (signature, headers, checksums), as Serra et al.
    report them: that overhead is the same for every input of one shape, so it shifts the
    complexity score by a constant and changes no detection metric."""
    reason = _compressor_reason(tuple(x.shape[1:]), levels, compressor)
    if reason is not None:
        raise ConfigError(reason)
    arr = _uint8_examples(x, levels)  # [B, *shape]
    if compressor == "png":
        sizes = [len(_png_bytes(a)) for a in arr]
    else:
        sizes = [len(_COMPRESS[compressor](a.tobytes())) for a in arr]
    return 8 * torch.tensor(sizes, dtype=torch.float64)


def complexity_score(nll_nats: Tensor, bits: Tensor) -> Tensor:
    """S(x) = -log2 p(x) - L(x) ``[B]`` in bits: the likelihood's code length beyond what a
    generic compressor needs (Serra et al. 2020); ``bits`` on ``nll_nats``'s device."""
    return nll_nats / math.log(2) - bits.to(device=nll_nats.device, dtype=nll_nats.dtype)


def hybrid_score(log_px: Tensor, log_py: Tensor) -> Tensor:
    """-(log p(x) + max_y log p(y|x)) ``[B]`` from ``log_px`` ``[B]`` and ``log_py`` ``[B, C]``:
    minus the joint log-density of x and its most probable label."""
    return -(log_px + log_py.max(dim=-1).values)


# -- all scores of one model --------------------------------------------------------------------
def _check_model(model: Any, what: str) -> None:
    if not model.has_likelihood:
        raise ConfigError(
            f"the {what} ({model.name}) has no likelihood to score inputs with; use a "
            "likelihood model (arm, flow, vae, hybrid-flow, ...)"
        )


def unavailable_scores(
    model: Any,
    *,
    reference_nll: ArrayLike | None = None,
    background: Any = None,
    compressor: str = "png",
) -> dict[str, str]:
    """The scores of :data:`SCORES` that :func:`score_inputs` leaves out, with the reason."""
    out: dict[str, str] = {}
    if reference_nll is None:
        out["typicality"] = "needs reference NLLs of in-distribution inputs (the entropy)"
    if background is None:
        out["likelihood-ratio"] = (
            "needs a background model trained on mutated inputs (dgm ood --background RUN, "
            "that run trained with --set perturb=0.2)"
        )
    reason = _compressor_reason(tuple(model.event_shape), model.levels, compressor)
    if reason is not None:
        out["complexity"] = reason
    if not classifies(model):
        out["hybrid"] = f"{model.name} has no classifier (classify)"
    return out


def score_inputs(
    model: Any,
    x: Tensor,
    *,
    reference_nll: ArrayLike | None = None,
    background: Any = None,
    compressor: str = "png",
    num_samples: int | None = None,
    batch_size: int = 500,
) -> dict[str, Tensor]:
    """Every OOD score of :data:`SCORES` that applies to ``model`` and ``x`` ``[N, *shape]``:
    name -> ``[N]`` float64 on the CPU, higher = more likely OOD.

    log p(x) is evaluated once and shared; latent models estimate it with ``num_samples``
    importance samples (default: the model's own, see
    :func:`~dgm.evaluation.likelihood.num_samples_for`), and so does a latent ``background``.
    ``typicality`` needs ``reference_nll`` (in-distribution NLLs, nats, whose mean estimates
    the entropy) and is per example; ``likelihood-ratio`` a ``background`` model;
    ``complexity`` discrete data that ``compressor`` can code; ``hybrid`` a model that
    classifies; for text models also :data:`TEXT_SCORES`. :func:`unavailable_scores` says why
    a score of :data:`SCORES` is left out."""
    _check_model(model, "model")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if x.shape[0] == 0:
        raise DataError("no inputs to score: the set is empty")
    model.check_input(x)
    missing = unavailable_scores(
        model, reference_nll=reference_nll, background=background, compressor=compressor
    )
    if compressor not in COMPRESSORS:
        raise ConfigError(missing["complexity"])
    log_px = -per_example_nll(model, x, batch_size, num_samples, desc="log p(x)")
    nll = -log_px  # [N]
    out = {"likelihood": likelihood_score(log_px)}
    if "typicality" not in missing:
        out["typicality"] = typicality_scores(nll, estimate_entropy(reference_nll))  # type: ignore[arg-type]
    if "likelihood-ratio" not in missing:
        _check_model(background, "background model")
        log_bg = -per_example_nll(
            background, x, batch_size, num_samples, desc="log p_background(x)"
        )
        out["likelihood-ratio"] = likelihood_ratio_score(log_px, log_bg)
    if "complexity" not in missing:
        out["complexity"] = complexity_score(nll, code_length_bits(x, model.levels, compressor))
    if "hybrid" not in missing:
        log_py = per_example(model.classify, model, x, batch_size, desc="log p(y|x)")  # [N, C]
        out["hybrid"] = hybrid_score(log_px, log_py)
    if is_text(model):
        out["likelihood-per-token"] = nll / token_counts(x).to(nll)
    return out


__all__ = [
    "COMPRESSORS",
    "SCORES",
    "TEXT_SCORES",
    "aupr",
    "auroc",
    "code_length_bits",
    "complexity_score",
    "detection_metrics",
    "estimate_entropy",
    "fpr_at_tpr",
    "hybrid_score",
    "likelihood_ratio_score",
    "likelihood_score",
    "mutate",
    "ood_report",
    "score_inputs",
    "typicality_scores",
    "typicality_statistic",
    "typicality_threshold",
    "unavailable_scores",
]
