"""Flow-based models: an invertible map f from data to noise and the change of variables,

    log p(x) = log p_base(f(x)) + log |det df/dx|      (Rezende & Mohamed 2015; Dinh et al. 2017)

``Flow(transform, base)`` is that composition, usable on its own (conditional flows, VAE priors).
``FlowModel`` puts it behind the model contract and handles the data: continuous data (the 2-D
toys) is modelled as it is and ``log_prob`` is exact; discrete levels are dequantised
(uniformly, or variationally as in Flow++, Ho et al. 2019), so ``log_prob`` is a lower bound on
the discrete log-likelihood, in nats per example and so comparable with the autoregressive
models on the same data (see ``dgm.transforms.dequantization``).

Registered models: ``realnvp`` (Dinh et al. 2017), ``glow`` (Kingma & Dhariwal 2018), ``maf``
(Papamakarios et al. 2017; IAF with ``inverse=true``), ``nsf`` (Durkan et al. 2019) and ``flow``,
built from a list of transforms named in its config.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.distributions.normal import StandardNormal
from dgm.errors import ConfigError
from dgm.models.base import GenerativeModel
from dgm.nn.causal import Activation
from dgm.registry import register
from dgm.transforms import FlowLayer, FlowSequence, Inverted
from dgm.transforms.autoregressive import MaskedAutoregressive
from dgm.transforms.coupling import Coupling
from dgm.transforms.dequantization import (
    UniformDequantizer,
    VariationalDequantizer,
    dequantize_bound_offset,
)
from dgm.transforms.elementwise import (
    ElementwiseAffine,
    LogitTransform,
    Permutation,
    random_permutation,
)
from dgm.transforms.glow import ActNorm, InvertibleConv1x1
from dgm.transforms.householder import Householder
from dgm.transforms.multiscale import MultiScale
from dgm.transforms.planar import Planar, Radial
from dgm.transforms.splines import ElementwiseSpline


class Flow(nn.Module):
    """``Flow(transform, base)``: ``transform(context)`` maps data to noise, ``base`` scores it.

    ``log_prob(x) = base.log_prob(f(x)) + log|det df/dx|``; ``sample`` runs ``f^-1`` on base draws.
    """

    def __init__(self, transform: FlowLayer, base: nn.Module) -> None:
        super().__init__()
        self.transform, self.base = transform, base

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:  # [B, *] -> [B]
        z, ladj = self.transform(context).call_and_ladj(x)
        return self.base.log_prob(z) + ladj

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        z = self.base.sample(n, temperature)
        return self.transform(context).inverse_and_ladj(z)[0]

    def sample_and_log_prob(self, n: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Reparameterised draws and their log-density (for flow priors and posteriors)."""
        z = self.base.sample(n)
        x, ladj_inv = self.transform(context).inverse_and_ladj(z)
        return x, self.base.log_prob(z) - ladj_inv


# -- the data side, shared by every registered flow --------------------------------------------
@dataclass
class FlowConfig:
    shape: tuple[int, ...] = opt((1, 8, 8), "event shape, from the data")
    levels: int | None = opt(17, "values per dimension, from the data (none: continuous data)")
    dequantization: Literal["variational", "uniform"] = opt(
        "variational", "noise for discrete data: a learned q(u|x) (Flow++) or U[0, 1)"
    )
    dequant_hidden: int = opt(32, "width of the variational dequantiser's networks")
    dequant_layers: int = opt(4, "coupling layers of the variational dequantiser")
    preprocess: Literal["logit", "center"] = opt(
        "logit", "discrete data in [0, 1] enters as logit(alpha + (1 - 2 alpha) v) or as v - 1/2"
    )
    alpha: float = opt(
        0.05,
        "the logit's margin (RealNVP's 0.05); > 0 leaves the density's tails unused, so the "
        "model is sub-normalised and its NLL stays an upper bound",
    )

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"levels must be >= 2 or none, got {self.levels}")
        if not 0 <= self.alpha < 0.5:
            raise ConfigError(f"alpha must be in [0, 0.5), got {self.alpha}")
        if self.dequant_layers < 1 or self.dequant_hidden < 1:
            raise ConfigError("dequant_layers and dequant_hidden must be >= 1")


