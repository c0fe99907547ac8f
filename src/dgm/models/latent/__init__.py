"""Latent-variable models (Kingma & Welling 2014; Rezende, Mohamed & Wierstra 2014): a code z,
a decoder p(x|z), an amortised posterior q(z|x), and importance-sampled likelihood estimates.

- ``vae``: priors (standard, mixture, VampPrior, flow) x posteriors (Gaussian, planar,
  Householder, Sylvester, IAF), the ELBO and IWAE objectives;
- ``hvae``: two stochastic layers z2 -> z1 -> x (Tomczak & Welling 2018);
- ``svae``: codes on the hypersphere with a von Mises-Fisher or Power Spherical posterior
  (Davidson et al. 2018);
- ``vqvae``: discrete codes with a learned autoregressive prior (van den Oord et al. 2017);
  ``vqvae-audio``, the paper's model of waveforms (what ``vqvae`` builds on audio).
"""

from dgm.models.latent.base import LatentConfig, LatentModel, PriorConfig
from dgm.models.latent.hvae import HVAE, HVAEConfig
from dgm.models.latent.svae import SVAE, SVAEConfig
from dgm.models.latent.vae import VAE, VAEConfig
from dgm.models.latent.vqvae import VQVAE, VQVAEConfig
from dgm.models.latent.vqvae_audio import AudioVQVAE, AudioVQVAEConfig

__all__ = [
    "HVAE",
    "SVAE",
    "VAE",
    "VQVAE",
    "AudioVQVAE",
    "AudioVQVAEConfig",
    "HVAEConfig",
    "LatentConfig",
    "LatentModel",
    "PriorConfig",
    "SVAEConfig",
    "VAEConfig",
    "VQVAEConfig",
]
