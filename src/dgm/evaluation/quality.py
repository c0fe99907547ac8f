"""Sample-quality metrics on feature vectors: Frechet distance, precision/recall, mode coverage,
the maximum mean discrepancy.

- Frechet distance between Gaussians fitted to real and generated features (Heusel et al. 2017,
  "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"); here in
  the features of dgm's own :class:`~dgm.evaluation.features.FeatureNet`, so it is an "FD",
  comparable only between runs that use the same feature network.
- Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall
  Metric for Assessing Generative Models"): k-NN balls around each set's points.
- Mode coverage on the 8/25-Gaussian benchmarks (Srivastava et al. 2017, "VEEGAN: Reducing
  Mode Collapse in GANs using Implicit Variational Learning"; Lin et al. 2018, "PacGAN: The
  power of two samples in generative adversarial networks"), and its image analogue: the
  classes a trained classifier recognises among the samples.

All statistics are computed in float64 on the input's device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.stats import chi2
from torch import Tensor

from dgm.errors import ConfigError, DataError
from dgm.models.gan.measures import mmd as _mmd

if TYPE_CHECKING:
    from dgm.evaluation.features import FeatureNet

METRICS = ("fd", "precision", "recall", "classes")
BLOCK_ELEMENTS = 1 << 22  # distance-matrix entries per block: 32 MB in float64


def _f64(x: Tensor) -> Tensor:
    return x.detach().to(torch.float64)


def _check_features(f: Tensor, what: str, min_rows: int) -> None:
    if f.dim() != 2:
        raise DataError(f"{what} must be a [N, F] matrix of features, got shape {tuple(f.shape)}")
    if f.shape[0] < min_rows:
        raise DataError(f"{what}: {f.shape[0]} samples, need at least {min_rows}; draw more")
    if not torch.isfinite(f).all():
        raise DataError(f"{what} contain NaN or infinite values; fix the model or drop them")


# --------------------------------------------------------------------------- Frechet distance


def _psd_sqrt(c: Tensor) -> Tensor:
    """Symmetric square root of a covariance (negative round-off eigenvalues clamped to 0)."""
    w, v = torch.linalg.eigh((c + c.T) / 2)  # [F], [F, F]
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):

        |mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^{1/2}).

    The trace term is computed as the sum of square roots of the eigenvalues of the symmetric
    matrix ``S cov2 S`` with ``S = cov1^{1/2}`` (it is similar to ``cov1 cov2``, so the
    eigenvalues agree). Unlike ``scipy.linalg.sqrtm(cov1 @ cov2)`` (the reference FID code),
    this only takes eigendecompositions of symmetric PSD matrices, which are backward stable,
    always real, and well defined for singular covariances (fewer samples than features),
    where the Schur-based ``sqrtm`` of the non-symmetric product can return complex parts or
    fail and needs the ``eps * I`` offset hack. Round-off negatives are clamped to 0.
    """
    mu1, mu2, cov1, cov2 = _f64(mu1), _f64(mu2), _f64(cov1), _f64(cov2)
    f = mu1.shape[-1] if mu1.dim() == 1 else -1
    if mu1.dim() != 1 or mu2.shape != mu1.shape or cov1.shape != (f, f) or cov2.shape != (f, f):
        raise DataError(
            f"frechet_distance needs means [F] and covariances [F, F] of one F; got "
            f"{tuple(mu1.shape)}, {tuple(cov1.shape)}, {tuple(mu2.shape)}, {tuple(cov2.shape)}"
        )
    for t in (mu1, mu2, cov1, cov2):
        if not torch.isfinite(t).all():
            raise DataError("frechet_distance: the statistics contain NaN or inf")
    s1 = _psd_sqrt(cov1)
    m = s1 @ cov2 @ s1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    fd = diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_covmean
    return max(float(fd), 0.0)  # a distance: tiny negative round-off is 0


def feature_stats(f: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[F]`` and unbiased covariance ``[F, F]`` of features ``[N, F]`` (float64)."""
    _check_features(f, "features", 2)
    f = _f64(f)
    return f.mean(0), torch.cov(f.T)


def frechet_distance_from_features(real: Tensor, fake: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``[N, F]``, ``[M, F]``."""
    _check_features(real, "real features", 2)
    _check_features(fake, "generated features", 2)
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"feature sizes differ: real {real.shape[1]}, generated {fake.shape[1]}")
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


# --------------------------------------------------------------------------- precision / recall


