"""Network building blocks shared by the families."""

from dgm.nn.causal import CausalBlock, CausalConv1d, CausalConvNet
from dgm.nn.gan import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    apply_spectral_norm,
    make_gan_nets,
)
from dgm.nn.made import MADENet, MaskedLinear, made_degrees
from dgm.nn.pixelcnn import (
    GatedLayer,
    GatedPixelCNNNet,
    MaskedConv2d,
    PixelCNNNet,
    ResidualBlock,
    VerticalConv,
)
from dgm.nn.transformer import (
    CausalSelfAttention,
    CausalTransformer,
    KVCache,
    LayerCache,
    TransformerBlock,
)
from dgm.nn.wavenet import GatedResidualBlock, WaveNet, dilations

__all__ = [
    "CausalBlock",
    "CausalConv1d",
    "CausalConvNet",
    "CausalSelfAttention",
    "CausalTransformer",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GatedLayer",
    "GatedPixelCNNNet",
    "GatedResidualBlock",
    "KVCache",
    "LayerCache",
    "MADENet",
    "MLPDiscriminator",
    "MLPGenerator",
    "MaskedConv2d",
    "MaskedLinear",
    "PixelCNNNet",
    "ResidualBlock",
    "TransformerBlock",
    "VerticalConv",
    "WaveNet",
    "apply_spectral_norm",
    "dilations",
    "made_degrees",
    "make_gan_nets",
]
