"""Causal 1-D convolutions over a sequence (a flattened image, audio, text).

Output ``t`` of an *exclusive* (mask A) layer sees inputs ``< t``; of an *inclusive* (mask B)
layer, inputs ``<= t``. One exclusive layer followed by inclusive ones makes a network whose
output ``t`` depends only on inputs ``< t``: the conditionals of an autoregressive model
(van den Oord et al. 2016, "WaveNet"; Tomczak 2022, "Deep Generative Modeling", ch. 2).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution padded on the left only, so no output sees the future."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        exclusive: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.exclusive = exclusive
        # one more step of padding shifts the output right by one: output t sees inputs < t
        self.left_pad = (kernel_size - 1) * dilation + int(exclusive)

    def forward(self, x: Tensor) -> Tensor:  # [B, C_in, L] -> [B, C_out, L]
        length = x.shape[-1]
        return super().forward(F.pad(x, (self.left_pad, 0)))[..., :length]

    @property
    def reach(self) -> int:
        """How many steps back the layer looks (its receptive field minus one)."""
        return self.left_pad
