"""Network building blocks shared by several families: activations by name, the MLP, masked
linear layers (MADE), causal 1-D convolutions, masked 2-D convolutions (PixelCNN) and the
convolutional conditioners of flows. A network that only one family uses lives in that
family's folder under ``dgm.models``."""

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

__all__ = [
    "MLP",
    "Activation",
    "CausalConv1d",
    "ConvConditioner",
    "GatedLayer",
    "GatedPixelCNNNet",
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
