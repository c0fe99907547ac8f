"""Generative adversarial networks: ``GAN(generator, discriminator, objective)`` (Goodfellow et
al. 2014) with the minimax, non-saturating, WGAN-GP and hinge objectives (``objectives``) and
MLP or DCGAN players (``networks``)."""

from dgm.models.gan.gan import GAN, GANConfig
from dgm.models.gan.objectives import OBJECTIVES

__all__ = ["GAN", "OBJECTIVES", "GANConfig"]
