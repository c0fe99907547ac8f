"""MADE: a masked autoencoder as an autoregressive model (Germain et al. 2015, "MADE: Masked
Autoencoder for Distribution Estimation").

One masked MLP reads the whole flattened image and emits, for every dimension d, the parameters
of p(x_d | x_<d) in its ordering, all in one pass: p(x) = prod_d p(x_d | x_<d).

- Order- and connectivity-agnostic training: with ``num_masks > 1`` the network holds
  that many seeded orderings (``order="random"``) and connectivities, and each training step
  uses the next one in turn.
- Connectivity-agnostic ensembles at test time: in eval mode ``log_prob`` is the
  log of the mean probability under the first ``ensemble`` masks,
  logsumexp_m log p_m(x) - log M: a mixture of M normalised models, so itself normalised.
  ``sample`` draws from that same mixture: a component at random, then ancestral sampling in
  its ordering (D passes of the network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.autoregressive.base import AutoregressiveModel, InputEncoding
from dgm.models.base import DiscreteConfig
from dgm.models.capabilities import Scheduled
from dgm.nn.activations import Activation
from dgm.nn.made import MADENet, Order
from dgm.registry import register


@dataclass
class MADEConfig(DiscreteConfig):
    hidden: int = opt(512, "units in every hidden layer")
    layers: int = opt(2, "hidden layers")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.0, "dropout after each hidden layer")
    input: InputEncoding = opt(
        "scalar", "pixels enter as one scaled value (generalises better), or one unit per level"
    )
    direct: bool = opt(False, "add masked direct connections from the inputs to the outputs")
    order: Order = opt("natural", "natural (raster) | random orderings, one per mask")
    num_masks: int = opt(
        1, "orderings/connectivities cycled through in training (1 = one fixed mask)"
    )
    ensemble: int = opt(1, "masks whose probabilities are averaged by log_prob in eval mode")
    mask_bias: bool = opt(False, "the paper's mask-conditioned bias (when num_masks > 1)")
    mask_seed: int = opt(0, "seeds the orderings and connectivities of the masks")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden < 1 or self.layers < 1:
            raise ConfigError("need hidden >= 1 and layers >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_masks < 1 or self.ensemble < 1:
            raise ConfigError("num_masks and ensemble must be >= 1")
        if self.ensemble > self.num_masks:
            raise ConfigError(
                f"ensemble={self.ensemble} averages trained masks, but only "
                f"num_masks={self.num_masks} are trained; raise num_masks"
            )


@register("made", "autoregressive", "masked MLP with order-agnostic training and ensembles (MADE)")
class MADE(AutoregressiveModel, Scheduled):
    """MADE(masked MLP, likelihood): exact log-likelihood, ancestral sampling."""

    Config = MADEConfig
    config: MADEConfig

    def __init__(self, config: MADEConfig) -> None:
        super().__init__(config)
        c = config
        self.net = MADENet(
            self.dim,
            c.levels if c.input == "onehot" else 1,
            self.likelihood.params_per_dim,
            hidden_sizes=[c.hidden] * c.layers,
            num_masks=c.num_masks,
            order=c.order,
            seed=c.mask_seed,
            act=c.activation,
            dropout=c.dropout,
            direct=c.direct,
            mask_bias=c.mask_bias and c.num_masks > 1,
        )
        # the mask of the current training step, from the trainer's step count (set_step), so
        # a resumed run continues the cycle; plain state, never saved or averaged
        self.mask_index = 0

    def params(self, flat: Tensor, mask: int = 0) -> Tensor:
        """Parameters of every conditional under mask ``mask``: ``[B, D] -> [B, P, D]``."""
        inputs = self.encode_sequence(flat).transpose(1, 2).flatten(1)  # [B, D * C_in], d-major
        out = self.net(inputs, mask)  # [B, P * D]
        return out.view(flat.shape[0], self.likelihood.params_per_dim, self.dim)

    def logits(self, flat: Tensor) -> Tensor:
        """The parameters under the mask in use: the current one in training mode, the first
        in eval mode (``log_prob`` mixes the ensemble's)."""
        return self.params(flat, self.mask_index if self.training else 0)

    def log_prob_mask(self, x: Tensor, mask: int) -> Tensor:
        """log p_m(x) under one mask's ordering and connectivity: ``[B, *shape] -> [B]``."""
        flat = x.reshape(x.shape[0], -1)  # [B, D]
        return self.likelihood.log_prob(self.params(flat, mask), flat)

    def log_prob(self, x: Tensor) -> Tensor:
        """Training mode: the current mask. Eval mode: the mixture of the ``ensemble`` masks."""
        self.check_input(x)
        if self.training:
            return self.log_prob_mask(x, self.mask_index)
        m = self.config.ensemble
        if m == 1:
            return self.log_prob_mask(x, 0)
        per_mask = torch.stack([self.log_prob_mask(x, i) for i in range(m)])  # [M, B]
        return torch.logsumexp(per_mask, dim=0) - math.log(m)

    def set_step(self, step: int) -> None:
        """Training step ``step`` trains mask ``step % num_masks``: the masks in turn (the
        trainer calls this before each step)."""
        self.mask_index = int(step) % self.config.num_masks

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """Training mode: the current mask. Eval mode: a mask of the ensemble per sample."""
        if self.training or self.config.ensemble == 1:
            first = self.mask_index if self.training else 0
            which = torch.full((n,), first, dtype=torch.long, device=self.device)
        else:
            which = torch.randint(self.config.ensemble, (n,), device=self.device)
        x = torch.zeros(n, self.dim, device=self.device)
        for m in which.unique().tolist():
            rows = (which == m).nonzero()[:, 0]
            x[rows] = self.sample_mask(len(rows), m, temperature)
        return x.view(n, *self.config.shape)

    @torch.no_grad()
    def sample_mask(self, n: int, mask: int, temperature: float = 1.0) -> Tensor:
        """Ancestral sampling in mask ``mask``'s ordering: ``[n, D]``, D network passes."""
        return self.ancestral(n, temperature, state=mask, order=self.net.order(mask).tolist())

    def conditional_params(self, x: Tensor, d: int, state: Any = None) -> Tensor:
        """p(x_d | x_<d)'s parameters ``[n, P, 1]`` under mask ``state``: one full pass (the
        masks make output d see the values before d in that mask's order only)."""
        return self.params(x, state)[..., d : d + 1]
