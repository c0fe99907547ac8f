"""Diffusion-based models with likelihoods (the fifth family): ``ddpm`` (Ho et al. 2020), ``vdm``
(Kingma et al. 2021), ``score-sde`` (Song et al. 2021) and ``flow-matching`` (Lipman et al. 2023;
Liu et al. 2023; Tong et al. 2024).

``base`` holds the data side every model shares (levels <-> [-1, 1], dequantisation), the network
(``networks``: a U-Net or an MLP with a time embedding) and the sampling options; ``ode`` the
ODE likelihood (instantaneous change of variables) and ODE sampling that ``score-sde`` and
``flow-matching`` share. ``log_prob`` is a bound (ddpm, vdm) or the ODE log-likelihood
(score-sde, flow-matching), and ``likelihood_note`` says which.
"""

from dgm.models.diffusion import ddpm, flow_matching, score_sde, vdm
from dgm.models.diffusion.base import DiffusionConfig, DiffusionModel, ODEConfig, ODEModel

__all__ = [
    "DiffusionConfig",
    "DiffusionModel",
    "ODEConfig",
    "ODEModel",
    "ddpm",
    "flow_matching",
    "score_sde",
    "vdm",
]
