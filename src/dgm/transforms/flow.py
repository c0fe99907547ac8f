"""``Flow(transform, base)``: a normalising flow as a composition (Rezende & Mohamed 2015,
"Variational inference with normalizing flows"). ``transform(context)`` maps data to noise,
``base`` scores the noise, and the change of variables gives the density of the data:

    log p(x) = log p_base(f(x)) + log |det df/dx|.

Flow models (``dgm.models.flows``), VAE flow priors and conditional flows are built from it.
"""

from __future__ import annotations

from torch import Tensor, nn

from dgm.distributions.base import full_precision
from dgm.transforms.base import FlowLayer


class Flow(nn.Module):
    """``Flow(transform, base)``: ``transform(context)`` maps data to noise, ``base`` scores it.

    ``log_prob(x) = base.log_prob(f(x)) + log|det df/dx|``; ``sample`` runs ``f^-1`` on base draws.
    """

    def __init__(self, transform: FlowLayer, base: nn.Module) -> None:
        super().__init__()
        self.transform, self.base = transform, base

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:  # [B, *] -> [B]
        z, ladj = self.transform(context).call_and_ladj(x)
        return self.base.log_prob(z) + full_precision(ladj)  # float32 under bf16 autocast

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        z = self.base.sample(n, temperature)
        return self.transform(context).inverse_and_ladj(z)[0]

    def sample_and_log_prob(self, n: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Reparameterised draws and their log-density (for flow priors and posteriors)."""
        z = self.base.sample(n)
        x, ladj_inv = self.transform(context).inverse_and_ladj(z)
        return x, self.base.log_prob(z) - ladj_inv
