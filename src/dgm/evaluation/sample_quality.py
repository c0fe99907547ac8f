"""Sample quality of any model, through the contract only (``model.sample``), on the metrics of
:mod:`dgm.evaluation.quality` in the features of dgm's own classifier
(:mod:`dgm.evaluation.features`), trained once per dataset and kept in the run folder.

What is measured depends on the data: Frechet distance and precision/recall (Heusel et al.
2017; Kynkaanniemi et al. 2019) for labelled data, classes covered for labelled images, modes
covered and the share of high-quality samples on the Gaussian-mixture toys (Srivastava et al.
2017), and, for class-conditional models, the classifier's accuracy on their samples.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dgm.data.base import Dataset
from dgm.errors import ConfigError, DataError
from dgm.io import CONFIG
from dgm.models.capabilities import LabelConditional
from dgm.runs import RunFolder

# what --metrics may name, besides the likelihood's "nll"
QUALITY_METRICS = ("fd", "precision", "recall", "classes", "modes", "accuracy")
FEATURE_METRICS = ("fd", "precision", "recall", "classes", "accuracy")
MAX_SAMPLES = 10_000


def default_quality_metrics(dataset: Dataset) -> tuple[str, ...]:
    """What a GAN is scored on by default: mode coverage on the Gaussian-mixture toys, else
    the feature-based trio (when the data has labels to train the feature network on)."""
    from dgm.data.toy import MODES

    if dataset.spec.name in MODES:
        return ("modes",)
    if dataset.spec.num_classes:
        return ("fd", "precision", "recall")
    return ()


def _draw(model: Any, n: int, batch: int, labels: Tensor | None = None) -> Tensor:
    """``n`` samples in batches (a GAN draws 10k at once easily; a PixelCNN would not)."""
    out = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        if labels is None:
            out.append(model.sample(m))
        else:
            out.append(model.sample(m, labels=labels[start : start + m]))
    return torch.cat(out)


def evaluate_sample_quality(
    model: Any,
    dataset: Dataset,
    run: str | Path | None = None,
    *,
    metrics: Sequence[str] | None = None,
    features: str | Path | None = None,
    split: str = "test",
    num_generated: int | None = None,
    batch_size: int = 1000,
    k: int = 3,
    seed: int = 0,
    show: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Sample-quality metrics of ``model`` against ``dataset``'s ``split``.

    The feature network lives in ``features`` (a folder, e.g. another run's ``features``) or
    in ``RUN/features``; it is trained there on the training split the first time (a few
    seconds on digits, a minute or two on MNIST) and reused after. ``num_generated`` samples
    (default: as many as the split has, at most 10,000) are drawn under ``seed``.
    """
    from dgm.data.toy import MODES
    from dgm.evaluation.features import feature_net_for
    from dgm.evaluation.quality import classifier_accuracy, mode_coverage, sample_quality

    say = show or (lambda m: print(m, file=sys.stderr, flush=True))
    wanted = tuple(metrics) if metrics is not None else default_quality_metrics(dataset)
    unknown = sorted(set(wanted) - set(QUALITY_METRICS))
    if unknown:
        raise ConfigError(
            f"unknown metric {unknown[0]!r}; use nll, ais or {', '.join(QUALITY_METRICS)}"
        )
    if not wanted:
        raise DataError(
            f"{dataset.spec.name} has no labels to train a feature network on, so no sample "
            "quality can be measured; use labelled data or --features RUN of a labelled run"
        )
    real = dataset.split(split)
    n = num_generated or min(len(real), MAX_SAMPLES)
    if n < 2:
        raise DataError(f"need at least 2 samples to compare, got {n}")
    conditional = isinstance(model, LabelConditional) and model.conditional
    if "accuracy" in wanted and not conditional:
        raise ConfigError("accuracy scores the samples of class-conditional models only")
    torch.manual_seed(seed)
    labels = None
    if conditional:
        k_cls = model.num_classes
        labels = torch.arange(n, device=model.device) % k_cls  # every class equally often
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        fake = _draw(model, n, batch_size, labels)
    model.train(was_training)
    out: dict[str, Any] = {"sample_time_s": round(time.perf_counter() - t0, 3), "generated": n}
    if not torch.isfinite(fake).all():
        raise DataError(f"{model.name}'s samples hold NaN or infinite values; nothing to score")
    if "modes" in wanted:
        if dataset.spec.name not in MODES:
            raise ConfigError(
                f"modes are counted on {', '.join(MODES)}; on {dataset.spec.name} ask for "
                "classes (classes covered by the feature network)"
            )
        centres, std = MODES[dataset.spec.name]
        out.update(mode_coverage(fake.flatten(1), centres, std))
    feature_metrics = [m for m in wanted if m in FEATURE_METRICS]
    if feature_metrics:
        if not dataset.spec.num_classes and features is None:
            raise DataError(
                f"{', '.join(feature_metrics)} need a feature network, trained on labels that "
                f"{dataset.spec.name} does not have; name one with --features RUN"
            )
        folder = Path(features) if features is not None else RunFolder(run or ".").features
        if not (folder / CONFIG).is_file():
            say(f"training the feature network on {dataset.spec.name} (once; kept in {folder})")
        net = feature_net_for(dataset, folder, device=model.device)
        pair = [m for m in feature_metrics if m != "accuracy"]
        if pair:
            out.update(sample_quality(net, real.x.to(model.device), fake, pair, k=k))
        else:
            out["features"] = net.describe()
        if "accuracy" in wanted:
            assert labels is not None
            out["accuracy"] = classifier_accuracy(net, fake, labels)
    return out


__all__ = [
    "FEATURE_METRICS",
    "QUALITY_METRICS",
    "default_quality_metrics",
    "evaluate_sample_quality",
]
