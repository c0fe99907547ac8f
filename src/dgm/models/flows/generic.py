"""``flow``: a flow on flattened data built from a list of named transforms, e.g.
``--set transforms="affine-coupling*4, actnorm, spline-coupling*2"`` (data -> noise)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dgm.config import opt
from dgm.errors import ConfigError
from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.nn.activations import Activation
from dgm.registry import register
from dgm.transforms import FlowLayer, FlowSequence, Inverted
from dgm.transforms.autoregressive import MaskedAutoregressive
from dgm.transforms.coupling import Coupling
from dgm.transforms.elementwise import ElementwiseAffine, Permutation, random_permutation
from dgm.transforms.glow import ActNorm, InvertibleConv1x1
from dgm.transforms.householder import Householder
from dgm.transforms.planar import Planar, Radial
from dgm.transforms.splines import ElementwiseSpline

LayerMaker = Callable[[int, int, "GenericFlowConfig"], FlowLayer]


def _coupling_maker(kind: str) -> LayerMaker:
    def make(d: int, i: int, c: GenericFlowConfig) -> FlowLayer:
        return Coupling(
            (d,), mask="half", flip=i % 2 == 1, kind=kind, hidden=c.hidden, layers=c.layers,
            bins=c.bins, bound=c.bound, act=c.activation,
        )  # fmt: skip

    return make


def _ar_maker(kind: str, inverse: bool) -> LayerMaker:
    def make(d: int, i: int, c: GenericFlowConfig) -> FlowLayer:
        layer = MaskedAutoregressive(
            d,
            hidden=(c.hidden,) * c.layers,
            kind=kind,
            bins=c.bins,
            bound=c.bound,
            order="natural" if i % 2 == 0 else "reverse",
            seed=i,
            activation=c.activation,
        )
        return Inverted(layer) if inverse else layer

    return make


TRANSFORMS: dict[str, tuple[LayerMaker, str]] = {
    "affine-coupling": (_coupling_maker("affine"), "RealNVP's affine coupling (halves alternate)"),
    "additive-coupling": (_coupling_maker("additive"), "NICE's additive coupling"),
    "spline-coupling": (_coupling_maker("spline"), "rational-quadratic spline coupling"),
    "maf": (_ar_maker("affine", False), "masked autoregressive affine (one-pass density)"),
    "iaf": (_ar_maker("affine", True), "inverse autoregressive affine (one-pass sampling)"),
    "spline-ar": (_ar_maker("spline", False), "autoregressive rational-quadratic spline"),
    "planar": (lambda d, i, c: Planar(d), "planar flow (Rezende & Mohamed 2015)"),
    "radial": (lambda d, i, c: Radial(d), "radial flow (Rezende & Mohamed 2015)"),
    "householder": (lambda d, i, c: Householder(d), "a Householder reflection"),
    "actnorm": (lambda d, i, c: ActNorm(d, event_dim=1), "per-feature affine, data-initialised"),
    "lu": (
        lambda d, i, c: InvertibleConv1x1(d, event_dim=1),
        "learned invertible linear map in LU form",
    ),
    "affine": (lambda d, i, c: ElementwiseAffine((d,)), "learned elementwise affine"),
    "spline": (
        lambda d, i, c: ElementwiseSpline(d, c.bins, c.bound),
        "learned elementwise spline",
    ),
    "reverse": (
        lambda d, i, c: Permutation(torch.arange(d - 1, -1, -1)),
        "reverse the feature order",
    ),
    "permute": (
        lambda d, i, c: Permutation(random_permutation(d, i)),
        "a fixed random permutation",
    ),
}
_ITEM = re.compile(r"^\s*([a-z-]+)\s*(?:\*\s*(\d+))?\s*$")


def parse_transforms(spec: str) -> list[str]:
    """``"affine-coupling*4, actnorm"`` -> the list of names, repetitions expanded."""
    names: list[str] = []
    for item in spec.split(","):
        m = _ITEM.match(item)
        if not m:
            raise ConfigError(f"transforms: cannot read {item.strip()!r}; write NAME or NAME*N")
        name, count = m.group(1), int(m.group(2) or 1)
        if name.startswith("sylvester"):
            raise ConfigError(
                f"transforms: {name} has no inverse, so a flow of it could not sample; Sylvester "
                "flows serve as VAE posteriors (dgm.transforms.SylvesterOrthogonal and kin)"
            )
        if name not in TRANSFORMS:
            known = ", ".join(sorted(TRANSFORMS))
            raise ConfigError(f"transforms: unknown transform {name!r}; known: {known}")
        if count < 1:
            raise ConfigError(f"transforms: {item.strip()!r} repeats fewer than once")
        names += [name] * count
    if not names:
        raise ConfigError("transforms: name at least one transform")
    return names


TRANSFORMS_HELP = "comma-separated NAME or NAME*N, data -> noise; names: " + ", ".join(
    sorted(TRANSFORMS)
)


@dataclass
class GenericFlowConfig(FlowConfig):
    transforms: str = opt("affine-coupling*4, actnorm, spline-coupling*2", TRANSFORMS_HELP)
    hidden: int = opt(64, "units per hidden layer of coupling and autoregressive networks")
    layers: int = opt(2, "hidden layers of those networks")
    bins: int = opt(8, "bins of spline transforms")
    bound: float = opt(3.0, "splines act on [-bound, bound]")
    activation: Activation = opt("relu", "leaky_relu | relu | gelu | elu | tanh")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_transforms(self.transforms)


@register("flow", "flow", "a flow from a list of named transforms (see its transforms option)")
class GenericFlow(FlowModel):
    """A flow on flattened data from the transforms named in ``transforms``, in order."""

    Config = GenericFlowConfig

    def build(self, c: GenericFlowConfig, shape: tuple[int, ...]) -> FlowLayer:
        d = shape[0]
        return FlowSequence(
            TRANSFORMS[name][0](d, i, c) for i, name in enumerate(parse_transforms(c.transforms))
        )
