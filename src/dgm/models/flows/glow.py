"""Glow (Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1x1 convolutions"):
steps of actnorm, an invertible 1x1 convolution and an affine coupling, multi-scale on images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.nn.activations import Activation
from dgm.registry import register
from dgm.transforms import FlowLayer, FlowSequence
from dgm.transforms.coupling import Coupling
from dgm.transforms.glow import ActNorm, InvertibleConv1x1
from dgm.transforms.multiscale import MultiScale


@dataclass
class GlowConfig(FlowConfig):
    steps: int = opt(8, "flow steps (actnorm, 1x1 conv, coupling) per scale")
    scales: int = opt(3, "scales of the multi-scale architecture (as the image size allows)")
    hidden: int = opt(128, "channels (images) or units (vectors) of the coupling networks")
    coupling: Literal["affine", "additive"] = opt("affine", "affine or additive (NICE) coupling")
    lu: bool = opt(True, "the 1x1 convolution in LU form (cheap log-det) or a full matrix")
    split_prior: bool = opt(True, "a learned prior on factored-out channels given the kept ones")
    preprocess: Literal["logit", "center"] = opt("center", "Glow feeds v - 1/2 (no logit)")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.0, "dropout inside the coupling networks")


@register("glow", "flow", "actnorm, invertible 1x1 conv, affine coupling, multi-scale (Glow)")
class Glow(FlowModel):
    """Glow (Kingma & Dhariwal 2018). Images: per scale squeeze, ``steps`` x (actnorm, LU 1x1
    conv, channel coupling), then factor out half the channels; vectors: the same steps with
    an LU linear map and half-couplings."""

    Config = GlowConfig
    bf16_proven = True  # tests/test_precision.py

    def uses_flat(self, c: GlowConfig) -> bool:
        return len(c.shape) != 3

    def _step(self, c: GlowConfig, shape: tuple) -> list[FlowLayer]:
        image = len(shape) == 3
        coupling = Coupling(
            shape, mask="channel" if image else "half", kind=c.coupling, hidden=c.hidden,
            layers=2, act=c.activation, dropout=c.dropout,
        )  # fmt: skip
        n = len(shape)
        return [ActNorm(shape[0], event_dim=n), InvertibleConv1x1(shape[0], c.lu, n), coupling]

    def build(self, c: GlowConfig, shape: tuple[int, ...]) -> FlowLayer:
        if len(shape) == 1:
            if shape[0] < 2:
                raise ConfigError("glow needs data of at least 2 dimensions")
            return FlowSequence(m for _ in range(c.steps) for m in self._step(c, shape))
        return self._scale(c, shape, 0)

    def _scale(self, c: GlowConfig, shape: tuple, s: int) -> MultiScale:
        ch, h, w = shape
        if h % 2 or w % 2:
            raise ConfigError(f"glow squeezes images: {h}x{w} must have an even height and width")
        mid = (4 * ch, h // 2, w // 2)
        post = [m for _ in range(c.steps) for m in self._step(c, mid)]
        last = s == c.scales - 1 or mid[1] % 2 or mid[2] % 2
        if last:
            return MultiScale(shape, post=post)
        if c.split_prior:  # the factored half, transformed given the kept half
            post.append(
                Coupling(
                    mid,
                    mask="channel",
                    flip=True,
                    kind="affine",
                    hidden=c.hidden,
                    layers=2,
                    act=c.activation,
                )
            )
        inner = self._scale(c, (2 * ch, h // 2, w // 2), s + 1)
        return MultiScale(shape, post=post, split=2 * ch, inner=inner)
