"""What every flow model shares: the change of variables behind the model contract, and the
data side (Rezende & Mohamed 2015; Dinh et al. 2017),

    log p(x) = log p_base(f(x)) + log |det df/dx|.

:class:`FlowModel` puts a :class:`~dgm.transforms.Flow` (``Flow(transform, base)``) behind the
contract and handles the data: continuous data (the 2-D toys) is modelled as it is and
``log_prob`` is exact; discrete levels are dequantised (uniformly, or variationally as in
Flow++, Ho et al. 2019), so ``log_prob`` is a lower bound on the discrete log-likelihood, in
nats per example and so comparable with the autoregressive models on the same data (see
``dgm.transforms.dequantization``). A registered flow says only how to build its transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.distributions.normal import StandardNormal
from dgm.errors import ConfigError
from dgm.models.base import GenerativeModel, check_num_samples
from dgm.transforms import Flow, FlowLayer
from dgm.transforms.coupling import Coupling
from dgm.transforms.dequantization import (
    UniformDequantizer,
    VariationalDequantizer,
    dequantize_bound_offset,
)
from dgm.transforms.elementwise import LogitTransform, Permutation, random_permutation
from dgm.transforms.glow import ActNorm, InvertibleConv1x1


@dataclass
class FlowConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(17, "values per dimension, from the data (none: continuous data)")
    dequantization: Literal["variational", "uniform"] = opt(
        "variational", "noise for discrete data: a learned q(u|x) (Flow++) or U[0, 1)"
    )
    dequant_hidden: int = opt(32, "width of the variational dequantiser's networks")
    dequant_layers: int = opt(4, "coupling layers of the variational dequantiser")
    preprocess: Literal["logit", "center"] = opt(
        "logit", "discrete data in [0, 1] enters as logit(alpha + (1 - 2 alpha) v) or as v - 1/2"
    )
    alpha: float = opt(
        0.05,
        "the logit's margin (RealNVP's 0.05); > 0 leaves the density's tails unused, so the "
        "model is sub-normalised and its NLL stays an upper bound",
    )

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"levels must be >= 2 or none, got {self.levels}")
        if not 0 <= self.alpha < 0.5:
            raise ConfigError(f"alpha must be in [0, 0.5), got {self.alpha}")
        if self.dequant_layers < 1 or self.dequant_hidden < 1:
            raise ConfigError("dequant_layers and dequant_hidden must be >= 1")


class FlowModel(GenerativeModel):
    """A :class:`Flow` behind the model contract; subclasses say how to build the transform."""

    config: Any

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        c = config
        self.dim = math.prod(c.shape)
        self.in_shape = (self.dim,) if self.uses_flat(c) else tuple(c.shape)
        transform = self.build(c, self.in_shape)
        latent = tuple(transform().forward_shape((1, *self.in_shape))[1:])
        self.flow = Flow(transform, StandardNormal(latent))
        self._logit = LogitTransform(c.alpha, event_dim=len(self.in_shape))
        self.dequantizer: nn.Module | None = None
        if c.levels is not None:
            self.dequantizer = (
                VariationalDequantizer(
                    self.in_shape, c.levels, c.dequant_hidden, layers=c.dequant_layers
                )
                if c.dequantization == "variational"
                else UniformDequantizer()
            )

    # -- what subclasses implement -----------------------------------------------------------
    def uses_flat(self, c: Any) -> bool:
        """Whether the transform sees flattened ``[B, D]`` data (else the event shape)."""
        return True

    def build(self, c: Any, shape: tuple[int, ...]) -> FlowLayer:
        raise NotImplementedError

    # -- the contract ----------------------------------------------------------------------
    @property
    def exact_likelihood(self) -> bool:  # type: ignore[override]
        return self.config.levels is None

    def likelihood_note(self, num_samples: int = 1) -> str:
        if self.exact_likelihood:
            return "exact log-likelihood (change of variables)"
        k = f"{num_samples} importance-weighted samples" if num_samples > 1 else "1 sample"
        return (
            f"lower bound on the discrete log-likelihood ({self.config.dequantization} "
            f"dequantization, {k} of u per example): the NLL is an upper bound"
        )

    @property
    def _dtype(self) -> torch.dtype:
        return self.flow.base._anchor.dtype

    def _preprocess(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """``v`` in [0, 1) -> the flow's input, with log|dy/dv| per example."""
        if self.config.preprocess == "center":
            return v - 0.5, v.new_zeros(v.shape[0])
        return self._logit.call_and_ladj(v)

    def _postprocess(self, y: Tensor) -> Tensor:
        """The flow's output -> levels: the inverse of ``_preprocess``, then ``floor(L v)``."""
        c = self.config
        v = y + 0.5 if c.preprocess == "center" else self._logit.inverse_and_ladj(y)[0]
        return torch.floor(v * c.levels).clamp(0, c.levels - 1)

    def _bound(self, x: Tensor) -> Tensor:
        """One draw of log p(v) + log|dv/dx-scale| - D log L - log q(u|x): ``[B]``."""
        u, log_q = self.dequantizer(x)
        y, ladj = self._preprocess((x + u) / self.config.levels)
        lp = self.flow.log_prob(y) + ladj - log_q
        return lp - dequantize_bound_offset(self.dim, self.config.levels)

    def log_prob(self, x: Tensor, num_samples: int = 1, chunk: int = 1 << 16) -> Tensor:
        """Exact log p(x) for continuous data; for discrete data the dequantisation bound,
        importance-weighted over ``num_samples`` draws of u: log (1/K) sum_k p(x, u_k)/q(u_k|x)
        (``K = 1``: the plain bound; it tightens as K grows, as for IWAE)."""
        self.check_input(x)
        b = x.shape[0]
        x = x.reshape(b, *self.in_shape).to(self._dtype)
        if self.dequantizer is None:
            return self.flow.log_prob(x)
        check_num_samples(num_samples)
        per = max(1, chunk // max(b, 1))  # draws per pass, so a pass holds <= chunk examples
        parts = []
        for start in range(0, num_samples, per):
            k = min(per, num_samples - start)
            xr = x.repeat(k, *([1] * (x.dim() - 1)))  # [k * B, ...]
            parts.append(self._bound(xr).view(k, b))
        lw = torch.cat(parts)  # [K, B]
        return torch.logsumexp(lw, 0) - math.log(num_samples)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` draws in the data's space: levels (the floor of L v) for discrete data."""
        y = self.flow.sample(n, temperature=temperature)
        x = y if self.dequantizer is None else self._postprocess(y)
        return x.reshape(n, *self.config.shape)


# -- pieces the registered flows share ------------------------------------------------------
ARCH_HELP = "auto (conv for images, mlp otherwise) | mlp (on flattened data) | conv"
MIXING_HELP = "between couplings: alternate halves, a random permutation, or a learned LU linear"


def mixing_layers(kind: str, dim: int, seed: int) -> list[FlowLayer]:
    """What goes between two couplings on ``[B, D]``: nothing (alternate halves), a fixed
    random permutation, or a learned LU linear map."""
    if kind == "random":
        return [Permutation(random_permutation(dim, seed))]
    if kind == "lu":
        return [InvertibleConv1x1(dim, event_dim=1)]
    return []


def vector_couplings(
    dim: int,
    n: int,
    *,
    kind: str,
    hidden: int,
    layers: int,
    mixing: str,
    actnorm: bool,
    dropout: float,
    act: str = "relu",
    bins: int = 8,
    bound: float = 3.0,
) -> list[FlowLayer]:
    """``n`` couplings on ``[B, D]``, each preceded by its mixing and followed by an actnorm."""
    if dim < 2:
        raise ConfigError("coupling flows need data of at least 2 dimensions")
    out: list[FlowLayer] = []
    for i in range(n):
        out += mixing_layers(mixing, dim, seed=i)
        flip = mixing == "alternate" and i % 2 == 1
        out.append(
            Coupling(
                (dim,), mask="half", flip=flip, kind=kind, hidden=hidden, layers=layers,
                bins=bins, bound=bound, act=act, dropout=dropout,
            )
        )  # fmt: skip
        if actnorm:
            out.append(ActNorm(dim, event_dim=1))
    return out