def _rows(n_cols: int, block_size: int | None) -> int:
    return block_size if block_size is not None else max(1, BLOCK_ELEMENTS // max(n_cols, 1))


def knn_radii(x: Tensor, k: int, block_size: int | None = None) -> Tensor:
    """Distance from each row of ``x`` (``[N, F]``) to its k-th nearest other row, ``[N]``."""
    rows = _rows(x.shape[0], block_size)
    out = []
    for i in range(0, x.shape[0], rows):
        d = torch.cdist(x[i : i + rows], x)  # [b, N]; the point itself is at distance 0
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def in_manifold(query: Tensor, ref: Tensor, radii: Tensor, block_size: int | None = None) -> Tensor:
    """Whether each query row lies in the ball of radius ``radii[j]`` around some ``ref[j]``."""
    rows = _rows(ref.shape[0], block_size)
    out = []
    for i in range(0, query.shape[0], rows):
        d = torch.cdist(query[i : i + rows], ref)  # [b, N]
        out.append((d <= radii).any(dim=1))
    return torch.cat(out)


def precision_recall(
    real: Tensor, fake: Tensor, k: int = 3, block_size: int | None = None
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of features ``[N, F]``, ``[M, F]``.

    Each set's manifold is the union of balls around its points, each ball reaching the point's
    k-th nearest neighbour in its own set. Precision: the fraction of generated samples inside
    the real manifold; recall: the fraction of real samples inside the generated one. Distances
    are computed ``block_size`` rows at a time (default: about 4M entries per block), so 10k x
    10k never materialises at once.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    _check_features(real, "real features", k + 1)
    _check_features(fake, "generated features", k + 1)
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"feature sizes differ: real {real.shape[1]}, generated {fake.shape[1]}")
    real, fake = _f64(real), _f64(fake)
    r_real = knn_radii(real, k, block_size)  # [N]
    r_fake = knn_radii(fake, k, block_size)  # [M]
    precision = in_manifold(fake, real, r_real, block_size).double().mean()
    recall = in_manifold(real, fake, r_fake, block_size).double().mean()
    return float(precision), float(recall)


# --------------------------------------------------------------------------- mode coverage


def default_min_count(n: int, modes: int) -> int:
    """A fifth of a mode's expected share of ``n`` samples (at least 1): PacGAN's rule, which
    calls a mode lost when fewer than 20 of 2500 samples land on it (25 modes, 100 expected)."""
    return max(1, math.ceil(n / (5 * modes)))


def mode_coverage(
    samples: Tensor,
    centres: Tensor | np.ndarray,
    std: float,
    *,
    sigmas: float = 3.0,
    min_count: int | None = None,
) -> dict[str, Any]:
    """Modes covered and sample quality on a Gaussian-mixture benchmark (8/25 Gaussians).

    A sample is *high quality* when it lies within ``sigmas * std`` (Euclidean) of its nearest
    centre (Srivastava et al. 2017, VEEGAN). A mode is *covered* when at least ``min_count``
    high-quality samples land on it; by default a fifth of its expected share, ``ceil(N / 5M)``
    (Lin et al. 2018, PacGAN: 20 of 2500 samples for 25 modes).

    ``samples`` ``[N, D]``, ``centres`` ``[M, D]``. Note that exact samples of a 2-D Gaussian
    fall within 3 std with probability ``1 - exp(-4.5) = 0.989``, not the 1-D 0.997;
    ``high_quality_expected`` gives that ceiling (chi distribution with D degrees of freedom).
    Returns ``modes_covered``, ``modes_total``, ``high_quality`` (fraction), ``per_mode``
    (high-quality counts), ``min_count`` and ``high_quality_expected``.
    """
    if samples.dim() != 2 or samples.shape[0] < 1:
        raise DataError(f"samples must be [N, D] with N >= 1, got shape {tuple(samples.shape)}")
    if not torch.isfinite(samples).all():
        raise DataError("samples contain NaN or infinite values; fix the model or drop them")
    x = _f64(samples)
    c = torch.as_tensor(centres, dtype=torch.float64, device=x.device)  # [M, D]
    if c.dim() != 2 or c.shape[1] != x.shape[1]:
        raise DataError(f"centres must be [M, {x.shape[1]}], got shape {tuple(c.shape)}")
    if std <= 0 or sigmas <= 0:
        raise ConfigError(f"std and sigmas must be > 0, got {std} and {sigmas}")
    n, m = x.shape[0], c.shape[0]
    threshold = default_min_count(n, m) if min_count is None else int(min_count)
    dist, nearest = torch.cdist(x, c).min(dim=1)  # [N], [N]
    good = dist <= sigmas * std  # [N]
    counts = torch.bincount(nearest[good], minlength=m)  # [M]
    return {
        "modes_covered": int((counts >= threshold).sum()),
        "modes_total": m,
        "high_quality": float(good.double().mean()),
        "high_quality_expected": float(chi2.cdf(sigmas**2, df=x.shape[1])),
        "per_mode": counts.tolist(),
        "min_count": threshold,
    }


def coverage_line(cover: Mapping[str, Any]) -> str:
    """One line for people from :func:`mode_coverage`'s result: the modes covered and the
    share of high-quality samples, starting with "collapsed:" when modes are missing (a
    scatter of samples can look plausible while it covers none of them)."""
    covered, total = int(cover["modes_covered"]), int(cover["modes_total"])
    modes = f"{covered} of {total} modes covered"
    quality = (
        f"{100 * cover['high_quality']:.1f}% of samples within 3 std of a mode "
        f"({100 * cover['high_quality_expected']:.1f}% for exact draws)"
    )
    if covered < total:
        return f"collapsed: {modes}; {quality}"
    return f"{modes}; {quality}"


# --------------------------------------------------------------------------- two-sample


def mmd(x: Tensor, y: Tensor) -> float:
    """The unbiased multi-scale squared MMD between samples ``x [N, D]`` and ``y [M, D]``
    scaled to the unit box (Gretton et al. 2012; Gaussian kernels of 0.01 to 1 of the box):
    ~0 for two samples of one distribution, larger the further apart they are at any scale;
    the statistic a GAN on vectors is validated on (:mod:`dgm.models.gan.measures`). Holds
    ``(N + M)^2`` distances at once: subsample beyond a few thousand rows."""
    return float(_mmd(x, y))


# --------------------------------------------------------------------------- classifier based


def classifier_accuracy(net: FeatureNet, samples: Tensor, labels: Tensor) -> float:
    """Fraction of class-conditional samples that ``net`` assigns to the class they were drawn
    for (``samples`` ``[N, *shape]``, ``labels`` ``[N]``)."""
    if labels.dim() != 1 or labels.shape[0] != samples.shape[0]:
        raise DataError(
            f"labels must be [N] with N = {samples.shape[0]} samples, got {tuple(labels.shape)}"
        )
    pred = net.logits(samples).argmax(1)  # [N]
    return float((pred == labels.to(pred.device)).double().mean())


def modes_by_classifier(
    net: FeatureNet,
    samples: Tensor,
    *,
    confidence: float = 0.8,
    min_count: int | None = None,
) -> dict[str, Any]:
    """Classes present among image samples: "modes covered" for digits/MNIST.

    A sample counts for a class when ``net`` gives that class probability >= ``confidence``;
    a class is covered when at least ``min_count`` samples count for it (default: a fifth of
    its expected share, as in :func:`mode_coverage`). Also returns the class histogram, the
    fraction of confident samples, and the entropy of the confident samples' class
    distribution with its KL divergence to uniform (nats; 0 = all classes equally often).
    """
    probs = net.logits(samples).double().softmax(1)  # [N, K]
    n, k = probs.shape
    top, pred = probs.max(1)  # [N], [N]
    confident = top >= confidence
    hist = torch.bincount(pred[confident], minlength=k)  # [K]
    threshold = default_min_count(n, k) if min_count is None else int(min_count)
    total = int(hist.sum())
    p = hist.double() / max(total, 1)
    entropy = float(-(p * p.clamp_min(1e-300).log()).sum()) if total else 0.0
    return {
        "classes_covered": int((hist >= threshold).sum()),
        "classes_total": k,
        "class_histogram": hist.tolist(),
        "confident": float(confident.double().mean()),
        "entropy": entropy,
        "kl_to_uniform": math.log(k) - entropy,
        "min_count": threshold,
        "confidence": confidence,
    }


# --------------------------------------------------------------------------- all together


def sample_quality(
    net: FeatureNet,
    real: Tensor,
    fake: Tensor,
    metrics: Sequence[str] = ("fd", "precision", "recall"),
    k: int = 3,
    block_size: int | None = None,
) -> dict[str, Any]:
    """The requested metrics of generated ``fake`` against ``real`` (both ``[N, *shape]``) in
    the features of ``net``. ``metrics`` from ``fd``, ``precision``, ``recall`` and
    ``classes`` (:func:`modes_by_classifier` on ``fake``). The result also names the feature
    network under ``"features"`` and the sample counts, so every number says what it measured.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ConfigError(f"unknown sample-quality metric {unknown[0]!r}; use {', '.join(METRICS)}")
    need = k + 1 if {"precision", "recall"} & set(metrics) else 2
    for x, what in ((real, "real examples"), (fake, "generated samples")):
        if x.dim() < 1 or x.shape[0] < need:
            n = x.shape[0] if x.dim() else 0
            raise DataError(f"{what}: {n} given, need at least {need} for {', '.join(metrics)}")
    out: dict[str, Any] = {
        "features": net.describe(),
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
    }
    if {"fd", "precision", "recall"} & set(metrics):
        f_real = net.features(real, what="real examples")  # [N, F]
        f_fake = net.features(fake, what="generated samples")  # [M, F]
    if "fd" in metrics:
        out["fd"] = frechet_distance_from_features(f_real, f_fake)
    if "precision" in metrics or "recall" in metrics:
        precision, recall = precision_recall(f_real, f_fake, k=k, block_size=block_size)
        out["k"] = k
        if "precision" in metrics:
            out["precision"] = precision
        if "recall" in metrics:
            out["recall"] = recall
    if "classes" in metrics:
        out["classes"] = modes_by_classifier(net, fake)
    return out
