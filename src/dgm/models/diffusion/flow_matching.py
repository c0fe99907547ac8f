"""Flow matching (Lipman, Chen, Ben-Hamu, Nickel & Le 2023, "Flow matching for generative
modeling"; rectified flow, Liu, Gong & Liu 2023, "Flow straight and fast"; minibatch optimal
transport couplings, Tong et al. 2024, "Improving and generalizing flow-based generative models
with minibatch optimal transport").

Noise x0 ~ N(0, I) at t = 0, data x1 at t = 1 (Lipman's convention). A conditional path
x_t = t x1 + b_t x0 and its velocity, the regression target:

- ``ot`` (Lipman's conditional OT path, eq. 20-23): mu_t = t x1, sigma_t = 1 - (1 - sigma_min) t,
  so b_t = 1 - (1 - sigma_min) t and the target is x1 - (1 - sigma_min) x0; the model's density
  at t = 1 is the data's convolved with N(0, sigma_min^2 I);
- ``rectified`` (Liu et al.): b_t = 1 - t, the target x1 - x0 (the ``ot`` path at sigma_min = 0).

The network v(x_t, t) regresses the target in mean squared error (conditional flow matching,
averaged over dimensions), t ~ U(0, 1). ``coupling`` pairs the batch's noise with its data:
``independent`` (as drawn) or ``ot``, the minibatch optimal transport plan for the squared
distance, a permutation (the assignment problem, solved exactly by
:func:`scipy.optimize.linear_sum_assignment`), which straightens the paths.

The likelihood and samples go through the ODE dy/dt = v(y, t)
(:class:`~dgm.models.diffusion.base.ODEModel`, from t = 1 back to the prior at t = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.base import Batch, unpack
from dgm.models.diffusion.base import ODE_SAMPLERS, ODEConfig, ODEModel
from dgm.registry import register

PATHS = ("ot", "rectified")
COUPLINGS = ("independent", "ot")


@dataclass
class FlowMatchingConfig(ODEConfig):
    path: Literal["ot", "rectified"] = opt(
        "ot", "the conditional path: ot (Lipman et al.) or rectified (Liu et al.)"
    )
    coupling: Literal["independent", "ot"] = opt(
        "independent", "how noise and data are paired: independent or ot (minibatch OT)"
    )
    sigma_min: float = opt(1e-4, "ot path: the conditional path's width at the data (t = 1)")
    steps: int = opt(100, "steps of the fixed-step ODE solvers (euler, midpoint, rk4)")
    sampler: str = opt("ode", "ode (adaptive, the config's tolerances) | euler | midpoint | rk4")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.path not in PATHS:
            raise ConfigError(f"unknown path {self.path!r}; choose one of {', '.join(PATHS)}")
        if self.coupling not in COUPLINGS:
            raise ConfigError(
                f"unknown coupling {self.coupling!r}; choose one of {', '.join(COUPLINGS)}"
            )
        if self.sampler not in ODE_SAMPLERS:
            raise ConfigError(
                f"unknown sampler {self.sampler!r} for flow-matching; choose one of "
                f"{', '.join(ODE_SAMPLERS)}"
            )
        if not 0 <= self.sigma_min < 1:
            raise ConfigError(f"sigma_min must be in [0, 1), got {self.sigma_min}")


def ot_pairing(x0: Tensor, x1: Tensor) -> Tensor:
    """The minibatch OT coupling: ``perm`` ``[B]`` such that ``x0[perm]`` paired row by row
    with ``x1`` minimises the total squared distance over all permutations (an exact
    assignment; for two equal batches the OT plan with uniform weights is a permutation)."""
    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()).pow(2)
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    perm = np.empty(len(rows), dtype=np.int64)
    perm[cols] = rows  # data cols[k] is paired with noise rows[k]
    return torch.as_tensor(perm, device=x0.device)


@register("flow-matching", "diffusion", "flow matching (OT or rectified path), ODE likelihood")
class FlowMatching(ODEModel):
    """A velocity field trained by conditional flow matching; likelihoods and samples through
    its ODE from N(0, I) at t = 0 to the data at t = 1."""

    Config = FlowMatchingConfig
    config: FlowMatchingConfig
    samplers = ODE_SAMPLERS
    outputs = 1
    t_data = 1.0
    t_prior = 0.0

    @property
    def sigma_min(self) -> float:
        """The path's width at t = 1 (0 for the rectified path)."""
        return self.config.sigma_min if self.config.path == "ot" else 0.0

    def velocity(self, y: Tensor, t: Tensor) -> Tensor:
        """The network's velocity v(y, t) ``[B, *shape]``."""
        return self.net(y, t)[:, 0]

    def per_example_loss(self, x: Tensor) -> Tensor:
        """||v(x_t, t) - target||^2 averaged over dimensions ``[B]``, t ~ U(0, 1), on
        dequantised data (discrete levels)."""
        x1, _ = self.dequantize(x)
        x0 = torch.randn_like(x1)
        if self.config.coupling == "ot":
            x0 = x0[ot_pairing(x0, x1)]
        t = torch.rand(x1.shape[0], device=x1.device, dtype=x1.dtype)
        tb = t.reshape(-1, *([1] * (x1.dim() - 1)))
        shrink = 1 - self.sigma_min
        xt = tb * x1 + (1 - shrink * tb) * x0
        target = x1 - shrink * x0
        return (self.velocity(xt, t) - target).pow(2).flatten(1).mean(1)

    def loss(self, batch: Batch) -> Tensor:
        x, _ = unpack(batch)
        return self.per_example_loss(x).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        x, _ = unpack(batch)
        return {"loss": self.per_example_loss(x)}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        steps: int | None = None,
        sampler: str | None = None,
    ) -> Tensor:
        """``n`` draws in data space: N(0, temperature^2 I) carried along the ODE to t = 1."""
        steps, sampler = self.sampling(steps, sampler)
        return self.to_data(self.ode_draw(n, temperature, steps, sampler))


__all__ = ["COUPLINGS", "PATHS", "FlowMatching", "FlowMatchingConfig", "ot_pairing"]
