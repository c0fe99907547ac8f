"""Neural spline flows (Durkan, Bekasov, Murray & Papamakarios 2019): monotonic
rational-quadratic splines from coupling networks or MADEs, between learned LU linear maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dgm.config import opt
from dgm.models.flows.base import FlowConfig, FlowModel, vector_couplings
from dgm.nn.activations import Activation
from dgm.registry import register
from dgm.transforms import FlowLayer, FlowSequence
from dgm.transforms.autoregressive import MaskedAutoregressive
from dgm.transforms.glow import InvertibleConv1x1


@dataclass
class NSFConfig(FlowConfig):
    kind: Literal["coupling", "autoregressive"] = opt(
        "coupling", "spline couplings (NSF-C) or autoregressive splines (NSF-AR)"
    )
    transforms: int = opt(6, "spline transforms, each after a learned LU linear map")
    bins: int = opt(8, "bins of each rational-quadratic spline")
    bound: float = opt(3.0, "the splines act on [-bound, bound]; identity outside")
    hidden: int = opt(128, "units per hidden layer of the conditioners")
    layers: int = opt(2, "hidden layers of the conditioners")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")
    dropout: float = opt(0.0, "dropout inside coupling networks")


@register("nsf", "flow", "rational-quadratic spline couplings or autoregressive splines (NSF)")
class NSF(FlowModel):
    """Neural spline flows (Durkan et al. 2019): monotonic rational-quadratic splines whose
    knots come from a coupling network or a MADE, between learned LU linear maps."""

    Config = NSFConfig

    def build(self, c: NSFConfig, shape: tuple[int, ...]) -> FlowLayer:
        d = shape[0]
        out: list[FlowLayer] = []
        for i in range(c.transforms):
            if c.kind == "coupling":
                out += vector_couplings(
                    d, 1, kind="spline", hidden=c.hidden, layers=c.layers, mixing="lu",
                    actnorm=False, dropout=c.dropout, act=c.activation, bins=c.bins,
                    bound=c.bound,
                )  # fmt: skip
            else:
                out.append(InvertibleConv1x1(d, event_dim=1))
                out.append(
                    MaskedAutoregressive(
                        d,
                        hidden=(c.hidden,) * c.layers,
                        kind="spline",
                        bins=c.bins,
                        bound=c.bound,
                        order="natural" if i % 2 == 0 else "reverse",
                        seed=i,
                        activation=c.activation,
                    )
                )
        out.append(InvertibleConv1x1(d, event_dim=1))
        return FlowSequence(out)
