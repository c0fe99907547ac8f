"""Likelihood evaluation through the public contract: NLL in nats and bits per dimension, the
bound a latent-variable model trains on, and the two things every evaluation shares:

- :func:`num_samples_for`, the one place that decides K, the importance samples (or the
  averaged draws of a diffusion model's estimate) where ``log_prob`` is an estimate (the
  model's own default, capped where a command asks for less, checked once);
- :func:`per_example`, the one batching loop for per-example scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from dgm import progress
from dgm.errors import ConfigError
from dgm.evaluation.text import (
    is_text,
    latent_diagnostics,
    summarize_text_nll,
    text_unit,
    token_counts,
)
from dgm.models.base import GenerativeModel, check_num_samples
from dgm.models.capabilities import EvidenceBound

# K where a command scores many inputs one by one (dgm ood, dgm detect): K = 5000 per input,
# the papers' choice for a test-set NLL, takes minutes
QUICK_SAMPLES = 100
# K of the test NLL that training reports at its end: the bound trained on (dgm eval RUN
# gives the full estimate)
TRAINING_SAMPLES = 1
# K importance samples are made in about PARTS log_prob calls of at least MIN_PART samples
# (per_example_nll): the same estimator, with progress inside a long batch; more calls than
# that would mostly repeat the encoder's pass
PARTS = 20
MIN_PART = 100


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
        k = model.default_eval_samples
        if cap is not None:  # fewer where asked, never below what makes a usable number
            k = min(k, max(cap, model.min_eval_samples))
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
    desc: str = "scoring",
    parts: Sequence[tuple[float, dict[str, Any]]] = ((1.0, {}),),
    join: Callable[[list[Any]], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """``score(batch, **kwargs)`` for every example of ``x``, batch by batch on the model's
    device, the model in eval mode; the results (a tensor ``[b, ...]`` per batch, or a tuple
    of them) joined as float64 on the CPU.

    ``parts`` splits each batch's work into calls ``score(batch, **kwargs, **part)``, one per
    ``(share, part)``, whose results ``join`` makes one (:func:`per_example_nll` estimates
    with K importance samples in parts). Progress (:mod:`dgm.progress`, shown by the command
    line) counts examples and moves by each part's ``share`` of a batch."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if len(parts) > 1 and join is None:
        raise ConfigError("per_example: several parts need a join")
    model.eval()
    device = model.device
    results: list[tuple[Tensor, ...]] = []
    single = True
    with progress.task(x.shape[0], desc, unit="examples") as bar:
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(device)
            outs = []
            for share, part in parts:
                outs.append(score(xb, **kwargs, **part))
                bar.update(share * xb.shape[0])
            out = outs[0] if join is None else join(outs)
            single = isinstance(out, Tensor)
            results.append((out,) if single else tuple(out))
    if not results:
        return torch.empty(0, dtype=torch.float64)
    joined = tuple(
        torch.cat([r[j].double().cpu() for r in results]) for j in range(len(results[0]))
    )
    return joined[0] if single else joined


def sample_parts(num_samples: int) -> list[int]:
    """K importance samples as the sizes of the ``log_prob`` calls that make them: one call up
    to ``2 * MIN_PART`` samples, else about ``PARTS`` calls of at least ``MIN_PART``."""
    if num_samples < 2 * MIN_PART:
        return [num_samples]
    size = max(MIN_PART, math.ceil(num_samples / PARTS))
    return [min(size, num_samples - start) for start in range(0, num_samples, size)]


def join_estimates(log_probs: list[Tensor], sizes: Sequence[int], averaged: bool = False) -> Tensor:
    """One estimate from estimates over disjoint draws, ``sizes[j]`` draws behind
    ``log_probs[j]``: importance-sampled ones (each log (1/k_j) sum w) give log (1/K) sum of
    all the w; ``averaged`` ones (each the mean of k_j estimates) their weighted mean."""
    if len(log_probs) == 1:
        return log_probs[0]
    k = sum(sizes)
    if averaged:
        return sum(lp.double() * s for lp, s in zip(log_probs, sizes)) / k
    terms = torch.stack([lp.double() + math.log(s) for lp, s in zip(log_probs, sizes)])
    return torch.logsumexp(terms, 0) - math.log(k)


