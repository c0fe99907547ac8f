"""The numbers of posterior collapse, for a diagonal Gaussian posterior q(z|x) = N(mu, sigma^2)
over a set of N examples (the text VAE's :meth:`diagnostics`):

- the mutual information between x and z under the aggregate posterior q(x, z) = p_d(x)
  q(z|x), as He et al. 2019 ("Lagging inference networks and posterior collapse in
  variational autoencoders") estimate it in their ``calc_mi``:

      I(x; z) = E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)],
      q(z) ~= 1/N sum_n q(z | x_n),

  the first term the negative entropy of each Gaussian in closed form, the second at one
  draw z_n ~ q(z|x_n) per example; it lies in [0, log N];
- the active units of Burda, Grosse & Salakhutdinov 2016: the dimensions d whose posterior
  mean moves with the example, Cov_x(E_q(z|x)[z_d]) > 0.01.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016


def mutual_information(mu: Tensor, log_std: Tensor, z: Tensor, chunk: int = 256) -> float:
    """He et al. 2019's estimate of I(x; z) in nats from the posteriors' ``mu, log_std
    [N, K]`` and one draw ``z [N, K]`` of each (the log density of every draw under every
    posterior, ``[N, N]``, in blocks of ``chunk`` draws)."""
    n, k = mu.shape
    mu, log_std, z = mu.double(), log_std.double(), z.double()
    neg_entropy = (-k * HALF_LOG_2PI - (0.5 + log_std).sum(-1)).mean()  # E log q(z|x)
    inv_var = torch.exp(-2 * log_std)  # [N, K]
    norm = -k * HALF_LOG_2PI - log_std.sum(-1)  # [N]
    log_qz = []
    for start in range(0, n, chunk):
        dev = z[start : start + chunk, None, :] - mu[None]  # [c, N, K]
        log_density = norm - 0.5 * (dev * dev * inv_var).sum(-1)  # [c, N]: log q(z_i | x_j)
        log_qz.append(torch.logsumexp(log_density, dim=1) - math.log(n))
    return float(neg_entropy - torch.cat(log_qz).mean())


def active_units(mu: Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """How many dimensions of the posterior means ``[N, K]`` vary over the examples by more
    than ``threshold`` (the unbiased variance, as He et al.'s code)."""
    if mu.shape[0] < 2:
        return 0
    return int((mu.double().var(dim=0) > threshold).sum())


__all__ = ["ACTIVE_THRESHOLD", "active_units", "mutual_information"]
