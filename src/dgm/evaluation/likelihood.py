"""Likelihood evaluation through the public contract: NLL in nats and bits per dimension, the
bound a latent-variable model trains on, and the two things every evaluation shares:

- :func:`num_samples_for`, the one place that decides K, the importance samples where
  ``log_prob`` is an estimate (the model's own default, capped where a command asks for less,
  checked once);
- :func:`per_example`, the one batching loop for per-example scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from dgm.errors import ConfigError
from dgm.models.base import GenerativeModel, check_num_samples
from dgm.models.capabilities import EvidenceBound

# K where a command scores many inputs one by one (dgm ood, dgm detect): K = 5000 per input,
# the papers' choice for a test-set NLL, takes minutes
QUICK_SAMPLES = 100
# K of the test NLL that training reports at its end: the bound trained on (dgm eval RUN
# gives the full estimate)
TRAINING_SAMPLES = 1


def bits_per_dim(nats: float, dim: int) -> float:
    """Convert nats per example to bits per dimension: nats / (D ln 2)."""
    return nats / (dim * math.log(2))


def num_samples_for(
    model: GenerativeModel, requested: int | None = None, cap: int | None = None
) -> int | None:
    """K for ``model.log_prob(x, num_samples=K)``: None where the likelihood is exact (no K),
    else ``requested``, or the model's ``default_eval_samples`` at most ``cap``."""
    if model.exact_likelihood:
        return None
    k = requested
    if k is None:
        k = model.default_eval_samples if cap is None else min(model.default_eval_samples, cap)
    check_num_samples(k)
    return int(k)


def likelihood_kwargs(num_samples: int | None) -> dict[str, int]:
    """``{"num_samples": K}`` for an estimated likelihood, ``{}`` for an exact one."""
    return {} if num_samples is None else {"num_samples": num_samples}


@torch.no_grad()
def per_example(
    score: Callable[..., Tensor | Sequence[Tensor]],
    model: GenerativeModel,
    x: Tensor,
    batch_size: int = 500,
    *,
    progress: bool = False,
    desc: str = "scoring",
    **kwargs: Any,
) -> Any:
    """``score(batch, **kwargs)`` for every example of ``x``, batch by batch on the model's
    device, the model in eval mode; the results (a tensor ``[b, ...]`` per batch, or a tuple
    of them) joined as float64 on the CPU. A progress bar over the batches when asked."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    device = model.device
    starts: Any = range(0, x.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    parts: list[tuple[Tensor, ...]] = []
    single = True
    for i in starts:
        out = score(x[i : i + batch_size].to(device), **kwargs)
        single = isinstance(out, Tensor)
        parts.append((out,) if single else tuple(out))
    if not parts:
        return torch.empty(0, dtype=torch.float64)
    joined = tuple(torch.cat([p[j].double().cpu() for p in parts]) for j in range(len(parts[0])))
    return joined[0] if single else joined


def per_example_nll(
    model: GenerativeModel,
    x: Tensor,
    batch_size: int = 500,
    num_samples: int | None = None,
    **kwargs: Any,
) -> Tensor:
    """-log p(x) in nats for every example of ``x`` (``[N, *shape] -> [N]``), batch by batch;
    ``num_samples`` importance samples where log p(x) is estimated (see
    :func:`num_samples_for`)."""
    k = num_samples_for(model, num_samples)
    return -per_example(model.log_prob, model, x, batch_size, **likelihood_kwargs(k), **kwargs)


def evaluate_elbo(model: GenerativeModel, x: Tensor, batch_size: int = 500) -> dict[str, float]:
    """For latent-variable models: the mean negative ELBO in nats and its standard error."""
    if not isinstance(model, EvidenceBound):
        raise ConfigError(f"{model.name} has no ELBO; it is not a latent-variable model")
    neg = -per_example(model.elbo, model, x, batch_size)
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
    model: GenerativeModel,
    x: Tensor,
    batch_size: int = 500,
    num_samples: int | None = None,
    **kwargs: Any,
) -> dict[str, float | int]:
    """``{"n", "nll_nats", "nll_sem", "bpd"}`` for ``x`` under ``model``."""
    dim = math.prod(model.event_shape)
    return summarize_nll(per_example_nll(model, x, batch_size, num_samples, **kwargs), dim)


def evaluate_likelihood(
    model: GenerativeModel, x: Tensor, batch_size: int = 500, num_samples: int | None = None
) -> dict[str, Any]:
    """What ``dgm eval`` and the end of training report of a likelihood: the NLL (with K
    ``num_samples`` where it is an estimate, already resolved by :func:`num_samples_for`),
    the -ELBO of latent-variable models, whether the number is exact and what it is."""
    out: dict[str, Any] = evaluate_nll(model, x, batch_size, num_samples)
    if isinstance(model, EvidenceBound):  # the bound trained on, next to the estimate
        out.update(evaluate_elbo(model, x, batch_size))
    out["exact"] = model.exact_likelihood
    out["estimate"] = model.likelihood_note(**likelihood_kwargs(num_samples))
    return out


__all__ = [
    "QUICK_SAMPLES",
    "TRAINING_SAMPLES",
    "bits_per_dim",
    "evaluate_elbo",
    "evaluate_likelihood",
    "evaluate_nll",
    "likelihood_kwargs",
    "num_samples_for",
    "per_example",
    "per_example_nll",
    "summarize_nll",
]
