"""The losses of a GAN's two players, as pure functions of the discriminator's logits.

D outputs a logit ``l`` (``D(x) = sigmoid(l)`` for the probabilistic objectives) or a critic
value (wgan-gp, hinge); both players *minimise* the losses here. Every log-probability is
written with ``softplus`` (``-log sigmoid(l) = softplus(-l)``, ``-log(1 - sigmoid(l)) =
softplus(l)``), which stays finite for logits of any size where ``log(sigmoid(l))`` underflows.

- ``minimax``: Goodfellow et al. (2014), "Generative Adversarial Nets": D maximises
  ``E log D(x) + E log(1 - D(G(z)))``, G minimises ``E log(1 - D(G(z)))``.
- ``non-saturating``: the same paper's practical G loss, ``-E log D(G(z))``: same fixed point,
  but strong gradients while D confidently rejects G's samples (where minimax's vanish).
- ``wgan-gp``: Gulrajani et al. (2017), "Improved Training of Wasserstein GANs": the critic
  minimises ``E f(G(z)) - E f(x)`` plus :func:`gradient_penalty`; G minimises ``-E f(G(z))``.
- ``hinge``: Lim & Ye (2017), "Geometric GAN"; Miyato et al. (2018), "Spectral Normalization
  for Generative Adversarial Networks": D minimises ``E relu(1 - f(x)) + E relu(1 + f(G(z)))``,
  G minimises ``-E f(G(z))``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.errors import ConfigError, DataError

OBJECTIVES = ("minimax", "non-saturating", "wgan-gp", "hinge")
# objectives whose D output is a probability logit (the others are raw critic values)
PROBABILISTIC = ("minimax", "non-saturating")


def _check(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown gan objective {objective!r}: choose one of {OBJECTIVES}")


def discriminator_loss(objective: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D's loss (to minimise) on its outputs for a real batch ``[B]`` and a fake one ``[B']``."""
    _check(objective)
    if objective in PROBABILISTIC:  # -E log D(x) - E log(1 - D(G(z))); the same for both
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if objective == "wgan-gp":  # the negated Wasserstein-1 estimate (Kantorovich-Rubinstein)
        return fake_logits.mean() - real_logits.mean()
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()  # hinge


def generator_loss(objective: str, fake_logits: Tensor) -> Tensor:
    """G's loss (to minimise) on D's outputs for a fake batch ``[B]``."""
    _check(objective)
    if objective == "minimax":  # E log(1 - D(G(z))) = -E softplus(l): saturates as l -> -inf
        return -F.softplus(fake_logits).mean()
    if objective == "non-saturating":  # -E log D(G(z)) = E softplus(-l)
        return F.softplus(-fake_logits).mean()
    return -fake_logits.mean()  # wgan-gp and hinge


def _input_grad(
    discriminator: Callable[..., Tensor], x: Tensor, y: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``(d, grad)``: D's outputs ``[B]`` at ``x`` and their gradient wrt ``x`` (kept in the
    graph, so a penalty on it trains D's parameters)."""
    x = x.detach().requires_grad_(True)
    out = discriminator(x, y) if y is not None else discriminator(x)
    # the examples are independent (no BatchNorm in D), so d sum / dx_i = d out_i / dx_i
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return out, grad


def gradient_penalty(
    discriminator: Callable[..., Tensor],
    real: Tensor,
    fake: Tensor,
    y: Tensor | None = None,
    weight: float = 10.0,
) -> Tensor:
    """WGAN-GP's two-sided penalty (Gulrajani et al. 2017, eq. 3):
    ``weight * E (||grad_x f(x_hat)||_2 - 1)^2`` at ``x_hat = eps x + (1 - eps) G(z)`` with one
    ``eps ~ U(0, 1)`` per example. ``y`` (labels) is passed to a conditional critic."""
    if real.shape != fake.shape:
        raise DataError(
            f"gradient penalty needs real and fake batches of one shape, got "
            f"{list(real.shape)} and {list(fake.shape)}"
        )
    fake = fake.to(real.dtype)
    eps = torch.rand(  # [B, 1, ..., 1]: one mixing weight per example
        real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype
    )
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    _, grad = _input_grad(discriminator, x_hat, y)
    norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # [B]
    return weight * ((norm - 1) ** 2).mean()


def r1_penalty(
    discriminator: Callable[..., Tensor],
    real: Tensor,
    y: Tensor | None = None,
    weight: float = 10.0,
) -> Tensor:
    """R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?"):
    ``weight / 2 * E ||grad_x D(x)||^2`` on real data; a zero-centred alternative to the
    gradient penalty for the probabilistic and hinge objectives."""
    _, grad = _input_grad(discriminator, real, y)
    return weight / 2 * grad.flatten(1).pow(2).sum(1).mean()


def natural_units(objective: str, logits: Tensor) -> Tensor:
    """D's outputs in the objective's own units: sigmoid probabilities for minimax /
    non-saturating, raw critic values for wgan-gp / hinge."""
    _check(objective)
    return torch.sigmoid(logits) if objective in PROBABILISTIC else logits


def d_real_fake_stats(
    objective: str, real_logits: Tensor, fake_logits: Tensor
) -> dict[str, Tensor]:
    """``{"d_real", "d_fake"}``: D's mean output on real and fake batches in
    :func:`natural_units` (for wgan-gp / hinge their gap estimates the Wasserstein distance /
    the margin)."""
    return {
        "d_real": natural_units(objective, real_logits.detach()).mean(),
        "d_fake": natural_units(objective, fake_logits.detach()).mean(),
    }


__all__ = [
    "OBJECTIVES",
    "d_real_fake_stats",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "natural_units",
    "r1_penalty",
]
