"""How well a model that also classifies does it: accuracy, calibration and the likelihood of
the labels (for hybrids p(y, x) = p(y|x) p(x), declared :class:`~dgm.models.capabilities.
Classifier`).

Calibration: the expected calibration error of Guo, Pleiss, Sun & Weinberger (2017), "On
calibration of modern neural networks".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from dgm.errors import ConfigError, DataError
from dgm.evaluation.likelihood import per_example
from dgm.models.capabilities import Classifier

ArrayLike = Tensor | np.ndarray | list | tuple


def _probs_and_labels(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``[N, C]`` probabilities (from probabilities or log-probabilities) and ``[N]`` labels."""
    if isinstance(probs, Tensor):
        probs = probs.detach().double().cpu().numpy()
    if isinstance(labels, Tensor):
        labels = labels.detach().cpu().numpy()
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 1:
        raise DataError(f"expected [N, C] class probabilities with N >= 1, got shape {p.shape}")
    if y.shape != (p.shape[0],):
        raise DataError(f"expected {p.shape[0]} labels (one per row), got shape {y.shape}")
    if np.isnan(p).any():
        raise DataError("the class probabilities hold NaN values")
    if (p < 0).any():  # log-probabilities (log-softmax rows): every entry <= 0
        p = np.exp(p)
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise DataError(
            "rows must be class probabilities or log-probabilities (log-softmax) summing to 1"
        )
    if not np.issubdtype(y.dtype, np.integer) and (y != np.round(y)).any():
        raise DataError("labels must be whole class indices")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise DataError(f"labels span [{y.min()}, {y.max()}], outside 0..{p.shape[1] - 1}")
    return p, y


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Share of rows whose most probable class is the label (probabilities or log-probs)."""
    p, y = _probs_and_labels(probs, labels)
    return float(np.mean(p.argmax(axis=1) == y))


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, bins: int = 15) -> float:
    """ECE of Guo et al. (2017): the confidence max_y p(y|x) falls into ``bins`` equal-width
    bins ((m-1)/M, m/M]; ECE = sum_m |B_m| / N * |accuracy(B_m) - confidence(B_m)|.
    ``probs`` are ``[N, C]`` probabilities or log-probabilities; scikit-learn has binary
    calibration curves only."""
    if bins < 1:
        raise ConfigError(f"bins must be >= 1, got {bins}")
    p, y = _probs_and_labels(probs, labels)
    conf = p.max(axis=1)  # [N]
    correct = (p.argmax(axis=1) == y).astype(np.float64)  # [N]
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)  # [N], right-closed
    count = np.bincount(idx, minlength=bins)  # [M]
    gap = np.bincount(idx, weights=correct - conf, minlength=bins)  # [M] sum of acc - conf
    # |sum(acc - conf)| / N per bin = |B_m| / N * |acc(B_m) - conf(B_m)|
    return float(np.abs(gap[count > 0]).sum() / conf.size)


def classifies(model: Any) -> bool:
    """Whether ``model`` classifies: hybrid models p(y, x) = p(y|x) p(x) also answer
    ``classify(x) -> log p(y|x)``."""
    return isinstance(model, Classifier)


@torch.no_grad()
def evaluate_classifier(
    model: Any, x: Tensor, y: Tensor, batch_size: int = 500, bins: int = 15
) -> dict[str, float | int]:
    """Accuracy, expected calibration error (Guo et al. 2017, 15 bins) and the mean negative
    log-likelihood of the labels, for a model with ``classify(x) -> log p(y|x)``."""
    log_py = per_example(model.classify, model, x, batch_size)  # [N, C] float64, CPU
    y = y.cpu()
    return {
        "accuracy": accuracy(log_py, y),
        "ece": expected_calibration_error(log_py, y, bins),
        "label_nll": float(-log_py.gather(1, y[:, None]).mean()),
        "n": int(y.numel()),
    }


__all__ = ["accuracy", "classifies", "evaluate_classifier", "expected_calibration_error"]
