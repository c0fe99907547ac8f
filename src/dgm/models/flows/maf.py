"""Masked autoregressive flow (Papamakarios, Pavlakou & Murray 2017) and, run backwards, the
inverse autoregressive flow (Kingma et al. 2016): MADE-parameterised affine transforms."""

from __future__ import annotations

from dataclasses import dataclass

from dgm.config import opt
from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.nn.activations import Activation
from dgm.registry import register
from dgm.transforms import FlowLayer, FlowSequence, Inverted
from dgm.transforms.autoregressive import MaskedAutoregressive
from dgm.transforms.glow import ActNorm


@dataclass
class MAFConfig(FlowConfig):
    transforms: int = opt(5, "masked autoregressive transforms")
    hidden: int = opt(256, "units per hidden layer of each MADE")
    layers: int = opt(2, "hidden layers of each MADE")
    inverse: bool = opt(False, "IAF: the transforms run backwards (fast sampling, D-pass density)")
    actnorm: bool = opt(True, "an actnorm after every transform (in place of batch norm)")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")


@register("maf", "flow", "masked autoregressive flow; IAF with inverse=true (MAF/IAF)")
class MAF(FlowModel):
    """MAF (Papamakarios et al. 2017): MADE-parameterised affine autoregressive transforms in
    alternating orders; with ``inverse`` each runs backwards, which is IAF (Kingma et al. 2016)."""

    Config = MAFConfig

    def build(self, c: MAFConfig, shape: tuple[int, ...]) -> FlowLayer:
        out: list[FlowLayer] = []
        for i in range(c.transforms):
            ar: FlowLayer = MaskedAutoregressive(
                shape[0],
                hidden=(c.hidden,) * c.layers,
                kind="affine",
                order="natural" if i % 2 == 0 else "reverse",
                seed=i,
                activation=c.activation,
            )
            out.append(Inverted(ar) if c.inverse else ar)
            if c.actnorm:
                out.append(ActNorm(shape[0], event_dim=1))
        return FlowSequence(out)
