"""``hybrid-vae``: a VAE whose posterior mean feeds a classifier head, p(y|x) p(x) (Nalisnick et
al. 2019; see :mod:`dgm.models.hybrid`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.models.base import Batch, unpack
from dgm.models.hybrid.base import HybridFields, HybridMixin, make_head
from dgm.models.latent.base import CHUNK
from dgm.models.latent.vae import VAE, VAEConfig
from dgm.registry import register


@dataclass
class HybridVAEConfig(HybridFields, VAEConfig):
    pass


@register("hybrid-vae", "hybrid", "VAE + classifier on the posterior mean: p(y|x) p(x)")
class HybridVAE(HybridMixin, VAE):
    """A VAE whose encoder's posterior mean feeds a classifier head. The loss is
    lambda * (the VAE's own loss: -ELBO with its KL weighting) - log p(y|x); ``log_prob`` stays
    the IWAE estimate and ``sample`` the VAE's."""

    Config = HybridVAEConfig
    config: HybridVAEConfig

    def __init__(self, config: HybridVAEConfig) -> None:
        super().__init__(config)
        self.head = make_head(config, config.latent, config.activation)

    def _log_py_all(self, x: Tensor) -> Tensor:
        """log p(.|x) ``[B, C]`` from the posterior mean (with gradients)."""
        return F.log_softmax(self.head(self.encode(x)), dim=-1)

    def loss(self, batch: Batch) -> Tensor:
        """lambda * VAE.loss - mean log p(y|x). The encoder runs once for each term (the VAE's
        loss keeps its pass to itself); weight 0 skips the VAE's loss and its warm-up step."""
        x, y = self._labels(batch)
        ce = F.nll_loss(self._log_py_all(x), y)
        w = self.density_weight
        return w * super().loss((x, y)) + ce if w > 0 else ce

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """log p(y|x) ``[B, C]`` (rows log-softmax) at the posterior mean: deterministic."""
        return self._log_py_all(x)

    @torch.no_grad()
    def predict(self, x: Tensor, num_samples: int = 1, chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
        """``(log p(x) [B], the IWAE estimate with num_samples draws, log p(y|x) [B, C])``."""
        return self.log_prob(x, num_samples, chunk), self.classify(x)

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """The VAE's ``nll`` (-ELBO) and ``elbo``, and with labels ``ce``, ``error`` and
        ``objective`` = lambda * nll + ce."""
        x, y = unpack(batch)
        out = super().metrics(batch)
        if y is not None:
            out |= self._class_metrics(self.classify(x), y)
            out["objective"] = self.density_weight * out["nll"] + out["ce"]
        return out
