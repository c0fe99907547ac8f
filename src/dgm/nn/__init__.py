"""Network building blocks shared by several families: activations by name, the MLP, masked
linear layers (MADE), causal 1-D convolutions, masked 2-D convolutions (PixelCNN), the
convolutional conditioners of flows and the causal transformer with its key/value cache (the
transformer ARM and the transformer language model). A network that only one family uses
lives in that family's folder under ``dgm.models``."""

from dgm.nn.activations import Activation, activation
from dgm.nn.causal import CausalConv1d
from dgm.nn.conv import ConvConditioner, ResidualConvBlock
from dgm.nn.made import MADENet, MaskedLinear, made_degrees
from dgm.nn.mlp import MLP, cat_context
from dgm.nn.pixelcnn import (
    GatedLayer,
    GatedPixelCNNNet,
    MaskedConv2d,
    PixelCNNNet,
    ResidualBlock,
    VerticalConv,
)
from dgm.nn.transformer import CausalTransformer, KVCache, LayerCache

__all__ = [
    "MLP",
    "Activation",
    "CausalConv1d",
    "CausalTransformer",
    "ConvConditioner",
    "GatedLayer",
    "GatedPixelCNNNet",
    "KVCache",
    "LayerCache",
    "MADENet",
    "MaskedConv2d",
    "MaskedLinear",
    "PixelCNNNet",
    "ResidualBlock",
    "ResidualConvBlock",
    "VerticalConv",
    "activation",
    "cat_context",
    "made_degrees",
]
