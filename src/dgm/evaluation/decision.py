"""Decisions that know when an input is improbable: p(y, x) = p(y|x) p(x).

A classifier alone answers "7, p = 0.99" for anything. With p(x) beside it (a hybrid model,
Nalisnick et al. 2019, "Hybrid models with deep and invertible features"; or any likelihood
model for the object alone), each input gets one of three decisions:

- ``uncertain-object``: log p(x) is below a threshold calibrated on validation data, chosen so
  that a share ``keep`` of in-distribution inputs stays above it: the object itself is unlike
  the training data, so no label should be trusted;
- ``uncertain-label``: the object is plausible but p(label|x) < ``min_p_label``;
- ``confident``: both pass (for models without a classifier: the object passes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from dgm.errors import ConfigError, DataError
from dgm.evaluation.likelihood import likelihood_kwargs, num_samples_for, per_example
from dgm.models.capabilities import Classifier

DECISIONS = ("confident", "uncertain-label", "uncertain-object")


@dataclass(frozen=True)
class Thresholds:
    """Where the decisions change: ``log_px`` (nats) and ``min_p_label``."""

    log_px: float
    min_p_label: float
    keep: float  # the share of validation inputs with log p(x) >= log_px
    num_val: int  # validation inputs it was calibrated on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(val_log_px: Tensor, keep: float = 0.95, min_p_label: float = 0.5) -> Thresholds:
    """The log p(x) threshold that keeps a share ``keep`` of the validation inputs."""
    if not 0 < keep <= 1:
        raise ConfigError(f"keep must be in (0, 1], got {keep}")
    if not 0 <= min_p_label <= 1:
        raise ConfigError(f"min_p_label must be in [0, 1], got {min_p_label}")
    lp = val_log_px.detach().double().flatten().cpu()
    if lp.numel() == 0:
        raise DataError("no validation inputs to calibrate the log p(x) threshold on")
    if not torch.isfinite(lp).all():
        raise DataError("validation log p(x) holds NaN or infinite values; the model is broken")
    # the k-th smallest value with k = floor((1 - keep) n): at least `keep` of them are >= it
    k = math.floor((1.0 - keep) * lp.numel() + 1e-9)  # + 1e-9: 1 - 0.9 is 0.0999...
    threshold = float(torch.sort(lp).values[min(k, lp.numel() - 1)])
    return Thresholds(threshold, min_p_label, keep, num_val=int(lp.numel()))


def decide(
    log_px: Tensor, log_py: Tensor | None, thresholds: Thresholds, dim: int
) -> list[dict[str, Any]]:
    """One record per input: ``label``, ``p_label``, ``log_px``, ``bpd`` and ``decision``.

    ``log_px`` is ``[B]`` in nats, ``log_py`` ``[B, C]`` log p(y|x) or None (no classifier),
    ``dim`` the number of dimensions of x (for bits per dimension)."""
    log_px = log_px.detach().double().cpu()
    out: list[dict[str, Any]] = []
    if log_py is not None:
        p, label = log_py.detach().double().exp().cpu().max(dim=1)
    for i, lp in enumerate(log_px.tolist()):
        rec: dict[str, Any] = {"label": None, "p_label": None}
        if log_py is not None:
            rec = {"label": int(label[i]), "p_label": float(p[i])}
        rec["log_px"] = lp
        rec["bpd"] = -lp / (dim * math.log(2))
        if not math.isfinite(lp) or lp < thresholds.log_px:
            rec["decision"] = "uncertain-object"
        elif rec["p_label"] is not None and rec["p_label"] < thresholds.min_p_label:
            rec["decision"] = "uncertain-label"
        else:
            rec["decision"] = "confident"
        out.append(rec)
    return out


def score(
    model: Any, x: Tensor, batch_size: int = 500, num_samples: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """log p(x) ``[B]`` and, for models that classify, log p(y|x) ``[B, C]`` (float64, CPU),
    in batches; ``num_samples`` where log p(x) is estimated (default: the model's own, see
    :func:`~dgm.evaluation.likelihood.num_samples_for`)."""
    kwargs = likelihood_kwargs(num_samples_for(model, num_samples))
    if isinstance(model, Classifier):
        log_px, log_py = per_example(model.predict, model, x, batch_size, **kwargs)
        return log_px, log_py
    return per_example(model.log_prob, model, x, batch_size, **kwargs), None


def summarize(records: list[dict[str, Any]]) -> dict[str, int]:
    """How many inputs got each decision."""
    return {d: sum(r.get("decision") == d for r in records) for d in DECISIONS}
