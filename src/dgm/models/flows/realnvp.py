"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP"): affine
coupling layers; on images a multi-scale architecture of checkerboard and channel couplings
with squeezes and factored-out halves, on vectors alternating half-couplings with MLPs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.errors import ConfigError
from dgm.models.flows.base import ARCH_HELP, MIXING_HELP, FlowConfig, FlowModel, vector_couplings
from dgm.nn.activations import Activation
from dgm.registry import register
from dgm.transforms import FlowLayer, FlowSequence
from dgm.transforms.coupling import Coupling
from dgm.transforms.glow import ActNorm
from dgm.transforms.multiscale import MultiScale

# images this big get the smaller networks of RealNVP.sized_defaults (16x16 and up)
SIZED_PIXELS = 256


@dataclass
class RealNVPConfig(FlowConfig):
    arch: Literal["auto", "mlp", "conv"] = opt("auto", ARCH_HELP)
    couplings: int = opt(8, "mlp: affine coupling layers")
    hidden: int = opt(128, "units (mlp) or channels (conv) of the coupling networks")
    layers: int = opt(2, "mlp: hidden layers per coupling network")
    blocks: int = opt(2, "conv: residual blocks per coupling network")
    scales: int = opt(2, "conv: scales of the multi-scale architecture (as the size allows)")
    mixing: Literal["alternate", "random", "lu"] = opt("alternate", MIXING_HELP)
    checkerboard: Literal["masked", "packed"] = opt(
        "masked",
        "conv: nets see the masked full image (RealNVP) or each row's kept pixels packed into "
        "a half-width image (half the work)",
    )
    actnorm: bool = opt(True, "an actnorm after every coupling (in place of batch norm)")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.0, "dropout inside the coupling networks")


def _conv_arch(c: Any, shape: tuple[int, ...]) -> bool:
    return c.arch == "conv" or (c.arch == "auto" and len(shape) == 3)


@register("realnvp", "flow", "affine couplings, multi-scale for images (RealNVP)")
class RealNVP(FlowModel):
    """RealNVP (Dinh et al. 2017, "Density estimation using Real NVP"). Images: per scale three
    checkerboard couplings, squeeze, three channel couplings, factor out half; the last scale
    four checkerboard couplings. Vectors: alternating affine couplings with MLPs."""

    Config = RealNVPConfig
    bf16_proven = True  # tests/test_precision.py

    sizing_note = (
        f"on images of {SIZED_PIXELS} pixels or more (28x28): hidden=64, blocks=1, "
        "checkerboard=packed (0.85 s per step of 64 on one CPU core in float32, 0.3 s in bf16, "
        "where the full-size nets take 6.3 s)"
    )

    @classmethod
    def sized_defaults(cls, spec: DataSpec) -> dict[str, Any]:
        if spec.is_image and spec.shape[1] * spec.shape[2] >= SIZED_PIXELS:
            return {"hidden": 64, "blocks": 1, "checkerboard": "packed"}
        return {}

    def uses_flat(self, c: RealNVPConfig) -> bool:
        if c.arch == "conv" and len(c.shape) != 3:
            raise ConfigError(f"arch=conv needs images (C, H, W), got shape {c.shape}")
        return not _conv_arch(c, c.shape)

    def build(self, c: RealNVPConfig, shape: tuple[int, ...]) -> FlowLayer:
        if len(shape) == 1:
            return FlowSequence(
                vector_couplings(
                    shape[0], c.couplings, kind="affine", hidden=c.hidden, layers=c.layers,
                    mixing=c.mixing, actnorm=c.actnorm, dropout=c.dropout, act=c.activation,
                )
            )  # fmt: skip
        return self._scale(c, shape, 0)

    def _coupling(self, c: RealNVPConfig, shape: tuple, mask: str, i: int) -> list[FlowLayer]:
        packed = mask == "checkerboard" and c.checkerboard == "packed" and shape[-1] % 2 == 0
        layer = Coupling(
            shape, mask=mask, flip=i % 2 == 1, kind="affine", hidden=c.hidden, layers=0,
            blocks=c.blocks, act=c.activation, dropout=c.dropout, packed=packed,
        )  # fmt: skip
        return [layer, ActNorm(shape[0], event_dim=3)] if c.actnorm else [layer]

    def _scale(self, c: RealNVPConfig, shape: tuple, s: int) -> MultiScale:
        ch, h, w = shape
        last = s == c.scales - 1 or h % 2 or w % 2 or h < 4 or w < 4
        if last:
            pre = [m for i in range(4) for m in self._coupling(c, shape, "checkerboard", i)]
            return MultiScale(shape, pre=pre, squeeze=False)
        pre = [m for i in range(3) for m in self._coupling(c, shape, "checkerboard", i)]
        mid = (4 * ch, h // 2, w // 2)
        post = [m for i in range(3) for m in self._coupling(c, mid, "channel", i)]
        inner = self._scale(c, (2 * ch, h // 2, w // 2), s + 1)
        return MultiScale(shape, pre=pre, post=post, split=2 * ch, inner=inner)
