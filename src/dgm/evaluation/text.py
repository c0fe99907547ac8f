"""The numbers text models are judged by, through the contract and the capabilities only.

- NLL per sentence: ``-model.log_prob(x)``, importance-sampled for latent models (K from
  :func:`~dgm.evaluation.likelihood.num_samples_for`);
- perplexity: ``exp(total NLL / total tokens)`` over a whole split, the tokens being the real
  ones of each row (its words or characters and its end token ``</s>``; padding never counts),
  as the language-modelling papers count them (Mikolov's PTB setup, Bowman et al. 2016, Yang et
  al. 2017, He et al. 2019); nats and bits per token beside it (bits per token is what ``bpd``
  means for text: a token is the dimension that counts, a padded position is none);
- the collapse diagnostics of latent text models (:class:`LatentDiagnostics`): the mean
  KL(q(z|x) || p(z)), the mutual information I(x; z) (He et al. 2019) and the active units
  (Burda et al. 2016).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from dgm.data.text import PAD
from dgm.errors import DataError
from dgm.models.base import GenerativeModel
from dgm.models.capabilities import LatentDiagnostics, TextModel


def is_text(model: GenerativeModel) -> bool:
    """Whether ``model`` models token sequences (declares :class:`TextModel`)."""
    return isinstance(model, TextModel)


def text_unit(model: GenerativeModel) -> str:
    """What one row of a text model is, in words: ``molecule`` for a model of SMILES or
    SELFIES, else ``sentence``."""
    from dgm.data.text import MOLECULE_KINDS

    if not isinstance(model, TextModel) or model.tokenizer is None:
        return "sentence"
    return "molecule" if model.tokenizer.kind in MOLECULE_KINDS else "sentence"


def token_counts(x: Tensor) -> Tensor:
    """The real tokens of each row of ids ``[N, max_len] -> [N]`` (long): everything but
    padding, the end token included."""
    return (x != PAD).sum(dim=-1)


def perplexity(nll: Tensor, tokens: Tensor) -> dict[str, float | int]:
    """``{"tokens", "nats_per_token", "bpd", "ppl"}`` from per-sentence NLLs ``[N]`` (nats) and
    their token counts ``[N]``: ``nats_per_token = sum(nll) / sum(tokens)`` (a corpus-level
    ratio, not a mean of per-sentence ratios), ``bpd`` the same in bits (bits per token),
    ``ppl = exp(nats_per_token)``."""
    nll = nll.detach().double().cpu().reshape(-1)
    tokens = tokens.detach().cpu().reshape(-1)
    if nll.numel() != tokens.numel():
        raise DataError(f"{nll.numel()} NLL values for {tokens.numel()} token counts")
    total = int(tokens.sum())
    if total == 0:
        raise DataError("no tokens to score: every row is padding")
    per_token = float(nll.sum()) / total
    return {
        "tokens": total,
        "nats_per_token": per_token,
        "bpd": per_token / math.log(2),
        # exp overflows to inf above ~709 nats per token: a broken model, said as inf
        "ppl": math.exp(per_token) if per_token < 709 else math.inf,
    }


def summarize_text_nll(nll: Tensor, tokens: Tensor) -> dict[str, float | int]:
    """What :func:`~dgm.evaluation.likelihood.summarize_nll` says of images, for sentences:
    the mean NLL per sentence and its standard error, with :func:`perplexity` (``bpd`` in
    bits per token)."""
    n = nll.numel()
    mean = float(nll.double().mean()) if n else math.nan
    sem = float(nll.double().std() / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "nll_nats": mean, "nll_sem": sem, **perplexity(nll, tokens)}


@torch.no_grad()
def latent_diagnostics(model: GenerativeModel, x: Tensor) -> dict[str, Any]:
    """``{"kl", "mi", "active_units"}`` over all the examples ``x`` (a whole split: the
    mutual information's estimate is bounded by log N, and Burda et al. count active units
    over the test set) for a model that declares :class:`LatentDiagnostics`; ``{}`` for any
    other model, or no examples."""
    if not isinstance(model, LatentDiagnostics) or x.shape[0] == 0:
        return {}
    model.eval()
    d = model.diagnostics(x.to(model.device))
    return {"kl": float(d["kl"]), "mi": float(d["mi"]), "active_units": int(d["active_units"])}


__all__ = [
    "is_text",
    "latent_diagnostics",
    "perplexity",
    "summarize_text_nll",
    "token_counts",
]
