"""Autoregressive models p(x) = prod_d p(x_d | x_<d): exact log-likelihoods, ancestral sampling.

- ``arm``: causal 1-D convolutions over the flattened image (Tomczak 2022, ch. 2);
- ``made``: a masked autoencoder with order-agnostic training (Germain et al. 2015);
- ``pixelcnn``, ``gated-pixelcnn``: masked 2-D convolutions (van den Oord et al. 2016);
- ``wavenet``: gated dilated causal convolutions with cached sampling (van den Oord et al. 2016);
- ``transformer-arm``: a decoder-only transformer with a key/value cache (Chen et al. 2020).
"""

from dgm.models.autoregressive.arm import ARM, ARMConfig
from dgm.models.autoregressive.made import MADE, MADEConfig
from dgm.models.autoregressive.pixelcnn import (
    GatedPixelCNN,
    GatedPixelCNNConfig,
    PixelCNN,
    PixelCNNConfig,
)
from dgm.models.autoregressive.transformer_arm import TransformerARM, TransformerARMConfig
from dgm.models.autoregressive.wavenet import WaveNet, WaveNetConfig

__all__ = [
    "ARM",
    "MADE",
    "ARMConfig",
    "GatedPixelCNN",
    "GatedPixelCNNConfig",
    "MADEConfig",
    "PixelCNN",
    "PixelCNNConfig",
    "TransformerARM",
    "TransformerARMConfig",
    "WaveNet",
    "WaveNetConfig",
]
