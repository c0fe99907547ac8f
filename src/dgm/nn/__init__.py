"""Network building blocks shared by the families."""

from dgm.nn.causal import CausalBlock, CausalConv1d, CausalConvNet
from dgm.nn.wavenet import GatedResidualBlock, WaveNet, dilations

__all__ = [
    "CausalBlock",
    "CausalConv1d",
    "CausalConvNet",
    "GatedResidualBlock",
    "WaveNet",
    "dilations",
]
