"""Hybrid models p(y, x) = p(y|x) p(x) (Nalisnick, Matsukawa, Teh, Gorur & Lakshminarayanan
2019, "Hybrid models with deep and invertible features").

A generative model of x gives features; a classifier head on those features gives p(y|x). Both
are trained together on the weighted joint objective

    lambda * log p(x) + log p(y|x),

where ``lambda`` (config ``weight``) trades the density against the classifier. The paper's
choice scales log p(x), a sum over D dimensions, down to per-dimension size: ``weight=auto``
is lambda = 1/D. ``weight=0`` trains the same network as a plain classifier (the baseline the
hybrid's accuracy and calibration are compared against); its log p(x) is then meaningless.

- ``hybrid-flow``: RealNVP (Dinh et al. 2017) whose latent z = f(x), flattened to ``[B, D]``, is
  the feature vector, as in the paper (there Glow with a linear head). log p(x) is exact for
  continuous data and the dequantisation bound for discrete levels, as for every flow
  (``dgm.models.flows``); one flow pass gives both terms of the loss.
- ``hybrid-vae``: a VAE whose encoder's posterior mean is the feature vector; log p(x) is the
  VAE's own training bound (ELBO, with its KL warm-up, beta, free bits or IWAE objective).

Both predict with :meth:`classify` (log p(y|x), deterministic) and :meth:`predict` (log p(x)
and log p(y|x) together: the density says whether to trust the classifier, the paper's use for
out-of-distribution inputs).
"""

from __future__ import annotations

from dgm.models.hybrid.base import HybridFields, HybridMixin, make_head
from dgm.models.hybrid.flow import HybridFlow, HybridFlowConfig
from dgm.models.hybrid.vae import HybridVAE, HybridVAEConfig

__all__ = [
    "HybridFields",
    "HybridFlow",
    "HybridFlowConfig",
    "HybridMixin",
    "HybridVAE",
    "HybridVAEConfig",
    "make_head",
]
