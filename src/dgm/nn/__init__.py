"""Network building blocks shared by the families."""

from dgm.nn.causal import CausalBlock, CausalConv1d, CausalConvNet

__all__ = ["CausalBlock", "CausalConv1d", "CausalConvNet"]
