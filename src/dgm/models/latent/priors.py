"""Priors p(z) of a VAE: modules with ``log_prob(z [B, K]) -> [B]`` and ``sample(n) -> [n, K]``.

- :class:`StandardPrior`: N(0, I) (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").
- :class:`MixturePrior`: a learnable mixture of C diagonal Gaussians over the whole latent
  vector (the components mix jointly, not per dimension).
- :class:`VampPrior`: the "variational mixture of posteriors" of Tomczak & Welling (2018),
  "VAE with a VampPrior": p(z) = 1/C sum_c q(z|u_c) with learnable pseudo-inputs u_c that go
  through the encoder. For a flow posterior, the mixture is of its Gaussian part q_0(z|u_c)
  only (scoring z_T under the flow would need the flow's inverse, which planar, Sylvester and
  IAF steps lack); it is still a proper density, only a less flexible one.
- :class:`FlowPrior`: a masked autoregressive flow (Papamakarios et al. 2017, "Masked
  Autoregressive Flow for Density Estimation") over a standard normal, as in the learned
  priors of Chen et al. (2017), "Variational Lossy Autoencoder": a normalised density whose
  log-det is one number per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.distributions.normal import StandardNormal
from dgm.models.latent.posteriors import HALF_LOG_2PI, made_steps
from dgm.transforms import Flow, FlowSequence

PriorName = Literal["standard", "mog", "vampprior", "flow"]
PRIORS: tuple[str, ...] = PriorName.__args__  # type: ignore[attr-defined]


def mixture_log_prob(z: Tensor, log_w: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    """log sum_c w_c N(z; mu_c, diag sigma_c^2): ``z [B, K]``, ``log_w [C]`` (normalised),
    ``mu, log_std [C, K]`` -> ``[B]``.

    The squared distances come from three matmuls, sum_k z_k^2 a_ck - 2 z_k mu_ck a_ck +
    mu_ck^2 a_ck with a = 1 / sigma^2, so ``[B, C, K]`` is never formed: with C = 500
    pseudo-inputs and 8 KL draws per example that block cost 3x pythae's whole VAMP epoch. The
    expansion loses relative precision ~eps * (z / sigma)^2: up to ~1e-3 nats for a 40-d code
    with sigma >= 0.05 in float32 (tested); the sum is clamped at 0 where rounding would make
    it negative."""
    k = mu.shape[1]
    a = torch.exp(-2.0 * log_std)  # [C, K]
    const = log_w - log_std.sum(-1) - k * HALF_LOG_2PI  # [C]
    quad = (z * z) @ a.T - 2.0 * z @ (mu * a).T + (mu * mu * a).sum(-1)  # [B, C]
    return torch.logsumexp(const - 0.5 * quad.clamp_min(0.0), dim=-1)  # [B]


class StandardPrior(nn.Module):
    """p(z) = N(0, I)."""

    def __init__(self, latent: int) -> None:
        super().__init__()
        self.latent = latent
        self.base = StandardNormal((latent,))

    def log_prob(self, z: Tensor) -> Tensor:
        return self.base.log_prob(z)

    def sample(self, n: int) -> Tensor:
        return self.base.sample(n)


class MixturePrior(nn.Module):
    """p(z) = sum_c pi_c N(z; mu_c, diag sigma_c^2), everything learnable (``pi`` by softmax).

    The means start as N(0, I) draws and the scales at 1, so the prior starts as a spread-out
    blob about the size of N(0, I).
    """

    def __init__(self, latent: int, components: int) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        self.latent = latent
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(torch.randn(components, latent))
        self.log_stds = nn.Parameter(torch.zeros(components, latent))

    def log_prob(self, z: Tensor) -> Tensor:
        log_w = torch.log_softmax(self.logits, -1)
        return mixture_log_prob(z, log_w.to(z.dtype), self.means, self.log_stds)

    def sample(self, n: int) -> Tensor:
        which = torch.multinomial(torch.softmax(self.logits, -1), n, replacement=True)  # [n]
        eps = torch.randn(n, self.latent, device=self.means.device, dtype=self.means.dtype)
        return self.means[which] + torch.exp(self.log_stds[which]) * eps


# (pseudo-inputs [C, *event]) -> (mu [C, K], log_std [C, K]): encoder, then q_0's parameters
GaussianEncoder = Callable[[Tensor], tuple[Tensor, Tensor]]


class VampPrior(nn.Module):
    """p(z) = 1/C sum_c q_0(z | u_c) with learnable pseudo-inputs ``u [C, *shape]``.

    ``q0`` maps pseudo-inputs to the posterior Gaussian's parameters (the VAE's encoder and
    posterior). It is held as a plain callable, not as submodules, so the encoder's weights
    are not stored twice. The pseudo-inputs live in the encoder's input space; ``bounded``
    passes them through ``hardtanh`` to ``[-1, 1]``, the range discrete data is scaled to (the
    paper's hardtanh onto pixel intensities). They start as in the paper's code, N(0.05, 0.01)
    in ``[0, 1]`` units: ``-0.9 + 0.02 eps`` when bounded, ``0.02 eps`` otherwise.
    """

    def __init__(
        self, shape: Sequence[int], components: int, q0: GaussianEncoder, bounded: bool = True
    ) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        self.components, self.bounded = components, bounded
        self.q0 = q0
        start = -0.9 if bounded else 0.0
        self.pseudo = nn.Parameter(start + 0.02 * torch.randn(components, *shape))

    @torch.no_grad()
    def init_from_data(self, u: Tensor, noise: float = 0.01) -> None:
        """Start the pseudo-inputs at examples ``u [>= C, *shape]`` (in the encoder's input
        space) plus ``noise``-scaled Gaussian noise: the paper's ``use_training_data_init``."""
        if u.shape[0] < self.components:
            raise ValueError(f"need >= {self.components} examples, got {u.shape[0]}")
        u = u[: self.components].to(self.pseudo)
        self.pseudo.copy_(u + noise * torch.randn_like(u))

    def pseudo_inputs(self) -> Tensor:
        """``[C, *shape]`` in the encoder's input space."""
        return F.hardtanh(self.pseudo) if self.bounded else self.pseudo

    def components_params(self) -> tuple[Tensor, Tensor]:
        """``(mu, log_std)`` ``[C, K]`` of the mixture's components."""
        return self.q0(self.pseudo_inputs())

    def log_prob(self, z: Tensor) -> Tensor:
        mu, log_std = self.components_params()
        log_w = z.new_full((self.components,), -math.log(self.components))
        return mixture_log_prob(z, log_w, mu.to(z.dtype), log_std.to(z.dtype))

    def sample(self, n: int) -> Tensor:
        """A pseudo-input uniformly at random, then a draw of its posterior Gaussian."""
        mu, log_std = self.components_params()
        which = torch.randint(self.components, (n,), device=mu.device)
        return mu[which] + torch.exp(log_std[which]) * torch.randn_like(mu[which])


class FlowPrior(nn.Module):
    """p(z) = N(f(z); 0, I) |det df/dz| with f ``layers`` MAF steps (alternating orderings):
    density one network pass per step, sampling K passes per step."""

    def __init__(
        self, latent: int, layers: int, hidden: int = 64, activation: str = "relu"
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a flow prior needs layers >= 1, got {layers}")
        self.latent = latent
        steps = made_steps(latent, layers, hidden, activation)
        self.flow = Flow(FlowSequence(steps), StandardNormal((latent,)))

    def log_prob(self, z: Tensor) -> Tensor:
        return self.flow.log_prob(z)

    def sample(self, n: int) -> Tensor:
        return self.flow.sample(n)


Prior = StandardPrior | MixturePrior | VampPrior | FlowPrior

__all__ = [
    "PRIORS",
    "FlowPrior",
    "MixturePrior",
    "Prior",
    "PriorName",
    "StandardPrior",
    "VampPrior",
    "mixture_log_prob",
]