def per_example_nll(
    model: GenerativeModel,
    x: Tensor,
    batch_size: int = 500,
    num_samples: int | None = None,
    **kwargs: Any,
) -> Tensor:
    """-log p(x) in nats for every example of ``x`` (``[N, *shape] -> [N]``), batch by batch;
    ``num_samples`` importance samples where log p(x) is estimated (see
    :func:`num_samples_for`), made in parts of :func:`sample_parts` (the same estimator: K
    = 5000 on a few hundred examples is minutes in one batch, and in parts its progress
    moves)."""
    kwargs.setdefault("desc", "nll")
    k = num_samples_for(model, num_samples)
    if k is None:
        return -per_example(model.log_prob, model, x, batch_size, **kwargs)
    # an averaged estimate takes its K draws whole: a model may spread them evenly (ddpm's
    # stratified t, whose K = T - 1 is every term once), which parts would each redo
    sizes = [k] if model.averaged_samples else sample_parts(k)
    parts = [(s / k, {"num_samples": s}) for s in sizes]
    join = partial(join_estimates, sizes=sizes, averaged=model.averaged_samples)
    return -per_example(model.log_prob, model, x, batch_size, parts=parts, join=join, **kwargs)


def evaluate_elbo(model: GenerativeModel, x: Tensor, batch_size: int = 500) -> dict[str, float]:
    """For latent-variable models: the mean negative ELBO in nats and its standard error."""
    if not isinstance(model, EvidenceBound):
        raise ConfigError(f"{model.name} has no ELBO; it is not a latent-variable model")
    neg = -per_example(model.elbo, model, x, batch_size, desc="-elbo")
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
    """``{"n", "nll_nats", "nll_sem", "bpd"}`` for ``x`` under ``model``; for text models
    (:class:`~dgm.models.capabilities.TextModel`) NLL per sentence with ``tokens``,
    ``nats_per_token``, ``ppl`` and ``bpd`` in bits per token (padding is no dimension:
    :mod:`dgm.evaluation.text`)."""
    nll = per_example_nll(model, x, batch_size, num_samples, **kwargs)
    if is_text(model):
        return summarize_text_nll(nll, token_counts(x)) | {"unit": text_unit(model)}
    return summarize_nll(nll, math.prod(model.event_shape))


def evaluate_likelihood(
    model: GenerativeModel, x: Tensor, batch_size: int = 500, num_samples: int | None = None
) -> dict[str, Any]:
    """What ``dgm eval`` and the end of training report of a likelihood: the NLL (with K
    ``num_samples`` where it is an estimate, already resolved by :func:`num_samples_for`),
    the -ELBO of latent-variable models, whether the number is exact and what it is; for
    text, perplexity and tokens (:func:`evaluate_nll`); for models that declare
    :class:`~dgm.models.capabilities.LatentDiagnostics`, ``kl``, ``mi`` and
    ``active_units``, the numbers that tell a used latent code from a collapsed one."""
    out: dict[str, Any] = evaluate_nll(model, x, batch_size, num_samples)
    if isinstance(model, EvidenceBound):  # the bound trained on, next to the estimate
        out.update(evaluate_elbo(model, x, batch_size))
    out.update(latent_diagnostics(model, x))
    out["exact"] = model.exact_likelihood
    out["kind"] = model.likelihood_kind()  # exact | bound | estimate, for side-by-side tables
    if num_samples is not None:
        out["num_samples"] = num_samples
    out["estimate"] = model.likelihood_note(**likelihood_kwargs(num_samples))
    return out


__all__ = [
    "QUICK_SAMPLES",
    "TRAINING_SAMPLES",
    "bits_per_dim",
    "evaluate_elbo",
    "evaluate_likelihood",
    "evaluate_nll",
    "join_estimates",
    "likelihood_kwargs",
    "num_samples_for",
    "per_example",
    "per_example_nll",
    "sample_parts",
    "summarize_nll",
]
