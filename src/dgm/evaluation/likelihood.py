"""Likelihood evaluation through the public contract: NLL in nats and bits per dimension."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from dgm.models.base import GenerativeModel


def bits_per_dim(nats: float, dim: int) -> float:
    """Convert nats per example to bits per dimension: nats / (D ln 2)."""
    return nats / (dim * math.log(2))


@torch.no_grad()
def per_example(
    score: Callable[..., Tensor],
    model: GenerativeModel,
    x: Tensor,
    batch_size: int = 500,
    **kwargs: Any,
) -> Tensor:
    """``score(batch, **kwargs)`` (``[b, *shape] -> [b]``) for every example, batch by batch,
    as float64 on the CPU; the model in eval mode."""
    model.eval()
    device = model.device
    out = [
        score(x[i : i + batch_size].to(device), **kwargs).double().cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def per_example_nll(
    model: GenerativeModel, x: Tensor, batch_size: int = 500, **kwargs: Any
) -> Tensor:
    """-log p(x) in nats for every example of ``x`` (``[N, *shape] -> [N]``), batch by batch."""
    return -per_example(model.log_prob, model, x, batch_size, **kwargs)


def evaluate_elbo(model: GenerativeModel, x: Tensor, batch_size: int = 500) -> dict[str, float]:
    """For latent-variable models: the mean negative ELBO in nats and its standard error."""
    neg = -per_example(model.elbo, model, x, batch_size)  # type: ignore[attr-defined]
    n = neg.numel()
    return {
        "elbo_nats": float(neg.mean()) if n else math.nan,
        "elbo_sem": float(neg.std() / math.sqrt(n)) if n > 1 else math.nan,
    }


def summarize_nll(nll: Tensor, dim: int) -> dict[str, float | int]:
    """Mean NLL, its standard error over examples, and bits/dim."""
    n = nll.numel()
    mean = float(nll.mean()) if n else math.nan
    sem = float(nll.std() / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "nll_nats": mean, "nll_sem": sem, "bpd": bits_per_dim(mean, dim)}


def evaluate_nll(
    model: GenerativeModel, x: Tensor, batch_size: int = 500, **kwargs: Any
) -> dict[str, float | int]:
    """``{"n", "nll_nats", "nll_sem", "bpd"}`` for ``x`` under ``model``."""
    dim = math.prod(model.event_shape)
    return summarize_nll(per_example_nll(model, x, batch_size, **kwargs), dim)
