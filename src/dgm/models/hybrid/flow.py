"""``hybrid-flow``: RealNVP whose latent z = f(x) feeds a classifier head, p(y|x) p(x)
(Nalisnick et al. 2019, "Hybrid models with deep and invertible features"; see
:mod:`dgm.models.hybrid`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.config import opt
from dgm.models.base import Batch, unpack
from dgm.models.flows.realnvp import RealNVP, RealNVPConfig
from dgm.models.hybrid.base import HybridFields, HybridMixin, make_head
from dgm.registry import register
from dgm.transforms.dequantization import dequantize_bound_offset


@dataclass
class HybridFlowConfig(HybridFields, RealNVPConfig):
    dequantization: Literal["variational", "uniform"] = opt(
        "uniform",
        "noise for discrete data: U[0, 1) (the classifier is read at the bin centre, its mean) "
        "or a learned q(u|x) (Flow++; then trained by both terms)",
    )


@register("hybrid-flow", "hybrid", "RealNVP + classifier on its latent: p(y|x) p(x) (Nalisnick)")
class HybridFlow(HybridMixin, RealNVP):
    """RealNVP whose latent z = f(x) feeds a classifier head. The loss is
    -(lambda log p(x) + log p(y|x)) from one flow pass; ``log_prob`` and ``sample`` are the
    flow's own (an unconditional model of x)."""

    Config = HybridFlowConfig
    config: HybridFlowConfig

    def __init__(self, config: HybridFlowConfig) -> None:
        super().__init__(config)
        self.head = make_head(config, math.prod(self.flow.base.shape), config.activation)

    def _latent_and_bound(self, x: Tensor, centre: bool = False) -> tuple[Tensor, Tensor]:
        """One flow pass: the features z ``[B, D]`` and log p(x) ``[B]`` (discrete data: one
        draw of the dequantisation bound, as ``log_prob``; ``centre``: u = 1/2 instead of a
        draw, so z is deterministic and the second value is the density at the bin centre)."""
        # FlowModel._bound computes z internally and keeps it; this is its pass with z kept
        self.check_input(x)
        b = x.shape[0]
        x = x.reshape(b, *self.in_shape).to(self._dtype)
        transform = self.flow.transform()
        if self.dequantizer is None:  # continuous data: exact
            z, ladj = transform.call_and_ladj(x)
            return z.reshape(b, -1), self.flow.base.log_prob(z) + ladj
        levels = self.config.levels
        assert levels is not None  # a dequantiser exists only for discrete data
        if centre:
            u, log_q = torch.full_like(x, 0.5), x.new_zeros(b)
        else:
            u, log_q = self.dequantizer(x)
        y, ladj_pre = self._preprocess((x + u) / levels)
        z, ladj = transform.call_and_ladj(y)
        lp = self.flow.base.log_prob(z) + ladj + ladj_pre - log_q
        return z.reshape(b, -1), lp - dequantize_bound_offset(self.dim, levels)

    def loss(self, batch: Batch) -> Tensor:
        """-(lambda log p(x) + log p(y|x)), mean over the batch; the classifier reads the
        latent of the dequantised input, so one pass serves both terms (uniform noise around
        the bin centre that :meth:`classify` reads)."""
        x, y = self._labels(batch)
        z, log_px = self._latent_and_bound(x)  # [B, D], [B]
        log_py = -F.cross_entropy(self.head(z), y, reduction="none")  # [B]
        w = self.density_weight
        # weight 0 leaves the density out altogether (0 * a non-finite bound would be NaN)
        return -(w * log_px + log_py).mean() if w > 0 else -log_py.mean()

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """log p(y|x) ``[B, C]`` (rows log-softmax), deterministic: discrete data at the bin
        centre x + 1/2."""
        z, _ = self._latent_and_bound(x, centre=True)
        return F.log_softmax(self.head(z), dim=-1)

    @torch.no_grad()
    def predict(self, x: Tensor, num_samples: int = 1) -> tuple[Tensor, Tensor]:
        """``(log p(x) [B] as log_prob reports it, log p(y|x) [B, C])``: one pass for continuous
        data; for discrete data the bound's draws of u and the bin centre are separate passes."""
        if self.dequantizer is None:
            z, log_px = self._latent_and_bound(x)
            return log_px, F.log_softmax(self.head(z), dim=-1)
        return self.log_prob(x, num_samples), self.classify(x)

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` (one draw of the bound, as every flow), and with labels ``ce``, ``error``
        (of :meth:`classify`) and ``objective`` = -(lambda log p(x) + log p(y|x))."""
        x, y = unpack(batch)
        log_px, log_py_all = self.predict(x)
        out = {"nll": -log_px}
        if y is not None:
            out |= self._class_metrics(log_py_all, y)
            out["objective"] = self.density_weight * out["nll"] + out["ce"]
        return out