class FlowModel(GenerativeModel):
    """A :class:`Flow` behind the model contract; subclasses say how to build the transform."""

    config: Any

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        c = config
        self.dim = math.prod(c.shape)
        self.in_shape = (self.dim,) if self.uses_flat(c) else tuple(c.shape)
        transform = self.build(c, self.in_shape)
        latent = tuple(transform().forward_shape((1, *self.in_shape))[1:])
        self.flow = Flow(transform, StandardNormal(latent))
        self._logit = LogitTransform(c.alpha, event_dim=len(self.in_shape))
        self.dequantizer: nn.Module | None = None
        if c.levels is not None:
            self.dequantizer = (
                VariationalDequantizer(self.in_shape, c.levels, c.dequant_hidden, c.dequant_layers)
                if c.dequantization == "variational"
                else UniformDequantizer()
            )

    # -- what subclasses implement -----------------------------------------------------------
    def uses_flat(self, c: Any) -> bool:
        """Whether the transform sees flattened ``[B, D]`` data (else the event shape)."""
        return True

    def build(self, c: Any, shape: tuple[int, ...]) -> FlowLayer:
        raise NotImplementedError

    # -- the contract ----------------------------------------------------------------------
    @property
    def exact_likelihood(self) -> bool:  # type: ignore[override]
        return self.config.levels is None

    def likelihood_note(self, num_samples: int = 1) -> str:
        if self.exact_likelihood:
            return "exact log-likelihood (change of variables)"
        k = f"{num_samples} importance-weighted samples" if num_samples > 1 else "1 sample"
        return (
            f"lower bound on the discrete log-likelihood ({self.config.dequantization} "
            f"dequantization, {k} of u per example): the NLL is an upper bound"
        )

    @property
    def _dtype(self) -> torch.dtype:
        return self.flow.base._anchor.dtype

    def _preprocess(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """``v`` in [0, 1) -> the flow's input, with log|dy/dv| per example."""
        if self.config.preprocess == "center":
            return v - 0.5, v.new_zeros(v.shape[0])
        return self._logit.call_and_ladj(v)

    def _postprocess(self, y: Tensor) -> Tensor:
        """The flow's output -> levels: the inverse of ``_preprocess``, then ``floor(L v)``."""
        c = self.config
        v = y + 0.5 if c.preprocess == "center" else self._logit.inverse_and_ladj(y)[0]
        return torch.floor(v * c.levels).clamp(0, c.levels - 1)

    def _bound(self, x: Tensor) -> Tensor:
        """One draw of log p(v) + log|dv/dx-scale| - D log L - log q(u|x): ``[B]``."""
        u, log_q = self.dequantizer(x)
        y, ladj = self._preprocess((x + u) / self.config.levels)
        lp = self.flow.log_prob(y) + ladj - log_q
        return lp - dequantize_bound_offset(self.dim, self.config.levels)

    def log_prob(self, x: Tensor, num_samples: int = 1, chunk: int = 1 << 16) -> Tensor:
        """Exact log p(x) for continuous data; for discrete data the dequantisation bound,
        importance-weighted over ``num_samples`` draws of u: log (1/K) sum_k p(x, u_k)/q(u_k|x)
        (``K = 1``: the plain bound; it tightens as K grows, as for IWAE)."""
        self.check_input(x)
        b = x.shape[0]
        x = x.reshape(b, *self.in_shape).to(self._dtype)
        if self.dequantizer is None:
            return self.flow.log_prob(x)
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        per = max(1, chunk // max(b, 1))  # draws per pass, so a pass holds <= chunk examples
        parts = []
        for start in range(0, num_samples, per):
            k = min(per, num_samples - start)
            xr = x.repeat(k, *([1] * (x.dim() - 1)))  # [k * B, ...]
            parts.append(self._bound(xr).view(k, b))
        lw = torch.cat(parts)  # [K, B]
        return torch.logsumexp(lw, 0) - math.log(num_samples)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` draws in the data's space: levels (the floor of L v) for discrete data."""
        y = self.flow.sample(n, temperature=temperature)
        x = y if self.dequantizer is None else self._postprocess(y)
        return x.reshape(n, *self.config.shape)


# -- the registered flows -------------------------------------------------------------------
ARCH_HELP = "auto (conv for images, mlp otherwise) | mlp (on flattened data) | conv"
MIXING_HELP = "between couplings: alternate halves, a random permutation, or a learned LU linear"


def _mixing(kind: str, dim: int, seed: int) -> list[FlowLayer]:
    if kind == "random":
        return [Permutation(random_permutation(dim, seed))]
    if kind == "lu":
        return [InvertibleConv1x1(dim, event_dim=1)]
    return []


def _vector_couplings(
    dim: int,
    n: int,
    kind: str,
    hidden: int,
    layers: int,
    mixing: str,
    actnorm: bool,
    dropout: float,
    act: str = "relu",
    bins: int = 8,
    bound: float = 3.0,
) -> list[FlowLayer]:
    """``n`` couplings on ``[B, D]``, each preceded by its mixing and followed by an actnorm."""
    if dim < 2:
        raise ConfigError("coupling flows need data of at least 2 dimensions")
    out: list[FlowLayer] = []
    for i in range(n):
        out += _mixing(mixing, dim, seed=i)
        flip = mixing == "alternate" and i % 2 == 1
        out.append(
            Coupling((dim,), "half", flip, kind, hidden, layers, 0, 0, bins, bound, act, dropout)
        )
        if actnorm:
            out.append(ActNorm(dim, event_dim=1))
    return out


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

    def uses_flat(self, c: RealNVPConfig) -> bool:
        if c.arch == "conv" and len(c.shape) != 3:
            raise ConfigError(f"arch=conv needs images (C, H, W), got shape {c.shape}")
        return not _conv_arch(c, c.shape)

    def build(self, c: RealNVPConfig, shape: tuple[int, ...]) -> FlowLayer:
        if len(shape) == 1:
            return FlowSequence(
                _vector_couplings(
                    shape[0], c.couplings, "affine", c.hidden, c.layers, c.mixing, c.actnorm,
                    c.dropout, c.activation,
                )
            )  # fmt: skip
        return self._scale(c, shape, 0)

    def _coupling(self, c: RealNVPConfig, shape: tuple, mask: str, i: int) -> list[FlowLayer]:
        packed = mask == "checkerboard" and c.checkerboard == "packed" and shape[-1] % 2 == 0
        layer = Coupling(
            shape, mask, i % 2 == 1, "affine", c.hidden, 0, c.blocks, 0, 8, 3.0, c.activation,
            c.dropout, packed,
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

    def uses_flat(self, c: GlowConfig) -> bool:
        return len(c.shape) != 3

    def _step(self, c: GlowConfig, shape: tuple) -> list[FlowLayer]:
        image = len(shape) == 3
        coupling = Coupling(
            shape, "channel" if image else "half", False, c.coupling, c.hidden, 2, 0, 0, 8, 3.0,
            c.activation, c.dropout,
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
                Coupling(mid, "channel", True, "affine", c.hidden, 2, 0, 0, 8, 3.0, c.activation)
            )
        inner = self._scale(c, (2 * ch, h // 2, w // 2), s + 1)
        return MultiScale(shape, post=post, split=2 * ch, inner=inner)


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
                out += _vector_couplings(
                    d, 1, "spline", c.hidden, c.layers, "lu", False, c.dropout, c.activation,
                    c.bins, c.bound,
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


# -- a flow from a list of named transforms ---------------------------------------------------
LayerMaker = Callable[[int, int, "GenericFlowConfig"], FlowLayer]


def _coupling_maker(kind: str) -> LayerMaker:
    def make(d: int, i: int, c: GenericFlowConfig) -> FlowLayer:
        return Coupling(
            (d,), "half", i % 2 == 1, kind, c.hidden, c.layers, 0, 0, c.bins, c.bound,
            c.activation,
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


__all__ = [
    "MAF",
    "NSF",
    "TRANSFORMS",
    "Flow",
    "FlowConfig",
    "FlowModel",
    "GenericFlow",
    "Glow",
    "RealNVP",
    "parse_transforms",
]
